/**
 * Re-encryption resume fuzz cases: a small volume in memory in the middle of a re-encryption
 * (SPEC §15), with a real old/new key pair, the data area in the state §15.1 describes (a
 * segment in flight torn block by block between the keys) and its journal record, mutated behind
 * the MAC, then resumed. The outcome must follow SPEC §8, §10 rows 31–32 and §15.7; when the
 * state was not mutated, every sector must afterwards decrypt to its plaintext under the new key.
 */
import { writeFile } from 'node:fs/promises';
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import { constantTimeEqual } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import {
  HEADER_COPY_OFFSETS,
  HEADER_FIELD_OFFSETS as H,
  HEADER_SIZE,
  KEYSLOT_COUNT,
  REENCRYPT_FIELD_OFFSETS as R,
} from '../../volume-format/constants.js';
import { type HeaderFields, encodeHeaderCopy } from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { containerSizeOf } from '../../volume-format/layout.js';
import {
  buildChecksumRecord,
  decodeReencryptState,
  journalRecordBytes,
  journalSlotOffset,
  maxSegmentSectors,
  wrapOldMasterKey,
} from '../../volume-format/reencrypt-state.js';
import { resumeReencrypt } from '../../src/volume/reencrypt.js';
import { MemoryStorage } from '../helpers/memory-storage.js';
import {
  RIGHT,
  type SlotKind,
  arbSlot,
  buildSlots,
  guardKdfCost,
  macKeyFor,
  masterKeyOf,
  openingSlot,
  withTimeout,
} from './container-cases.js';
import { FuzzFailure, checkCopy, count, verdictOf } from './format-cases.js';
import {
  type HeaderPlan,
  arbHeaderPlan,
  arbReencryptPlan,
  bytesFrom,
  headerFields,
} from './generate.js';
import { type Mutation, type Seal, applyMutation, arbMutations, seal } from './mutate.js';
import { expectedChoice, sameContent } from './oracle.js';

/** One resume case. */
export interface ResumeCase {
  plan: HeaderPlan;
  slots: SlotKind[];
  /** Per 512-byte block of the segment in flight: already rewritten under the new key? */
  tornSeed: number;
  mutations: Mutation[];
  /** Apply the mutations to both copies (a consistent header) or to copy A only. */
  both: boolean;
  sealHow: Seal;
}

/** Re-encryption states on small volumes, with slot 7 always opening, maybe mutated. */
export const arbResumeCase: fc.Arbitrary<ResumeCase> = fc.record({
  plan: fc.tuple(arbHeaderPlan('container'), arbReencryptPlan).map(([p, r]) => ({
    ...p,
    // A run makes up to N + 3 header updates: room for them, or none at all (the limit).
    seqid: p.seqid === MAX_SAFE ? p.seqid : Math.min(p.seqid, MAX_SAFE - 1000),
    roCompat: 0n,
    reencrypt: r,
  })),
  slots: fc.array(arbSlot, { minLength: KEYSLOT_COUNT, maxLength: KEYSLOT_COUNT }).map((s) => {
    // At least one slot the right secret opens, no weak keys: resume is what is fuzzed here.
    const out = s.map((k) => (k ? { ...k, weakKey: false } : k));
    out[7] = { secret: 'right', weakKey: false, entry: 0 };
    return out;
  }),
  tornSeed: fc.integer(),
  mutations: fc.oneof(fc.constant<Mutation[]>([]), arbMutations(true, 2)),
  both: fc.boolean(),
  sealHow: fc.constantFrom<Seal>('full', 'full', 'full', 'checksum'),
});

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function fail(why: string): never {
  throw new FuzzFailure(why);
}

function sha256(b: Uint8Array): Uint8Array {
  return createHash('sha256').update(b).digest();
}

/** Run one resume case against `path` (a name in a temporary directory, for the lock). */
export async function runResumeCase(c: ResumeCase, path: string): Promise<void> {
  const base = headerFields(c.plan, []);
  const { keyslots, masterKey: newKey } = buildSlots(c, base.uuid);
  const oldKey = masterKeyOf(c.plan.seed ^ 0x3c3c, false);
  // SPEC §15.3: the wrap of the old key is real, so only a mutation makes it fail.
  const state = decodeReencryptState(base.featureArea, base);
  const area = Uint8Array.from(base.featureArea);
  area.set(wrapOldMasterKey(newKey, oldKey, base.uuid, state.oldKeyNonce), R.wrappedOldKey);
  const ss = base.sectorSize;
  const plain = bytesFrom(c.plan.seed ^ 0x99, base.dataSize);
  const oldX = new XtsCipher(oldKey, ss);
  const newX = new XtsCipher(newKey, ss);
  const disk = new Uint8Array(containerSizeOf(base));
  const underOld = oldX.encryptSectors(plain, 0);
  const underNew = newX.encryptSectors(plain, 0);
  oldX.dispose();
  // SPEC §15.1: [0, d) new, [d + n, N) old, the segment block by block either.
  const d = state.sectorsDone;
  const n = state.segmentSectors;
  const data = Uint8Array.from(underOld);
  data.set(underNew.subarray(0, d * ss));
  const torn = bytesFrom(c.tornSeed, (n * ss) / 512);
  for (let blk = 0; blk < torn.length; blk++) {
    const at = d * ss + blk * 512;
    if (torn[blk]! & 1) data.set(underNew.subarray(at, at + 512), at);
  }
  disk.set(data, base.dataOffset);
  if (n > 0) {
    const oldSegment = underOld.subarray(d * ss, (d + n) * ss);
    const record = state.resilience === 'journal' ? oldSegment : buildChecksumRecord(oldSegment);
    disk.set(record, journalSlotOffset(base, state.journalSlot));
    area.set(sha256(record), R.journalDigest);
  }
  const fields: HeaderFields = { ...base, keyslots, featureArea: area };
  const macKey = deriveHeaderMacKey(newKey, fields.uuid);
  const originalA = encodeHeaderCopy(fields, 'A', macKey);
  const a = Uint8Array.from(originalA);
  const b = encodeHeaderCopy(fields, 'B', macKey);
  for (const m of c.mutations) {
    applyMutation(a, m);
    if (c.both) applyMutation(b, m);
  }
  seal(a, c.sealHow, macKeyFor(a, newKey));
  if (c.both) seal(b, c.sealHow, macKeyFor(b, newKey));
  disk.set(a, HEADER_COPY_OFFSETS.A);
  disk.set(b, HEADER_COPY_OFFSETS.B);
  const want = expected(c, disk, a, b, { a: originalA, uuid: fields.uuid, newKey });
  const before = Uint8Array.from(disk.subarray(fields.journalOffset));
  // The lock (SPEC §9.2) is taken on the file at `path`, even with an injected storage.
  await writeFile(path, '', { flag: 'a' });
  const storage = new MemoryStorage(disk);
  const got = await withTimeout(
    (async () => {
      try {
        const report = await resumeReencrypt(path, { passphrase: RIGHT, storage, threads: 0 });
        return report.finished ? 'ok' : 'unfinished';
      } catch (err) {
        return verdictOf('resume', () => {
          throw err;
        }).code;
      }
    })(),
    'resume',
  );
  count('resume', got);
  if (got !== want.code) fail(`resume gave ${got}, SPEC says ${want.code}`);
  if (got !== 'ok') {
    // A refused resume may have repaired a header copy, but never touched journal or data.
    const now = storage.bytes.subarray(fields.journalOffset);
    if (Buffer.compare(now, before) !== 0)
      fail(`resume failed with ${got} but wrote journal or data`);
    return;
  }
  // SPEC §15.6 F1–F3: flag cleared, feature area and journal zero, both copies valid and equal.
  const after = storage.bytes;
  const copy = (x: 'A' | 'B') =>
    after.subarray(HEADER_COPY_OFFSETS[x], HEADER_COPY_OFFSETS[x] + HEADER_SIZE);
  const choice = planHeaderChoice(copy('A'), copy('B'));
  if (choice.repair.length > 0 || choice.fields.features.incompat !== 0n)
    fail('resume left a flag or a bad copy');
  const journal = after.subarray(choice.fields.journalOffset, choice.fields.dataOffset);
  if (journal.some((x) => x !== 0)) fail('resume left the journal area non-zero');
  // The volume is the data area the header describes: a mutation that shrank data_size behind
  // a valid MAC leaves the sectors past it outside the volume, under the old key (found by a
  // 1,000,000-case run, seed 486048). Only the sectors inside both areas are compared.
  const final = choice.fields;
  const sameGeometry = final.dataOffset === base.dataOffset && final.sectorSize === base.sectorSize;
  if (want.dataIntact && sameGeometry) {
    const n = Math.min(final.dataSize, base.dataSize);
    const back = newX.decryptSectors(after.subarray(base.dataOffset, base.dataOffset + n), 0);
    if (Buffer.compare(back, plain.subarray(0, n)) !== 0)
      fail('after resume the data does not decrypt to its plaintext');
  }
  newX.dispose();
}

/** SPEC §8 (choice), §10 rows 18–21, 31–32, §15.7: what resuming this disk must give. */
function expected(
  c: ResumeCase,
  disk: Uint8Array,
  a: Uint8Array,
  b: Uint8Array,
  original: { a: Uint8Array; uuid: Uint8Array; newKey: Uint8Array },
): { code: string; dataIntact?: boolean } {
  const va = checkCopy(a, 'A', c.sealHow === 'full' ? macKeyFor(a, original.newKey) : null);
  const vb = checkCopy(
    b,
    'B',
    c.sealHow === 'full' || !c.both ? macKeyFor(b, original.newKey) : null,
  );
  const seq = (v: typeof va) =>
    v.code === 'ok' ? { code: 'ok', seqid: v.value!.seqid } : { code: v.code };
  const choice = expectedChoice(seq(va), seq(vb), sameContent(a, b));
  if ('code' in choice) return choice;
  const fields = (choice.winner === 'A' ? va : vb).value!;
  const winner = choice.winner === 'A' ? a : b;
  if (disk.length < containerSizeOf(fields)) return { code: 'TRUNCATED' };
  if (fields.features.roCompat !== 0n) return { code: 'UNSUPPORTED_FEATURE' };
  if ((fields.features.incompat & 2n) === 0n) return { code: 'USAGE' };
  guardKdfCost(fields);
  if (openingSlot(winner, original.a, original.uuid, c.slots) === null)
    return { code: 'WRONG_PASSPHRASE' };
  const macKey = deriveHeaderMacKey(original.newKey, original.uuid);
  const mac = createHmac('sha256', macKey).update(winner.subarray(0, H.headerMac)).digest();
  if (!constantTimeEqual(mac, winner.subarray(H.headerMac, H.headerMac + 32)))
    return { code: 'HEADER_TAMPERED' };
  const fa = H.featureArea;
  const same = (from: number, to: number) =>
    constantTimeEqual(winner.subarray(fa + from, fa + to), original.a.subarray(fa + from, fa + to));
  // SPEC §15.3 / row 31: the old key's wrap must open (its nonce and bytes are as written).
  if (!same(R.oldKeyNonce, R.reserved)) return { code: 'HEADER_TAMPERED' };
  const st = decodeReencryptState(fields.featureArea, fields);
  // SPEC §15.5: sectors still to re-encrypt need a journal slot that holds one sector's record.
  const left = fields.dataSize / fields.sectorSize - st.sectorsDone - st.segmentSectors;
  if (left > 0 && maxSegmentSectors(st.resilience, fields) < 1) {
    return { code: 'UNSUPPORTED_FEATURE' };
  }
  // SPEC §1, §9.3: every run ends with a header update, which a seqid at 2^53 − 1 cannot take.
  if (fields.seqid >= MAX_SAFE) return { code: 'HEADER_FIELD' };
  if (st.segmentSectors > 0) {
    // SPEC §15.7 step 2 / row 32: the record named by the header, whole, with its digest.
    const len = journalRecordBytes(st.resilience, fields.sectorSize, st.segmentSectors);
    const at = journalSlotOffset(fields, st.journalSlot);
    const record = disk.subarray(at, at + len);
    if (record.length !== len || !constantTimeEqual(sha256(record), st.journalDigest)) {
      return { code: 'JOURNAL_CORRUPT' };
    }
  }
  // Data can only be checked when the record the writer made is the one in force.
  return { code: 'ok', dataIntact: same(0, 320) };
}
