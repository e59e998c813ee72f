/**
 * Generators of structurally valid format inputs (header fields, keyslots, re-encryption
 * records), built from the encoders' own input types so that a field added to them must be
 * generated here too (the compiler says so). Byte contents (uuid, salts, nonces, keys) come
 * from a seeded PRNG to keep each case cheap; the structure comes from fast-check.
 */
import fc from 'fast-check';
import { FEATURE_AREA_BYTES, KEYSLOT_COUNT } from '../../volume-format/constants.js';
import { INCOMPAT_REENCRYPT } from '../../volume-format/features.js';
import { type HeaderFields, makeUuidV4 } from '../../volume-format/header.js';
import type { Keyslot } from '../../volume-format/keyslot.js';
import { type Layout, checkLayout } from '../../volume-format/layout.js';
import { REVISION_1_1 } from './oracle.js';
import {
  type Resilience,
  encodeReencryptState,
  maxSegmentSectors,
} from '../../volume-format/reencrypt-state.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MiB = 1024 * 1024;

/** Mulberry32: a tiny seeded PRNG for byte contents (structure comes from fast-check). */
export function bytesFrom(seed: number, n: number): Uint8Array {
  let a = seed >>> 0;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

/** Where the generated volumes may go: anywhere the format allows, or small enough to build. */
export type Scale = 'format' | 'container';

/** A valid layout: any journal and data size the SPEC allows, boundaries included. */
export function arbLayout(scale: Scale): fc.Arbitrary<Layout> {
  const journalBlocks =
    scale === 'format'
      ? fc.oneof(fc.constantFrom(0, 1, 768, 3072, 16384), fc.integer({ min: 0, max: 16384 }))
      : fc.integer({ min: 0, max: 32 });
  return fc
    .record({
      sectorSize: fc.constantFrom(512, 4096),
      journalBlocks,
      sectors: fc.oneof(
        fc.integer({ min: 1, max: 64 }),
        scale === 'format' ? fc.constantFrom(-1, -2) : fc.constant(1), // -1 = largest allowed
        scale === 'format' ? fc.integer({ min: 1, max: MAX_SAFE }) : fc.constant(2),
      ),
    })
    .map(({ sectorSize, journalBlocks, sectors }) => {
      const journalSize = journalBlocks * 4096;
      const dataOffset = MiB + journalSize;
      const maxSectors = Math.floor((MAX_SAFE - dataOffset) / sectorSize);
      const n = sectors < 0 ? maxSectors + 1 + sectors : Math.min(sectors, maxSectors);
      const layout: Layout = {
        sectorSize,
        journalOffset: MiB,
        journalSize,
        dataOffset,
        dataSize: n * sectorSize,
      };
      checkLayout(layout);
      return layout;
    });
}

/** Argon2id parameters inside SPEC §11 (the caps, and just inside them, included). */
export const arbKdfParams = fc
  .record({
    timeCost: fc.oneof(fc.constantFrom(1, 2, 32), fc.integer({ min: 1, max: 32 })),
    parallelism: fc.oneof(fc.constantFrom(1, 16), fc.integer({ min: 1, max: 16 })),
    memory: fc.oneof(fc.constantFrom(0, 4194304), fc.integer({ min: 0, max: 4194304 })),
  })
  .map(({ timeCost, parallelism, memory }) => ({
    timeCost,
    parallelism,
    memoryKiB: Math.max(memory, 8 * parallelism),
  }));

/** What a generated keyslot is: inactive, or active with these parameters. */
export type SlotPlan = null | { timeCost: number; memoryKiB: number; parallelism: number };

/** Eight keyslot plans, mostly with at least one active slot. */
export const arbSlotPlans: fc.Arbitrary<SlotPlan[]> = fc.array(
  fc.oneof({ arbitrary: fc.constant(null), weight: 2 }, { arbitrary: arbKdfParams, weight: 1 }),
  { minLength: KEYSLOT_COUNT, maxLength: KEYSLOT_COUNT },
);

/** Random-content keyslots for decode-level cases (their wraps open under no key). */
export function keyslotsFromPlans(plans: SlotPlan[], seed: number): Keyslot[] {
  return plans.map((p, i) => {
    if (p === null) return { state: 'inactive' };
    const bytes = bytesFrom(seed + i * 7919, 32 + 24 + 80);
    return {
      state: 'active',
      kdf: { ...p },
      kdfSalt: bytes.subarray(0, 32),
      wrapNonce: bytes.subarray(32, 56),
      wrappedKey: bytes.subarray(56),
    };
  });
}

/** Choices for a re-encryption record, scaled to the layout when the fields are built. */
export interface ReencryptPlan {
  resilience: Resilience;
  /** Fractions (0..1) of the sectors done and of the largest segment that fits. */
  doneFraction: number;
  segmentFraction: number;
  inFlight: boolean;
  slot: number;
}

/** Re-encryption record choices, boundaries (nothing done, all done) included. */
export const arbReencryptPlan: fc.Arbitrary<ReencryptPlan> = fc.record({
  resilience: fc.constantFrom<Resilience>('checksum', 'journal'),
  doneFraction: fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 1, noNaN: true })),
  segmentFraction: fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 1, noNaN: true })),
  inFlight: fc.boolean(),
  slot: fc.constantFrom(0, 1),
});

/** A valid `feature_area` for `plan` on `layout` (SPEC §15.2). */
export function reencryptArea(plan: ReencryptPlan, layout: Layout, seed: number): Uint8Array {
  const sectors = layout.dataSize / layout.sectorSize;
  const done = Math.min(sectors, Math.floor(plan.doneFraction * sectors));
  const cap = Math.min(sectors - done, maxSegmentSectors(plan.resilience, layout));
  const segment = plan.inFlight && cap > 0 ? 1 + Math.floor(plan.segmentFraction * (cap - 1)) : 0;
  const bytes = bytesFrom(seed, 32 + 24 + 80);
  const digest = segment > 0 ? bytes.subarray(0, 32) : new Uint8Array(32);
  if (segment > 0) digest[0]! |= 1;
  return encodeReencryptState(
    {
      resilience: plan.resilience,
      sectorsDone: done,
      segmentSectors: segment,
      journalSlot: segment > 0 ? plan.slot : 0,
      journalDigest: digest,
      oldKeyNonce: bytes.subarray(32, 56),
      wrappedOldKey: bytes.subarray(56),
    },
    layout,
  );
}

/** Everything but the keyslots of a header (those need keys, which differ by scale). */
export interface HeaderPlan {
  layout: Layout;
  seqid: number;
  seed: number;
  roCompat: bigint;
  compat: bigint;
  reencrypt: ReencryptPlan | null;
  /** SPEC §3.1 (revision 1.1): 0 or absent (a revision-1.0 header), or a generation ≥ 1. */
  keyGeneration?: number;
}

const arbFlags = fc.oneof(
  { arbitrary: fc.constant(0n), weight: 4 },
  { arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 63 }).map((b) => 1n << BigInt(b)), weight: 1 },
);

/** Header choices for `scale`: layout, seqid (up to 2^53 − 1), flags, re-encryption. */
export function arbHeaderPlan(scale: Scale): fc.Arbitrary<HeaderPlan> {
  return fc.record({
    layout: arbLayout(scale),
    seqid: fc.oneof(
      fc.integer({ min: 1, max: 1000 }),
      fc.constantFrom(1, MAX_SAFE - 1, MAX_SAFE),
      fc.integer({ min: 1, max: MAX_SAFE }),
    ),
    seed: fc.integer(),
    roCompat: fc.oneof(
      { arbitrary: fc.constant(0n), weight: 3 },
      { arbitrary: arbFlags, weight: 1 },
    ),
    compat: arbFlags,
    reencrypt: fc.oneof(
      { arbitrary: fc.constant(null), weight: 3 },
      { arbitrary: arbReencryptPlan, weight: 1 },
    ),
    keyGeneration: REVISION_1_1
      ? fc.oneof(
          { arbitrary: fc.constant(0), weight: 2 },
          { arbitrary: fc.constantFrom(1, 2, MAX_SAFE), weight: 1 },
          { arbitrary: fc.integer({ min: 1, max: MAX_SAFE }), weight: 1 },
        )
      : fc.constant(0),
  });
}

/** Build valid header fields from a plan and its keyslots (what the encoder takes). */
export function headerFields(plan: HeaderPlan, keyslots: Keyslot[]): HeaderFields {
  const reencrypt = plan.reencrypt;
  return {
    ...plan.layout,
    seqid: plan.seqid,
    uuid: makeUuidV4(bytesFrom(plan.seed, 16)),
    features: {
      incompat: reencrypt ? INCOMPAT_REENCRYPT : 0n,
      roCompat: plan.roCompat,
      compat: plan.compat,
    },
    featureArea: reencrypt
      ? reencryptArea(reencrypt, plan.layout, plan.seed ^ 0x5a5a)
      : new Uint8Array(FEATURE_AREA_BYTES),
    keyslots,
    // Revision 1.1's field (§3.1): spread, so the fields type of revision 1.0 accepts it too.
    ...((plan.keyGeneration ?? 0) > 0 ? { keyGeneration: plan.keyGeneration! } : {}),
  };
}

/** A valid header for decode-level cases, and the MAC key it is sealed with. */
export interface SealedFields {
  fields: HeaderFields;
  macKey: Uint8Array;
}

/** Valid headers for decode-level cases, with random-content keyslots. */
export const arbFormatHeader: fc.Arbitrary<SealedFields> = fc
  .tuple(arbHeaderPlan('format'), arbSlotPlans)
  .map(([plan, slots]) => ({
    fields: headerFields(plan, keyslotsFromPlans(slots, plan.seed)),
    macKey: bytesFrom(plan.seed ^ 0x1234, 32),
  }));
