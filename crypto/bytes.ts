/**
 * Byte helpers shared by every layer: wiping, constant-time comparison and little-endian
 * integer codecs that refuse to lose precision.
 *
 * Integers on disk are little-endian, like LUKS2's binary header fields read on x86 and like
 * IEEE 1619's tweak encoding. JavaScript numbers are exact only up to 2^53-1, so a 64-bit
 * field above that is refused instead of being silently rounded (a rounded offset or size read
 * from a hostile header would point somewhere else than the header says).
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';

const TWO_POW_32 = 0x1_0000_0000;
/** Largest high word of a u64 whose value still fits in 2^53-1 (2^21-1). */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

/**
 * Overwrites every given buffer with zeros; `undefined` and `null` entries are skipped so a
 * `finally` block can wipe buffers that may not have been assigned yet.
 *
 * This is best effort: the JavaScript engine may have copied the bytes elsewhere (a GC move
 * of an on-heap typed array, a library's internal copy). It still shortens the time a secret
 * stays in memory we control.
 */
export function wipe(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const buf of bufs) buf?.fill(0);
}

/**
 * Compares two byte strings in time that depends only on their length, for MACs, tags and key
 * halves. Returns false (without comparing contents) when the lengths differ; lengths are
 * public in every place we compare.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) {
    throw new TypeError('bytes: constantTimeEqual needs two Uint8Arrays');
  }
  if (a.length !== b.length) return false;
  // node:crypto's timingSafeEqual is OpenSSL's CRYPTO_memcmp: no early exit.
  return timingSafeEqual(a, b);
}

/**
 * True when every byte is zero. Accumulates with OR over the whole buffer (no early exit), so
 * the time does not reveal where the first non-zero byte is.
 */
export function isAllZero(buf: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < buf.length; i++) acc |= buf[i]!;
  return acc === 0;
}

/** Concatenates byte strings into one freshly allocated Uint8Array. */
/**
 * An independent copy of `buf[start, end)`. `Buffer.prototype.slice` returns a view that
 * shares memory with its source, so decoders that keep fields use this instead: wiping or
 * reusing a read buffer must never change decoded values.
 */
export function copyBytes(buf: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, start, end);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) {
    if (!(part instanceof Uint8Array)) throw new TypeError('bytes: concatBytes needs Uint8Arrays');
    total += part.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const part of parts) {
    out.set(part, off);
    off += part.length;
  }
  return out;
}

function checkRange(buf: Uint8Array, off: number, width: number): void {
  if (!(buf instanceof Uint8Array)) throw new TypeError('bytes: buffer must be a Uint8Array');
  if (!Number.isInteger(off) || off < 0 || off + width > buf.length) {
    throw new RangeError('bytes: offset out of range');
  }
}

function checkValue(value: number, max: number, bits: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`bytes: value is not a u${bits}`);
  }
}

/** Reads an unsigned 16-bit little-endian integer at `off`. */
export function readU16LE(buf: Uint8Array, off: number): number {
  checkRange(buf, off, 2);
  return buf[off]! | (buf[off + 1]! << 8);
}

/** Reads an unsigned 32-bit little-endian integer at `off`. */
export function readU32LE(buf: Uint8Array, off: number): number {
  checkRange(buf, off, 4);
  // `>>> 0` keeps bit 31 from turning the result negative.
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

/**
 * Reads an unsigned 64-bit little-endian integer at `off` as an exact `number`.
 *
 * @throws RangeError('u64 value exceeds 2^53-1') when the value is not exactly representable;
 *   callers treat that as a malformed field, never as a large value.
 */
export function readU64LE(buf: Uint8Array, off: number): number {
  checkRange(buf, off, 8);
  const lo = readU32LE(buf, off);
  const hi = readU32LE(buf, off + 4);
  if (hi > MAX_SAFE_HIGH_WORD) throw new RangeError('u64 value exceeds 2^53-1');
  return hi * TWO_POW_32 + lo;
}

/** Writes `value` (an integer in 0..0xffff) as 16-bit little-endian at `off`. */
export function writeU16LE(buf: Uint8Array, off: number, value: number): void {
  checkRange(buf, off, 2);
  checkValue(value, 0xffff, 16);
  buf[off] = value & 0xff;
  buf[off + 1] = value >>> 8;
}

/** Writes `value` (an integer in 0..2^32-1) as 32-bit little-endian at `off`. */
export function writeU32LE(buf: Uint8Array, off: number, value: number): void {
  checkRange(buf, off, 4);
  checkValue(value, 0xffff_ffff, 32);
  buf[off] = value & 0xff;
  buf[off + 1] = (value >>> 8) & 0xff;
  buf[off + 2] = (value >>> 16) & 0xff;
  buf[off + 3] = value >>> 24;
}

/**
 * Writes `value` (an integer in 0..2^53-1) as 64-bit little-endian at `off`. Larger values are
 * refused rather than written imprecisely.
 */
export function writeU64LE(buf: Uint8Array, off: number, value: number): void {
  checkRange(buf, off, 8);
  checkValue(value, Number.MAX_SAFE_INTEGER, 64);
  writeU32LE(buf, off, value >>> 0); // ToUint32 is exact modulo 2^32 for safe integers
  writeU32LE(buf, off + 4, Math.floor(value / TWO_POW_32));
}
