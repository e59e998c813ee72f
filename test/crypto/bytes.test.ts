/** crypto/bytes.ts: wiping, constant-time compare and the little-endian codecs. */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  concatBytes,
  constantTimeEqual,
  isAllZero,
  readU16LE,
  readU32LE,
  readU64LE,
  wipe,
  writeU16LE,
  writeU32LE,
  writeU64LE,
} from '../../crypto/bytes.js';

const rangeError = (message: string) => (e: unknown) =>
  e instanceof RangeError && e.message === message;

test('wipe zeroes every buffer and skips null and undefined', () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = Buffer.from([4, 5]);
  wipe(a, undefined, b, null);
  assert.equal([...a], [0, 0, 0]);
  assert.equal([...b], [0, 0]);
  wipe();
});

test('constantTimeEqual', () => {
  assert.ok(constantTimeEqual(new Uint8Array([1, 2]), Buffer.from([1, 2])));
  assert.not.ok(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
  assert.not.ok(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])));
  assert.ok(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)));
  assert.throws(
    () => constantTimeEqual('ab' as unknown as Uint8Array, new Uint8Array(2)),
    TypeError,
  );
});

test('isAllZero', () => {
  assert.ok(isAllZero(new Uint8Array(0)));
  assert.ok(isAllZero(new Uint8Array(100)));
  const b = new Uint8Array(100);
  b[99] = 0x80;
  assert.not.ok(isAllZero(b));
});

test('concatBytes', () => {
  const out = concatBytes(new Uint8Array([1]), Buffer.from([2, 3]), new Uint8Array(0));
  assert.equal([...out], [1, 2, 3]);
  assert.is(concatBytes().length, 0);
});

test('u16 and u32 little-endian', () => {
  const b = new Uint8Array(8);
  writeU16LE(b, 1, 0xbeef);
  assert.equal([...b.subarray(0, 3)], [0, 0xef, 0xbe]);
  assert.is(readU16LE(b, 1), 0xbeef);
  writeU32LE(b, 4, 0xdeadbeef);
  assert.equal([...b.subarray(4)], [0xef, 0xbe, 0xad, 0xde]);
  assert.is(readU32LE(b, 4), 0xdeadbeef); // bit 31 set, still positive
});

test('u64: exact up to 2^53-1, refused above', () => {
  const b = new Uint8Array(8);
  writeU64LE(b, 0, Number.MAX_SAFE_INTEGER);
  assert.equal([...b], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]);
  assert.is(readU64LE(b, 0), Number.MAX_SAFE_INTEGER);
  b[6] = 0x20; // 2^53
  assert.throws(() => readU64LE(b, 0), rangeError('u64 value exceeds 2^53-1'));
  b.fill(0xff); // 2^64-1
  assert.throws(() => readU64LE(b, 0), rangeError('u64 value exceeds 2^53-1'));
  writeU64LE(b, 0, 0x1_0000_0001);
  assert.equal([...b], [1, 0, 0, 0, 1, 0, 0, 0]);
});

test('writers refuse values that do not fit or are not integers', () => {
  const b = new Uint8Array(8);
  for (const v of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) {
    assert.throws(() => writeU64LE(b, 0, v), RangeError, `u64 ${v}`);
  }
  assert.throws(() => writeU32LE(b, 0, 2 ** 32), RangeError);
  assert.throws(() => writeU16LE(b, 0, 0x10000), RangeError);
  assert.throws(() => writeU16LE(b, 0, -1), RangeError);
  assert.equal([...b], [0, 0, 0, 0, 0, 0, 0, 0]); // nothing written on refusal
});

test('offsets out of range are refused', () => {
  const b = new Uint8Array(8);
  const oob = rangeError('bytes: offset out of range');
  assert.throws(() => readU64LE(b, 1), oob);
  assert.throws(() => readU32LE(b, 5), oob);
  assert.throws(() => readU16LE(b, -1), oob);
  assert.throws(() => readU16LE(b, 0.5), oob);
  assert.throws(() => writeU32LE(b, 6, 1), oob);
  assert.throws(() => readU16LE([1, 2] as unknown as Uint8Array, 0), TypeError);
});

test('property: write then read is the identity, and matches Buffer', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.nat(8), (v, off) => {
      const b = new Uint8Array(16);
      writeU64LE(b, off, v);
      assert.is(readU64LE(b, off), v);
      assert.is(Buffer.from(b).readBigUInt64LE(off), BigInt(v));
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (v) => {
      const b = new Uint8Array(4);
      writeU32LE(b, 0, v);
      assert.is(readU32LE(b, 0), v);
      assert.is(Buffer.from(b).readUInt32LE(0), v);
    }),
  );
});

test.run();
