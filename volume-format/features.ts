/**
 * Feature flags (SPEC §7): what a reader must do with each of the three 64-bit sets.
 * Bits are handled as bigint because a flag set is a bit field, not a number.
 */
import { UnsupportedError } from './errors.js';

/** The three feature sets of a header copy. */
export interface FeatureFlags {
  incompat: bigint;
  roCompat: bigint;
  compat: bigint;
}

/**
 * SPEC §7, §15: `feature_incompat` bit 1, set while a re-encryption is unfinished. Readers that
 * do not implement §15 must refuse such a volume: part of its data is under another key.
 * (Bit 0 stays unassigned: the negative test vectors use it as the unknown bit.)
 */
export const INCOMPAT_REENCRYPT = 1n << 1n;

/**
 * SPEC §3.1, §7 (revision 1.1): `feature_compat` bit 0, set exactly when the header's
 * `key_generation` (bytes [116, 124)) is ≥ 1, i.e. after a re-encryption by a 1.1 writer.
 * Clear means generation 0, the value every revision-1.0 volume has.
 */
export const COMPAT_KEY_GENERATION = 1n << 0n;

/** SPEC §7: feature bits this implementation understands. */
export const KNOWN_FEATURES: Readonly<FeatureFlags> = {
  incompat: INCOMPAT_REENCRYPT,
  roCompat: 0n,
  compat: COMPAT_KEY_GENERATION,
};

/** Feature flags of a brand-new volume. */
export function noFeatures(): FeatureFlags {
  return { incompat: 0n, roCompat: 0n, compat: 0n };
}

/**
 * Decide what the features allow. Throws `UNSUPPORTED_FEATURE` for an unknown incompat bit
 * (SPEC §7); returns `readOnly: true` when an unknown ro_compat bit is set. Unknown compat
 * bits are ignored (and preserved by writers, which copy the whole set).
 */
export function checkFeatures(features: FeatureFlags): { readOnly: boolean } {
  const unknownIncompat = features.incompat & ~KNOWN_FEATURES.incompat;
  if (unknownIncompat !== 0n) {
    throw new UnsupportedError(
      'UNSUPPORTED_FEATURE',
      `header: unknown incompatible feature bits 0x${unknownIncompat.toString(16)}`,
    );
  }
  const unknownRoCompat = features.roCompat & ~KNOWN_FEATURES.roCompat;
  return { readOnly: unknownRoCompat !== 0n };
}
