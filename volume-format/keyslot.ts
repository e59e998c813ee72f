/**
 * Keyslots (SPEC §4): encode/decode of the 256-byte records and the pure wrap/unwrap of the
 * master key under a KEK that the caller derived with Argon2id (SPEC §4.2).
 */
import { openXChaCha20Poly1305, sealXChaCha20Poly1305 } from '../crypto/aead.js';
import {
  copyBytes,
  isAllZero,
  readU16LE,
  readU32LE,
  writeU16LE,
  writeU32LE,
} from '../crypto/bytes.js';
import { LABELS } from '../crypto/hkdf.js';
import { type Argon2idParams, checkArgon2idParams } from '../crypto/kdf.js';
import {
  KDF_ALGORITHM_ARGON2ID,
  KDF_SALT_BYTES,
  KEYSLOT_AAD_PREFIX_BYTES,
  KEYSLOT_COUNT,
  KEYSLOT_FIELD_OFFSETS as F,
  KEYSLOT_SIZE,
  KEYSLOT_STATE_ACTIVE,
  KEYSLOT_STATE_INACTIVE,
  MASTER_KEY_BYTES,
  UUID_BYTES,
  WRAP_ALGORITHM_XCHACHA20_POLY1305,
  WRAP_NONCE_BYTES,
  WRAPPED_KEY_BYTES,
} from './constants.js';
import { FormatError, UnsupportedError } from './errors.js';

/** An unused keyslot: 256 zero bytes on disk. */
export interface InactiveKeyslot {
  state: 'inactive';
}

/** A keyslot holding the master key wrapped under an Argon2id-derived KEK. */
export interface ActiveKeyslot {
  state: 'active';
  kdf: Argon2idParams;
  kdfSalt: Uint8Array;
  wrapNonce: Uint8Array;
  /** 64-byte ciphertext || 16-byte Poly1305 tag. */
  wrappedKey: Uint8Array;
}

/** One entry of the keyslot table. */
export type Keyslot = InactiveKeyslot | ActiveKeyslot;

/** A fresh inactive keyslot. */
export function inactiveKeyslot(): InactiveKeyslot {
  return { state: 'inactive' };
}

/** Encode a keyslot to its 256 bytes (SPEC §4). */
export function encodeKeyslot(slot: Keyslot): Uint8Array {
  const out = new Uint8Array(KEYSLOT_SIZE);
  if (slot.state === 'inactive') return out; // SPEC §4: inactive = all zero
  checkLength(slot.kdfSalt, KDF_SALT_BYTES, 'kdf salt');
  checkLength(slot.wrapNonce, WRAP_NONCE_BYTES, 'wrap nonce');
  checkLength(slot.wrappedKey, WRAPPED_KEY_BYTES, 'wrapped key');
  writeU16LE(out, F.state, KEYSLOT_STATE_ACTIVE);
  writeU16LE(out, F.kdfAlgorithm, KDF_ALGORITHM_ARGON2ID);
  writeU32LE(out, F.kdfTime, slot.kdf.timeCost);
  writeU32LE(out, F.kdfMemoryKiB, slot.kdf.memoryKiB);
  writeU32LE(out, F.kdfParallelism, slot.kdf.parallelism);
  out.set(slot.kdfSalt, F.kdfSalt);
  writeU16LE(out, F.wrapAlgorithm, WRAP_ALGORITHM_XCHACHA20_POLY1305);
  writeU16LE(out, F.keyBytes, MASTER_KEY_BYTES);
  writeU32LE(out, F.flags, 0);
  out.set(slot.wrapNonce, F.wrapNonce);
  out.set(slot.wrappedKey, F.wrappedKey);
  return out;
}

/**
 * Decode and validate one keyslot (SPEC §10 rows 14–16). Throws `KEYSLOT_FIELD` for malformed
 * bytes and `KDF_LIMITS` for Argon2 parameters beyond SPEC §11, so no Argon2 call ever sees
 * unchecked parameters from disk.
 */
export function decodeKeyslot(bytes: Uint8Array, index: number): Keyslot {
  if (bytes.length !== KEYSLOT_SIZE) {
    throw new FormatError('KEYSLOT_FIELD', `keyslot ${index}: length ${bytes.length}`);
  }
  const bad = (why: string): never => {
    throw new FormatError('KEYSLOT_FIELD', `keyslot ${index}: ${why}`);
  };
  const state = readU16LE(bytes, F.state);
  if (state === KEYSLOT_STATE_INACTIVE) {
    if (!isAllZero(bytes)) bad('inactive keyslot has non-zero bytes');
    return inactiveKeyslot();
  }
  if (state !== KEYSLOT_STATE_ACTIVE) bad(`unknown state ${state}`);
  if (readU16LE(bytes, F.kdfAlgorithm) !== KDF_ALGORITHM_ARGON2ID) bad('unknown kdf algorithm');
  if (readU16LE(bytes, F.wrapAlgorithm) !== WRAP_ALGORITHM_XCHACHA20_POLY1305) {
    bad('unknown wrap algorithm');
  }
  if (readU16LE(bytes, F.keyBytes) !== MASTER_KEY_BYTES) bad('wrapped key length is not 64');
  if (readU32LE(bytes, F.flags) !== 0) bad('unknown flags');
  if (!isAllZero(bytes.subarray(F.reserved))) bad('reserved bytes are not zero');
  const kdf: Argon2idParams = {
    timeCost: readU32LE(bytes, F.kdfTime),
    memoryKiB: readU32LE(bytes, F.kdfMemoryKiB),
    parallelism: readU32LE(bytes, F.kdfParallelism),
  };
  try {
    checkArgon2idParams(kdf); // SPEC §11: before anything can run Argon2 on it
  } catch (err) {
    throw new UnsupportedError('KDF_LIMITS', `keyslot ${index}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    state: 'active',
    kdf,
    kdfSalt: copyBytes(bytes, F.kdfSalt, F.kdfSalt + KDF_SALT_BYTES),
    wrapNonce: copyBytes(bytes, F.wrapNonce, F.wrapNonce + WRAP_NONCE_BYTES),
    wrappedKey: copyBytes(bytes, F.wrappedKey, F.wrappedKey + WRAPPED_KEY_BYTES),
  };
}

/**
 * SPEC §4.2: AAD = UTF8("cryptainer v1 keyslot") || uuid || LE32(slot_index) || keyslot bytes
 * [0, 56). Binding the slot's own KDF parameters and salt means lowering them on disk breaks
 * the wrap instead of weakening it.
 */
export function buildKeyslotAad(uuid: Uint8Array, index: number, slot: ActiveKeyslot): Uint8Array {
  checkLength(uuid, UUID_BYTES, 'uuid');
  checkSlotIndex(index);
  const label = new TextEncoder().encode(LABELS.keyslotAad);
  const prefix = encodeKeyslot(slot).subarray(0, KEYSLOT_AAD_PREFIX_BYTES);
  const aad = new Uint8Array(label.length + UUID_BYTES + 4 + KEYSLOT_AAD_PREFIX_BYTES);
  aad.set(label, 0);
  aad.set(uuid, label.length);
  writeU32LE(aad, label.length + UUID_BYTES, index);
  aad.set(prefix, label.length + UUID_BYTES + 4);
  return aad;
}

/** Inputs for a new wrap; salt and nonce are fresh random bytes drawn by the caller (src/). */
export interface WrapParams {
  kdf: Argon2idParams;
  kdfSalt: Uint8Array;
  wrapNonce: Uint8Array;
}

/**
 * Wrap `masterKey` under `kek` into keyslot `index` (SPEC §4.2). `kek` must be
 * Argon2id(kdf_input, params.kdfSalt, params.kdf, 32); this function does not run the KDF.
 */
export function wrapMasterKey(
  kek: Uint8Array,
  masterKey: Uint8Array,
  uuid: Uint8Array,
  index: number,
  params: WrapParams,
): ActiveKeyslot {
  checkLength(masterKey, MASTER_KEY_BYTES, 'master key');
  const slot: ActiveKeyslot = {
    state: 'active',
    kdf: { ...params.kdf },
    kdfSalt: Uint8Array.from(params.kdfSalt),
    wrapNonce: Uint8Array.from(params.wrapNonce),
    wrappedKey: new Uint8Array(WRAPPED_KEY_BYTES), // placeholder: not part of the AAD
  };
  slot.wrappedKey = sealXChaCha20Poly1305(
    kek,
    slot.wrapNonce,
    masterKey,
    buildKeyslotAad(uuid, index, slot),
  );
  return slot;
}

/** Unwrap the master key from an active keyslot; `null` when the tag does not verify. */
export function unwrapMasterKey(
  kek: Uint8Array,
  uuid: Uint8Array,
  index: number,
  slot: ActiveKeyslot,
): Uint8Array | null {
  return openXChaCha20Poly1305(
    kek,
    slot.wrapNonce,
    slot.wrappedKey,
    buildKeyslotAad(uuid, index, slot),
  );
}

function checkSlotIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= KEYSLOT_COUNT) {
    throw new RangeError(`keyslot index ${index} out of range`);
  }
}

function checkLength(bytes: Uint8Array, expected: number, what: string): void {
  if (bytes.length !== expected) throw new RangeError(`${what} must be ${expected} bytes`);
}
