/**
 * Re-encryption under a new master key (SPEC §15): every data sector is rewritten in place,
 * segment by segment, with a journal record that makes the segment in flight recoverable after
 * a crash at any point, and progress recorded in the header so any kept passphrase resumes it.
 *
 * Throughput (bench/reencrypt.ts): the next segment is read, fingerprinted, decrypted and
 * re-encrypted in memory while the previous one is being written and synced, so the XTS work
 * on the main thread overlaps the container I/O running on libuv's pool.
 */
import { createHash } from 'node:crypto';
import { constantTimeEqual, wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { deriveArgon2id } from '../../crypto/kdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import {
  FEATURE_AREA_BYTES,
  FINGERPRINT_BLOCK_BYTES,
  FINGERPRINT_BYTES,
  JOURNAL_DIGEST_BYTES,
  KDF_SALT_BYTES,
  MASTER_KEY_BYTES,
  WRAP_NONCE_BYTES,
} from '../../volume-format/constants.js';
import {
  AuthError,
  FormatError,
  IntegrityError,
  IoError,
  UnsupportedError,
  UsageError,
} from '../../volume-format/errors.js';
import { INCOMPAT_REENCRYPT, checkFeatures } from '../../volume-format/features.js';
import { type HeaderFields, verifyHeaderMac } from '../../volume-format/header.js';
import type { HeaderChoice } from '../../volume-format/header-copies.js';
import { type Keyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { containerSizeOf, sectorCountOf } from '../../volume-format/layout.js';
import {
  type ReencryptState,
  type Resilience,
  buildChecksumRecord,
  decodeReencryptState,
  encodeReencryptState,
  initialReencryptState,
  isReencrypting,
  journalRecordBytes,
  journalSlotOffset,
  maxSegmentSectors,
  mergeCheckedSegment,
  unwrapOldMasterKey,
  wrapOldMasterKey,
} from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../io/file-storage.js';
import { type HeldLock, acquireLock } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { type Rng, systemRng } from '../rng.js';
import { readHeaderChoice, repairHeaderCopies, writeHeaderUpdate } from './header-store.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import { unlockKeyslots } from './unlock.js';

/** Default segment size for `checksum` (a writer's choice, SPEC §15.6); capped by the journal. */
export const DEFAULT_SEGMENT_BYTES = 32 * 1024 * 1024;
/** Bytes read, decrypted and re-encrypted per step inside a segment. */
const CHUNK_BYTES = 4 * 1024 * 1024;

/** Options shared by {@link startReencrypt} and {@link resumeReencrypt}. */
export interface ReencryptRunOptions {
  /** Replace the file storage (fault-injection tests). */
  storage?: Storage;
  /** Source of the new master key, salts and nonces (tests replace it). */
  rng?: Rng;
  /** Bytes per segment (default 32 MiB), rounded down to whole sectors and capped so the
   * segment's record fits one journal slot (SPEC §15.5). */
  segmentBytes?: number;
  /**
   * Resilience of the segments this run writes (SPEC §15.5). Default: `checksum` when starting,
   * the recorded mode when resuming. A segment interrupted earlier is always recovered with the
   * mode it was recorded with.
   */
  resilience?: Resilience;
  /** Called as sectors are re-encrypted: bytes of the drive done so far, and the total. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** When aborted, the run stops at the next safe point (after the segment in flight is
   * written and recorded) and returns `finished: false`; running again resumes. */
  signal?: AbortSignal;
}

/** Options for {@link startReencrypt}. */
export interface StartReencryptOptions extends ReencryptRunOptions {
  /**
   * The keyslots to keep, each with its secret (SPEC §15.6 step S). Each is checked against
   * its own slot, then rewrapped with the new master key (fresh salt and nonce, same Argon2id
   * cost). Every active keyslot not listed here is removed.
   */
  keep: ReadonlyMap<number, UnlockSecret>;
}

/** Options for {@link resumeReencrypt}: the secret of any kept keyslot. */
export interface ResumeReencryptOptions extends ReencryptRunOptions, UnlockSecret {
  /** Try only this keyslot. */
  keyslot?: number;
}

/** What recovery of an interrupted segment found (SPEC §15.7). */
export interface RecoveredSegment {
  firstSector: number;
  sectorCount: number;
  resilience: Resilience;
  /** checksum mode: 512-byte blocks found not yet rewritten (old key) and already rewritten. */
  oldBlocks?: number;
  newBlocks?: number;
}

/** Outcome of a run. */
export interface ReencryptReport {
  /** True when every sector is under the new key and the flag is cleared. */
  finished: boolean;
  sectorsDone: number;
  sectorCount: number;
  sectorSize: number;
  /** Resilience of the segments this run wrote. */
  resilience: Resilience;
  /** Sector the run started from (0 for a fresh start). */
  startedAtSector: number;
  /** The interrupted segment this run recovered first, if any. */
  recovered: RecoveredSegment | null;
  /** Keyslots holding the new master key (set by {@link startReencrypt}). */
  keptSlots: number[];
  /** Keyslots removed at the start (set by {@link startReencrypt}). */
  removedSlots: number[];
}

/** An opened, locked container and its chosen header (SPEC §8, §9.2). */
interface Session {
  storage: Storage;
  lock: HeldLock;
  choice: HeaderChoice;
}

/**
 * Start re-encrypting `path` under a fresh master key (SPEC §15.6), then run it to the end (or
 * until `signal` aborts). Throws `WRONG_PASSPHRASE` naming the keyslot whose secret failed,
 * `NO_KEYSLOT` for a slot to keep that is not active, `REENCRYPT_IN_PROGRESS` when one is
 * already unfinished (use {@link resumeReencrypt}), `VOLUME_BUSY`, `HEADER_TAMPERED`, ...
 */
export async function startReencrypt(
  path: string,
  options: StartReencryptOptions,
): Promise<ReencryptReport> {
  const rng = options.rng ?? systemRng;
  const resilience = options.resilience ?? 'checksum';
  const session = await beginSession(path, options.storage);
  const kdfInputs = new Map<number, Uint8Array>();
  let oldKey: Uint8Array | null = null;
  let newKey: Uint8Array | null = null;
  let oldMac: Uint8Array | null = null;
  let newMac: Uint8Array | null = null;
  try {
    const fields = session.choice.fields;
    if (isReencrypting(fields)) {
      throw new UnsupportedError(
        'REENCRYPT_IN_PROGRESS',
        `${path}: a re-encryption is already unfinished: resume it instead of starting another`,
      );
    }
    const active = activeSlots(fields);
    const keep = [...options.keep.keys()].sort((a, b) => a - b);
    if (keep.length === 0) {
      throw new UsageError('NO_KEYSLOT', 're-encrypting: at least one keyslot must be kept');
    }
    for (const i of keep) {
      if (!active.includes(i)) {
        throw new UsageError('NO_KEYSLOT', `re-encrypting: keyslot ${i} is not in use`);
      }
    }
    checkJournalFits(resilience, fields);
    // Every kept secret must open its own slot: a slot we cannot open we cannot rewrap.
    for (const i of keep) {
      const kdfInput = await resolveKdfInput(options.keep.get(i)!);
      kdfInputs.set(i, kdfInput);
      let unlocked;
      try {
        unlocked = await unlockKeyslots(fields, kdfInput, i);
      } catch (err) {
        if (err instanceof AuthError) {
          throw new AuthError('WRONG_PASSPHRASE', `keyslot ${i}: wrong passphrase or keyfile`, {
            cause: err,
          });
        }
        throw err;
      }
      if (oldKey === null) oldKey = unlocked.masterKey;
      else {
        const same = constantTimeEqual(oldKey, unlocked.masterKey);
        wipe(unlocked.masterKey);
        if (!same) {
          throw new IntegrityError(
            'HEADER_TAMPERED',
            `keyslot ${i}: holds a different master key than keyslot ${keep[0]}`,
          );
        }
      }
    }
    oldMac = deriveHeaderMacKey(oldKey!, fields.uuid);
    await verifyAndRepair(session, oldMac);
    newKey = drawMasterKey(rng, oldKey!);
    // SPEC §15.6 step S: rewrap every kept slot with the new key, drop the others, seal the
    // old key under the new one, set the flag: one header update, MAC under the new key.
    const keyslots: Keyslot[] = fields.keyslots.map(() => inactiveKeyslot());
    for (const i of keep) {
      const slot = fields.keyslots[i]!;
      if (slot.state !== 'active') throw new Error('unreachable: kept slot is active');
      const kdfSalt = rng.bytes(KDF_SALT_BYTES);
      const kek = await deriveArgon2id(kdfInputs.get(i)!, kdfSalt, slot.kdf, 32);
      try {
        keyslots[i] = wrapMasterKey(kek, newKey, fields.uuid, i, {
          kdf: slot.kdf,
          kdfSalt,
          wrapNonce: rng.bytes(WRAP_NONCE_BYTES),
        });
      } finally {
        wipe(kek);
      }
    }
    const nonce = rng.bytes(WRAP_NONCE_BYTES);
    const state = initialReencryptState(
      resilience,
      nonce,
      wrapOldMasterKey(newKey, oldKey!, fields.uuid, nonce),
    );
    const next: HeaderFields = {
      ...fields,
      seqid: fields.seqid + 1,
      keyslots,
      features: { ...fields.features, incompat: fields.features.incompat | INCOMPAT_REENCRYPT },
      featureArea: encodeReencryptState(state, fields),
    };
    newMac = deriveHeaderMacKey(newKey, fields.uuid);
    await writeHeaderUpdate(session.storage, next, newMac);
    const engine = new Engine(session.storage, next, state, oldKey!, newKey, newMac, options);
    const report = await engine.run();
    return {
      ...report,
      keptSlots: keep,
      removedSlots: active.filter((i) => !keep.includes(i)),
    };
  } finally {
    wipe(oldKey, newKey, oldMac, newMac, ...kdfInputs.values());
    await endSession(session);
  }
}

/**
 * Resume the unfinished re-encryption of `path` (SPEC §15.7): unlock with any kept keyslot
 * (it yields the new master key, which unseals the old one), recover the segment in flight,
 * continue to the end. Throws `USAGE` when no re-encryption is unfinished, `JOURNAL_CORRUPT`
 * when the in-flight segment's record fails its digest, `WRONG_PASSPHRASE`, `VOLUME_BUSY`, ...
 */
export async function resumeReencrypt(
  path: string,
  options: ResumeReencryptOptions,
): Promise<ReencryptReport> {
  const session = await beginSession(path, options.storage);
  let newKey: Uint8Array | null = null;
  let oldKey: Uint8Array | null = null;
  let newMac: Uint8Array | null = null;
  try {
    const fields = session.choice.fields;
    if (!isReencrypting(fields)) {
      throw new UsageError('USAGE', `${path}: no re-encryption is in progress`);
    }
    const kdfInput = await resolveKdfInput(options);
    try {
      newKey = (await unlockKeyslots(fields, kdfInput, options.keyslot)).masterKey;
    } finally {
      wipe(kdfInput);
    }
    newMac = deriveHeaderMacKey(newKey, fields.uuid);
    await verifyAndRepair(session, newMac);
    // Decoded (and checked, SPEC §10 row 22) when the copy was read; the MAC now vouches too.
    const state = decodeReencryptState(fields.featureArea, fields);
    oldKey = unwrapOldMasterKey(newKey, fields.uuid, state);
    if (oldKey === null) {
      throw new IntegrityError(
        'HEADER_TAMPERED',
        're-encryption state: the old master key does not unwrap under the new one',
      );
    }
    checkKeyHalves(oldKey);
    if (options.resilience !== undefined) checkJournalFits(options.resilience, fields);
    const engine = new Engine(session.storage, fields, state, oldKey, newKey, newMac, options);
    const report = await engine.run();
    return { ...report, keptSlots: activeSlots(fields), removedSlots: [] };
  } finally {
    wipe(newKey, oldKey, newMac);
    await endSession(session);
  }
}

/** A prepared segment: its journal record and its new ciphertext, not yet on disk. */
interface Prepared {
  first: number;
  count: number;
  record: Uint8Array;
  cipher: Uint8Array;
}

/** The segment loop of SPEC §15.6 and the recovery of §15.7 on one locked, unlocked volume. */
class Engine {
  private readonly ss: number;
  private readonly sectorCount: number;
  private readonly oldXts: XtsCipher;
  private readonly newXts: XtsCipher;
  private readonly resilience: Resilience;
  private readonly segmentSectors: number;
  private readonly startedAt: number;

  constructor(
    private readonly storage: Storage,
    private fields: HeaderFields,
    private state: ReencryptState,
    oldKey: Uint8Array,
    newKey: Uint8Array,
    private readonly macKey: Uint8Array,
    private readonly options: ReencryptRunOptions,
  ) {
    this.ss = fields.sectorSize;
    this.sectorCount = sectorCountOf(fields);
    this.oldXts = new XtsCipher(oldKey, this.ss);
    this.newXts = new XtsCipher(newKey, this.ss);
    this.resilience = options.resilience ?? state.resilience;
    const cap = maxSegmentSectors(this.resilience, fields);
    const wanted = Math.floor((options.segmentBytes ?? DEFAULT_SEGMENT_BYTES) / this.ss);
    this.segmentSectors = Math.max(1, Math.min(cap, wanted));
    this.startedAt = state.sectorsDone;
  }

  async run(): Promise<Omit<ReencryptReport, 'keptSlots' | 'removedSlots'>> {
    try {
      const recovered = await this.recover();
      const finished = await this.loop();
      return {
        finished,
        sectorsDone: this.state.sectorsDone,
        sectorCount: this.sectorCount,
        sectorSize: this.ss,
        resilience: this.resilience,
        startedAtSector: this.startedAt,
        recovered,
      };
    } finally {
      this.oldXts.dispose();
      this.newXts.dispose();
    }
  }

  /** SPEC §9.3 header update carrying `state` (or, with `finish`, clearing the flag). */
  private async headerUpdate(state: ReencryptState, finish = false): Promise<void> {
    const next: HeaderFields = {
      ...this.fields,
      seqid: this.fields.seqid + 1,
      features: {
        ...this.fields.features,
        incompat: finish
          ? this.fields.features.incompat & ~INCOMPAT_REENCRYPT
          : this.fields.features.incompat,
      },
      featureArea: finish
        ? new Uint8Array(FEATURE_AREA_BYTES)
        : encodeReencryptState(state, this.fields),
    };
    await writeHeaderUpdate(this.storage, next, this.macKey);
    this.fields = next;
    this.state = state;
  }

  private progress(sector: number): void {
    this.options.onProgress?.(sector * this.ss, this.sectorCount * this.ss);
  }

  private dataOffset(sector: number): number {
    return this.fields.dataOffset + sector * this.ss;
  }

  private async readData(sector: number, bytes: number): Promise<Uint8Array> {
    const data = await this.storage.readAt(this.dataOffset(sector), bytes);
    if (data.length !== bytes) {
      throw new IoError('IO_ERROR', `reading sector ${sector}: container is truncated`);
    }
    return data;
  }

  /**
   * SPEC §15.7: finish the segment the header says is in flight. The record must match the
   * digest the header (MAC-verified) carries; the segment is then rewritten whole under the
   * new key, which is idempotent, so a crash during recovery is recovered the same way.
   */
  private async recover(): Promise<RecoveredSegment | null> {
    const st = this.state;
    if (st.segmentSectors === 0) return null;
    const first = st.sectorsDone;
    const count = st.segmentSectors;
    const length = journalRecordBytes(st.resilience, this.ss, count);
    const record = await this.storage.readAt(
      journalSlotOffset(this.fields, st.journalSlot),
      length,
    );
    if (record.length !== length || !constantTimeEqual(digest(record), st.journalDigest)) {
      throw new FormatError(
        'JOURNAL_CORRUPT',
        `re-encryption journal slot ${st.journalSlot}: record does not match its digest ` +
          `(sectors ${first}..${first + count - 1} cannot be recovered safely)`,
      );
    }
    const found: RecoveredSegment = {
      firstSector: first,
      sectorCount: count,
      resilience: st.resilience,
    };
    if (st.resilience === 'checksum') {
      found.oldBlocks = 0;
      found.newBlocks = 0;
    }
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / this.ss));
    for (let done = 0; done < count; done += perChunk) {
      const n = Math.min(perChunk, count - done);
      const sector = first + done;
      const bytes = n * this.ss;
      let plain: Uint8Array;
      if (st.resilience === 'journal') {
        // The record is the segment's old ciphertext: decrypt it, ignore what is on disk.
        plain = this.oldXts.decryptSectors(
          record.subarray(done * this.ss, done * this.ss + bytes),
          sector,
        );
      } else {
        const current = await this.readData(sector, bytes);
        plain = this.oldXts.decryptSectors(current, sector);
        const plainNew = this.newXts.decryptSectors(current, sector);
        const fp = journalRecordBytes('checksum', this.ss, 1);
        const counts = mergeCheckedSegment(
          current,
          record.subarray(done * fp, (done + n) * fp),
          plain,
          plainNew,
        );
        wipe(plainNew);
        found.oldBlocks! += counts.oldBlocks;
        found.newBlocks! += counts.newBlocks;
      }
      const cipher = this.newXts.encryptSectors(plain, sector, plain);
      await this.storage.writeAt(this.dataOffset(sector), cipher);
      wipe(cipher);
    }
    await this.storage.syncData();
    await this.headerUpdate({ ...st, sectorsDone: first + count, ...noSegment() });
    this.progress(first + count);
    return found;
  }

  /**
   * SPEC §15.6 steps 1–4 for every remaining segment, then the finish (steps F1–F3). Returns
   * false when stopped early by the abort signal (progress recorded, nothing in flight).
   */
  private async loop(): Promise<boolean> {
    let pos = this.state.sectorsDone;
    // Two segment buffers: one being written while the next is prepared (none if done).
    const segmentBytes = Math.min(this.segmentSectors, this.sectorCount - pos) * this.ss;
    const buffers = [0, 1].map(() => new Uint8Array(segmentBytes));
    const plainTmp = new Uint8Array(Math.min(CHUNK_BYTES, segmentBytes));
    let slot = 0;
    let k = 0;
    let inflight: Promise<void> | null = null;
    try {
      while (pos < this.sectorCount) {
        if (this.options.signal?.aborted) break;
        const count = Math.min(this.segmentSectors, this.sectorCount - pos);
        // Step 1, overlapping the write of the previous segment (still in flight).
        const prepared = await this.prepare(pos, count, buffers[k % 2]!, plainTmp);
        if (inflight !== null) {
          const previous: Promise<void> = inflight;
          inflight = null;
          await previous;
        }
        // Step 2: the record goes to the slot the current header does not reference.
        await this.storage.writeAt(journalSlotOffset(this.fields, slot), prepared.record);
        await this.storage.syncData();
        // Step 3: from here on a crash is recovered from that record.
        await this.headerUpdate({
          ...this.state,
          resilience: this.resilience,
          sectorsDone: pos,
          segmentSectors: count,
          journalSlot: slot,
          journalDigest: digest(prepared.record),
        });
        // Step 4: the new ciphertext, then fdatasync (awaited before the next step 3).
        inflight = this.writeSegment(prepared);
        inflight.catch(() => undefined); // awaited below; never an unhandled rejection
        pos += count;
        slot ^= 1;
        k++;
      }
      if (inflight !== null) {
        const last: Promise<void> = inflight;
        inflight = null;
        await last;
      }
    } finally {
      // Never leave a write running past this point (the storage closes after us).
      if (inflight !== null) await (inflight as Promise<void>).catch(() => undefined);
      wipe(plainTmp);
    }
    // Step F1 (or the safe stop point): record the progress with nothing in flight.
    await this.headerUpdate({
      ...this.state,
      resilience: this.resilience,
      sectorsDone: pos,
      ...noSegment(),
    });
    if (pos < this.sectorCount) return false;
    // Step F2: the journal held fingerprints or old-key ciphertext; SPEC §2 wants it zero.
    await this.storage.writeAt(this.fields.journalOffset, new Uint8Array(this.fields.journalSize));
    await this.storage.syncData();
    // Step F3: clear the flag and the feature area: the old master key is gone from disk.
    await this.headerUpdate(this.state, true);
    return true;
  }

  /** Read a segment's old ciphertext, build its record and its new ciphertext in `buffer`. */
  private async prepare(
    first: number,
    count: number,
    buffer: Uint8Array,
    plainTmp: Uint8Array,
  ): Promise<Prepared> {
    const bytes = count * this.ss;
    const out = buffer.subarray(0, bytes);
    const journal = this.resilience === 'journal';
    const record = new Uint8Array(journalRecordBytes(this.resilience, this.ss, count));
    const chunk = plainTmp.length;
    const readChunk = (off: number): Promise<Uint8Array> => {
      const p = this.readData(first + off / this.ss, Math.min(chunk, bytes - off));
      p.catch(() => undefined); // awaited in order below
      return p;
    };
    let next = readChunk(0);
    for (let off = 0; off < bytes; off += chunk) {
      const cipher = await next;
      if (off + chunk < bytes) next = readChunk(off + chunk); // read ahead while we compute
      const len = cipher.length;
      if (journal) record.set(cipher, off);
      else
        record.set(
          buildChecksumRecord(cipher),
          (off / FINGERPRINT_BLOCK_BYTES) * FINGERPRINT_BYTES,
        );
      const sector = first + off / this.ss;
      const plain = plainTmp.subarray(0, len);
      this.oldXts.decryptSectors(cipher, sector, plain);
      this.newXts.encryptSectors(plain, sector, out.subarray(off, off + len));
      this.progress(sector + len / this.ss);
    }
    return { first, count, record, cipher: out };
  }

  private async writeSegment(p: Prepared): Promise<void> {
    for (let off = 0; off < p.cipher.length; off += CHUNK_BYTES) {
      const part = p.cipher.subarray(off, Math.min(off + CHUNK_BYTES, p.cipher.length));
      await this.storage.writeAt(this.dataOffset(p.first) + off, part);
    }
    await this.storage.syncData();
  }
}

/** The "no segment in flight" fields (SPEC §15.2: slot and digest zero). */
function noSegment(): Pick<ReencryptState, 'segmentSectors' | 'journalSlot' | 'journalDigest'> {
  return { segmentSectors: 0, journalSlot: 0, journalDigest: new Uint8Array(JOURNAL_DIGEST_BYTES) };
}

/**
 * SPEC §15.2 `journal_digest`: SHA-256 of a record. OpenSSL's SHA-256 (node:crypto) rather than
 * crypto/hkdf.ts's @noble one: records are up to megabytes and noble hashes at ~105 MB/s here
 * against ~1.5 GB/s (measured); the function is the same FIPS 180-4 SHA-256.
 */
function digest(record: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(record).digest());
}

/** Open, read the header (SPEC §8), check the length, take the lock. */
async function beginSession(path: string, storage?: Storage): Promise<Session> {
  const st = storage ?? (await FileStorage.open(path));
  try {
    const choice = await readHeaderChoice(st);
    const need = containerSizeOf(choice.fields);
    const have = await st.size();
    if (have < need) {
      throw new FormatError(
        'TRUNCATED',
        `container is truncated: ${have} bytes, the header says ${need}`,
      );
    }
    if (checkFeatures(choice.fields.features).readOnly) {
      throw new UnsupportedError(
        'UNSUPPORTED_FEATURE',
        `re-encrypting ${path}: the volume has read-only-compatible features this version does not know`,
      );
    }
    const lock = await acquireLock(path);
    return { storage: st, lock, choice };
  } catch (err) {
    await st.close();
    throw err;
  }
}

async function endSession(session: Session): Promise<void> {
  try {
    await session.storage.close();
  } finally {
    await session.lock.release();
  }
}

/** SPEC §8 step 6 (MAC before anything is written), then repair a stale or damaged copy. */
async function verifyAndRepair(session: Session, macKey: Uint8Array): Promise<void> {
  const { choice } = session;
  if (!verifyHeaderMac(choice.winnerBytes, macKey)) {
    throw new IntegrityError(
      'HEADER_TAMPERED',
      `header copy ${choice.winner}: authentication failed (modified without the key)`,
    );
  }
  // SPEC §9.3 precondition: both copies valid and equal before the next header update.
  if (choice.repair.length > 0) await repairHeaderCopies(session.storage, choice, macKey);
}

function activeSlots(fields: HeaderFields): number[] {
  return fields.keyslots.flatMap((s, i) => (s.state === 'active' ? [i] : []));
}

/** A journal slot must hold at least one sector's record (SPEC §15.5). */
function checkJournalFits(resilience: Resilience, fields: HeaderFields): void {
  if (maxSegmentSectors(resilience, fields) < 1) {
    throw new UnsupportedError(
      'UNSUPPORTED_FEATURE',
      `re-encrypting: the journal area (${fields.journalSize} bytes) is too small for ` +
        `resilience ${resilience}`,
    );
  }
}

/** SPEC §5.1: a fresh master key with K1 ≠ K2, and (for a rekey to mean anything) ≠ the old. */
function drawMasterKey(rng: Rng, oldKey: Uint8Array): Uint8Array {
  for (;;) {
    const key = rng.bytes(MASTER_KEY_BYTES);
    const half = MASTER_KEY_BYTES / 2;
    const weak = constantTimeEqual(key.subarray(0, half), key.subarray(half));
    if (!weak && !constantTimeEqual(key, oldKey)) return key;
    wipe(key);
  }
}

/** SPEC §5.1 for the unsealed old key. */
function checkKeyHalves(key: Uint8Array): void {
  const half = MASTER_KEY_BYTES / 2;
  if (constantTimeEqual(key.subarray(0, half), key.subarray(half))) {
    throw new IntegrityError('WEAK_KEY', 're-encryption state: old master key halves are equal');
  }
}
