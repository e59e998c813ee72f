/**
 * The Argon2id password built from what the user supplies (SPEC §4.1): a passphrase alone, or a
 * passphrase (possibly empty) combined with the SHA-256 digests of one or more keyfiles.
 */
import { writeU32LE } from '../crypto/bytes.js';
import { LABELS, sha256 } from '../crypto/hkdf.js';

/** Digest of a keyfile's full contents (SPEC §4.1: `d_i = SHA-256(keyfile)`). */
export function digestKeyfile(contents: Uint8Array): Uint8Array {
  return sha256(contents);
}

/**
 * Build `kdf_input` (SPEC §4.1). With no keyfile digests this is the passphrase itself, so a
 * passphrase-only slot is plain Argon2id of the passphrase. The caller owns and wipes the result.
 */
export function buildKdfInput(passphrase: Uint8Array, keyfileDigests: Uint8Array[]): Uint8Array {
  if (keyfileDigests.length === 0) return Uint8Array.from(passphrase);
  for (const d of keyfileDigests) {
    if (d.length !== 32) throw new RangeError('keyfile digest must be 32 bytes');
  }
  // SPEC §4.1: sort digests so the order of --key-file options does not matter.
  const sorted = [...keyfileDigests].sort((a, b) => Buffer.compare(a, b));
  const label = new TextEncoder().encode(LABELS.keyfile);
  const out = new Uint8Array(label.length + 4 + passphrase.length + 4 + 32 * sorted.length);
  let off = 0;
  out.set(label, off);
  off += label.length;
  writeU32LE(out, off, passphrase.length);
  off += 4;
  out.set(passphrase, off);
  off += passphrase.length;
  writeU32LE(out, off, sorted.length);
  off += 4;
  for (const d of sorted) {
    out.set(d, off);
    off += 32;
  }
  return out;
}
