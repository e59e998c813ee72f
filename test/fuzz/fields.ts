/**
 * The field model the fuzzer mutates: every on-disk structure as a list of fields, derived from
 * the offset tables in volume-format/constants.ts (so a field added there comes along), plus
 * the primitive edits (set, add, flip a bit, fill) on one field of a byte array.
 */
import {
  BACKUP_FIELD_OFFSETS,
  BACKUP_SIZE,
  FEATURE_AREA_BYTES,
  HEADER_FIELD_OFFSETS,
  HEADER_SIZE,
  KEYSLOT_FIELD_OFFSETS,
  KEYSLOT_SIZE,
  REENCRYPT_FIELD_OFFSETS,
} from '../../volume-format/constants.js';

/** How a field's bytes are read: a little-endian integer, a bit field, or opaque bytes. */
export type FieldKind = 'u16' | 'u32' | 'u64' | 'flags' | 'bytes' | 'reserved';

/** One field of a structure: where it is and what it holds. */
export interface Field {
  name: string;
  offset: number;
  size: number;
  kind: FieldKind;
}

/** Names whose bytes are opaque (magics, keys, nonces, digests, embedded structures). */
const BYTE_FIELDS = new Set([
  'magic',
  'uuid',
  'featureArea',
  'keyslots',
  'headerMac',
  'checksum',
  'kdfSalt',
  'wrapNonce',
  'wrappedKey',
  'journalDigest',
  'oldKeyNonce',
  'wrappedOldKey',
  'copyA',
  'copyB',
]);

/**
 * Turn an offset table into fields: each field runs to the next offset (or `total`), so the
 * sizes follow the table. Reserved ranges, bit fields and integers are told apart by name and
 * size.
 */
function fieldsOf(offsets: Readonly<Record<string, number>>, total: number): Field[] {
  const sorted = Object.entries(offsets).sort((a, b) => a[1] - b[1]);
  return sorted.map(([name, offset], i) => {
    const size = (sorted[i + 1]?.[1] ?? total) - offset;
    let kind: FieldKind;
    if (name.startsWith('reserved')) kind = 'reserved';
    else if (BYTE_FIELDS.has(name)) kind = 'bytes';
    else if (name.startsWith('feature') && size === 8) kind = 'flags';
    else if (size === 2) kind = 'u16';
    else if (size === 4) kind = 'u32';
    else if (size === 8) kind = 'u64';
    else kind = 'bytes';
    return { name, offset, size, kind };
  });
}

/** SPEC §3: the fields of a header copy (keyslots and feature area have their own models). */
export const HEADER_FIELDS = fieldsOf(HEADER_FIELD_OFFSETS, HEADER_SIZE);
/** SPEC §4: the fields of one keyslot. */
export const KEYSLOT_FIELDS = fieldsOf(KEYSLOT_FIELD_OFFSETS, KEYSLOT_SIZE);
/** SPEC §15.2: the fields of the re-encryption record inside `feature_area`. */
export const REENCRYPT_FIELDS = fieldsOf(REENCRYPT_FIELD_OFFSETS, FEATURE_AREA_BYTES);
/** SPEC §13.1: the fields of a header backup file. */
export const BACKUP_FIELDS = fieldsOf(BACKUP_FIELD_OFFSETS, BACKUP_SIZE);

/** Look a field up by name (throws on a typo in the fuzzer itself). */
export function fieldNamed(fields: readonly Field[], name: string): Field {
  const f = fields.find((x) => x.name === name);
  if (!f) throw new Error(`fuzz model: no field ${name}`);
  return f;
}

/** An edit of one field. Values are bigints, taken modulo the field's width. */
export type FieldEdit =
  | { op: 'set'; value: bigint }
  | { op: 'add'; delta: bigint }
  | { op: 'flip'; bit: number }
  | { op: 'fill'; byte: number }
  | { op: 'byte'; index: number; byte: number };

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Read an integer field (bytes fields of up to 8 bytes read as little-endian too). */
export function readField(bytes: Uint8Array, base: number, f: Field): bigint {
  let v = 0n;
  const n = Math.min(f.size, 8);
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[base + f.offset + i]!);
  return v;
}

function writeInt(bytes: Uint8Array, at: number, size: number, value: bigint): void {
  const dv = view(bytes);
  const width = BigInt(size * 8);
  const v = BigInt.asUintN(Number(width), value);
  if (size === 2) dv.setUint16(at, Number(v), true);
  else if (size === 4) dv.setUint32(at, Number(v), true);
  else if (size === 8) dv.setBigUint64(at, v, true);
  else throw new Error(`fuzz model: no integer of ${size} bytes`);
}

/** Apply `edit` to field `f` of the structure that starts at `base` in `bytes`, in place. */
export function applyEdit(bytes: Uint8Array, base: number, f: Field, edit: FieldEdit): void {
  const at = base + f.offset;
  const integer = f.size === 2 || f.size === 4 || f.size === 8;
  switch (edit.op) {
    case 'set':
      if (integer) writeInt(bytes, at, f.size, edit.value);
      else bytes.fill(Number(edit.value & 0xffn), at, at + f.size);
      return;
    case 'add':
      if (integer) writeInt(bytes, at, f.size, readField(bytes, base, f) + edit.delta);
      else bytes[at] = (bytes[at]! + Number(BigInt.asUintN(8, edit.delta))) & 0xff;
      return;
    case 'flip': {
      const bit = edit.bit % (f.size * 8);
      bytes[at + (bit >> 3)]! ^= 1 << (bit & 7);
      return;
    }
    case 'fill':
      bytes.fill(edit.byte, at, at + f.size);
      return;
    case 'byte':
      bytes[at + (edit.index % f.size)] = edit.byte;
      return;
  }
}
