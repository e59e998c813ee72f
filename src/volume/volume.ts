/**
 * An unlocked volume: byte- and sector-level access to the decrypted drive (SPEC §6), header
 * updates in the fixed write order (SPEC §9.3), and a `close()` that wipes every key.
 */
import { wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import { IoError, UsageError } from '../../volume-format/errors.js';
import { type HeaderFields, keyGenerationOf } from '../../volume-format/header.js';
import type { HeaderCopyName } from '../../volume-format/constants.js';
import type { HeldLock } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { writeHeaderUpdate } from './header-store.js';
import { RangeLock } from './range-lock.js';
import { secureCopy } from '../secure-memory.js';
import { now, type TraceSpan } from '../trace.js';

/** Largest batch encrypted or read in one call (bounds memory per request). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Size of the reusable scratch buffers of {@link Volume.readInto} and {@link Volume.write}:
 * larger requests go through in pieces of this size. Reusing them instead of allocating per
 * request measured ≈ 3 µs less per 4 KiB request and keeps the heap flat (bench/PERFORMANCE.md).
 */
const SCRATCH_BYTES = 1024 * 1024;
/** Scratch buffers kept for reuse by concurrent asynchronous requests; more are allocated. */
const SCRATCH_KEEP = 4;

/**
 * When a request uses synchronous file I/O (see {@link Volume.setSyncIo}): requests up to
 * these sizes block the thread for the file access instead of a thread-pool round trip.
 */
export interface SyncIoLimits {
  readMaxBytes: number;
  writeMaxBytes: number;
}

/** Options of {@link Volume.readInto}. */
export interface ReadIntoOptions {
  /** Per-request timings (CRYPTAINER_TRACE). */
  span?: TraceSpan | null;
  /**
   * Asked after every wait, before `target` is written: returning true abandons the read
   * (the FUSE request timed out and its buffer is no longer ours).
   */
  abandoned?: () => boolean;
}

/** What a Volume is built from; created only by openVolume/createVolume. */
export interface VolumeParts {
  path: string;
  storage: Storage;
  fields: HeaderFields;
  /** Ownership passes to the Volume, which wipes it on close. */
  masterKey: Uint8Array;
  readOnly: boolean;
  lock: HeldLock | null;
  /** Keyslot that unlocked the volume. */
  unlockedSlot: number;
  /** The header copy read and the copies repaired from it on opening (none: both were ok). */
  header?: OpenedHeader;
}

/** Which header copy a volume was opened from and which copies opening repaired (SPEC §8). */
export interface OpenedHeader {
  winner: HeaderCopyName;
  repaired: HeaderCopyName[];
}

/** An open, unlocked volume. Close it to flush, unlock the file and wipe the keys. */
export class Volume {
  private pathNow: string;
  /** True when writes are refused (opened read-only, or an unknown ro_compat feature). */
  readonly readOnly: boolean;
  /** The keyslot whose secret opened this volume. */
  readonly unlockedSlot: number;
  /** The header copy this volume was read from and the copies repaired on opening. */
  readonly openedFrom: OpenedHeader;
  private readonly storage: Storage;
  private fieldsNow: HeaderFields;
  private masterKeyBytes: Uint8Array;
  private macKey: Uint8Array;
  private xts: XtsCipher;
  private lock: HeldLock | null;
  private readonly ranges = new RangeLock();
  private closed = false;
  private syncIo: SyncIoLimits = { readMaxBytes: 0, writeMaxBytes: 0 };
  /** Scratch for synchronous requests: they never interleave, so one buffer serves all. */
  private syncScratch: Uint8Array | null = null;
  /** Free scratch buffers for asynchronous requests (each holds one while it awaits). */
  private scratchFree: Uint8Array[] = [];

  /** @internal use openVolume() or createVolume(). */
  constructor(parts: VolumeParts) {
    this.pathNow = parts.path;
    this.storage = parts.storage;
    this.fieldsNow = parts.fields;
    // Key material lives in mlocked, undumpable memory where the platform allows
    // (src/secure-memory.ts); ownership of `parts.masterKey` passed here, so it is wiped.
    this.masterKeyBytes = secureCopy(parts.masterKey);
    wipe(parts.masterKey);
    this.readOnly = parts.readOnly;
    this.lock = parts.lock;
    this.unlockedSlot = parts.unlockedSlot;
    this.openedFrom = parts.header ?? { winner: 'A', repaired: [] };
    const macKey = deriveHeaderMacKey(this.masterKeyBytes, parts.fields.uuid);
    this.macKey = secureCopy(macKey);
    wipe(macKey);
    this.xts = new XtsCipher(this.masterKeyBytes, parts.fields.sectorSize);
  }

  /** Container file path. */
  get path(): string {
    return this.pathNow;
  }

  /**
   * Record that the open container file now has the name `path` (createVolume renames its
   * temporary file over the target once the volume is complete, SPEC §9.1). @internal
   */
  renamedTo(path: string): void {
    this.pathNow = path;
  }

  /** Current header fields (a snapshot; change them with {@link updateHeader}). */
  get header(): HeaderFields {
    return this.fieldsNow;
  }
  /** Bytes per sector (512 or 4096). */
  get sectorSize(): number {
    return this.fieldsNow.sectorSize;
  }
  /** Number of data sectors. */
  get sectorCount(): number {
    return this.fieldsNow.dataSize / this.fieldsNow.sectorSize;
  }
  /** Size of the decrypted drive in bytes. */
  get sizeBytes(): number {
    return this.fieldsNow.dataSize;
  }

  /** A copy of the master key (for `info --dump-master-key`); the caller must wipe it. */
  exportMasterKey(): Uint8Array {
    this.checkOpen();
    return Uint8Array.from(this.masterKeyBytes);
  }

  /** The header MAC key of this volume (for header writers in src/volume). @internal */
  headerMacKey(): Uint8Array {
    this.checkOpen();
    return this.macKey;
  }

  /** The storage under this volume (for operations in src/volume). @internal */
  rawStorage(): Storage {
    this.checkOpen();
    return this.storage;
  }

  /** Read and decrypt `count` whole sectors starting at sector `first`. */
  async readSectors(first: number, count: number): Promise<Uint8Array> {
    this.checkSectorRange(first, count);
    const release = await this.ranges.acquire(first, first + count, false);
    try {
      return await this.readSectorsUnlocked(first, count);
    } finally {
      release();
    }
  }

  /** Encrypt and write whole sectors starting at sector `first`; `data` is not modified. */
  async writeSectors(first: number, data: Uint8Array): Promise<void> {
    this.checkWritable();
    const ss = this.sectorSize;
    if (data.length % ss !== 0) {
      throw new RangeError(`writeSectors: length ${data.length} is not a multiple of ${ss}`);
    }
    const count = data.length / ss;
    this.checkSectorRange(first, count);
    const release = await this.ranges.acquire(first, first + count, true);
    try {
      await this.writeSectorsUnlocked(first, data);
    } finally {
      release();
    }
  }

  /**
   * Use synchronous file I/O for requests up to these sizes, when the storage offers it
   * (FileStorage does). Off by default (a library caller's event loop keeps running during
   * I/O); the mounted drive turns it on, where a thread-pool round trip per request cost more
   * than the file access itself (bench/PERFORMANCE.md).
   */
  setSyncIo(limits: SyncIoLimits): void {
    this.syncIo = { ...limits };
  }

  /** Read `length` bytes of the decrypted drive at byte `offset` (any alignment). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  /**
   * Read `target.length` bytes of the decrypted drive at byte `offset` (any alignment) into
   * `target`. Whole sectors are decrypted straight into `target`; a request within the sync
   * limit is done without any wait at all. Returns false if `options.abandoned` said so (then
   * `target` was not touched after that point).
   */
  async readInto(
    offset: number,
    target: Uint8Array,
    options: ReadIntoOptions = {},
  ): Promise<boolean> {
    const length = target.length;
    this.checkByteRange(offset, length);
    if (length === 0) return true;
    const { span, abandoned } = options;
    const ss = this.sectorSize;
    const first = Math.floor(offset / ss);
    const end = Math.ceil((offset + length) / ss);
    const t = now();
    let release = this.ranges.tryAcquire(first, end, false);
    if (release === null) {
      release = await this.ranges.acquire(first, end, false);
      if (abandoned?.()) {
        release();
        return false;
      }
    }
    span?.phase('lock', t);
    try {
      const bytes = (end - first) * ss;
      const readSync = this.storage.readIntoSync;
      if (readSync !== undefined && bytes <= this.syncIo.readMaxBytes) {
        if (bytes === length) {
          // Aligned: the ciphertext lands in `target` and is decrypted in place.
          this.readCipherSync(first, target, span);
          this.decrypt(target, first, target, span);
        } else {
          const scratch = this.syncScratchFor(bytes);
          this.readCipherSync(first, scratch, span);
          this.decrypt(scratch, first, scratch, span);
          const c = now();
          target.set(scratch.subarray(offset - first * ss, offset - first * ss + length));
          span?.phase('copy', c);
        }
        return true;
      }
      const scratch = this.takeScratch();
      try {
        const perChunk = Math.floor(SCRATCH_BYTES / ss);
        for (let s = first; s < end; s += perChunk) {
          const n = Math.min(perChunk, end - s);
          const cipher = scratch.subarray(0, n * ss);
          await this.readCipher(s, cipher, span);
          if (abandoned?.()) return false;
          // This chunk's drive bytes [s*ss, (s+n)*ss) ∩ the request's [offset, offset+length).
          const from = Math.max(offset, s * ss);
          const to = Math.min(offset + length, (s + n) * ss);
          if (from === s * ss && to === (s + n) * ss) {
            this.decrypt(cipher, s, target.subarray(from - offset, to - offset), span);
          } else {
            this.decrypt(cipher, s, cipher, span);
            const c = now();
            target.set(cipher.subarray(from - s * ss, to - s * ss), from - offset);
            span?.phase('copy', c);
          }
        }
        return true;
      } finally {
        this.giveScratch(scratch);
      }
    } finally {
      release();
    }
  }

  /**
   * Write `data` at byte `offset` of the decrypted drive (any alignment). Partial sectors at
   * either end are read, decrypted, patched and re-encrypted (SPEC §9.4) under an exclusive
   * range lock, so concurrent writes to the same sector cannot lose each other's bytes.
   * `data` is not modified.
   */
  async write(offset: number, data: Uint8Array, span?: TraceSpan | null): Promise<void> {
    this.checkWritable();
    this.checkByteRange(offset, data.length);
    if (data.length === 0) return;
    const ss = this.sectorSize;
    const first = Math.floor(offset / ss);
    const end = Math.ceil((offset + data.length) / ss);
    const head = offset - first * ss;
    const t = now();
    const release =
      this.ranges.tryAcquire(first, end, true) ?? (await this.ranges.acquire(first, end, true));
    span?.phase('lock', t);
    try {
      if (head === 0 && data.length % ss === 0) {
        await this.writeSectorsUnlocked(first, data, span);
        return;
      }
      span?.markPartial();
      const buf = new Uint8Array((end - first) * ss);
      if (head !== 0) buf.set(await this.readSectorsUnlocked(first, 1, span), 0);
      const tailPartial = (offset + data.length) % ss !== 0;
      if (tailPartial && (end - 1 !== first || head === 0)) {
        buf.set(await this.readSectorsUnlocked(end - 1, 1, span), (end - 1 - first) * ss);
      }
      buf.set(data, head);
      await this.writeSectorsUnlocked(first, buf, span);
      wipe(buf);
    } finally {
      release();
    }
  }

  /** Make all completed writes durable (fdatasync of the container). */
  async sync(): Promise<void> {
    this.checkOpen();
    await this.storage.syncData();
  }

  /**
   * Apply a header change (SPEC §9.3): `change` gets a copy of the current fields and returns
   * the new ones; seqid rises by one; copy A then copy B are written, each followed by fsync.
   */
  async updateHeader(change: (current: HeaderFields) => HeaderFields): Promise<void> {
    this.checkWritable();
    const current = this.fieldsNow;
    const next = change({
      ...current,
      features: { ...current.features },
      featureArea: Uint8Array.from(current.featureArea),
      keyslots: [...current.keyslots],
    });
    next.seqid = current.seqid + 1;
    // SPEC §3.1: only a re-encryption's first update changes the key generation; every other
    // header update carries it, whatever `change` returned.
    const generation = keyGenerationOf(current);
    if (generation > 0) next.keyGeneration = generation;
    else delete next.keyGeneration;
    await writeHeaderUpdate(this.storage, next, this.macKey);
    this.fieldsNow = next;
  }

  /** Flush, release the lock and wipe the keys. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.readOnly) await this.storage.syncData();
    } finally {
      this.xts.dispose();
      wipe(this.masterKeyBytes, this.macKey, this.syncScratch, ...this.scratchFree);
      this.syncScratch = null;
      this.scratchFree = [];
      await this.storage.close();
      await this.lock?.release();
      this.lock = null;
    }
  }

  private async readSectorsUnlocked(
    first: number,
    count: number,
    span?: TraceSpan | null,
  ): Promise<Uint8Array> {
    const ss = this.sectorSize;
    const out = new Uint8Array(count * ss);
    for (let done = 0; done < count;) {
      const n = Math.min(count - done, MAX_BATCH_BYTES / ss);
      const offset = this.fieldsNow.dataOffset + (first + done) * ss;
      let t = now();
      const cipher = await this.storage.readAt(offset, n * ss);
      span?.phase('io', t);
      if (cipher.length !== n * ss) {
        throw new IoError('IO_ERROR', `reading sector ${first + done}: container is truncated`);
      }
      t = now();
      this.xts.decryptSectors(cipher, first + done, out.subarray(done * ss, (done + n) * ss));
      span?.phase('crypto', t);
      done += n;
    }
    return out;
  }

  /** Encrypt whole sectors through a scratch buffer and write them; `data` is not modified. */
  private async writeSectorsUnlocked(
    first: number,
    data: Uint8Array,
    span?: TraceSpan | null,
  ): Promise<void> {
    const ss = this.sectorSize;
    const writeSync = this.storage.writeAtSync;
    const base = this.fieldsNow.dataOffset;
    if (writeSync !== undefined && data.length <= this.syncIo.writeMaxBytes) {
      const cipher = this.syncScratchFor(data.length);
      this.encrypt(data, first, cipher, span);
      const t = now();
      writeSync.call(this.storage, base + first * ss, cipher);
      span?.phase('io', t);
      return;
    }
    const scratch = this.takeScratch();
    try {
      const perChunk = Math.floor(SCRATCH_BYTES / ss);
      const count = data.length / ss;
      for (let done = 0; done < count; done += perChunk) {
        const n = Math.min(perChunk, count - done);
        const cipher = scratch.subarray(0, n * ss);
        this.encrypt(data.subarray(done * ss, (done + n) * ss), first + done, cipher, span);
        const t = now();
        await this.storage.writeAt(base + (first + done) * ss, cipher);
        span?.phase('io', t);
      }
    } finally {
      this.giveScratch(scratch);
    }
  }

  private encrypt(data: Uint8Array, first: number, out: Uint8Array, span?: TraceSpan | null) {
    const t = now();
    this.xts.encryptSectors(data, first, out);
    span?.phase('crypto', t);
  }

  private decrypt(data: Uint8Array, first: number, out: Uint8Array, span?: TraceSpan | null) {
    const t = now();
    this.xts.decryptSectors(data, first, out);
    span?.phase('crypto', t);
  }

  /** Read the ciphertext of sectors [first, first + buffer.length / ss) synchronously. */
  private readCipherSync(first: number, buffer: Uint8Array, span?: TraceSpan | null): void {
    const t = now();
    const got = this.storage.readIntoSync!(
      this.fieldsNow.dataOffset + first * this.sectorSize,
      buffer,
    );
    span?.phase('io', t);
    if (got !== buffer.length) {
      throw new IoError('IO_ERROR', `reading sector ${first}: container is truncated`);
    }
  }

  /** Read the ciphertext of sectors [first, first + buffer.length / ss) into `buffer`. */
  private async readCipher(first: number, buffer: Uint8Array, span?: TraceSpan | null) {
    const t = now();
    const offset = this.fieldsNow.dataOffset + first * this.sectorSize;
    let got: number;
    if (this.storage.readInto !== undefined) {
      got = await this.storage.readInto(offset, buffer);
    } else {
      const bytes = await this.storage.readAt(offset, buffer.length);
      buffer.set(bytes);
      got = bytes.length;
    }
    span?.phase('io', t);
    if (got !== buffer.length) {
      throw new IoError('IO_ERROR', `reading sector ${first}: container is truncated`);
    }
  }

  /** The synchronous scratch, at least `bytes` long (sync requests never interleave). */
  private syncScratchFor(bytes: number): Uint8Array {
    if (this.syncScratch === null || this.syncScratch.length < bytes) {
      wipe(this.syncScratch);
      this.syncScratch = new Uint8Array(Math.max(bytes, SCRATCH_BYTES));
    }
    return this.syncScratch.subarray(0, bytes);
  }

  private takeScratch(): Uint8Array {
    return this.scratchFree.pop() ?? new Uint8Array(SCRATCH_BYTES);
  }

  private giveScratch(buf: Uint8Array): void {
    if (this.closed) wipe(buf);
    else if (this.scratchFree.length < SCRATCH_KEEP) this.scratchFree.push(buf);
  }

  private checkOpen(): void {
    if (this.closed) throw new UsageError('USAGE', 'volume is closed');
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new IoError('READ_ONLY', 'volume is open read-only');
  }

  private checkSectorRange(first: number, count: number): void {
    this.checkOpen();
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0) {
      throw new RangeError(`sector range ${first}+${count} is invalid`);
    }
    if (first + count > this.sectorCount) {
      throw new RangeError(`sector range ${first}+${count} is beyond ${this.sectorCount} sectors`);
    }
  }

  private checkByteRange(offset: number, length: number): void {
    this.checkOpen();
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0
    ) {
      throw new RangeError(`byte range ${offset}+${length} is invalid`);
    }
    if (offset + length > this.sizeBytes) {
      throw new RangeError(`byte range ${offset}+${length} is beyond ${this.sizeBytes} bytes`);
    }
  }
}
