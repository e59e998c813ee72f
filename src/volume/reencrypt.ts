/**
 * Re-encryption under a new master key (SPEC §15): every data sector is rewritten in place,
 * segment by segment, with a journal record that makes the segment in flight recoverable after
 * a crash at any point, and progress recorded in the header so any kept passphrase resumes it.
 *
 * Throughput (bench/reencrypt.ts): each segment is fingerprinted (step 1) while the previous
 * one's flush runs, and rewritten (step 4) a few chunks at a time, read again from the page
 * cache and re-encrypted on a worker thread, so the disk works while the CPU does, with a few
 * MiB of buffers rather than a segment's worth.
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
  WRAP_NONCE_BYTES,
} from '../../volume-format/constants.js';
import {
  AuthError,
  CryptainerError,
  FormatError,
  IntegrityError,
  IoError,
  UnsupportedError,
  UsageError,
} from '../../volume-format/errors.js';
import { INCOMPAT_REENCRYPT, checkFeatures } from '../../volume-format/features.js';
import { type HeaderFields, keyGenerationOf } from '../../volume-format/header.js';
import type { HeaderChoice } from '../../volume-format/header-copies.js';
import { type Keyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { containerSizeOf, sectorCountOf } from '../../volume-format/layout.js';
import {
  type ReencryptState,
  type Resilience,
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
import { closeContainer, openContainer } from '../io/container-file.js';
import type { HeldLock } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { writeJournalZeros } from './journal-area.js';
import { type Rng, systemRng } from '../rng.js';
import { authenticateHeader, checkKeyHalves, drawMasterKey, sameMasterKey } from './keys.js';
import {
  checkKeyGenerationRoom,
  checkSeqidRoom,
  readHeaderChoice,
  repairHeaderCopies,
  writeHeaderUpdate,
} from './header-store.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import { type Recrypter, RecryptWorkers, inlineRecrypter } from './recrypt.js';
import { unlockKeyslots } from './unlock.js';

/**
 * Default segment size (a writer's choice, SPEC §15.6), capped by the journal: 192 MiB is the
 * most a checksum record fits with the 12 MiB journal of v1 writers (48 MiB with the 3 MiB
 * journal of earlier ones). Larger segments mean fewer flushes and header updates per GiB:
 * 1152–1161 ms per GiB against 1355–1409 for 48 MiB, and 384 MiB gained only 2 % more
 * (bench/PERFORMANCE.md, "Round 4"). Chunk buffers do not grow with it (step 4 reads the
 * segment again: see the pool in `Engine.loop`); the two records are 1/32 of it each.
 */
export const DEFAULT_SEGMENT_BYTES = 192 * 1024 * 1024;
/** Bytes read, fingerprinted or re-encrypted, and written per step inside a segment (2 MiB:
 * median 1477 ms per GiB against 1532 for 4 MiB, 10 alternating runs; less fresh memory). */
const CHUNK_BYTES = 2 * 1024 * 1024;
/** Chunks in flight while a segment is fingerprinted (step 1): one read, one fingerprinted. */
const FINGERPRINT_LANES = 2;
/** Chunks in flight while a segment is rewritten (step 4): read, re-encrypted and written. */
const REWRITE_LANES = 3;
/** Chunk buffers: steps 1 and 4 take turns with them (the loop runs step 1 of the next
 * segment once step 4's writes have returned). */
const POOL_BUFFERS = Math.max(FINGERPRINT_LANES, REWRITE_LANES);
/** Below this much left to do, starting worker threads costs more than it saves. */
const WORKER_MIN_BYTES = 64 * 1024 * 1024;
/**
 * Worker threads by default. One, not one per core: the main thread's reads, writes and
 * flushes need the other core. With the native XTS engine one worker re-encrypts ≈ 2.7 GB/s
 * in memory, well above what the disk chain allows; two workers measured 714–740 MB/s against
 * 740–789 for one (3 alternating pairs of 2 runs, 1 GiB). Before the native engine two workers
 * also used ≈ 1.4× the CPU time for no gain (bench/PERFORMANCE.md, "Re-encryption").
 */
const DEFAULT_THREADS = 1;

/** Options shared by {@link startReencrypt} and {@link resumeReencrypt}. */
export interface ReencryptRunOptions {
  /** Replace the file storage (fault-injection tests). */
  storage?: Storage;
  /** Source of the new master key, salts and nonces (tests replace it). */
  rng?: Rng;
  /** Bytes per segment (default 192 MiB), rounded down to whole sectors and capped so the
   * segment's record fits one journal slot (SPEC §15.5). */
  segmentBytes?: number;
  /**
   * Resilience of the segments this run writes (SPEC §15.5). Default: `checksum` when starting,
   * the recorded mode when resuming. A segment interrupted earlier is always recovered with the
   * mode it was recorded with.
   */
  resilience?: Resilience;
  /**
   * Worker threads for the XTS work (default: 1 when at least 64 MiB remain, else 0 = this
   * thread; see src/volume/recrypt.ts).
   */
  threads?: number;
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
  /**
   * Seconds this run spent on the data: recovery, segments and the finish, without unlocking
   * and key derivation (which take seconds by design and would hide the re-encryption's rate).
   */
  dataSeconds: number;
}

/** An opened, locked container and its chosen header (SPEC §8, §9.2). */
interface Session {
  storage: Storage;
  lock: HeldLock;
  choice: HeaderChoice;
  /** Spawned early so they load while Argon2 runs; null when the work stays on this thread. */
  workers: RecryptWorkers | null;
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
  const session = await beginSession(path, options);
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
    // Step S raises seqid and the key generation by one (SPEC §3.1, §9.3): refuse a header at
    // either limit before any Argon2 work or write, rather than fail in the encoder.
    checkSeqidRoom(fields.seqid);
    checkKeyGenerationRoom(keyGenerationOf(fields));
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
        const same = sameMasterKey(oldKey, unlocked.masterKey);
        wipe(unlocked.masterKey);
        if (!same) {
          throw new IntegrityError(
            'HEADER_TAMPERED',
            `keyslot ${i}: holds a different master key than keyslot ${keep[0]}`,
          );
        }
      }
    }
    oldMac = await verifyAndRepair(session, oldKey!);
    await allocateJournal(session.storage, fields, path); // step S0
    newKey = drawMasterKey(rng, oldKey!);
    // SPEC §15.6 step S: rewrap every kept slot with the new key, drop the others, seal the
    // old key under the new one, set the flag, raise the key generation: one header update,
    // MAC under the new key.
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
      // SPEC §3.1, §15.6 step S: the generation names the key the keyslots wrap, so it rises in
      // the same header update that rewraps them; every later update carries it unchanged.
      keyGeneration: keyGenerationOf(fields) + 1,
      keyslots,
      features: { ...fields.features, incompat: fields.features.incompat | INCOMPAT_REENCRYPT },
      featureArea: encodeReencryptState(state, fields),
    };
    newMac = deriveHeaderMacKey(newKey, fields.uuid);
    await writeHeaderUpdate(session.storage, next, newMac);
    const engine = new Engine(
      session.storage,
      next,
      state,
      oldKey!,
      newKey,
      newMac,
      options,
      session.workers,
    );
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
  const session = await beginSession(path, options);
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
    newMac = await verifyAndRepair(session, newKey);
    // Decoded (and checked, SPEC §10 row 30) when the copy was read; the MAC now vouches too.
    const state = decodeReencryptState(fields.featureArea, fields);
    oldKey = unwrapOldMasterKey(newKey, fields.uuid, state);
    if (oldKey === null) {
      throw new IntegrityError(
        'HEADER_TAMPERED',
        're-encryption state: the old master key does not unwrap under the new one',
      );
    }
    checkKeyHalves(oldKey, 're-encryption state: old master key');
    // SPEC §15.5: the segments still to write need a journal slot that holds one sector's
    // record. The header (MAC-verified, but written by any writer) may name a journal too small
    // for the recorded resilience: refuse before anything is written, not mid-segment.
    const left = sectorCountOf(fields) - state.sectorsDone - state.segmentSectors;
    if (options.resilience !== undefined || left > 0) {
      checkJournalFits(options.resilience ?? state.resilience, fields);
    }
    checkSeqidRoom(fields.seqid); // every run ends with a header update: refuse before writing
    const engine = new Engine(
      session.storage,
      fields,
      state,
      oldKey,
      newKey,
      newMac,
      options,
      session.workers,
    );
    const report = await engine.run();
    return { ...report, keptSlots: activeSlots(fields), removedSlots: [] };
  } finally {
    wipe(newKey, oldKey, newMac);
    await endSession(session);
  }
}

/** A segment whose record is built (SPEC §15.6 step 1). */
interface Prepared {
  first: number;
  count: number;
  record: Uint8Array;
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
    /** Owned and wiped by the caller after run(). */
    private readonly oldKey: Uint8Array,
    private readonly newKey: Uint8Array,
    private readonly macKey: Uint8Array,
    private readonly options: ReencryptRunOptions,
    private readonly workers: RecryptWorkers | null,
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
      const started = performance.now();
      const recovered = await this.recover();
      const finished = await this.loop();
      return {
        dataSeconds: (performance.now() - started) / 1000,
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

  /** Read whole sectors into `view` (reusing it when the storage can, SPEC §15.6 step 1). */
  private async readData(sector: number, view: Uint8Array): Promise<Uint8Array> {
    const offset = this.dataOffset(sector);
    let got: number;
    if (this.storage.readInto) got = await this.storage.readInto(offset, view);
    else {
      const data = await this.storage.readAt(offset, view.length);
      view.set(data);
      got = data.length;
    }
    if (got !== view.length) {
      throw new IoError('IO_ERROR', `reading sector ${sector}: container is truncated`);
    }
    return view;
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
        const current = await this.readData(sector, new Uint8Array(bytes));
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
    /** A chunk buffer kept for step F2 (its pages are already mapped, see the pool below). */
    let spare: Uint8Array | null = null;
    let inflight: Promise<void> | null = null;
    // The workers wipe their keys and end while the finish runs: nothing after step 4 needs
    // them, and ending a thread took ≈ 10 ms.
    let closing: Promise<void> = Promise.resolve();
    try {
      const remaining = this.sectorCount - pos;
      if (remaining > 0) {
        const segment = Math.min(this.segmentSectors, remaining);
        const chunkSectors = Math.max(1, Math.min(segment, Math.floor(CHUNK_BYTES / this.ss)));
        const recrypter = this.workers
          ? this.workers.start(this.oldKey, this.newKey)
          : inlineRecrypter(this.oldKey, this.newKey, this.ss);
        // Chunk buffers for the lanes of steps 1 and 4, created when first needed and reused.
        // Few on purpose: step 1 keeps only the record and step 4 reads the segment again (SPEC
        // §15.6 allows it) instead of holding a whole segment of new ciphertext. Fresh memory is
        // what is expensive here: first touching a page costs ≈ 14 µs on the project VM (a 4 MiB
        // buffer ≈ 16 ms, 64 MiB 185–236 ms), while reading a segment again from the page cache
        // costs ≈ 5 ms per 48 MiB (bench/PERFORMANCE.md, "Round 4").
        const pool = new BufferPool(() => recrypter.allocate(chunkSectors * this.ss), POOL_BUFFERS);
        // Two record buffers, used in turn: step 4 still reads a segment's record (checksum) or
        // re-encrypts it in place (journal) while the next segment is prepared into the other;
        // the segment after that starts only once that step 4 is over (its step 3 waits for it).
        const recordBytes = journalRecordBytes(this.resilience, this.ss, segment);
        const records = [recrypter.allocate(recordBytes), recrypter.allocate(recordBytes)];
        let recordTurn = 0;
        // Every segment full-size from the first: step 1 only reads and fingerprints, so the
        // small first segments that once let the disk start early no longer pay (1461 ms median
        // without them, 1508 with, 8 alternating runs; bench/PERFORMANCE.md, "Round 4").
        const startPrepare = (first: number): Promise<Prepared> | null => {
          if (first >= this.sectorCount) return null;
          const count = Math.min(this.segmentSectors, this.sectorCount - first);
          const record = records[recordTurn++ % 2]!.subarray(
            0,
            journalRecordBytes(this.resilience, this.ss, count),
          );
          const p = this.prepare(first, count, chunkSectors, pool, recrypter, record);
          p.catch(() => undefined); // awaited in order below; never an unhandled rejection
          return p;
        };
        let ahead = startPrepare(pos);
        let slot = 0;
        let completed = false; // every job that ran finished (see the wipe below)
        try {
          while (ahead !== null) {
            if (this.options.signal?.aborted) break;
            // Step 1, run while the previous segment's flush ran.
            const prepared = await ahead;
            ahead = null;
            // Step 2: the record goes to the slot the current header does not reference, while
            // the previous segment's step 4 may still be writing or flushing (SPEC §15.6 allows
            // it). Step 3 waits for both flushes.
            const recorded = (async () => {
              await this.storage.writeAt(journalSlotOffset(this.fields, slot), prepared.record);
              await this.storage.syncData();
            })();
            recorded.catch(() => undefined); // awaited below
            try {
              if (inflight !== null) {
                const previous: Promise<void> = inflight;
                inflight = null;
                await previous;
              }
            } finally {
              await recorded.catch(() => undefined); // never leave a write running on failure
            }
            await recorded;
            // Step 3: from here on a crash is recovered from that record.
            await this.headerUpdate({
              ...this.state,
              resilience: this.resilience,
              sectorsDone: pos,
              segmentSectors: prepared.count,
              journalSlot: slot,
              journalDigest: digest(prepared.record),
            });
            // Step 4: the new ciphertext and its fdatasync.
            let writesReturned!: () => void;
            const written = new Promise<void>((resolve) => (writesReturned = resolve));
            inflight = this.rewriteSegment(prepared, chunkSectors, pool, recrypter, writesReturned);
            inflight.catch(() => undefined); // awaited below; never an unhandled rejection
            pos += prepared.count;
            slot ^= 1;
            // Step 1 of the next segment once this one's writes have returned, while its flush
            // runs: alongside the writes, its fingerprinting held up their re-encryption on the
            // worker (measured with 48 MiB segments: ≈ 55 ms each instead of ≈ 45). A failed
            // step 4 throws here, before anything else is read.
            await Promise.race([written, inflight]);
            ahead = startPrepare(pos);
          }
          if (inflight !== null) {
            // Step 4 of the last segment written, its fdatasync included, before step F1 or the
            // stop point records it as done.
            const last: Promise<void> = inflight;
            inflight = null;
            await last;
          }
          completed = true;
        } finally {
          // Never leave a read or a write running past this point (the storage closes after us).
          if (ahead !== null) {
            const prepared = await (ahead as Promise<Prepared>).then(
              () => true,
              () => false,
            );
            if (!prepared) completed = false;
          }
          if (inflight !== null) await (inflight as Promise<void>).catch(() => undefined);
          closing = recrypter.close();
          closing.catch(() => undefined); // awaited at the end
          // A finished job leaves only ciphertext in its buffer (decrypt and re-encrypt happen
          // in one synchronous call), so only a failure can leave plaintext behind.
          if (!completed) {
            pool.wipeAll();
            for (const r of records) wipe(r);
          }
          spare = pool.anyBuffer();
        }
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
      // Written from a chunk buffer already in use when there is one of full size: filling a
      // fresh 3 MiB with zeros and writing it took ≈ 25 ms here (every page faulted in), a
      // reused one ≈ 1 ms. Otherwise from a fresh buffer, never filled (its pages read as zero).
      const size = Math.min(this.fields.journalSize, CHUNK_BYTES);
      const reuse = spare !== null && spare.length >= size ? spare.subarray(0, size) : null;
      await writeJournalZeros(this.storage, this.fields, reuse);
      await this.storage.syncData();
      // Step F3: clear the flag and the feature area: the old master key is gone from disk.
      await this.headerUpdate(this.state, true);
      return true;
    } finally {
      await closing;
    }
  }

  /**
   * Step 1 for one segment: its record. Journal mode: the old ciphertext itself, read into the
   * record. Checksum mode: the segment read chunk by chunk into pool buffers, each
   * fingerprinted by the recrypter into its part of the record.
   */
  private async prepare(
    first: number,
    count: number,
    chunkSectors: number,
    pool: BufferPool,
    recrypter: Recrypter,
    record: Uint8Array,
  ): Promise<Prepared> {
    if (this.resilience === 'journal') {
      await this.readData(first, record);
      return { first, count, record };
    }
    await inLanes(Math.ceil(count / chunkSectors), FINGERPRINT_LANES, async (i) => {
      const sector = first + i * chunkSectors;
      const n = Math.min(chunkSectors, first + count - sector);
      const buffer = await pool.take();
      try {
        const view = buffer.subarray(0, n * this.ss);
        await this.readData(sector, view);
        await recrypter.fingerprint(view, fingerprintsOf(record, sector - first, n, this.ss));
      } finally {
        pool.give(buffer); // old ciphertext only
      }
    });
    return { first, count, record };
  }

  /**
   * Step 4: rewrite a prepared segment under the new key, then fdatasync. Journal mode
   * re-encrypts the record (the segment's old ciphertext, already safe in the journal) in
   * place and writes it. Checksum mode reads each chunk again, and the recrypter checks it
   * against the record before re-encrypting it (SPEC §15.6 step 4): a difference stops the run
   * with `IO_ERROR` before that chunk is written.
   *
   * Nothing reaches the disk until an fdatasync asks for it (the page cache holds gigabytes
   * here), so flushes are started while the later chunks are still being written: the disk
   * works during the writes instead of after them, and the final flush has little left to do.
   * Extra fdatasyncs never weaken SPEC §15.6. The final fdatasync is this segment's own, so it
   * runs while the next segment is fingerprinted (bench/PERFORMANCE.md, "Round 3").
   */
  private async rewriteSegment(
    p: Prepared,
    chunkSectors: number,
    pool: BufferPool,
    recrypter: Recrypter,
    writesReturned: () => void,
  ): Promise<void> {
    const journal = this.resilience === 'journal';
    const total = Math.ceil(p.count / chunkSectors);
    let flushing: Promise<void> | null = null;
    let written = 0;
    try {
      await inLanes(total, REWRITE_LANES, async (i) => {
        const sector = p.first + i * chunkSectors;
        const n = Math.min(chunkSectors, p.first + p.count - sector);
        const at = (sector - p.first) * this.ss;
        const buffer = journal ? null : await pool.take();
        try {
          let view: Uint8Array;
          let expected: Uint8Array | undefined;
          if (buffer === null) view = p.record.subarray(at, at + n * this.ss);
          else {
            view = buffer.subarray(0, n * this.ss);
            await this.readData(sector, view);
            expected = fingerprintsOf(p.record, sector - p.first, n, this.ss);
          }
          const mismatch = await recrypter.recrypt(view, sector, expected);
          if (mismatch >= 0) {
            const block = sector * (this.ss / FINGERPRINT_BLOCK_BYTES) + mismatch;
            throw new IoError(
              'IO_ERROR',
              `re-encrypting: 512-byte block ${block} of the data area read back different ` +
                `from when its segment was recorded (another program writing the container, ` +
                `or a failing disk); stopped before rewriting it`,
            );
          }
          await this.storage.writeAt(this.dataOffset(sector), view);
        } finally {
          if (buffer !== null) pool.give(buffer);
        }
        written++;
        this.progress(p.first + Math.min(p.count, written * chunkSectors));
        if (flushing === null && written < total) {
          const f: Promise<void> = this.storage.syncData().finally(() => {
            if (flushing === f) flushing = null;
          });
          f.catch(() => undefined); // awaited below
          flushing = f;
        }
      });
      writesReturned();
      if (flushing !== null) await flushing;
      await this.storage.syncData();
    } finally {
      if (flushing !== null) await (flushing as Promise<void>).catch(() => undefined);
    }
  }
}

/** The part of a checksum record (SPEC §15.5) for `n` sectors from `offset` in its segment. */
function fingerprintsOf(record: Uint8Array, offset: number, n: number, ss: number): Uint8Array {
  const perSector = (ss / FINGERPRINT_BLOCK_BYTES) * FINGERPRINT_BYTES;
  return record.subarray(offset * perSector, (offset + n) * perSector);
}

/**
 * Run `job(0)` … `job(count - 1)`, at most `lanes` at a time, in order of starting. Every job
 * has settled when this returns or throws (the first failure; no job starts after it), so no
 * read or write is left running behind the caller.
 */
async function inLanes(
  count: number,
  lanes: number,
  job: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const lane = async () => {
    while (failure === null && next < count) {
      try {
        await job(next++);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane));
  if (failure !== null) throw (failure as { err: unknown }).err;
}

/** Reusable chunk buffers, created on demand up to a limit; `take()` then waits for one back. */
class BufferPool {
  private readonly free: Uint8Array[] = [];
  private readonly waiting: ((b: Uint8Array) => void)[] = [];
  private readonly all: Uint8Array[] = [];

  /** Up to `max` buffers made by `create`, each when first needed. */
  constructor(
    private readonly create: () => Uint8Array,
    private readonly max: number,
  ) {}

  /** The most recently given buffer (still in the CPU cache), a new one, or the next given. */
  take(): Promise<Uint8Array> {
    const b = this.free.pop();
    if (b !== undefined) return Promise.resolve(b);
    if (this.all.length < this.max) {
      const created = this.create();
      this.all.push(created);
      return Promise.resolve(created);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(b: Uint8Array): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }

  /** One of the buffers created so far, or null if none was. */
  anyBuffer(): Uint8Array | null {
    return this.all[0] ?? null;
  }

  wipeAll(): void {
    for (const b of this.all) wipe(b);
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

/** Take the lock and open (SPEC §9.2), read the header (SPEC §8), check the length, spawn the workers. */
async function beginSession(path: string, options: ReencryptRunOptions): Promise<Session> {
  const opened = await openContainer(path, {
    lock: 'exclusive',
    ...(options.storage ? { storage: options.storage } : {}),
  });
  const st = opened.storage;
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
    const lock = opened.lock;
    const f = choice.fields;
    const done = isReencrypting(f) ? decodeReencryptState(f.featureArea, f).sectorsDone : 0;
    const remaining = f.dataSize - done * f.sectorSize;
    const threads = options.threads ?? (remaining >= WORKER_MIN_BYTES ? DEFAULT_THREADS : 0);
    const workers = threads > 0 ? new RecryptWorkers(f.sectorSize, threads) : null;
    return { storage: st, lock, choice, workers };
  } catch (err) {
    await closeContainer(opened);
    throw err;
  }
}

async function endSession(session: Session): Promise<void> {
  try {
    await session.workers?.close();
    await session.storage.close();
  } finally {
    await session.lock.release();
  }
}

/**
 * SPEC §8 step 6 (MAC before anything is written) under `masterKey`, then repair a stale or
 * damaged copy. Returns the header MAC key (caller wipes).
 */
async function verifyAndRepair(session: Session, masterKey: Uint8Array): Promise<Uint8Array> {
  const { choice } = session;
  const macKey = authenticateHeader(masterKey, choice);
  try {
    // SPEC §9.3 precondition: both copies valid and equal before the next header update.
    if (choice.repair.length > 0) await repairHeaderCopies(session.storage, choice, macKey);
  } catch (err) {
    wipe(macKey);
    throw err;
  }
  return macKey;
}

/**
 * SPEC §15.6 step S0: zeros over the journal area (zero already, no flag being set), then
 * fdatasync, so that a volume whose journal area an earlier version left sparse gets it
 * allocated now. Failing here (a full host file system) leaves the volume as it was.
 */
async function allocateJournal(
  storage: Storage,
  fields: HeaderFields,
  path: string,
): Promise<void> {
  try {
    await writeJournalZeros(storage, fields);
    await storage.syncData();
  } catch (err) {
    if (!(err instanceof CryptainerError)) throw err;
    const why =
      err.code === 'NO_SPACE' ? 'no space left on the file system that holds it' : err.message;
    throw new IoError(
      err.code,
      `re-encrypting ${path}: cannot write the journal area: ${why}; ` +
        'nothing was changed (the volume is as it was)',
      { cause: err },
    );
  }
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
