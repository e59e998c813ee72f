/** crypto/hkdf.ts against RFC 5869 Appendix A, RFC 4231 and FIPS 180-2's "abc". */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  deriveHeaderMacKey,
  hkdfSha256,
  hmacSha256,
  LABELS,
  labelBytes,
  sha256,
} from '../../crypto/hkdf.js';

const h = (s: string): Uint8Array => Buffer.from(s, 'hex');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const seq = (from: number, n: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => from + i);

test('RFC 5869 A.1: basic test case with SHA-256', () => {
  const okm = hkdfSha256(
    h('0b'.repeat(22)),
    h('000102030405060708090a0b0c'),
    h('f0f1f2f3f4f5f6f7f8f9'),
    42,
  );
  assert.is(
    hex(okm),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

test('RFC 5869 A.2: longer inputs/outputs', () => {
  const okm = hkdfSha256(seq(0x00, 80), seq(0x60, 80), seq(0xb0, 80), 82);
  assert.is(
    hex(okm),
    'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c' +
      '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71' +
      'cc30c58179ec3e87c14c01d5c1f3434f1d87',
  );
});

test('RFC 5869 A.3: zero-length salt and info', () => {
  const okm = hkdfSha256(h('0b'.repeat(22)), new Uint8Array(0), new Uint8Array(0), 42);
  assert.is(
    hex(okm),
    '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  );
});

test('RFC 4231 test cases 1 and 2 (HMAC-SHA-256)', () => {
  const enc = new TextEncoder();
  assert.is(
    hex(hmacSha256(h('0b'.repeat(20)), enc.encode('Hi There'))),
    'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
  );
  assert.is(
    hex(hmacSha256(enc.encode('Jefe'), enc.encode('what do ya want for nothing?'))),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  );
});

test('SHA-256("abc") (FIPS 180-2 Appendix B.1)', () => {
  assert.is(
    hex(sha256(new TextEncoder().encode('abc'))),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
});

test('labels: exact strings, distinct, UTF-8, fresh copies', () => {
  assert.equal(LABELS, {
    headerMac: 'cryptainer v1 header-mac',
    keyslotAad: 'cryptainer v1 keyslot',
    reencryptOldKey: 'cryptainer v1 reencrypt-old-key',
    keyfile: 'cryptainer v1 keyfile',
  });
  const values = Object.values(LABELS);
  assert.is(new Set(values).size, values.length);
  assert.is(Buffer.from(labelBytes('headerMac')).toString('utf8'), 'cryptainer v1 header-mac');
  const a = labelBytes('keyfile');
  a.fill(0);
  assert.is(Buffer.from(labelBytes('keyfile')).toString('utf8'), 'cryptainer v1 keyfile');
  assert.throws(() => labelBytes('nope' as 'keyfile'), RangeError);
});

test('deriveHeaderMacKey = HKDF-SHA256(master key, uuid, "cryptainer v1 header-mac", 32)', () => {
  const master = seq(1, 64);
  const uuid = seq(0xa0, 16);
  const key = deriveHeaderMacKey(master, uuid);
  assert.is(key.length, 32);
  const info = new TextEncoder().encode('cryptainer v1 header-mac');
  assert.is(hex(key), hex(hkdfSha256(master, uuid, info, 32)));
  // Another UUID gives an unrelated key.
  assert.is.not(hex(deriveHeaderMacKey(master, seq(0xb0, 16))), hex(key));
  assert.throws(() => deriveHeaderMacKey(seq(0, 32), uuid), RangeError);
  assert.throws(() => deriveHeaderMacKey(master, seq(0, 15)), RangeError);
});

test('argument checks', () => {
  const k = new Uint8Array(32);
  assert.throws(() => hkdfSha256(k, k, 'info' as unknown as Uint8Array, 32), TypeError);
  for (const len of [0, -1, 1.5, 8161]) {
    assert.throws(() => hkdfSha256(k, k, k, len), RangeError, `length ${len}`);
  }
  assert.is(hkdfSha256(k, k, k, 8160).length, 8160);
  assert.throws(() => hmacSha256(k, null as unknown as Uint8Array), TypeError);
  assert.throws(() => sha256('abc' as unknown as Uint8Array), TypeError);
});

test.run();
