/**
 * Re-encryption state (SPEC §15): the record kept in `feature_area` while the
 * `INCOMPAT_REENCRYPT` flag is set, the wrap of the old master key, the journal records that
 * make an interrupted segment recoverable, and the pure recovery decision. No I/O here: the
 * engine that reads and writes lives in src/volume/reencrypt.ts.
 */
import { openXChaCha20Poly1305, sealXChaCha20Poly1305 } from '../crypto/aead.js';
import {
  copyBytes,
  concatBytes,
  isAllZero,
  readU16LE,
  readU32LE,
  readU64LE,
  writeU16LE,
  writeU32LE,
  wipe,
  writeU64LE,
} from '../crypto/bytes.js';
import { hkdfSha256, labelBytes } from '../crypto/hkdf.js';
import {
  FEATURE_AREA_BYTES,
  FINGERPRINT_BLOCK_BYTES,
  FINGERPRINT_BYTES,
  JOURNAL_DIGEST_BYTES,
  JOURNAL_SLOT_COUNT,
  MASTER_KEY_BYTES,
  REENCRYPT_FIELD_OFFSETS as R,
  REENCRYPT_VERSION,
  RESILIENCE_CHECKSUM,
  RESILIENCE_JOURNAL,
  UUID_BYTES,
  WRAP_NONCE_BYTES,
  WRAPPED_KEY_BYTES,
} from './constants.js';
import { FormatError, UnsupportedError } from './errors.js';
import { INCOMPAT_REENCRYPT } from './features.js';
import type { HeaderFields } from './header.js';
import type { Layout } from './layout.js';

/**
 * How an interrupted segment is recovered (SPEC §15.5): `checksum` journals a 16-byte
 * fingerprint of every 512-byte block of the segment's old ciphertext; `journal` journals the
 * old ciphertext itself.
 */
export type Resilience = 'checksum' | 'journal';

/** The decoded `feature_area` of a volume whose re-encryption is unfinished (SPEC §15.2). */
export interface ReencryptState {
  resilience: Resilience;
  /** Sectors [0, sectorsDone) are encrypted under the new master key. */
  sectorsDone: number;
  /** Sectors [sectorsDone, sectorsDone + segmentSectors) are being rewritten (0 = none). */
  segmentSectors: number;
  /** Journal slot holding the in-flight segment's record (0 when none is in flight). */
  journalSlot: number;
  /** SHA-256 of that record (all zero when none is in flight). */
  journalDigest: Uint8Array;
  /** Nonce of the old master key's wrap. */
  oldKeyNonce: Uint8Array;
  /** The old master key sealed under the key of SPEC §15.3 (64 bytes + 16-byte tag). */
  wrappedOldKey: Uint8Array;
}

const RESILIENCE_CODES: Record<Resilience, number> = {
  checksum: RESILIENCE_CHECKSUM,
  journal: RESILIENCE_JOURNAL,
};

/** Encode the state into the 320-byte `feature_area` (SPEC §15.2). Checks it first. */
export function encodeReencryptState(state: ReencryptState, layout: Layout): Uint8Array {
  checkLength(state.journalDigest, JOURNAL_DIGEST_BYTES, 'journal digest');
  checkLength(state.oldKeyNonce, WRAP_NONCE_BYTES, 'old key nonce');
  checkLength(state.wrappedOldKey, WRAPPED_KEY_BYTES, 'wrapped old key');
  const problem = stateProblem(state, layout);
  if (problem !== null) throw new RangeError(`reencrypt state: ${problem}`);
  const out = new Uint8Array(FEATURE_AREA_BYTES);
  writeU32LE(out, R.version, REENCRYPT_VERSION);
  writeU16LE(out, R.resilience, RESILIENCE_CODES[state.resilience]);
  writeU16LE(out, R.journalSlot, state.journalSlot);
  writeU64LE(out, R.sectorsDone, state.sectorsDone);
  writeU64LE(out, R.segmentSectors, state.segmentSectors);
  out.set(state.journalDigest, R.journalDigest);
  out.set(state.oldKeyNonce, R.oldKeyNonce);
  out.set(state.wrappedOldKey, R.wrappedOldKey);
  return out;
}

/**
 * Decode and validate `feature_area` of a copy whose `INCOMPAT_REENCRYPT` flag is set
 * (SPEC §10 row 30). Throws `HEADER_FIELD`: the bytes come from disk, so every rule is a
 * normal error path.
 */
export function decodeReencryptState(area: Uint8Array, layout: Layout): ReencryptState {
  const bad = (why: string): never => {
    throw new FormatError('HEADER_FIELD', `re-encryption state: ${why}`);
  };
  if (area.length !== FEATURE_AREA_BYTES) bad(`feature area is ${area.length} bytes`);
  const version = readU32LE(area, R.version);
  if (version !== REENCRYPT_VERSION) bad(`unknown version ${version}`);
  const code = readU16LE(area, R.resilience);
  const resilience = (Object.keys(RESILIENCE_CODES) as Resilience[]).find(
    (r) => RESILIENCE_CODES[r] === code,
  );
  if (resilience === undefined) bad(`unknown resilience ${code}`);
  const u64 = (off: number, name: string): number => {
    try {
      return readU64LE(area, off);
    } catch {
      return bad(`${name} exceeds 2^53-1`);
    }
  };
  if (!isAllZero(area.subarray(R.reserved))) bad('reserved bytes not zero');
  const state: ReencryptState = {
    resilience: resilience!,
    journalSlot: readU16LE(area, R.journalSlot),
    sectorsDone: u64(R.sectorsDone, 'sectors done'),
    segmentSectors: u64(R.segmentSectors, 'segment sectors'),
    journalDigest: copyBytes(area, R.journalDigest, R.journalDigest + JOURNAL_DIGEST_BYTES),
    oldKeyNonce: copyBytes(area, R.oldKeyNonce, R.oldKeyNonce + WRAP_NONCE_BYTES),
    wrappedOldKey: copyBytes(area, R.wrappedOldKey, R.wrappedOldKey + WRAPPED_KEY_BYTES),
  };
  const problem = stateProblem(state, layout);
  if (problem !== null) bad(problem);
  return state;
}

/** SPEC §10 row 30: the rules on the decoded fields, or null when they hold. */
function stateProblem(s: ReencryptState, layout: Layout): string | null {
  const sectorCount = layout.dataSize / layout.sectorSize;
  const ints = [s.sectorsDone, s.segmentSectors, s.journalSlot];
  if (!ints.every((n) => Number.isSafeInteger(n) && n >= 0)) return 'negative or fractional field';
  if (s.journalSlot >= JOURNAL_SLOT_COUNT) return `journal slot ${s.journalSlot}`;
  if (s.sectorsDone > sectorCount) return `sectors done ${s.sectorsDone} > ${sectorCount}`;
  if (s.sectorsDone + s.segmentSectors > sectorCount) return 'segment ends beyond the data area';
  if (s.segmentSectors === 0) {
    if (s.journalSlot !== 0 || !isAllZero(s.journalDigest)) {
      return 'journal slot or digest set with no segment in flight';
    }
  } else {
    const need = journalRecordBytes(s.resilience, layout.sectorSize, s.segmentSectors);
    if (need > journalSlotBytes(layout)) return 'segment record does not fit its journal slot';
  }
  return null;
}

/** SPEC §15.5: length of the record that protects `sectorCount` sectors. */
export function journalRecordBytes(
  resilience: Resilience,
  sectorSize: number,
  sectorCount: number,
): number {
  const bytes = sectorSize * sectorCount;
  return resilience === 'journal' ? bytes : (bytes / FINGERPRINT_BLOCK_BYTES) * FINGERPRINT_BYTES;
}

/** SPEC §15.5: each journal slot is half of the journal area. */
export function journalSlotBytes(layout: Layout): number {
  return Math.floor(layout.journalSize / JOURNAL_SLOT_COUNT);
}

/** SPEC §15.5: container offset of journal slot `slot` (0 or 1). */
export function journalSlotOffset(layout: Layout, slot: number): number {
  if (slot !== 0 && slot !== 1) throw new RangeError(`journal slot ${slot}`);
  return layout.journalOffset + slot * journalSlotBytes(layout);
}

/** Largest segment (in sectors) whose record fits one journal slot; 0 if not even one does. */
export function maxSegmentSectors(resilience: Resilience, layout: Layout): number {
  const perSector = journalRecordBytes(resilience, layout.sectorSize, 1);
  return Math.floor(journalSlotBytes(layout) / perSector);
}

/**
 * SPEC §15.3: the key that seals the old master key, derived from the NEW master key, so any
 * keyslot (all wrap the new key) reaches the old key too:
 * HKDF-SHA256(ikm = new master key, salt = uuid, info = "cryptainer v1 reencrypt-old-key", 32).
 */
function oldKeyWrapKey(newMasterKey: Uint8Array, uuid: Uint8Array): Uint8Array {
  checkLength(newMasterKey, MASTER_KEY_BYTES, 'master key');
  checkLength(uuid, UUID_BYTES, 'uuid');
  return hkdfSha256(newMasterKey, uuid, labelBytes('reencryptOldKey'), 32);
}

/** SPEC §15.3: AAD = UTF8("cryptainer v1 reencrypt-old-key") || uuid. */
function oldKeyAad(uuid: Uint8Array): Uint8Array {
  return concatBytes(labelBytes('reencryptOldKey'), uuid);
}

/**
 * Seal the old master key under the new one (SPEC §15.3). `nonce` is fresh random (drawn by
 * src/); it is used once: the wrap is made once per re-encryption and then copied unchanged
 * into every later header update of that run, and the key it is used with is itself new.
 */
export function wrapOldMasterKey(
  newMasterKey: Uint8Array,
  oldMasterKey: Uint8Array,
  uuid: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  checkLength(oldMasterKey, MASTER_KEY_BYTES, 'old master key');
  const key = oldKeyWrapKey(newMasterKey, uuid);
  try {
    return sealXChaCha20Poly1305(key, nonce, oldMasterKey, oldKeyAad(uuid));
  } finally {
    wipe(key);
  }
}

/** Open the old master key (SPEC §15.3); `null` when the tag does not verify. */
export function unwrapOldMasterKey(
  newMasterKey: Uint8Array,
  uuid: Uint8Array,
  state: ReencryptState,
): Uint8Array | null {
  const key = oldKeyWrapKey(newMasterKey, uuid);
  try {
    return openXChaCha20Poly1305(key, state.oldKeyNonce, state.wrappedOldKey, oldKeyAad(uuid));
  } finally {
    wipe(key);
  }
}

// The checksum record (SPEC §15.5) lives in its own module so the re-encryption's worker
// threads load it without this module's AEAD and HKDF dependencies (a faster thread start).
export {
  buildChecksumRecord,
  findChecksumMismatch,
  writeChecksumRecord,
} from './checksum-record.js';

/** Outcome of {@link mergeCheckedSegment}: how many 512-byte blocks came from each key. */
export interface MergeCounts {
  oldBlocks: number;
  newBlocks: number;
}

/**
 * SPEC §15.7 checksum recovery, the pure part. `current` is the segment's ciphertext as found
 * after the crash, `record` its checksum record, `plainOld`/`plainNew` the decryption of
 * `current` under the old and the new key. A 512-byte block whose first 16 bytes equal its
 * fingerprint was not yet rewritten (old key); any other block was (new key). XTS encrypts each
 * 16-byte block independently given the sector number (IEEE 1619 §5.3, no ciphertext stealing
 * at these sizes), so a sector torn between old and new blocks still decrypts block by block.
 * The result is written into `plainOld` (which then holds the segment's true plaintext).
 */
export function mergeCheckedSegment(
  current: Uint8Array,
  record: Uint8Array,
  plainOld: Uint8Array,
  plainNew: Uint8Array,
): MergeCounts {
  const blocks = current.length / FINGERPRINT_BLOCK_BYTES;
  if (
    !Number.isInteger(blocks) ||
    record.length !== blocks * FINGERPRINT_BYTES ||
    plainOld.length !== current.length ||
    plainNew.length !== current.length
  ) {
    throw new RangeError('checksum recovery: lengths do not match');
  }
  const counts: MergeCounts = { oldBlocks: 0, newBlocks: 0 };
  for (let b = 0; b < blocks; b++) {
    const at = b * FINGERPRINT_BLOCK_BYTES;
    let same = true;
    for (let i = 0; i < FINGERPRINT_BYTES; i++) {
      if (current[at + i] !== record[b * FINGERPRINT_BYTES + i]) {
        same = false;
        break;
      }
    }
    if (same) counts.oldBlocks++;
    else {
      counts.newBlocks++;
      plainOld.set(plainNew.subarray(at, at + FINGERPRINT_BLOCK_BYTES), at);
    }
  }
  return counts;
}

/** The state right after the start header update (SPEC §15.6 step S): nothing done yet. */
export function initialReencryptState(
  resilience: Resilience,
  oldKeyNonce: Uint8Array,
  wrappedOldKey: Uint8Array,
): ReencryptState {
  return {
    resilience,
    sectorsDone: 0,
    segmentSectors: 0,
    journalSlot: 0,
    journalDigest: new Uint8Array(JOURNAL_DIGEST_BYTES),
    oldKeyNonce: Uint8Array.from(oldKeyNonce),
    wrappedOldKey: Uint8Array.from(wrappedOldKey),
  };
}

/** True when the header says a re-encryption is unfinished (SPEC §15.2). */
export function isReencrypting(fields: HeaderFields): boolean {
  return (fields.features.incompat & INCOMPAT_REENCRYPT) !== 0n;
}

/** Progress of an unfinished re-encryption, for `info` (no secret needed), or null. */
export interface ReencryptProgress {
  sectorsDone: number;
  sectorCount: number;
  percent: number;
  resilience: Resilience;
  /** Sectors of the segment being rewritten when the header was last written (0 = none). */
  segmentSectors: number;
}

/** {@link ReencryptProgress} of `fields`, or null when no re-encryption is unfinished. */
export function reencryptProgress(fields: HeaderFields): ReencryptProgress | null {
  if (!isReencrypting(fields)) return null;
  const state = decodeReencryptState(fields.featureArea, fields);
  const sectorCount = fields.dataSize / fields.sectorSize;
  return {
    sectorsDone: state.sectorsDone,
    sectorCount,
    percent: Math.floor((100 * state.sectorsDone) / sectorCount),
    resilience: state.resilience,
    segmentSectors: state.segmentSectors,
  };
}

/**
 * Refuse to serve a volume whose re-encryption is unfinished (SPEC §15.4 allows a reader to
 * serve it with both keys; this implementation does not): `REENCRYPT_IN_PROGRESS`, naming the
 * progress and the command that resumes it.
 */
export function checkNotReencrypting(fields: HeaderFields, path: string): void {
  if (!isReencrypting(fields)) return;
  const state = decodeReencryptState(fields.featureArea, fields);
  const count = fields.dataSize / fields.sectorSize;
  const pct = Math.floor((100 * state.sectorsDone) / count);
  throw new UnsupportedError(
    'REENCRYPT_IN_PROGRESS',
    `${path}: re-encryption is unfinished (${pct}% done): run \`cryptainer reencrypt ${path}\` ` +
      'to resume it first',
  );
}

function checkLength(bytes: Uint8Array, expected: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected) {
    throw new RangeError(`${what} must be ${expected} bytes`);
  }
}
