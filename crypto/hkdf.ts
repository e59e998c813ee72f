/**
 * SHA-256, HMAC-SHA256 and HKDF-SHA256 (from @noble/hashes), and the one table of
 * domain-separation labels.
 *
 * Every key this product derives from another key goes through HKDF with a label from
 * {@link LABELS}, so two uses of the same master key can never produce related outputs
 * (RFC 5869 §3.2: "info" binds the derived key to its context). Keeping every label in this
 * file makes a collision between two of them visible in review.
 *
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/** SHA-256 output and HMAC-SHA256 tag length in bytes. */
export const SHA256_BYTES = 32;
/** RFC 5869 §2.3: L ≤ 255 · HashLen. */
const HKDF_SHA256_MAX_BYTES = 255 * SHA256_BYTES;

/**
 * Domain-separation labels, versioned with the format ("cryptainer v1 …") so that a future
 * format derives unrelated keys even from the same master key.
 */
export const LABELS = {
  /** HKDF info for the header MAC key (see {@link deriveHeaderMacKey}). */
  headerMac: 'cryptainer v1 header-mac',
  /** Associated-data prefix binding a wrapped keyslot to its purpose. */
  keyslotAad: 'cryptainer v1 keyslot',
  /** Label for wrapping the old master key during re-encryption. */
  reencryptOldKey: 'cryptainer v1 reencrypt-old-key',
  /** Label for turning keyfile contents into keyslot input. */
  keyfile: 'cryptainer v1 keyfile',
} as const;

/** Name of a domain-separation label. */
export type LabelName = keyof typeof LABELS;

const encoder = new TextEncoder();

/** The UTF-8 bytes of a label (a fresh copy each call, so callers may keep or wipe it). */
export function labelBytes(label: LabelName): Uint8Array {
  const text = LABELS[label];
  if (typeof text !== 'string') throw new RangeError(`hkdf: unknown label ${String(label)}`);
  return encoder.encode(text);
}

function checkBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`hkdf: ${what} must be a Uint8Array`);
}

/** SHA-256 (FIPS 180-4) of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  checkBytes(data, 'data');
  return nobleSha256(data);
}

/** HMAC-SHA256 (RFC 2104, FIPS 198-1) of `data` under `key`. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  return hmac(nobleSha256, key, data);
}

/**
 * HKDF-SHA256 (RFC 5869 §2): extract with `salt`, then expand with `info` to `length` bytes.
 * `info` must be bytes (use {@link labelBytes}); an empty salt acts as HashLen zero bytes
 * (RFC 5869 §2.2).
 *
 * @throws RangeError unless 1 ≤ length ≤ 8160 (255 · 32, RFC 5869 §2.3).
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  checkBytes(ikm, 'ikm');
  checkBytes(salt, 'salt');
  checkBytes(info, 'info');
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_BYTES) {
    throw new RangeError('hkdf: length must be an integer from 1 to 8160');
  }
  return hkdf(nobleSha256, ikm, salt, info, length);
}

/** Master key length the header MAC key is derived from (XTS-AES-256: K1 ‖ K2). */
const MASTER_KEY_BYTES = 64;
/** Volume UUID length. */
const UUID_BYTES = 16;

/**
 * The key of the header's keyed MAC: HKDF-SHA256(IKM = master key, salt = volume UUID,
 * info = "cryptainer v1 header-mac", L = 32).
 *
 * Why derived rather than the master key itself: the master key is the XTS key and must be
 * used for nothing else; HKDF gives an independent key for the MAC (RFC 5869 §3.3 on using
 * HKDF to separate keys). The UUID as salt makes the MAC key differ between two volumes even
 * if they were ever given the same master key (for instance a block-level copy re-keyed later).
 *
 * @throws RangeError unless the master key is 64 bytes and the UUID 16 bytes.
 */
export function deriveHeaderMacKey(masterKey: Uint8Array, uuid: Uint8Array): Uint8Array {
  checkBytes(masterKey, 'master key');
  checkBytes(uuid, 'uuid');
  if (masterKey.length !== MASTER_KEY_BYTES) {
    throw new RangeError('hkdf: master key must be 64 bytes');
  }
  if (uuid.length !== UUID_BYTES) throw new RangeError('hkdf: uuid must be 16 bytes');
  return hkdfSha256(masterKey, uuid, labelBytes('headerMac'), SHA256_BYTES);
}
