/** Deterministic header fields for format tests (no Argon2 involved). */
import { closeSync, openSync, writeSync } from 'node:fs';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import {
  FEATURE_AREA_BYTES,
  HEADER_COPY_OFFSETS,
  KEYSLOT_COUNT,
} from '../../volume-format/constants.js';
import { noFeatures } from '../../volume-format/features.js';
import { type HeaderFields, encodeHeaderCopy } from '../../volume-format/header.js';
import { type Keyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { planLayout } from '../../volume-format/layout.js';

/** Bytes 0..n-1 shifted by `seed`, for fixed test inputs. */
export function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

/** A valid header with one active keyslot wrapped under a fixed KEK. */
export function sampleFields(seqid = 1, sectorSize = 4096, dataSize = 1 << 20): HeaderFields {
  const uuid = pattern(16, 1);
  const keyslots: Keyslot[] = Array.from({ length: KEYSLOT_COUNT }, inactiveKeyslot);
  keyslots[0] = wrapMasterKey(pattern(32, 9), sampleMasterKey(), uuid, 0, {
    kdf: { timeCost: 1, memoryKiB: 64, parallelism: 1 },
    kdfSalt: pattern(32, 3),
    wrapNonce: pattern(24, 5),
  });
  return {
    ...planLayout(dataSize, sectorSize),
    seqid,
    uuid,
    features: noFeatures(),
    featureArea: new Uint8Array(FEATURE_AREA_BYTES),
    keyslots,
  };
}

/** The master key used by {@link sampleFields}. */
export function sampleMasterKey(): Uint8Array {
  return pattern(64, 11);
}

/** KEK used by {@link sampleFields} for keyslot 0. */
export const SAMPLE_KEK = pattern(32, 9);

/** The MAC key used with {@link sampleFields} in tests. */
export const SAMPLE_MAC_KEY = pattern(32, 13);

/**
 * Write both header copies of the container at `path` from `fields`, sealed with the MAC key
 * of `masterKey` (SPEC §3): a valid header carrying values no product path writes.
 */
export function writeBothCopies(path: string, fields: HeaderFields, masterKey: Uint8Array): void {
  const mac = deriveHeaderMacKey(masterKey, fields.uuid);
  const fd = openSync(path, 'r+');
  try {
    for (const copy of ['A', 'B'] as const) {
      const bytes = encodeHeaderCopy(fields, copy, mac);
      writeSync(fd, bytes, 0, bytes.length, HEADER_COPY_OFFSETS[copy]);
    }
  } finally {
    closeSync(fd);
  }
}
