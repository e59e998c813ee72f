/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2) from @noble/ciphers, the AEAD that wraps
 * master keys in keyslots.
 *
 * Why this AEAD: its 24-byte nonce may be drawn at random for every seal without a realistic
 * chance of repetition (the draft's §1 and §3.1), so a keyslot rewrite never has to track a
 * counter; it is constant-time in pure JavaScript, and keyslot payloads are tiny, so noble's
 * speed does not matter here. Nonces are arguments: src/ draws them.
 *
 * @module
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

/** Key length of XChaCha20-Poly1305. */
export const AEAD_KEY_BYTES = 32;
/** Nonce length of XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2). */
export const AEAD_NONCE_BYTES = 24;
/** Poly1305 tag length appended to every ciphertext (RFC 8439 §2.8). */
export const AEAD_TAG_BYTES = 16;

function checkArgs(key: unknown, nonce: unknown, text: unknown, aad: unknown, what: string): void {
  if (!(key instanceof Uint8Array)) throw new TypeError('aead: key must be a Uint8Array');
  if (!(nonce instanceof Uint8Array)) throw new TypeError('aead: nonce must be a Uint8Array');
  if (!(text instanceof Uint8Array)) throw new TypeError(`aead: ${what} must be a Uint8Array`);
  if (!(aad instanceof Uint8Array)) throw new TypeError('aead: aad must be a Uint8Array');
  if (key.length !== AEAD_KEY_BYTES) throw new RangeError('aead: key must be 32 bytes');
  if (nonce.length !== AEAD_NONCE_BYTES) throw new RangeError('aead: nonce must be 24 bytes');
}

/**
 * Encrypts and authenticates `plaintext` and authenticates `aad`.
 *
 * The caller MUST NOT seal two different messages with the same key and nonce: that reveals
 * their XOR and lets the Poly1305 key be recovered (RFC 8439 §4). A fresh random 24-byte
 * nonce per seal satisfies this.
 *
 * @returns ciphertext ‖ 16-byte tag (length = plaintext length + 16).
 * @throws TypeError for non-byte arguments, RangeError for a wrong key or nonce length.
 */
export function sealXChaCha20Poly1305(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkArgs(key, nonce, plaintext, aad, 'plaintext');
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/**
 * Verifies and decrypts ciphertext ‖ tag.
 *
 * @returns the plaintext, or `null` when authentication fails (wrong key, nonce or aad, or
 *   altered or truncated bytes). A tag failure is an expected outcome, e.g. of a wrong
 *   passphrase, never an exception; strict null checks make callers handle it. Nothing of the
 *   unauthenticated plaintext is returned or kept.
 * @throws TypeError for non-byte arguments, RangeError for a wrong key or nonce length.
 */
export function openXChaCha20Poly1305(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  checkArgs(key, nonce, sealed, aad, 'sealed');
  // Shorter than a tag cannot be authentic; the bytes usually come from disk, so this is a
  // failed authentication, not a programming error.
  if (sealed.length < AEAD_TAG_BYTES) return null;
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    // Every argument was validated above, so the only failure left is the tag check (noble
    // compares tags in constant time before decrypting anything).
    return null;
  }
}
