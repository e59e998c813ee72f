/** crypto/aead.ts: XChaCha20-Poly1305 against draft-irtf-cfrg-xchacha-03 §A.3.1. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  openXChaCha20Poly1305,
  sealXChaCha20Poly1305,
} from '../../crypto/aead.js';

const h = (s: string): Uint8Array => Buffer.from(s, 'hex');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// draft-irtf-cfrg-xchacha-03, Appendix A.3.1 (AEAD_XChaCha20_Poly1305 example).
const KEY = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
const NONCE = h('404142434445464748494a4b4c4d4e4f5051525354555657');
const AAD = h('50515253c0c1c2c3c4c5c6c7');
const PLAINTEXT = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const CIPHERTEXT =
  'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb' +
  '731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
  '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
  '21f9664c97637da9768812f615c68b13b52e';
const TAG = 'c0875924c1c7987947deafd8780acf49';

test('constants', () => {
  assert.is(AEAD_KEY_BYTES, 32);
  assert.is(AEAD_NONCE_BYTES, 24);
  assert.is(AEAD_TAG_BYTES, 16);
});

test('draft-irtf-cfrg-xchacha-03 A.3.1: seal gives ciphertext || tag', () => {
  assert.is(PLAINTEXT.length, 114);
  const sealed = sealXChaCha20Poly1305(KEY, NONCE, PLAINTEXT, AAD);
  assert.is(hex(sealed), CIPHERTEXT + TAG);
});

test('draft-irtf-cfrg-xchacha-03 A.3.1: open gives the plaintext', () => {
  const opened = openXChaCha20Poly1305(KEY, NONCE, h(CIPHERTEXT + TAG), AAD);
  assert.ok(opened !== null);
  assert.is(hex(opened), hex(PLAINTEXT));
});

test('any tampering gives null, never an exception', () => {
  const sealed = h(CIPHERTEXT + TAG);
  const flip = (b: Uint8Array, i: number): Uint8Array => {
    const c = Uint8Array.from(b);
    c[i]! ^= 0x01;
    return c;
  };
  for (const i of [0, 57, sealed.length - 17, sealed.length - 16, sealed.length - 1]) {
    assert.is(openXChaCha20Poly1305(KEY, NONCE, flip(sealed, i), AAD), null, `byte ${i}`);
  }
  assert.is(openXChaCha20Poly1305(flip(KEY, 31), NONCE, sealed, AAD), null, 'key');
  assert.is(openXChaCha20Poly1305(KEY, flip(NONCE, 23), sealed, AAD), null, 'nonce');
  assert.is(openXChaCha20Poly1305(KEY, NONCE, sealed, flip(AAD, 0)), null, 'aad');
  assert.is(openXChaCha20Poly1305(KEY, NONCE, sealed, new Uint8Array(0)), null, 'no aad');
  assert.is(openXChaCha20Poly1305(KEY, NONCE, sealed.subarray(0, -1), AAD), null, 'truncated');
  assert.is(openXChaCha20Poly1305(KEY, NONCE, sealed.subarray(0, 15), AAD), null, 'short');
  assert.is(openXChaCha20Poly1305(KEY, NONCE, new Uint8Array(0), AAD), null, 'empty');
});

test('empty plaintext round-trips as a bare tag', () => {
  const sealed = sealXChaCha20Poly1305(KEY, NONCE, new Uint8Array(0), AAD);
  assert.is(sealed.length, AEAD_TAG_BYTES);
  assert.is(openXChaCha20Poly1305(KEY, NONCE, sealed, AAD)?.length, 0);
});

test('wrong key or nonce lengths throw RangeError, non-bytes TypeError', () => {
  const isRange = (msg: string) => (e: unknown) => e instanceof RangeError && e.message === msg;
  for (const n of [0, 12, 23, 25]) {
    const nonce = new Uint8Array(n);
    assert.throws(
      () => sealXChaCha20Poly1305(KEY, nonce, PLAINTEXT, AAD),
      isRange('aead: nonce must be 24 bytes'),
    );
    assert.throws(
      () => openXChaCha20Poly1305(KEY, nonce, h(TAG), AAD),
      isRange('aead: nonce must be 24 bytes'),
    );
  }
  for (const n of [0, 16, 31, 33, 64]) {
    const key = new Uint8Array(n);
    assert.throws(
      () => sealXChaCha20Poly1305(key, NONCE, PLAINTEXT, AAD),
      isRange('aead: key must be 32 bytes'),
    );
    assert.throws(
      () => openXChaCha20Poly1305(key, NONCE, h(TAG), AAD),
      isRange('aead: key must be 32 bytes'),
    );
  }
  const notBytes = 'x' as unknown as Uint8Array;
  assert.throws(() => sealXChaCha20Poly1305(KEY, NONCE, notBytes, AAD), TypeError);
  assert.throws(() => openXChaCha20Poly1305(KEY, NONCE, h(TAG), notBytes), TypeError);
});

test('fresh nonces give unrelated ciphertexts for the same message', () => {
  const a = sealXChaCha20Poly1305(KEY, NONCE, PLAINTEXT, AAD);
  const nonce2 = Uint8Array.from(NONCE);
  nonce2[0]! ^= 0x80;
  const b = sealXChaCha20Poly1305(KEY, nonce2, PLAINTEXT, AAD);
  assert.is.not(hex(a), hex(b));
  assert.is(hex(openXChaCha20Poly1305(KEY, nonce2, b, AAD)!), hex(PLAINTEXT));
});

test.run();
