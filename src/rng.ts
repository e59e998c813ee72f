/**
 * The one source of randomness (ARCHITECTURE.md §2): `crypto/` and `volume-format/` take random
 * bytes as arguments; only `src/` draws them, through this interface that tests can replace.
 */
import { randomBytes } from 'node:crypto';

/** Something that yields random bytes. */
export interface Rng {
  bytes(length: number): Uint8Array;
}

/** OpenSSL's CSPRNG via node:crypto (SPEC §5.2). */
export const systemRng: Rng = {
  bytes: (length) => new Uint8Array(randomBytes(length)),
};
