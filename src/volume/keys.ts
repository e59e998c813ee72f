/**
 * The master-key rules in one place: SPEC §5.1 (a master key is K1 ‖ K2 with K1 ≠ K2, and a
 * fresh one is drawn until that holds) and SPEC §8 step 6 (the header MAC, keyed from the
 * master key, must verify before anything from the header is used to write).
 */
import { constantTimeEqual, wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { MASTER_KEY_BYTES } from '../../volume-format/constants.js';
import { IntegrityError } from '../../volume-format/errors.js';
import { verifyHeaderMac } from '../../volume-format/header.js';
import type { HeaderChoice } from '../../volume-format/header-copies.js';
import type { Rng } from '../rng.js';

const HALF = MASTER_KEY_BYTES / 2;

/** SPEC §5.1: true when K1 = K2 (XTS with equal halves is weak; OpenSSL refuses it). */
export function hasEqualHalves(key: Uint8Array): boolean {
  return constantTimeEqual(key.subarray(0, HALF), key.subarray(HALF));
}

/**
 * SPEC §5.1 for a master key read from a header: throws `WEAK_KEY` ("`what` halves are
 * equal") after wiping `key` when K1 = K2.
 */
export function checkKeyHalves(key: Uint8Array, what: string): void {
  if (hasEqualHalves(key)) {
    wipe(key);
    throw new IntegrityError('WEAK_KEY', `${what} halves are equal`);
  }
}

/**
 * SPEC §5.1: a fresh master key with K1 ≠ K2 (equal halves from a CSPRNG are astronomically
 * unlikely, but a test Rng can produce them) and, when given, ≠ `previous` (a rekey must
 * change the key to mean anything).
 */
export function drawMasterKey(rng: Rng, previous?: Uint8Array): Uint8Array {
  for (;;) {
    const key = rng.bytes(MASTER_KEY_BYTES);
    if (!hasEqualHalves(key) && !(previous && constantTimeEqual(key, previous))) return key;
    wipe(key);
  }
}

/** True when two master keys are the same (constant time). */
export function sameMasterKey(a: Uint8Array, b: Uint8Array): boolean {
  return constantTimeEqual(a, b);
}

/**
 * SPEC §8 step 6: the header MAC key of `masterKey` when the winning copy of `choice`
 * authenticates under it (caller wipes), else null (nothing left to wipe).
 */
export function authenticHeaderMacKey(
  masterKey: Uint8Array,
  choice: HeaderChoice,
): Uint8Array | null {
  const macKey = deriveHeaderMacKey(masterKey, choice.fields.uuid);
  if (verifyHeaderMac(choice.winnerBytes, macKey)) return macKey;
  wipe(macKey);
  return null;
}

/** The `HEADER_TAMPERED` error for the winning copy of `choice`. */
export function headerTampered(choice: HeaderChoice): IntegrityError {
  return new IntegrityError(
    'HEADER_TAMPERED',
    `header copy ${choice.winner}: authentication failed (modified without the key)`,
  );
}

/**
 * {@link authenticHeaderMacKey} that throws `HEADER_TAMPERED` instead of returning null: for
 * callers with no other copy to fall back to.
 */
export function authenticateHeader(masterKey: Uint8Array, choice: HeaderChoice): Uint8Array {
  const macKey = authenticHeaderMacKey(masterKey, choice);
  if (macKey === null) throw headerTampered(choice);
  return macKey;
}
