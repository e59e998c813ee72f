/**
 * Format vectors of SPEC revision 1.1 (§12.2): the key generation (§3.1), copies with two
 * faults whose verdict pins the check order of §8 step 2, and pairs of copies whose verdict
 * pins the volume rules of §8 step 3. Each two-fault case is built so that each fault alone
 * gives a different code; the test suite checks that, so a case cannot silently stop pinning.
 */
import { HEADER_FIELD_OFFSETS as H, KEYSLOT_SIZE } from '../volume-format/constants.js';
import { COMPAT_KEY_GENERATION } from '../volume-format/features.js';
import type { NegativeVector } from './negative-vectors.js';

const KS = H.keyslots; // keyslot 0, the worked example's only active slot
const slot = (i: number): number => KS + KEYSLOT_SIZE * i;
type Edit = (copy: Uint8Array, view: DataView) => void;

/** The single faults the two-fault cases combine, each with the code it gives alone. */
export const SINGLE_FAULTS = {
  magic: {
    edit: ((c) => c.set(new TextEncoder().encode('NIATPYRC'), 0)) as Edit,
    code: 'HEADER_MAGIC',
  },
  version: {
    edit: ((_c, v) => v.setUint32(H.formatVersion, 2, true)) as Edit,
    code: 'UNSUPPORTED_VERSION',
  },
  headerSize: {
    edit: ((_c, v) => v.setUint32(H.headerSize, 8192, true)) as Edit,
    code: 'HEADER_FIELD',
  },
  seqidZero: { edit: ((_c, v) => v.setBigUint64(H.seqid, 0n, true)) as Edit, code: 'HEADER_FIELD' },
  incompat: {
    edit: ((_c, v) => v.setBigUint64(H.featureIncompat, 1n, true)) as Edit,
    code: 'UNSUPPORTED_FEATURE',
  },
  cipher: { edit: ((_c, v) => v.setUint32(H.cipher, 2, true)) as Edit, code: 'HEADER_FIELD' },
  reserved: { edit: ((c) => (c[H.reserved0 + 5] = 1)) as Edit, code: 'HEADER_FIELD' },
  keyGenerationZero: {
    edit: ((_c, v) => v.setBigUint64(H.featureCompat, COMPAT_KEY_GENERATION, true)) as Edit,
    code: 'HEADER_FIELD',
  },
  featureArea: { edit: ((c) => (c[H.featureArea + 10] = 1)) as Edit, code: 'HEADER_FIELD' },
  slot0Flags: { edit: ((_c, v) => v.setUint32(KS + 52, 1, true)) as Edit, code: 'KEYSLOT_FIELD' },
  slot0KdfTime: { edit: ((_c, v) => v.setUint32(KS + 4, 1000, true)) as Edit, code: 'KDF_LIMITS' },
  slot5State: { edit: ((_c, v) => v.setUint16(slot(5), 7, true)) as Edit, code: 'KEYSLOT_FIELD' },
  /** Keyslot 2 = a copy of keyslot 0 (a well-formed active slot) with kdf_time 1000. */
  slot2KdfTime: {
    edit: ((c, v) => {
      c.copyWithin(slot(2), KS, KS + KEYSLOT_SIZE);
      v.setUint32(slot(2) + 4, 1000, true);
    }) as Edit,
    code: 'KDF_LIMITS',
  },
} as const;

/** A two-fault case: the faults, in the order they are applied, and the verdict §8 gives. */
export interface OrderVector extends NegativeVector {
  faults: (keyof typeof SINGLE_FAULTS)[];
}

function order(
  name: string,
  faults: (keyof typeof SINGLE_FAULTS)[],
  expect: string,
  description: string,
  reseal = true,
): OrderVector {
  return {
    name: `order-${name}`,
    description,
    faults,
    mutate: (c, v) => faults.forEach((f) => SINGLE_FAULTS[f].edit(c, v)),
    reseal,
    expect,
  };
}

/** SPEC §8 step 2: two faults in one copy; the earlier check in the order gives the verdict. */
export const ORDER_VECTORS: OrderVector[] = [
  order(
    'magic-before-version',
    ['magic', 'version'],
    'HEADER_MAGIC',
    'magic of copy B and format_version = 2 (items 2 and 3)',
  ),
  order(
    'version-before-header-size',
    ['version', 'headerSize'],
    'UNSUPPORTED_VERSION',
    'format_version = 2 and header_size = 8192 (items 3 and 4)',
  ),
  order(
    'header-size-before-checksum',
    ['headerSize'],
    'HEADER_FIELD',
    'header_size = 8192, checksum not recomputed (items 4 and 5)',
    false,
  ),
  order(
    'seqid-before-incompat',
    ['seqidZero', 'incompat'],
    'HEADER_FIELD',
    'seqid = 0 and an unknown incompat bit (items 6 and 8)',
  ),
  order(
    'incompat-before-cipher',
    ['incompat', 'cipher'],
    'UNSUPPORTED_FEATURE',
    'an unknown incompat bit and cipher = 2 (items 8 and 9)',
  ),
  order(
    'incompat-before-reserved',
    ['incompat', 'reserved'],
    'UNSUPPORTED_FEATURE',
    'an unknown incompat bit and a reserved byte set (items 8 and 13): the unknown feature may assign it',
  ),
  order(
    'incompat-before-kdf',
    ['incompat', 'slot0KdfTime'],
    'UNSUPPORTED_FEATURE',
    'an unknown incompat bit and keyslot 0 kdf_time = 1000 (items 8 and 15)',
  ),
  order(
    'key-generation-before-keyslot',
    ['keyGenerationZero', 'slot5State'],
    'HEADER_FIELD',
    'COMPAT_KEY_GENERATION set with key_generation 0, and keyslot 5 state = 7 (items 13 and 15)',
  ),
  order(
    'reserved-before-kdf',
    ['reserved', 'slot0KdfTime'],
    'HEADER_FIELD',
    'a reserved byte set and keyslot 0 kdf_time = 1000 (items 13 and 15)',
  ),
  order(
    'feature-area-before-kdf',
    ['featureArea', 'slot0KdfTime'],
    'HEADER_FIELD',
    'feature_area byte set without a flag and keyslot 0 kdf_time = 1000 (items 14 and 15)',
  ),
  order(
    'slot-field-before-own-kdf',
    ['slot0Flags', 'slot0KdfTime'],
    'KEYSLOT_FIELD',
    'keyslot 0: flags = 1 and kdf_time = 1000 (row 15 before row 16 within a slot)',
  ),
  order(
    'slot-0-kdf-before-slot-5-field',
    ['slot0KdfTime', 'slot5State'],
    'KDF_LIMITS',
    'keyslot 0 kdf_time = 1000 and keyslot 5 state = 7 (slots in index order)',
  ),
  order(
    'slot-0-field-before-slot-2-kdf',
    ['slot0Flags', 'slot2KdfTime'],
    'KEYSLOT_FIELD',
    'keyslot 0 flags = 1, and keyslot 2 a well-formed active slot with kdf_time = 1000 (slots in index order)',
  ),
];

/** SPEC §3.1: malformed key generations in copy A of the worked example (generation 0). */
export const KEY_GENERATION_VECTORS: NegativeVector[] = [
  {
    name: 'key-generation-zero-with-bit',
    description: 'COMPAT_KEY_GENERATION set, key_generation = 0',
    mutate: SINGLE_FAULTS.keyGenerationZero.edit,
    expect: 'HEADER_FIELD',
  },
  {
    name: 'key-generation-without-bit',
    description: 'key_generation = 1 with COMPAT_KEY_GENERATION clear (a reserved byte)',
    mutate: (_c, v) => v.setBigUint64(H.keyGeneration, 1n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'key-generation-overflow',
    description:
      'COMPAT_KEY_GENERATION set, key_generation = 2^53 (above the u64 limit of SPEC §1)',
    mutate: (_c, v) => {
      v.setBigUint64(H.featureCompat, COMPAT_KEY_GENERATION, true);
      v.setBigUint64(H.keyGeneration, 1n << 53n, true);
    },
    expect: 'HEADER_FIELD',
  },
];

/** SPEC §8 step 3: a pair of copies and the verdict on the volume. */
export interface PairVector {
  name: string;
  description: string;
  /** Edits of copy A and copy B of the worked example (checksums recomputed unless noted). */
  mutateA?: Edit;
  mutateB?: Edit;
  resealA?: boolean;
  resealB?: boolean;
  /** The §8 verdict: `ok:A`/`ok:B` (which copy wins) or the error code. */
  expect: string;
}

/** SPEC §8 step 3: which code the volume gets from two copies' verdicts. */
export const PAIR_VECTORS: PairVector[] = [
  {
    name: 'pair-b-unknown-incompat',
    description: 'copy A valid; copy B has an unknown incompat bit: the volume is refused',
    mutateB: SINGLE_FAULTS.incompat.edit,
    expect: 'UNSUPPORTED_FEATURE',
  },
  {
    name: 'pair-a-kdf-over-limit',
    description: 'copy A keyslot 0 kdf_time = 1000; copy B valid: the volume is refused',
    mutateA: SINGLE_FAULTS.slot0KdfTime.edit,
    expect: 'KDF_LIMITS',
  },
  {
    name: 'pair-a-kdf-b-incompat',
    description: 'copy A over the KDF limits, copy B an unknown incompat bit: copy A decides',
    mutateA: SINGLE_FAULTS.slot0KdfTime.edit,
    mutateB: SINGLE_FAULTS.incompat.edit,
    expect: 'KDF_LIMITS',
  },
  {
    name: 'pair-a-corrupt-b-incompat',
    description: 'copy A checksum broken, copy B an unknown incompat bit: UNSUPPORTED_FEATURE',
    mutateA: (c) => (c[H.dataSize] = c[H.dataSize]! ^ 1),
    resealA: false,
    mutateB: SINGLE_FAULTS.incompat.edit,
    expect: 'UNSUPPORTED_FEATURE',
  },
  {
    name: 'pair-both-version-2',
    description: 'both copies format_version = 2: UNSUPPORTED_VERSION replaces NO_VALID_HEADER',
    mutateA: SINGLE_FAULTS.version.edit,
    mutateB: SINGLE_FAULTS.version.edit,
    expect: 'UNSUPPORTED_VERSION',
  },
  {
    name: 'pair-a-version-2',
    description: 'copy A format_version = 2, copy B valid: a copy fault, B wins (A is repaired)',
    mutateA: SINGLE_FAULTS.version.edit,
    expect: 'ok:B',
  },
  {
    name: 'pair-version-2-and-checksum',
    description: 'copy A format_version = 2, copy B checksum broken: NO_VALID_HEADER',
    mutateA: SINGLE_FAULTS.version.edit,
    mutateB: (c) => (c[H.dataSize] = c[H.dataSize]! ^ 1),
    resealB: false,
    expect: 'NO_VALID_HEADER',
  },
  {
    name: 'pair-both-keyslot-field',
    description: 'both copies keyslot 0 flags = 1: no code replaces NO_VALID_HEADER',
    mutateA: SINGLE_FAULTS.slot0Flags.edit,
    mutateB: SINGLE_FAULTS.slot0Flags.edit,
    expect: 'NO_VALID_HEADER',
  },
];
