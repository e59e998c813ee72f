/** Deterministic header fields for format tests (no Argon2 involved). */
import { FEATURE_AREA_BYTES, KEYSLOT_COUNT } from '../../volume-format/constants.js';
import { noFeatures } from '../../volume-format/features.js';
import type { HeaderFields } from '../../volume-format/header.js';
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
