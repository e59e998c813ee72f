/**
 * Header copies (SPEC §3): encode/decode of the 4096-byte structure, its unkeyed checksum and
 * its keyed MAC. Pure: the caller reads the bytes and derives the MAC key.
 */
import {
  constantTimeEqual,
  copyBytes,
  isAllZero,
  readU32LE,
  readU64LE,
  writeU32LE,
  writeU64LE,
} from '../crypto/bytes.js';
import { hmacSha256, sha256 } from '../crypto/hkdf.js';
import {
  CHECKSUM_BYTES,
  CIPHER_XTS_AES_256,
  FEATURE_AREA_BYTES,
  FORMAT_VERSION,
  HEADER_FIELD_OFFSETS as H,
  HEADER_MAC_BYTES,
  HEADER_MAGICS,
  HEADER_SIZE,
  type HeaderCopyName,
  KEYSLOT_COUNT,
  KEYSLOT_SIZE,
  KEYSLOTS_OFFSET,
  MAGIC_BYTES,
  UUID_BYTES,
} from './constants.js';
import { FormatError, UnsupportedError } from './errors.js';
import {
  COMPAT_KEY_GENERATION,
  type FeatureFlags,
  INCOMPAT_REENCRYPT,
  checkFeatures,
} from './features.js';
import { type Keyslot, decodeKeyslot, encodeKeyslot } from './keyslot.js';
import { type Layout, checkLayout } from './layout.js';
import { decodeReencryptState } from './reencrypt-state.js';

/** Everything a header copy says, minus the per-copy magic, MAC and checksum. */
export interface HeaderFields extends Layout {
  seqid: number;
  uuid: Uint8Array;
  features: FeatureFlags;
  /** SPEC §3: 320 bytes, zero unless a set feature flag assigns them. */
  featureArea: Uint8Array;
  /** Exactly KEYSLOT_COUNT entries, index = slot number. */
  keyslots: Keyslot[];
  /**
   * SPEC §3.1: which master key the keyslots wrap, counted from 0 at creation and raised by one
   * per re-encryption. Absent means 0 (a revision-1.0 header); the decoder leaves it absent
   * for generation 0, so 1.0-shaped fields round-trip unchanged. The encoder derives
   * `COMPAT_KEY_GENERATION` in `features.compat` from it. Read it with {@link keyGenerationOf}.
   */
  keyGeneration?: number;
}

/** SPEC §3.1: the key generation of a header (0 when the field is absent). */
export function keyGenerationOf(fields: Pick<HeaderFields, 'keyGeneration'>): number {
  return fields.keyGeneration ?? 0;
}

/**
 * Encode one header copy: fields, then `header_mac` = HMAC-SHA256(macKey, bytes [0, 4032)),
 * then `checksum` = SHA-256(bytes [0, 4064)) (SPEC §3).
 */
export function encodeHeaderCopy(
  fields: HeaderFields,
  copy: HeaderCopyName,
  macKey: Uint8Array,
): Uint8Array {
  const out = encodeHeaderBody(fields, copy);
  out.set(hmacSha256(macKey, out.subarray(0, H.headerMac)), H.headerMac);
  out.set(sha256(out.subarray(0, H.checksum)), H.checksum);
  return out;
}

/** The header copy without MAC and checksum (both left zero). */
function encodeHeaderBody(fields: HeaderFields, copy: HeaderCopyName): Uint8Array {
  checkLayout(fields);
  if (fields.uuid.length !== UUID_BYTES) throw new RangeError('uuid must be 16 bytes');
  if (fields.featureArea.length !== FEATURE_AREA_BYTES) {
    throw new RangeError('feature area must be 320 bytes');
  }
  if (fields.keyslots.length !== KEYSLOT_COUNT) throw new RangeError('need exactly 8 keyslots');
  if (!Number.isSafeInteger(fields.seqid) || fields.seqid < 1) throw new RangeError('bad seqid');
  const generation = keyGenerationOf(fields);
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new RangeError('bad key generation');
  }
  // SPEC §3.1: the compat bit is set exactly when the generation is ≥ 1, so a header with
  // generation 0 is byte-identical to a revision-1.0 header.
  const compat =
    generation > 0
      ? fields.features.compat | COMPAT_KEY_GENERATION
      : fields.features.compat & ~COMPAT_KEY_GENERATION;
  const out = new Uint8Array(HEADER_SIZE);
  out.set(HEADER_MAGICS[copy], H.magic);
  writeU32LE(out, H.formatVersion, FORMAT_VERSION);
  writeU32LE(out, H.headerSize, HEADER_SIZE);
  writeU64LE(out, H.seqid, fields.seqid);
  out.set(fields.uuid, H.uuid);
  writeFlags(out, H.featureIncompat, fields.features.incompat);
  writeFlags(out, H.featureRoCompat, fields.features.roCompat);
  writeFlags(out, H.featureCompat, compat);
  writeU32LE(out, H.cipher, CIPHER_XTS_AES_256);
  writeU32LE(out, H.sectorSize, fields.sectorSize);
  writeU64LE(out, H.journalOffset, fields.journalOffset);
  writeU64LE(out, H.journalSize, fields.journalSize);
  writeU64LE(out, H.dataOffset, fields.dataOffset);
  writeU64LE(out, H.dataSize, fields.dataSize);
  writeU32LE(out, H.keyslotCount, KEYSLOT_COUNT);
  writeU32LE(out, H.keyslotSize, KEYSLOT_SIZE);
  writeU32LE(out, H.keyslotsOffset, KEYSLOTS_OFFSET);
  if (generation > 0) writeU64LE(out, H.keyGeneration, generation);
  out.set(fields.featureArea, H.featureArea);
  fields.keyslots.forEach((slot, i) => out.set(encodeKeyslot(slot), keyslotOffset(i)));
  return out;
}

/**
 * Decode and validate one header copy read from `copy`'s offset, in exactly the order of
 * SPEC §8 step 2 (items 1–15; the first failing check is the copy's verdict, so the order of
 * the statements below is part of the format). Throws a `FormatError` or `UnsupportedError`
 * with the row's code; never returns unchecked values.
 */
export function decodeHeaderCopy(bytes: Uint8Array, copy: HeaderCopyName): HeaderFields {
  const where = `header copy ${copy}`;
  if (bytes.length < HEADER_SIZE) {
    throw new FormatError('HEADER_SHORT', `${where}: only ${bytes.length} of 4096 bytes`);
  }
  bytes = bytes.subarray(0, HEADER_SIZE);
  if (!constantTimeEqual(bytes.subarray(0, MAGIC_BYTES), HEADER_MAGICS[copy])) {
    throw new FormatError('HEADER_MAGIC', `${where}: bad magic`);
  }
  const version = readU32LE(bytes, H.formatVersion);
  if (version !== FORMAT_VERSION) {
    throw new UnsupportedError('UNSUPPORTED_VERSION', `${where}: format version ${version}`);
  }
  const field = (why: string): never => {
    throw new FormatError('HEADER_FIELD', `${where}: ${why}`);
  };
  if (readU32LE(bytes, H.headerSize) !== HEADER_SIZE) field('header size is not 4096');
  const expected = sha256(bytes.subarray(0, H.checksum));
  if (!constantTimeEqual(expected, bytes.subarray(H.checksum, H.checksum + CHECKSUM_BYTES))) {
    throw new FormatError('HEADER_CHECKSUM', `${where}: checksum mismatch`);
  }
  const u64 = (off: number, name: string): number => {
    try {
      return readU64LE(bytes, off);
    } catch {
      return field(`${name} exceeds 2^53-1`);
    }
  };
  const seqid = u64(H.seqid, 'seqid');
  if (seqid === 0) field('seqid is 0');
  const uuid = copyBytes(bytes, H.uuid, H.uuid + UUID_BYTES);
  if (isAllZero(uuid)) field('uuid is all zero');
  const features: FeatureFlags = {
    incompat: readFlags(bytes, H.featureIncompat),
    roCompat: readFlags(bytes, H.featureRoCompat),
    compat: readFlags(bytes, H.featureCompat),
  };
  try {
    checkFeatures(features);
  } catch (err) {
    throw new UnsupportedError('UNSUPPORTED_FEATURE', `${where}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (readU32LE(bytes, H.cipher) !== CIPHER_XTS_AES_256) field('unknown cipher');
  const layout: Layout = {
    sectorSize: readU32LE(bytes, H.sectorSize),
    journalOffset: u64(H.journalOffset, 'journal offset'),
    journalSize: u64(H.journalSize, 'journal size'),
    dataOffset: u64(H.dataOffset, 'data offset'),
    dataSize: u64(H.dataSize, 'data size'),
  };
  try {
    checkLayout(layout);
  } catch (err) {
    field((err as Error).message);
  }
  if (readU32LE(bytes, H.keyslotCount) !== KEYSLOT_COUNT) field('keyslot count is not 8');
  if (readU32LE(bytes, H.keyslotSize) !== KEYSLOT_SIZE) field('keyslot size is not 256');
  if (readU32LE(bytes, H.keyslotsOffset) !== KEYSLOTS_OFFSET) field('keyslots offset is not 512');
  // SPEC §8 step 2 item 13, §3.1: the key generation, then the reserved ranges.
  let keyGeneration = 0;
  if ((features.compat & COMPAT_KEY_GENERATION) !== 0n) {
    keyGeneration = u64(H.keyGeneration, 'key generation');
    if (keyGeneration === 0) field('key generation is 0 while its feature bit is set');
  } else if (!isAllZero(bytes.subarray(H.keyGeneration, H.reserved0))) {
    field('reserved bytes not zero (key generation without its feature bit)');
  }
  if (!isAllZero(bytes.subarray(H.reserved0, H.featureArea))) field('reserved bytes not zero');
  if (!isAllZero(bytes.subarray(H.reserved1, H.headerMac))) field('reserved bytes not zero');
  const featureArea = copyBytes(bytes, H.featureArea, H.featureArea + FEATURE_AREA_BYTES);
  if ((features.incompat & INCOMPAT_REENCRYPT) !== 0n) {
    // SPEC §15.2: the re-encryption flag assigns the feature area; §10 row 30 checks it.
    try {
      decodeReencryptState(featureArea, layout);
    } catch (err) {
      field((err as Error).message);
    }
  } else if (!isAllZero(featureArea)) {
    // SPEC §7: no flag that assigns the feature area is set, so it must be zero.
    field('feature area not zero');
  }
  const keyslots: Keyslot[] = [];
  for (let i = 0; i < KEYSLOT_COUNT; i++) {
    const slotBytes = bytes.subarray(keyslotOffset(i), keyslotOffset(i) + KEYSLOT_SIZE);
    try {
      keyslots.push(decodeKeyslot(slotBytes, i));
    } catch (err) {
      const e = err as FormatError;
      throw new (e.constructor as typeof FormatError)(e.code, `${where}: ${e.message}`, {
        cause: err,
      });
    }
  }
  return {
    seqid,
    uuid,
    features,
    featureArea,
    keyslots,
    ...(keyGeneration > 0 ? { keyGeneration } : {}),
    ...layout,
  };
}

/** True when the copy's `header_mac` verifies under `macKey` (SPEC §8 step 6). */
export function verifyHeaderMac(bytes: Uint8Array, macKey: Uint8Array): boolean {
  if (bytes.length < HEADER_SIZE) return false;
  const expected = hmacSha256(macKey, bytes.subarray(0, H.headerMac));
  return constantTimeEqual(expected, bytes.subarray(H.headerMac, H.headerMac + HEADER_MAC_BYTES));
}

/**
 * True when two copies say the same thing: equal apart from magic, MAC and checksum
 * (SPEC §8 step 5). Compares the re-encoded bodies so both inputs must already be valid.
 */
export function sameHeaderContent(a: HeaderFields, b: HeaderFields): boolean {
  const bodyA = encodeHeaderBody(a, 'A');
  const bodyB = encodeHeaderBody(b, 'A');
  return constantTimeEqual(bodyA, bodyB);
}

/** Offset of keyslot `i` inside a header copy (SPEC §3). */
export function keyslotOffset(i: number): number {
  return KEYSLOTS_OFFSET + KEYSLOT_SIZE * i;
}

/** Render a 16-byte uuid as RFC 9562 text (8-4-4-4-12 lowercase hex). */
export function formatUuid(uuid: Uint8Array): string {
  const hex = Buffer.from(uuid).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Turn 16 random bytes into an RFC 9562 version-4 uuid (sets version and variant bits). */
export function makeUuidV4(random16: Uint8Array): Uint8Array {
  if (random16.length !== UUID_BYTES) throw new RangeError('uuid needs 16 random bytes');
  const uuid = Uint8Array.from(random16);
  uuid[6] = (uuid[6]! & 0x0f) | 0x40;
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  return uuid;
}

function readFlags(bytes: Uint8Array, off: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(off, true);
}

function writeFlags(bytes: Uint8Array, off: number, value: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setBigUint64(off, value, true);
}
