/**
 * An unlocked volume: byte- and sector-level access to the decrypted drive (SPEC §6), header
 * updates in the fixed write order (SPEC §9.3), and a `close()` that wipes every key.
 */
import { wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import { IoError, UsageError } from '../../volume-format/errors.js';
import type { HeaderFields } from '../../volume-format/header.js';
import type { HeldLock } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { writeHeaderUpdate } from './header-store.js';
import { RangeLock } from './range-lock.js';

/** Largest batch encrypted or read in one call (bounds memory per request). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

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
}

/** An open, unlocked volume. Close it to flush, unlock the file and wipe the keys. */
export class Volume {
  /** Container file path. */
  readonly path: string;
  /** True when writes are refused (opened read-only, or an unknown ro_compat feature). */
  readonly readOnly: boolean;
  /** The keyslot whose secret opened this volume. */
  readonly unlockedSlot: number;
  private readonly storage: Storage;
  private fieldsNow: HeaderFields;
  private masterKeyBytes: Uint8Array;
  private macKey: Uint8Array;
  private xts: XtsCipher;
  private lock: HeldLock | null;
  private readonly ranges = new RangeLock();
  private closed = false;

  /** @internal use openVolume() or createVolume(). */
  constructor(parts: VolumeParts) {
    this.path = parts.path;
    this.storage = parts.storage;
    this.fieldsNow = parts.fields;
    this.masterKeyBytes = parts.masterKey;
    this.readOnly = parts.readOnly;
    this.lock = parts.lock;
    this.unlockedSlot = parts.unlockedSlot;
    this.macKey = deriveHeaderMacKey(parts.masterKey, parts.fields.uuid);
    this.xts = new XtsCipher(parts.masterKey, parts.fields.sectorSize);
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

  /** Read `length` bytes of the decrypted drive at byte `offset` (any alignment). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.checkByteRange(offset, length);
    if (length === 0) return new Uint8Array(0);
    const ss = this.sectorSize;
    const first = Math.floor(offset / ss);
    const end = Math.ceil((offset + length) / ss);
    const plain = await this.readSectors(first, end - first);
    const start = offset - first * ss;
    return plain.subarray(start, start + length);
  }

  /**
   * Write `data` at byte `offset` of the decrypted drive (any alignment). Partial sectors at
   * either end are read, decrypted, patched and re-encrypted (SPEC §9.4) under an exclusive
   * range lock, so concurrent writes to the same sector cannot lose each other's bytes.
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.checkWritable();
    this.checkByteRange(offset, data.length);
    if (data.length === 0) return;
    const ss = this.sectorSize;
    const first = Math.floor(offset / ss);
    const end = Math.ceil((offset + data.length) / ss);
    const head = offset - first * ss;
    const release = await this.ranges.acquire(first, end, true);
    try {
      if (head === 0 && data.length % ss === 0) {
        await this.writeSectorsUnlocked(first, data);
        return;
      }
      const buf = new Uint8Array((end - first) * ss);
      if (head !== 0) buf.set(await this.readSectorsUnlocked(first, 1), 0);
      const tailPartial = (offset + data.length) % ss !== 0;
      if (tailPartial && (end - 1 !== first || head === 0)) {
        buf.set(await this.readSectorsUnlocked(end - 1, 1), (end - 1 - first) * ss);
      }
      buf.set(data, head);
      await this.writeSectorsUnlocked(first, buf);
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
      wipe(this.masterKeyBytes, this.macKey);
      await this.storage.close();
      await this.lock?.release();
      this.lock = null;
    }
  }

  private async readSectorsUnlocked(first: number, count: number): Promise<Uint8Array> {
    const ss = this.sectorSize;
    const out = new Uint8Array(count * ss);
    for (let done = 0; done < count;) {
      const n = Math.min(count - done, MAX_BATCH_BYTES / ss);
      const offset = this.fieldsNow.dataOffset + (first + done) * ss;
      const cipher = await this.storage.readAt(offset, n * ss);
      if (cipher.length !== n * ss) {
        throw new IoError('IO_ERROR', `reading sector ${first + done}: container is truncated`);
      }
      this.xts.decryptSectors(cipher, first + done, out.subarray(done * ss, (done + n) * ss));
      done += n;
    }
    return out;
  }

  private async writeSectorsUnlocked(first: number, data: Uint8Array): Promise<void> {
    const ss = this.sectorSize;
    const count = data.length / ss;
    for (let done = 0; done < count;) {
      const n = Math.min(count - done, MAX_BATCH_BYTES / ss);
      const cipher = this.xts.encryptSectors(
        data.subarray(done * ss, (done + n) * ss),
        first + done,
      );
      await this.storage.writeAt(this.fieldsNow.dataOffset + (first + done) * ss, cipher);
      done += n;
    }
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
