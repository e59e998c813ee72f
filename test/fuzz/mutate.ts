/**
 * Field-level mutations of a header copy, and the re-sealing that carries them past the
 * checksum and the MAC: after an edit the fuzzer recomputes `header_mac` with the known MAC
 * key, then `checksum` (SPEC §3), exactly what a writer holding the key would do. So every
 * edit reaches the field checks of SPEC §10 instead of stopping at row 5.
 */
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import {
  HEADER_FIELD_OFFSETS as H,
  KEYSLOT_COUNT,
  KEYSLOT_FIELD_OFFSETS as K,
  KEYSLOT_SIZE,
} from '../../volume-format/constants.js';
import {
  type Field,
  type FieldEdit,
  HEADER_FIELDS,
  KEYSLOT_FIELDS,
  REENCRYPT_FIELDS,
  applyEdit,
  fieldNamed,
} from './fields.js';

/** One mutation of a header copy. */
export type Mutation =
  | { target: 'header'; field: string; edit: FieldEdit }
  | { target: 'keyslot'; slot: number; field: string; edit: FieldEdit }
  | { target: 'reencrypt'; field: string; edit: FieldEdit }
  | { target: 'slots'; op: 'swap' | 'copy' | 'clear'; from: number; to: number }
  | { target: 'layout'; sectorSize: number; journalSize: bigint; dataSize: bigint }
  | { target: 'bit'; bit: number };

/** How a mutated copy is sealed: MAC and checksum, checksum only (stale MAC), or neither. */
export type Seal = 'full' | 'checksum' | 'none';

const U16 = [0n, 1n, 2n, 3n, 64n, 0x7fffn, 0x8000n, 0xffffn];
const U32 = [
  0n,
  1n,
  2n,
  7n,
  8n,
  9n,
  15n,
  16n,
  17n,
  31n,
  32n,
  33n,
  64n,
  127n,
  128n,
  255n,
  256n,
  257n,
  511n,
  512n,
  513n,
  1024n,
  4095n,
  4096n,
  4097n,
  8192n,
  65536n,
  4194303n,
  4194304n,
  4194305n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
];
const U64 = [
  0n,
  1n,
  2n,
  512n,
  4095n,
  4096n,
  4097n,
  1048575n,
  1048576n,
  1048577n,
  12582912n,
  67108864n,
  67112960n,
  1n << 32n,
  (1n << 53n) - 4096n,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 53n) + 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];
const DELTAS = [-1n, 1n, -2n, 2n, -512n, 512n, -4096n, 4096n, 1n << 32n, 1n << 53n, -(1n << 53n)];

/** Fields whose values come from disk and go to Argon2 (SPEC §11). */
const KDF_FIELDS = new Set(['kdfTime', 'kdfMemoryKiB', 'kdfParallelism']);
/**
 * Values a container-level case may put in a KDF field: cheap inside §11, or outside it (the
 * cap must refuse those before any Argon2 call). Never a costly in-limit value: those would
 * really run Argon2.
 */
const CHEAP_KDF = [
  0n,
  1n,
  2n,
  8n,
  9n,
  16n,
  17n,
  33n,
  64n,
  1000n,
  4194305n,
  0x80000000n,
  0xffffffffn,
];

function pool(f: Field): bigint[] {
  if (f.size === 2) return U16;
  if (f.size === 4) return U32;
  return U64;
}

/** An edit of field `f`: a boundary value, a random value, a nearby value, a bit, a fill. */
export function arbEdit(f: Field, cheapKdf: boolean): fc.Arbitrary<FieldEdit> {
  if (cheapKdf && KDF_FIELDS.has(f.name)) {
    return fc.constantFrom(...CHEAP_KDF).map((value) => ({ op: 'set' as const, value }));
  }
  const bits = f.size * 8;
  const numeric = f.kind === 'u16' || f.kind === 'u32' || f.kind === 'u64' || f.kind === 'flags';
  const edits: fc.Arbitrary<FieldEdit>[] = [
    fc.integer({ min: 0, max: bits - 1 }).map((bit) => ({ op: 'flip' as const, bit })),
    fc
      .record({ index: fc.nat(f.size - 1), byte: fc.integer({ min: 0, max: 255 }) })
      .map(({ index, byte }) => ({ op: 'byte' as const, index, byte })),
    fc.constantFrom(0, 0xff).map((byte) => ({ op: 'fill' as const, byte })),
  ];
  if (numeric) {
    edits.push(
      fc.constantFrom(...pool(f)).map((value) => ({ op: 'set' as const, value })),
      fc
        .bigInt({ min: 0n, max: (1n << BigInt(Math.min(bits, 64))) - 1n })
        .map((value) => ({ op: 'set' as const, value })),
      fc.constantFrom(...DELTAS).map((delta) => ({ op: 'add' as const, delta })),
    );
  }
  if (f.kind === 'flags') {
    edits.push(
      fc.integer({ min: 0, max: 63 }).map((b) => ({ op: 'set' as const, value: 1n << BigInt(b) })),
    );
  }
  return fc.oneof(...edits);
}

/** Fields the 'header' target edits: all but the ones that have their own models. */
const HEADER_TARGETS = HEADER_FIELDS.filter(
  (f) => f.name !== 'keyslots' && f.name !== 'featureArea',
);

function arbFieldEdit(fields: Field[], cheapKdf: boolean) {
  return fc
    .constantFrom(...fields)
    .chain((f) => arbEdit(f, cheapKdf).map((edit) => ({ field: f.name, edit })));
}

/** Bits a container-level bit flip may hit: none inside a keyslot's KDF parameters. */
function bitAllowed(bit: number): boolean {
  const byte = bit >> 3;
  if (byte < H.keyslots || byte >= H.keyslots + KEYSLOT_COUNT * KEYSLOT_SIZE) return true;
  const inSlot = (byte - H.keyslots) % KEYSLOT_SIZE;
  return inSlot < K.kdfTime || inSlot >= K.kdfSalt;
}

/** One mutation; `cheapKdf` keeps in-limit KDF parameters cheap (container-level cases). */
export function arbMutation(cheapKdf: boolean): fc.Arbitrary<Mutation> {
  const slot = fc.integer({ min: 0, max: KEYSLOT_COUNT - 1 });
  return fc.oneof(
    {
      weight: 4,
      arbitrary: arbFieldEdit(HEADER_TARGETS, cheapKdf).map((e) => ({
        target: 'header' as const,
        ...e,
      })),
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(slot, arbFieldEdit(KEYSLOT_FIELDS, cheapKdf))
        .map(([s, e]) => ({ target: 'keyslot' as const, slot: s, ...e })),
    },
    {
      weight: 2,
      arbitrary: arbFieldEdit(REENCRYPT_FIELDS, cheapKdf).map((e) => ({
        target: 'reencrypt' as const,
        ...e,
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          op: fc.constantFrom('swap' as const, 'copy' as const, 'clear' as const),
          from: slot,
          to: slot,
        })
        .map((r) => ({ target: 'slots' as const, ...r })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          sectorSize: fc.constantFrom(512, 4096, 1024, 0),
          journalSize: fc.oneof(
            fc.constantFrom(0n, 4096n, 3n << 20n, 12n << 20n, 64n << 20n, (64n << 20n) + 4096n),
            fc.bigInt({ min: 0n, max: 1n << 27n }),
          ),
          dataSize: fc.oneof(
            fc.constantFrom(0n, 512n, 4096n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 4096n),
            fc.bigInt({ min: 0n, max: 1n << 40n }),
            fc.integer({ min: -2, max: 2 }).map((k) => BigInt(k) - 10n), // end near 2^53 - 1
          ),
        })
        .map((r) => ({ target: 'layout' as const, ...r })),
    },
    {
      weight: 2,
      arbitrary: fc
        .integer({ min: 0, max: H.headerMac * 8 - 1 })
        .filter((b) => !cheapKdf || bitAllowed(b))
        .map((bit) => ({ target: 'bit' as const, bit })),
    },
  );
}

/** Up to `max` mutations (at least one). */
export function arbMutations(cheapKdf: boolean, max = 3): fc.Arbitrary<Mutation[]> {
  return fc.array(arbMutation(cheapKdf), { minLength: 1, maxLength: max });
}

function writeU64(bytes: Uint8Array, at: number, v: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(at, BigInt.asUintN(64, v), true);
}

/** Apply `m` to the header copy `bytes` (4096 bytes) in place. */
export function applyMutation(bytes: Uint8Array, m: Mutation): void {
  switch (m.target) {
    case 'header':
      return applyEdit(bytes, 0, fieldNamed(HEADER_FIELDS, m.field), m.edit);
    case 'keyslot':
      return applyEdit(
        bytes,
        H.keyslots + KEYSLOT_SIZE * m.slot,
        fieldNamed(KEYSLOT_FIELDS, m.field),
        m.edit,
      );
    case 'reencrypt':
      return applyEdit(bytes, H.featureArea, fieldNamed(REENCRYPT_FIELDS, m.field), m.edit);
    case 'slots': {
      const at = (i: number) => H.keyslots + KEYSLOT_SIZE * i;
      const from = bytes.slice(at(m.from), at(m.from) + KEYSLOT_SIZE);
      if (m.op === 'clear') bytes.fill(0, at(m.to), at(m.to) + KEYSLOT_SIZE);
      else if (m.op === 'copy') bytes.set(from, at(m.to));
      else {
        bytes.copyWithin(at(m.from), at(m.to), at(m.to) + KEYSLOT_SIZE);
        bytes.set(from, at(m.to));
      }
      return;
    }
    case 'layout': {
      // A layout rewritten as a whole: coherent offsets, so the size rules themselves are hit.
      new DataView(bytes.buffer, bytes.byteOffset).setUint32(H.sectorSize, m.sectorSize, true);
      writeU64(bytes, H.journalSize, m.journalSize);
      const dataOffset = (1n << 20n) + m.journalSize;
      writeU64(bytes, H.dataOffset, dataOffset);
      // A negative dataSize means: the largest valid one, moved by (dataSize + 10) sectors.
      const ss = BigInt(m.sectorSize || 512);
      const largest = (((1n << 53n) - 1n - dataOffset) / ss) * ss;
      const dataSize = m.dataSize < 0n ? largest + (m.dataSize + 10n) * ss : m.dataSize;
      writeU64(bytes, H.dataSize, dataSize);
      return;
    }
    case 'bit':
      bytes[m.bit >> 3]! ^= 1 << (m.bit & 7);
      return;
  }
}

/** Recompute `header_mac` (with `macKey`) and/or `checksum` of a copy, as `seal` says. */
export function seal(bytes: Uint8Array, how: Seal, macKey: Uint8Array): Uint8Array {
  // node:crypto here, not crypto/: the fuzzer's own sealing shares no code with the product.
  if (how === 'full') {
    bytes.set(
      createHmac('sha256', macKey).update(bytes.subarray(0, H.headerMac)).digest(),
      H.headerMac,
    );
  }
  if (how !== 'none') {
    bytes.set(createHash('sha256').update(bytes.subarray(0, H.checksum)).digest(), H.checksum);
  }
  return bytes;
}

/** Mostly fully sealed, sometimes with a stale MAC, rarely not at all. */
export const arbSeal: fc.Arbitrary<Seal> = fc.oneof(
  { weight: 16, arbitrary: fc.constant<Seal>('full') },
  { weight: 2, arbitrary: fc.constant<Seal>('checksum') },
  { weight: 1, arbitrary: fc.constant<Seal>('none') },
);
