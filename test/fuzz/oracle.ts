/**
 * The fuzzer's reference: SPEC.md's validation rules re-stated on raw bytes, written from the
 * SPEC text (§1, §3, §4, §7, §10, §11, §13.3, §15.2) and not from volume-format/, so that a
 * decoder bug and the oracle do not share a cause. Numbers are spelled here as the SPEC spells
 * them on purpose.
 */
import { createHash } from 'node:crypto';
import { HEADER_FIELD_OFFSETS } from '../../volume-format/constants.js';

function sha256(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest();
}

/** One broken rule: the SPEC §10 row and the code that row gives. */
export interface Fault {
  row: number;
  code: string;
  why: string;
}

const MAX_SAFE = (1n << 53n) - 1n;

/**
 * Whether the code under test implements SPEC revision 1.1 (key generation at offset 116, §3.1;
 * volume verdicts of §8 step 3). Until that revision is merged everywhere the reference follows
 * whichever revision the code says it implements; revision 1.0 then differs only in those two
 * rules. Remove with revision 1.0's rules once 1.1 is in.
 */
export const REVISION_1_1 = 'keyGeneration' in HEADER_FIELD_OFFSETS;
const MAGICS = { A: 'CRYPTAIN', B: 'NIATPYRC' } as const;
/** SPEC §7: incompat bits this reader knows (bit 1, INCOMPAT_REENCRYPT). */
const KNOWN_INCOMPAT = 0x2n;

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o + 4)) << 32n) | BigInt(u32(b, o));
}
function zero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Every rule of SPEC §10 rows 1–16 and 30 that copy `bytes` breaks at `copy`'s position, in the
 * order of §8 step 2, so the first is the copy's verdict. Rows 1–5 end the list at their first
 * failure (a checksum that does not match makes every later field untrusted).
 */
export function copyFaults(bytes: Uint8Array, copy: 'A' | 'B'): Fault[] {
  const one = (row: number, code: string, why: string): Fault[] => [{ row, code, why }];
  if (bytes.length < 4096) return one(1, 'HEADER_SHORT', 'short');
  const b = bytes.subarray(0, 4096);
  if (Buffer.from(b.subarray(0, 8)).toString('latin1') !== MAGICS[copy]) {
    return one(2, 'HEADER_MAGIC', 'magic');
  }
  if (u32(b, 8) !== 1) return one(3, 'UNSUPPORTED_VERSION', 'format_version');
  if (u32(b, 12) !== 4096) return one(4, 'HEADER_FIELD', 'header_size');
  if (!equalBytes(sha256(b.subarray(0, 4064)), b.subarray(4064, 4096))) {
    return one(5, 'HEADER_CHECKSUM', 'checksum');
  }
  const out: Fault[] = [];
  const add = (row: number, code: string, why: string) => out.push({ row, code, why });
  const seqid = u64(b, 16);
  if (seqid > MAX_SAFE) add(6, 'HEADER_FIELD', 'seqid > 2^53-1');
  if (seqid === 0n) add(7, 'HEADER_FIELD', 'seqid 0');
  if (zero(b, 24, 40)) add(7, 'HEADER_FIELD', 'uuid zero');
  const incompat = u64(b, 40);
  if ((incompat & ~KNOWN_INCOMPAT) !== 0n) add(8, 'UNSUPPORTED_FEATURE', 'incompat bit');
  if (u32(b, 64) !== 1) add(9, 'HEADER_FIELD', 'cipher');
  const sectorSize = u32(b, 68);
  const journalOffset = u64(b, 72);
  const journalSize = u64(b, 80);
  const dataOffset = u64(b, 88);
  const dataSize = u64(b, 96);
  for (const [name, v] of [
    ['journal_offset', journalOffset],
    ['journal_size', journalSize],
    ['data_offset', dataOffset],
    ['data_size', dataSize],
  ] as const) {
    if (v > MAX_SAFE) add(6, 'HEADER_FIELD', `${name} > 2^53-1`);
  }
  if (sectorSize !== 512 && sectorSize !== 4096) add(9, 'HEADER_FIELD', 'sector_size');
  if (journalOffset !== 1048576n) add(10, 'HEADER_FIELD', 'journal_offset');
  if (journalSize % 4096n !== 0n || journalSize > 64n * 1048576n) {
    add(10, 'HEADER_FIELD', 'journal_size');
  }
  if (dataOffset !== journalOffset + journalSize) add(10, 'HEADER_FIELD', 'data_offset');
  const ss = BigInt(sectorSize);
  if (dataSize === 0n || (ss > 0n && dataSize % ss !== 0n) || dataSize < ss) {
    add(11, 'HEADER_FIELD', 'data_size');
  }
  if (dataOffset + dataSize > MAX_SAFE) add(11, 'HEADER_FIELD', 'data end > 2^53-1');
  if (u32(b, 104) !== 8) add(12, 'HEADER_FIELD', 'keyslot_count');
  if (u32(b, 108) !== 256) add(12, 'HEADER_FIELD', 'keyslot_size');
  if (u32(b, 112) !== 512) add(12, 'HEADER_FIELD', 'keyslots_offset');
  // §3.1 (revision 1.1): `key_generation` at 116 with `COMPAT_KEY_GENERATION` (compat bit 0).
  if (REVISION_1_1 && (u64(b, 56) & 1n) !== 0n) {
    const generation = u64(b, 116);
    if (generation === 0n) add(13, 'HEADER_FIELD', 'key_generation 0 with its bit set');
    if (generation > MAX_SAFE) add(13, 'HEADER_FIELD', 'key_generation > 2^53-1');
  } else if (!zero(b, 116, 124)) {
    add(13, 'HEADER_FIELD', 'key_generation bytes without its bit');
  }
  if (!zero(b, 124, 192)) add(13, 'HEADER_FIELD', 'reserved 124..192');
  if (!zero(b, 2560, 4032)) add(13, 'HEADER_FIELD', 'reserved 2560..4032');
  const layoutOk = !out.some((f) => f.row === 6 || f.row === 9 || f.row === 10 || f.row === 11);
  if ((incompat & KNOWN_INCOMPAT) !== 0n) {
    // Row 30 needs a valid layout to judge; with a broken one, rows 9–11 already fail the copy.
    if (layoutOk) {
      const journal = Number(journalSize);
      const sectors = Number(dataSize / ss);
      for (const why of reencryptProblems(b.subarray(192, 512), Number(ss), sectors, journal)) {
        add(30, 'HEADER_FIELD', why);
      }
    }
  } else if (!zero(b, 192, 512)) {
    add(13, 'HEADER_FIELD', 'feature_area not zero');
  }
  for (let i = 0; i < 8; i++) {
    for (const f of keyslotFaults(b.subarray(512 + 256 * i, 768 + 256 * i))) {
      add(f.row, f.code, `keyslot ${i}: ${f.why}`);
    }
  }
  return out;
}

/** SPEC §10 rows 14–16 for one 256-byte keyslot. */
export function keyslotFaults(s: Uint8Array): Fault[] {
  const out: Fault[] = [];
  const state = u16(s, 0);
  if (state === 0) {
    if (!zero(s, 0, 256)) out.push({ row: 14, code: 'KEYSLOT_FIELD', why: 'inactive not zero' });
    return out;
  }
  if (state !== 1) return [{ row: 14, code: 'KEYSLOT_FIELD', why: `state ${state}` }];
  const field = (why: string) => out.push({ row: 15, code: 'KEYSLOT_FIELD', why });
  if (u16(s, 2) !== 1) field('kdf_algorithm');
  if (u16(s, 48) !== 1) field('wrap_algorithm');
  if (u16(s, 50) !== 64) field('key_bytes');
  if (u32(s, 52) !== 0) field('flags');
  if (!zero(s, 160, 256)) field('reserved');
  for (const why of kdfProblems(u32(s, 4), u32(s, 8), u32(s, 12))) {
    out.push({ row: 16, code: 'KDF_LIMITS', why });
  }
  return out;
}

/** SPEC §11: the Argon2id limits, checked before any Argon2 call. */
export function kdfProblems(t: number, m: number, p: number): string[] {
  const out: string[] = [];
  if (t < 1 || t > 32) out.push(`kdf_time ${t}`);
  if (p < 1 || p > 16) out.push(`kdf_parallelism ${p}`);
  if (m > 4194304) out.push(`kdf_memory_kib ${m} > 4 GiB`);
  if (m < 8 * Math.max(1, p) || m < 8) out.push(`kdf_memory_kib ${m} < 8 p`);
  return out;
}

/** SPEC §15.2: the rules of the re-encryption record, given the copy's (valid) layout. */
export function reencryptProblems(
  area: Uint8Array,
  sectorSize: number,
  sectorCount: number,
  journalSize: number,
): string[] {
  const out: string[] = [];
  if (u32(area, 0) !== 1) out.push('reencrypt_version');
  const resilience = u16(area, 4);
  if (resilience !== 1 && resilience !== 2) out.push('resilience');
  const slot = u16(area, 6);
  if (slot !== 0 && slot !== 1) out.push('journal_slot');
  const done = u64(area, 8);
  const segment = u64(area, 16);
  if (done > MAX_SAFE) out.push('sectors_done > 2^53-1');
  if (segment > MAX_SAFE) out.push('segment_sectors > 2^53-1');
  const n = BigInt(sectorCount);
  if (done > n) out.push('sectors_done > N');
  if (done + segment > n) out.push('segment beyond N');
  if (segment === 0n) {
    if (slot !== 0) out.push('journal_slot set with no segment');
    if (!zero(area, 24, 56)) out.push('digest set with no segment');
  } else if (resilience === 1 || resilience === 2) {
    const bytes = segment * BigInt(sectorSize);
    const record = resilience === 2 ? bytes : (bytes / 512n) * 16n;
    if (record > BigInt(Math.floor(journalSize / 2))) out.push('record does not fit a slot');
  }
  if (!zero(area, 160, 320)) out.push('reserved');
  return out;
}

/** The codes that SPEC §10's closing paragraph lets replace `NO_VALID_HEADER`. */
const VOLUME_LEVEL_CODES = ['UNSUPPORTED_FEATURE', 'KDF_LIMITS', 'UNSUPPORTED_VERSION'];

/** SPEC §8 step 3 (revision 1.1): verdicts of one copy that fail the volume, whatever the other. */
const VOLUME_VERDICTS = ['UNSUPPORTED_FEATURE', 'KDF_LIMITS'];

/**
 * SPEC §8 steps 3–5 on two decode verdicts: the volume's code, otherwise the winner and the
 * copies to repair. `same` says whether the copies' bytes other than magic, MAC and checksum
 * are equal (step 5). Revision 1.1: copy A's volume verdict, else copy B's; with no valid copy
 * `UNSUPPORTED_VERSION` when both say so, else `NO_VALID_HEADER`. Revision 1.0 (§10's closing
 * paragraph as the code read it): a shared `UNSUPPORTED_FEATURE`, `KDF_LIMITS` or
 * `UNSUPPORTED_VERSION` of two invalid copies, else `NO_VALID_HEADER`.
 */
export function expectedChoice(
  a: { code: string; seqid?: number },
  b: { code: string; seqid?: number },
  same: boolean,
): { code: string } | { winner: 'A' | 'B'; repair: ('A' | 'B')[] } {
  const okA = a.code === 'ok';
  const okB = b.code === 'ok';
  if (REVISION_1_1) {
    for (const v of [a, b]) if (VOLUME_VERDICTS.includes(v.code)) return { code: v.code };
    if (!okA && !okB) {
      const version = a.code === 'UNSUPPORTED_VERSION' && b.code === 'UNSUPPORTED_VERSION';
      return { code: version ? 'UNSUPPORTED_VERSION' : 'NO_VALID_HEADER' };
    }
  } else if (!okA && !okB) {
    return {
      code: a.code === b.code && VOLUME_LEVEL_CODES.includes(a.code) ? a.code : 'NO_VALID_HEADER',
    };
  }
  if (okA && !okB) return { winner: 'A', repair: ['B'] };
  if (!okA && okB) return { winner: 'B', repair: ['A'] };
  if (b.seqid! > a.seqid!) return { winner: 'B', repair: ['A'] };
  if (a.seqid! > b.seqid!) return { winner: 'A', repair: ['B'] };
  return { winner: 'A', repair: same ? [] : ['B'] };
}

/** Bytes of two copies other than magic, header_mac and checksum are equal (SPEC §8 step 5). */
export function sameContent(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a.subarray(8, 4032), b.subarray(8, 4032));
}

/**
 * SPEC §13.3 in its stated order, up to the embedded copies: the code a backup file must give
 * from its own fields, or null when they pass (the copies are judged next, by
 * {@link backupCopyCode} and {@link backupAgreementFault}).
 */
export function backupPreambleCode(file: Uint8Array): string | null {
  if (file.length < 12 || Buffer.from(file.subarray(0, 8)).toString('latin1') !== 'CRYPTBAK') {
    return 'BACKUP_INVALID';
  }
  if (u32(file, 8) !== 1) return 'UNSUPPORTED_VERSION';
  if (file.length !== 8736) return 'BACKUP_INVALID';
  if (!equalBytes(sha256(file.subarray(0, 8704)), file.subarray(8704, 8736))) {
    return 'BACKUP_INVALID';
  }
  if (u32(file, 12) !== 1) return 'UNSUPPORTED_VERSION';
  if (u32(file, 44) !== 4096 || u32(file, 80) !== 2 || !zero(file, 84, 512)) {
    return 'BACKUP_INVALID';
  }
  for (const off of [32, 48, 56, 64, 72]) if (u64(file, off) > MAX_SAFE) return 'BACKUP_INVALID';
  return null;
}

/** SPEC §10 row 27: an embedded copy's own code becomes `BACKUP_INVALID` except rows 3, 8, 16. */
export function backupCopyCode(copyCode: string): string {
  return ['UNSUPPORTED_VERSION', 'UNSUPPORTED_FEATURE', 'KDF_LIMITS'].includes(copyCode)
    ? copyCode
    : 'BACKUP_INVALID';
}

/** SPEC §10 row 28: copies agree with each other and the preamble (both copies valid). */
export function backupAgreementFault(file: Uint8Array): boolean {
  const a = file.subarray(512, 4608);
  const b = file.subarray(4608, 8704);
  if (!sameContent(a, b)) return true; // content covers seqid too
  if (!equalBytes(file.subarray(16, 32), a.subarray(24, 40))) return true;
  if (u64(file, 32) !== u64(a, 16)) return true;
  if (u32(file, 40) !== u32(a, 68)) return true;
  for (const [p, h] of [
    [48, 72],
    [56, 80],
    [64, 88],
    [72, 96],
  ] as const) {
    if (u64(file, p) !== u64(a, h)) return true;
  }
  return false;
}
