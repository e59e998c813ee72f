/**
 * The crypto layer: pure primitives, bytes in and bytes out. No file system, no processes, no
 * clock and no randomness: keys, salts and nonces are always arguments (ARCHITECTURE.md §2),
 * so every encoder above this layer is deterministic and testable with fixed vectors.
 *
 * @module
 */
export {
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
} from './bytes.js';
export { XTS_KEY_BYTES, XtsCipher, type XtsEngine, type XtsOptions } from './xts.js';
export {
  argon2idRaw,
  checkArgon2idParams,
  deriveArgon2id,
  KDF_LIMITS,
  KdfLimitError,
  type Argon2idParams,
} from './kdf.js';
export {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  openXChaCha20Poly1305,
  sealXChaCha20Poly1305,
} from './aead.js';
export {
  deriveHeaderMacKey,
  hkdfSha256,
  hmacSha256,
  LABELS,
  labelBytes,
  sha256,
  SHA256_BYTES,
  type LabelName,
} from './hkdf.js';
