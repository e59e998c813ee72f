/**
 * Container-level fuzz cases: a whole small volume in memory (two header copies with real
 * keyslot wraps, journal and data area), mutated behind its checksums and MACs, then opened
 * (read-write or read-only) or repaired through the product's own code paths. The expected
 * outcome follows SPEC §8, §9.2 and §10 from the copies' verdicts and the keyslot bytes.
 *
 * Argon2 stays cheap: keyslots use t ≤ 2 and m ≤ 32 KiB, mutations of KDF fields only write
 * cheap or out-of-limit values, and {@link guardKdfCost} fails the case before any open that
 * could run Argon2 on costly parameters.
 */
import { writeFile } from 'node:fs/promises';
import fc from 'fast-check';
import { constantTimeEqual } from '../../crypto/bytes.js';
import { deriveHeaderMacKey, hmacSha256 } from '../../crypto/hkdf.js';
import { type Argon2idParams, deriveArgon2id } from '../../crypto/kdf.js';
import {
  HEADER_COPY_OFFSETS,
  HEADER_FIELD_OFFSETS as H,
  HEADER_SIZE,
  KEYSLOT_COUNT,
  KEYSLOT_SIZE,
} from '../../volume-format/constants.js';
import type { HeaderFields } from '../../volume-format/header.js';
import { encodeHeaderCopy } from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { type Keyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { containerSizeOf } from '../../volume-format/layout.js';
import { openVolume } from '../../src/volume/open.js';
import { repairVolume } from '../../src/volume/repair.js';
import { MemoryStorage } from '../helpers/memory-storage.js';
import { FuzzFailure, checkCopy, count, verdictOf } from './format-cases.js';
import { type HeaderPlan, arbHeaderPlan, bytesFrom, headerFields } from './generate.js';
import { type Mutation, type Seal, applyMutation, arbMutations, seal } from './mutate.js';
import { expectedChoice, sameContent } from './oracle.js';

/** The secret the 'right' keyslots wrap (and every case unlocks with). */
export const RIGHT = 'fuzz passphrase';
const WRONG = 'another passphrase';
/** The Argon2id settings container cases wrap with (cheap, several so the AAD varies). */
const POOL_PARAMS: Argon2idParams[] = [
  { timeCost: 1, memoryKiB: 8, parallelism: 1 },
  { timeCost: 1, memoryKiB: 16, parallelism: 2 },
  { timeCost: 2, memoryKiB: 32, parallelism: 1 },
];
const POOL_SALTS = 4;
/** Largest Argon2 work (KiB × passes) the fuzzer lets an open attempt run. */
const MAX_KDF_WORK = 64 * 1024;
/** A case that takes longer than this has hung. */
const CASE_TIMEOUT_MS = 20_000;

interface PoolEntry {
  kdf: Argon2idParams;
  salt: Uint8Array;
  keks: Record<'right' | 'wrong', Uint8Array>;
}

let pool: PoolEntry[] | null = null;

/** Derive the KEK pool once (24 cheap Argon2id calls), so cases wrap without Argon2. */
export async function preparePool(): Promise<void> {
  if (pool) return;
  const entries: PoolEntry[] = [];
  for (const [p, kdf] of POOL_PARAMS.entries()) {
    for (let s = 0; s < POOL_SALTS; s++) {
      const salt = bytesFrom(1000 + p * 10 + s, 32);
      const kek = (pass: string) => deriveArgon2id(new TextEncoder().encode(pass), salt, kdf, 32);
      entries.push({ kdf, salt, keks: { right: await kek(RIGHT), wrong: await kek(WRONG) } });
    }
  }
  pool = entries;
}

/** A keyslot of a generated container: whose secret it wraps, and which key. */
export type SlotKind = null | { secret: 'right' | 'wrong'; weakKey: boolean; entry: number };

/** One whole-container case. */
export interface ContainerCase {
  plan: HeaderPlan;
  slots: SlotKind[];
  variantB: { seqidDelta: number; content: boolean };
  mutA: Mutation[];
  mutB: Mutation[];
  sealA: Seal;
  sealB: Seal;
  /** Bytes added to (or cut from) the container's required length. */
  lengthDelta: number;
  op: 'open' | 'open-read-only' | 'repair';
}

/** A keyslot plan: inactive, or a wrap for one of the two secrets from the KEK pool. */
export const arbSlot: fc.Arbitrary<SlotKind> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  {
    weight: 2,
    arbitrary: fc.record({
      secret: fc.constantFrom<'right' | 'wrong'>('right', 'right', 'wrong'),
      weakKey: fc.integer({ min: 0, max: 15 }).map((n) => n === 0),
      entry: fc.nat(POOL_PARAMS.length * POOL_SALTS - 1),
    }),
  },
);

const noMutation = fc.constant<Mutation[]>([]);

/** Whole-container cases; reencrypt plans kept to one in five (those stop at row 33). */
export const arbContainerCase: fc.Arbitrary<ContainerCase> = fc.record({
  plan: arbHeaderPlan('container').map((p) => ({
    ...p,
    reencrypt: p.seed % 5 === 0 ? p.reencrypt : null,
  })),
  slots: fc.array(arbSlot, { minLength: KEYSLOT_COUNT, maxLength: KEYSLOT_COUNT }),
  variantB: fc.record({ seqidDelta: fc.constantFrom(0, 0, 0, 1, -1), content: fc.boolean() }),
  mutA: fc.oneof(noMutation, arbMutations(true, 2)),
  mutB: fc.oneof(noMutation, noMutation, arbMutations(true, 2)),
  sealA: fc.constantFrom<Seal>('full', 'full', 'checksum'),
  sealB: fc.constantFrom<Seal>('full', 'full', 'checksum'),
  lengthDelta: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4096, -1, -512),
  op: fc.constantFrom<ContainerCase['op']>('open', 'open', 'open-read-only', 'repair'),
});

function fail(why: string): never {
  throw new FuzzFailure(why);
}

/** The master key of a case: two different halves, or equal ones for a weak slot. */
export function masterKeyOf(seed: number, weak: boolean): Uint8Array {
  const key = bytesFrom(seed ^ 0x77, 64);
  key[0]! ^= 0x80; // halves differ unless made equal below
  key[32] = key[0]! ^ 1;
  if (weak) key.copyWithin(32, 0, 32);
  return key;
}

/** Build the keyslots (real wraps from the KEK pool) and the master key the MAC is keyed with. */
export function buildSlots(
  c: { slots: SlotKind[]; plan: { seed: number } },
  uuid: Uint8Array,
): { keyslots: Keyslot[]; masterKey: Uint8Array } {
  const masterKey = masterKeyOf(c.plan.seed, false);
  const weak = masterKeyOf(c.plan.seed, true);
  const keyslots = c.slots.map((s, i): Keyslot => {
    if (s === null) return { state: 'inactive' };
    const e = pool![s.entry]!;
    return wrapMasterKey(e.keks[s.secret], s.weakKey ? weak : masterKey, uuid, i, {
      kdf: e.kdf,
      kdfSalt: e.salt,
      wrapNonce: bytesFrom(c.plan.seed + 31 * i, 24),
    });
  });
  return { keyslots, masterKey };
}

/** Fail before an open that could run Argon2 on costly in-limit parameters from a mutation. */
export function guardKdfCost(fields: HeaderFields): void {
  for (const s of fields.keyslots) {
    if (s.state === 'active' && s.kdf.memoryKiB * s.kdf.timeCost > MAX_KDF_WORK) {
      fail(`fuzzer bug: costly KDF parameters reached open (${JSON.stringify(s.kdf)})`);
    }
  }
}

/** SPEC §9.2/§10: the outcome an open (or repair) must have, computed from the bytes. */
function expectedOpen(
  c: ContainerCase,
  a: Uint8Array,
  b: Uint8Array,
  original: { a: Uint8Array; uuid: Uint8Array; masterKey: Uint8Array },
  length: number,
): { code: string } | { readOnly: boolean; repair: ('A' | 'B')[]; winner: 'A' | 'B' } {
  const va = checkCopy(a, 'A', c.sealA === 'full' ? macKeyFor(a, original.masterKey) : null);
  const vb = checkCopy(b, 'B', c.sealB === 'full' ? macKeyFor(b, original.masterKey) : null);
  const seq = (v: typeof va) =>
    v.code === 'ok' ? { code: 'ok', seqid: v.value!.seqid } : { code: v.code };
  const choice = expectedChoice(seq(va), seq(vb), sameContent(a, b));
  if ('code' in choice) return choice;
  const fields = (choice.winner === 'A' ? va : vb).value!;
  const winner = choice.winner === 'A' ? a : b;
  if (length < containerSizeOf(fields)) return { code: 'TRUNCATED' };
  if ((fields.features.incompat & 2n) !== 0n) return { code: 'REENCRYPT_IN_PROGRESS' };
  const readOnly = c.op === 'open-read-only' || fields.features.roCompat !== 0n;
  guardKdfCost(fields);
  // SPEC §4.2: a wrap opens only under its own volume, slot and bytes; so a slot opens iff it
  // still holds, byte for byte, a wrap made for the right secret at that index.
  const opened = openingSlot(winner, original.a, original.uuid, c.slots);
  if (opened === null) return { code: 'WRONG_PASSPHRASE' };
  if (opened.weakKey) return { code: 'WEAK_KEY' };
  if (macVerifies(winner, original.masterKey)) {
    if (c.op === 'repair' && readOnly) return { code: 'UNSUPPORTED_FEATURE' };
    return { readOnly, repair: choice.repair, winner: choice.winner };
  }
  // SPEC §8 step 7: the winner's MAC failed; the other copy, if valid, is tried: under the same
  // master key when its keyslot bytes equal the winner's, else after unlocking its own slots.
  const otherName = choice.winner === 'A' ? 'B' : 'A';
  const other = otherName === 'A' ? a : b;
  const ov = otherName === 'A' ? va : vb;
  if (ov.code !== 'ok') return { code: 'HEADER_TAMPERED' };
  const span = [H.keyslots, H.keyslots + KEYSLOT_COUNT * KEYSLOT_SIZE] as const;
  const sameSlots = constantTimeEqual(winner.subarray(...span), other.subarray(...span));
  if (!sameSlots) {
    const again = openingSlot(other, original.a, original.uuid, c.slots);
    if (again === null) return { code: 'HEADER_TAMPERED' };
    if (again.weakKey) return { code: 'WEAK_KEY' };
  }
  if (!macVerifies(other, original.masterKey)) return { code: 'HEADER_TAMPERED' };
  const otherFields = ov.value!;
  if (length < containerSizeOf(otherFields)) return { code: 'TRUNCATED' };
  if ((otherFields.features.incompat & 2n) !== 0n) return { code: 'REENCRYPT_IN_PROGRESS' };
  const stillReadOnly = readOnly || otherFields.features.roCompat !== 0n;
  if (c.op === 'repair' && stillReadOnly) return { code: 'UNSUPPORTED_FEATURE' };
  return { readOnly: stillReadOnly, repair: [choice.winner], winner: otherName };
}

/** SPEC §3, §5.3: the copy's `header_mac` under K_mac of `masterKey` and the copy's own uuid. */
function macVerifies(copy: Uint8Array, masterKey: Uint8Array): boolean {
  const mac = hmacSha256(macKeyFor(copy, masterKey), copy.subarray(0, H.headerMac));
  return constantTimeEqual(mac, copy.subarray(H.headerMac, H.headerMac + 32));
}

/**
 * SPEC §4.2: a wrap opens only under its own volume, slot and bytes; so a slot opens iff it
 * still holds, byte for byte, a wrap made for the right secret at that index. Returns the
 * first such slot (the unlock order of §4.2), or null.
 */
export function openingSlot(
  winner: Uint8Array,
  original: Uint8Array,
  uuid: Uint8Array,
  slots: SlotKind[],
): SlotKind {
  if (!constantTimeEqual(winner.subarray(H.uuid, H.uuid + 16), uuid)) return null;
  for (let i = 0; i < KEYSLOT_COUNT; i++) {
    const at = H.keyslots + KEYSLOT_SIZE * i;
    const kind = slots[i];
    const intact = constantTimeEqual(
      winner.subarray(at, at + KEYSLOT_SIZE),
      original.subarray(at, at + KEYSLOT_SIZE),
    );
    if (kind && kind.secret === 'right' && intact) return kind;
  }
  return null;
}

/** The MAC key a fully sealed copy was sealed with (it follows the copy's own uuid bytes). */
export function macKeyFor(copy: Uint8Array, masterKey: Uint8Array): Uint8Array {
  return deriveHeaderMacKey(masterKey, copy.subarray(H.uuid, H.uuid + 16));
}

/** `p`, or a FuzzFailure after {@link CASE_TIMEOUT_MS}: a case that never answers has hung. */
export async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FuzzFailure(`${what}: no answer in ${CASE_TIMEOUT_MS} ms`)),
      CASE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run one container case against `path` (a name in a temporary directory, for the lock). */
export async function runContainerCase(c: ContainerCase, path: string): Promise<void> {
  const base = headerFields(c.plan, []);
  const { keyslots, masterKey } = buildSlots(c, base.uuid);
  const fields: HeaderFields = { ...base, keyslots };
  const macKey = deriveHeaderMacKey(masterKey, fields.uuid);
  const originalA = encodeHeaderCopy(fields, 'A', macKey);
  const fieldsB = {
    ...fields,
    seqid: Math.min(Number.MAX_SAFE_INTEGER, Math.max(1, fields.seqid + c.variantB.seqidDelta)),
    features: {
      ...fields.features,
      compat: c.variantB.content ? fields.features.compat ^ 4n : fields.features.compat,
    },
  };
  const a = Uint8Array.from(originalA);
  const b = encodeHeaderCopy(fieldsB, 'B', macKey);
  for (const m of c.mutA) applyMutation(a, m);
  for (const m of c.mutB) applyMutation(b, m);
  seal(a, c.sealA, macKeyFor(a, masterKey));
  seal(b, c.sealB, macKeyFor(b, masterKey));
  const length = Math.max(
    HEADER_COPY_OFFSETS.B + HEADER_SIZE,
    containerSizeOf(fields) + c.lengthDelta,
  );
  const disk = new Uint8Array(length);
  disk.set(a, HEADER_COPY_OFFSETS.A);
  disk.set(b, HEADER_COPY_OFFSETS.B);
  const want = expectedOpen(c, a, b, { a: originalA, uuid: fields.uuid, masterKey }, length);
  const before = Uint8Array.from(disk);
  // The lock (SPEC §9.2) is taken on the file at `path`, even with an injected storage.
  await writeFile(path, '', { flag: 'a' });
  const storage = new MemoryStorage(disk);
  const secret = { passphrase: RIGHT, storage };
  const got = await withTimeout(
    (async () => {
      try {
        if (c.op === 'repair') {
          const report = await repairVolume(path, secret);
          return { code: 'ok', repaired: report.repaired.map((r) => r.copy), readOnly: false };
        }
        const v = await openVolume(path, { ...secret, readOnly: c.op === 'open-read-only' });
        const readOnly = v.readOnly;
        await v.close();
        return { code: 'ok', repaired: [] as string[], readOnly };
      } catch (err) {
        return {
          code: verdictOf(c.op, () => {
            throw err;
          }).code,
          repaired: [],
          readOnly: false,
        };
      }
    })(),
    c.op,
  );
  count(c.op, got.code);
  if (!storage.closed) fail(`${c.op}: storage left open`);
  if ('code' in want) {
    if (got.code !== want.code) fail(`${c.op} gave ${got.code}, SPEC says ${want.code}`);
    if (storage.writes > 0)
      fail(`${c.op} failed with ${got.code} but wrote ${storage.writes} times`);
    return;
  }
  if (got.code !== 'ok') fail(`${c.op} gave ${got.code}, SPEC says it opens`);
  if (got.readOnly !== want.readOnly)
    fail(`${c.op}: read-only ${got.readOnly}, SPEC says ${want.readOnly}`);
  if (c.op === 'repair' && got.repaired.join() !== want.repair.join())
    fail(`repair reported ${got.repaired.join()}, SPEC §8 says ${want.repair.join()}`);
  checkAfter(storage.bytes, before, want);
}

/**
 * After a successful open: a read-only open wrote nothing; a read-write one rewrote exactly the
 * copies to repair (SPEC §8 "Repair"), after which both copies are valid, equal, and say what
 * the winner said.
 */
function checkAfter(
  after: Uint8Array,
  before: Uint8Array,
  want: { readOnly: boolean; repair: ('A' | 'B')[]; winner: 'A' | 'B' },
): void {
  const at = (bytes: Uint8Array, copy: 'A' | 'B') =>
    bytes.subarray(HEADER_COPY_OFFSETS[copy], HEADER_COPY_OFFSETS[copy] + HEADER_SIZE);
  if (want.readOnly || want.repair.length === 0) {
    if (Buffer.compare(after.subarray(0, 65536), before.subarray(0, 65536)) !== 0)
      fail('header area changed without a repair');
    return;
  }
  if (Buffer.compare(at(after, want.winner), at(before, want.winner)) !== 0)
    fail('repair wrote the winning copy');
  const choice = verdictOf('choice after repair', () =>
    planHeaderChoice(at(after, 'A'), at(after, 'B')),
  );
  if (choice.code !== 'ok' || choice.value!.repair.length !== 0)
    fail(`after repair: ${choice.code} ${choice.value?.repair.join()}`);
  if (!sameContent(at(after, 'A'), at(before, want.winner)))
    fail('repaired header says something else than the winner');
}
