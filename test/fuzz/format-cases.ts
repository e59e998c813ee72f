/**
 * Decode-level fuzz cases: one mutated header copy (decode), two copies (choose), a backup file
 * (decode and prefix check). Each case asserts against the SPEC reference in ./oracle.ts that
 * the verdict is right, that only a CryptainerError escapes, that decoding is deterministic,
 * that an accepted copy re-encodes byte for byte, and that no accepted keyslot carries
 * Argon2 parameters beyond the cap.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { checkArgon2idParams } from '../../crypto/kdf.js';
import {
  encodeHeaderBackup,
  checkBackupPrefix,
  decodeHeaderBackup,
} from '../../volume-format/backup.js';
import { HEADER_FIELD_OFFSETS as H, HEADER_SIZE } from '../../volume-format/constants.js';
import { CryptainerError } from '../../volume-format/errors.js';
import {
  type HeaderFields,
  decodeHeaderCopy,
  encodeHeaderCopy,
} from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { isReencrypting, reencryptProgress } from '../../volume-format/reencrypt-state.js';
import { BACKUP_FIELDS, type Field, applyEdit } from './fields.js';
import { type SealedFields, arbFormatHeader } from './generate.js';
import {
  type Mutation,
  type Seal,
  applyMutation,
  arbEdit,
  arbMutations,
  arbSeal,
  seal,
} from './mutate.js';
import {
  backupAgreementFault,
  backupCopyCode,
  backupPreambleCode,
  copyFaults,
  expectedChoice,
  sameContent,
} from './oracle.js';

/** A fuzz failure: the message names the case; fast-check adds the seed and the path. */
export class FuzzFailure extends Error {}

function fail(why: string): never {
  throw new FuzzFailure(why);
}

/** The outcome of running one decoder: `ok` with its value, or a CryptainerError's code. */
export interface Verdict<T> {
  code: string;
  value?: T;
}

/** Run `f`; any exception that is not a CryptainerError is a bug and fails the case. */
export function verdictOf<T>(what: string, f: () => T): Verdict<T> {
  try {
    return { code: 'ok', value: f() };
  } catch (err) {
    if (err instanceof CryptainerError) return { code: err.code };
    return fail(
      `${what}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} escaped`,
    );
  }
}

/** Cases checked so far (samples the costlier determinism re-runs). */
let checks = 0;

/** How often each verdict came out, by kind of check (for the run's summary). */
export const tally = new Map<string, number>();

/** Count one verdict under `what`. */
export function count(what: string, code: string): void {
  const key = `${what} ${code}`;
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Decode `bytes` as `copy` and check the verdict against SPEC §10 (./oracle.ts): with no fault
 * it must decode; with faults its code must be one of theirs (exactly theirs when they agree).
 * Then the properties every verdict must have. Returns the verdict.
 */
export function checkCopy(
  bytes: Uint8Array,
  copy: 'A' | 'B',
  macKey: Uint8Array | null,
): Verdict<HeaderFields> {
  const faults = copyFaults(bytes, copy);
  const v = verdictOf(`decode copy ${copy}`, () => decodeHeaderCopy(bytes, copy));
  // Determinism: decode a fresh copy of the bytes again (every 4th case: it costs a decode).
  const again =
    (checks++ & 3) === 0
      ? verdictOf(`decode copy ${copy} again`, () => decodeHeaderCopy(Uint8Array.from(bytes), copy))
      : v;
  if (again.code !== v.code) fail(`decode not deterministic: ${v.code} then ${again.code}`);
  // SPEC §8 step 2: the first failing check, in the stated order, is the copy's verdict.
  const want = faults[0]?.code ?? 'ok';
  if (v.code !== want) {
    const all = faults.map((f) => `row ${f.row} ${f.why}`).join('; ');
    fail(`copy ${copy} gave ${v.code}, SPEC §8 step 2 says ${want} (${all || 'no fault'})`);
  }
  count('copy', v.code);
  if (v.code !== 'ok') return v;
  const fields = v.value!;
  if (!isDeepStrictEqual(again.value, fields)) fail('decode not deterministic: fields differ');
  // An accepted copy says exactly what its bytes say: re-encoding gives the same bytes (the MAC
  // is compared only when the fuzzer sealed it with a key it knows).
  const body = encodeHeaderCopy(fields, copy, macKey ?? new Uint8Array(32));
  const upTo = macKey ? HEADER_SIZE : H.headerMac;
  if (!equalBytes(body.subarray(0, upTo), bytes.subarray(0, upTo)))
    fail('accepted copy does not re-encode byte for byte');
  // SPEC §11: the cap runs at decode, before any Argon2 call could see these parameters.
  for (const slot of fields.keyslots) {
    if (slot.state === 'active') checkArgon2idParams(slot.kdf);
  }
  if (isReencrypting(fields)) verdictOf('reencrypt progress', () => reencryptProgress(fields));
  return v;
}

/** One mutated copy. */
export interface CopyCase {
  header: SealedFields;
  copy: 'A' | 'B';
  mutations: Mutation[];
  seal: Seal;
  /** Pass this many trailing extra bytes (a reader reads exactly 4096; more must not matter). */
  extra: number;
}

/** One valid header, one or more mutations, a seal, maybe trailing bytes. */
export const arbCopyCase: fc.Arbitrary<CopyCase> = fc.record({
  header: arbFormatHeader,
  copy: fc.constantFrom<'A' | 'B'>('A', 'B'),
  mutations: arbMutations(false),
  seal: arbSeal,
  extra: fc.constantFrom(0, 0, 0, 1, 4096),
});

/** Build a case's bytes: encode, mutate, seal. */
export function mutatedCopy(
  header: SealedFields,
  copy: 'A' | 'B',
  mutations: Mutation[],
  how: Seal,
): Uint8Array {
  return mutated(
    encodeHeaderCopy(header.fields, copy, header.macKey),
    mutations,
    how,
    header.macKey,
  );
}

/** A mutated, sealed copy of the encoded copy `encoded` (left as it is). */
function mutated(
  encoded: Uint8Array,
  mutations: Mutation[],
  how: Seal,
  macKey: Uint8Array,
): Uint8Array {
  if (mutations.length === 0 && how === 'full') return Uint8Array.from(encoded);
  const bytes = Uint8Array.from(encoded);
  for (const m of mutations) applyMutation(bytes, m);
  return seal(bytes, how, macKey);
}

/** Build the copy of `c` and check its decode against the SPEC reference. */
export function runCopyCase(c: CopyCase): void {
  const bytes = mutatedCopy(c.header, c.copy, c.mutations, c.seal);
  const input = new Uint8Array(HEADER_SIZE + c.extra);
  input.set(bytes);
  input.fill(0xa5, HEADER_SIZE);
  checkCopy(input, c.copy, c.seal === 'full' ? c.header.macKey : null);
}

/** What is read at a copy's offset: the copy, a short read, or nothing. */
type Readable = 'whole' | 'short' | 'missing';

/** Two copies of one volume, B possibly a different state, both possibly mutated. */
export interface ChoiceCase {
  header: SealedFields;
  /** How copy B's header differs before mutation. */
  variant: { seqidDelta: number; content: boolean };
  mutA: Mutation[];
  mutB: Mutation[];
  sealA: Seal;
  sealB: Seal;
  readA: Readable;
  readB: Readable;
}

const arbReadable = fc.constantFrom<Readable>(
  'whole',
  'whole',
  'whole',
  'whole',
  'whole',
  'whole',
  'short',
  'missing',
);

/** Two copies of one volume, each possibly mutated, short or missing. */
export const arbChoiceCase: fc.Arbitrary<ChoiceCase> = fc.record({
  header: arbFormatHeader,
  variant: fc.record({ seqidDelta: fc.constantFrom(0, 0, 1, -1, 2, -5), content: fc.boolean() }),
  mutA: fc.oneof(fc.constant<Mutation[]>([]), arbMutations(false, 2)),
  mutB: fc.oneof(fc.constant<Mutation[]>([]), arbMutations(false, 2)),
  sealA: arbSeal,
  sealB: arbSeal,
  readA: arbReadable,
  readB: arbReadable,
});

/** Copy B's header: the same, another seqid and/or other content (compat bits changed). */
function variantFields(f: HeaderFields, v: ChoiceCase['variant']): HeaderFields {
  const seqid = Math.min(Math.max(1, f.seqid + v.seqidDelta), Number.MAX_SAFE_INTEGER);
  const compat = v.content ? f.features.compat ^ (1n << 63n) : f.features.compat;
  return { ...f, seqid, features: { ...f.features, compat } };
}

function readAs(bytes: Uint8Array, r: Readable): Uint8Array | null {
  return r === 'whole' ? bytes : r === 'short' ? bytes.subarray(0, 4095) : null;
}

/** Check `planHeaderChoice` on the two copies of `c` against SPEC §8 steps 3–5. */
export function runChoiceCase(c: ChoiceCase): void {
  const a = readAs(mutatedCopy(c.header, 'A', c.mutA, c.sealA), c.readA);
  const bHeader = { ...c.header, fields: variantFields(c.header.fields, c.variant) };
  const b = readAs(mutatedCopy(bHeader, 'B', c.mutB, c.sealB), c.readB);
  const short = { code: 'HEADER_SHORT' };
  const va = a === null ? short : checkCopy(a, 'A', c.sealA === 'full' ? c.header.macKey : null);
  const vb = b === null ? short : checkCopy(b, 'B', c.sealB === 'full' ? c.header.macKey : null);
  const seq = (v: Verdict<HeaderFields>) =>
    v.code === 'ok' ? { code: 'ok', seqid: v.value!.seqid } : { code: v.code };
  const want = expectedChoice(seq(va), seq(vb), a !== null && b !== null && sameContent(a, b));
  const got = verdictOf('planHeaderChoice', () => planHeaderChoice(a, b));
  if ('code' in want) {
    count('choice', got.code);
    if (got.code !== want.code)
      fail(`choice gave ${got.code}, SPEC §8 says ${want.code} (A ${va.code}, B ${vb.code})`);
    return;
  }
  if (got.code !== 'ok') fail(`choice gave ${got.code}, SPEC §8 says copy ${want.winner} wins`);
  const choice = got.value!;
  count('choice', `winner ${choice.winner} repair [${choice.repair.join()}]`);
  if (choice.winner !== want.winner) fail(`copy ${choice.winner} won, SPEC §8 says ${want.winner}`);
  if (choice.repair.join() !== want.repair.join())
    fail(`repair ${choice.repair.join()} but SPEC §8 says ${want.repair.join()}`);
  const winnerBytes = (want.winner === 'A' ? a : b)!;
  if (!equalBytes(choice.winnerBytes, winnerBytes.subarray(0, HEADER_SIZE)))
    fail('winnerBytes are not the winner');
  const loser = want.winner === 'A' ? 'B' : 'A';
  const lv = loser === 'A' ? va : vb;
  const status = lv.code !== 'ok' ? 'corrupt' : want.repair.length > 0 ? 'stale' : 'ok';
  if (choice.copies[loser].status !== status)
    fail(`copy ${loser} is ${choice.copies[loser].status}, expected ${status}`);
  if (status === 'corrupt' && choice.copies[loser].error?.code !== lv.code)
    fail('corrupt copy reports another code');
}

/** A backup file built from a valid header, then mutated. */
export interface BackupCase {
  header: SealedFields;
  preamble: { field: string; edit: import('./fields.js').FieldEdit }[];
  mutA: Mutation[];
  mutB: Mutation[];
  /** Change of the file length (0 = none). */
  resize: number;
  /** Recompute the backup checksum after the edits (what a forger would do). */
  reseal: boolean;
}

const PREAMBLE_TARGETS: Field[] = BACKUP_FIELDS.filter(
  (f) => !['copyA', 'copyB', 'checksum'].includes(f.name),
);

/** A backup of a valid header, with preamble edits, mutated copies and length changes. */
export const arbBackupCase: fc.Arbitrary<BackupCase> = fc.record({
  header: arbFormatHeader,
  preamble: fc.array(
    fc
      .constantFrom(...PREAMBLE_TARGETS)
      .chain((f) => arbEdit(f, false).map((edit) => ({ field: f.name, edit }))),
    { maxLength: 2 },
  ),
  mutA: fc.oneof(
    { weight: 3, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: 1, arbitrary: arbMutations(false, 2) },
  ),
  mutB: fc.oneof(
    { weight: 3, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: 1, arbitrary: arbMutations(false, 2) },
  ),
  resize: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, -1, 1, -8736, -8725, -8724, 4096),
  reseal: fc.oneof(fc.constant(true), fc.constant(true), fc.constant(true), fc.constant(false)),
});

/** Check `decodeHeaderBackup` (and the prefix check) on `c` against SPEC §13.3. */
export function runBackupCase(c: BackupCase): void {
  const copyA = encodeHeaderCopy(c.header.fields, 'A', c.header.macKey);
  const copyB = encodeHeaderCopy(c.header.fields, 'B', c.header.macKey);
  const valid = encodeHeaderBackup(copyA, copyB);
  const edited = Uint8Array.from(valid);
  for (const p of c.preamble)
    applyEdit(
      edited,
      0,
      BACKUP_FIELDS.find((f) => f.name === p.field)!,
      p.edit,
    );
  edited.set(mutated(copyA, c.mutA, 'full', c.header.macKey), 512);
  edited.set(mutated(copyB, c.mutB, 'full', c.header.macKey), 4608);
  const sealed = Uint8Array.from(edited);
  if (c.reseal) sealed.set(createHash('sha256').update(sealed.subarray(0, 8704)).digest(), 8704);
  const file = new Uint8Array(Math.max(0, sealed.length + c.resize));
  file.set(sealed.subarray(0, Math.min(sealed.length, file.length)));
  // SPEC §13.3, stated order: preamble, then copy A, then copy B, then their agreement.
  let want = backupPreambleCode(file);
  if (want === null) {
    const va = checkCopy(file.subarray(512, 4608), 'A', c.header.macKey);
    const vb = checkCopy(file.subarray(4608, 8704), 'B', c.header.macKey);
    if (va.code !== 'ok') want = backupCopyCode(va.code);
    else if (vb.code !== 'ok') want = backupCopyCode(vb.code);
    else want = backupAgreementFault(file) ? 'BACKUP_INVALID' : 'ok';
  }
  const got = verdictOf('decodeHeaderBackup', () => decodeHeaderBackup(file));
  count('backup', got.code);
  if (got.code !== want) fail(`backup gave ${got.code}, SPEC §13.3 says ${want}`);
  const again =
    (checks++ & 3) === 0
      ? verdictOf('decodeHeaderBackup again', () => decodeHeaderBackup(Uint8Array.from(file)))
      : got;
  if (again.code !== got.code) fail('backup decode not deterministic');
  // The prefix check sees the first 512 bytes and the length, and must agree on what it checks.
  const prefix = verdictOf('checkBackupPrefix', () =>
    checkBackupPrefix(file.subarray(0, 512), file.length),
  );
  if (prefix.code !== 'ok' && prefix.code !== got.code)
    fail(`prefix check ${prefix.code}, full decode ${got.code}`);
  if (got.code === 'ok') {
    const b = got.value!;
    if (
      !equalBytes(b.copies.A, file.subarray(512, 4608)) ||
      !equalBytes(b.copies.B, file.subarray(4608, 8704))
    ) {
      fail('backup copies are not the embedded bytes');
    }
    if (!equalBytes(encodeHeaderBackup(b.copies.A, b.copies.B), file))
      fail('accepted backup does not re-encode byte for byte');
  }
}
