/**
 * The checksum record of a re-encryption segment (SPEC §15.5), on its own so that the worker
 * threads that fill it (src/volume/recrypt-worker.ts) load nothing else of volume-format/.
 *
 * @module
 */
import { FINGERPRINT_BLOCK_BYTES, FINGERPRINT_BYTES } from './constants.js';

/**
 * SPEC §15.5 checksum record: for each 512-byte block of `ciphertext` (the segment's old
 * ciphertext), its first 16 bytes. Copying bytes instead of hashing keeps this at memory speed;
 * SHA-256 per sector was slower than the re-encryption itself (bench/PERFORMANCE.md, "Figures
 * behind code comments").
 */
export function buildChecksumRecord(ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length % FINGERPRINT_BLOCK_BYTES !== 0) {
    throw new RangeError('checksum record: length must be a multiple of 512');
  }
  const out = new Uint8Array((ciphertext.length / FINGERPRINT_BLOCK_BYTES) * FINGERPRINT_BYTES);
  writeChecksumRecord(ciphertext, out);
  return out;
}

/**
 * {@link buildChecksumRecord} into `out` (exactly `ciphertext.length / 32` bytes), so the
 * re-encryption can fill its record where the chunk is already in the cache: on the thread
 * that re-encrypts it, just before it does.
 */
export function writeChecksumRecord(ciphertext: Uint8Array, out: Uint8Array): void {
  const blocks = blocksOf(ciphertext, out);
  if (ciphertext.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
    // Fast path: four 32-bit words per fingerprint.
    const src = new Uint32Array(ciphertext.buffer, ciphertext.byteOffset, ciphertext.length / 4);
    const dst = new Uint32Array(out.buffer, out.byteOffset, out.length / 4);
    const stride = FINGERPRINT_BLOCK_BYTES / 4;
    for (let b = 0; b < blocks; b++) {
      const s = b * stride;
      const d = b * 4;
      dst[d] = src[s]!;
      dst[d + 1] = src[s + 1]!;
      dst[d + 2] = src[s + 2]!;
      dst[d + 3] = src[s + 3]!;
    }
    return;
  }
  for (let b = 0; b < blocks; b++) {
    const s = b * FINGERPRINT_BLOCK_BYTES;
    for (let i = 0; i < FINGERPRINT_BYTES; i++) out[b * FINGERPRINT_BYTES + i] = ciphertext[s + i]!;
  }
}

/**
 * Compare `ciphertext` with a checksum record made earlier (`expected`, 16 bytes per 512-byte
 * block): the index of the first 512-byte block whose first 16 bytes differ, or -1 when all
 * match. A writer that reads a segment again in SPEC §15.6 step 4 checks it with this first,
 * since recovery trusts the record, not the second read.
 */
export function findChecksumMismatch(ciphertext: Uint8Array, expected: Uint8Array): number {
  const blocks = blocksOf(ciphertext, expected);
  if (ciphertext.byteOffset % 4 === 0 && expected.byteOffset % 4 === 0) {
    // Fast path, as in writeChecksumRecord.
    const src = new Uint32Array(ciphertext.buffer, ciphertext.byteOffset, ciphertext.length / 4);
    const fp = new Uint32Array(expected.buffer, expected.byteOffset, expected.length / 4);
    const stride = FINGERPRINT_BLOCK_BYTES / 4;
    for (let b = 0; b < blocks; b++) {
      const s = b * stride;
      const d = b * 4;
      if (
        fp[d] !== src[s] ||
        fp[d + 1] !== src[s + 1] ||
        fp[d + 2] !== src[s + 2] ||
        fp[d + 3] !== src[s + 3]
      ) {
        return b;
      }
    }
    return -1;
  }
  for (let b = 0; b < blocks; b++) {
    const s = b * FINGERPRINT_BLOCK_BYTES;
    for (let i = 0; i < FINGERPRINT_BYTES; i++) {
      if (expected[b * FINGERPRINT_BYTES + i] !== ciphertext[s + i]) return b;
    }
  }
  return -1;
}

/** The number of 512-byte blocks in `ciphertext`, once both lengths are checked. */
function blocksOf(ciphertext: Uint8Array, record: Uint8Array): number {
  if (ciphertext.length % FINGERPRINT_BLOCK_BYTES !== 0) {
    throw new RangeError('checksum record: length must be a multiple of 512');
  }
  const blocks = ciphertext.length / FINGERPRINT_BLOCK_BYTES;
  if (record.length !== blocks * FINGERPRINT_BYTES) {
    throw new RangeError('checksum record: must be 16 bytes per 512-byte block');
  }
  return blocks;
}
