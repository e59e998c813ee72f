/**
 * The virtual drive: a FUSE filesystem with one file, `volume`, whose bytes are the decrypted
 * drive of an open {@link Volume} (SPEC §6). Every read and write of that file goes through
 * `Volume.read`/`Volume.write`, which encrypt per sector and read-modify-write partial
 * sectors; `fsync` and `flush` reach the container as `fdatasync`.
 *
 * Copies: a write request's buffer (the kernel's, handed over by fuse-native) is encrypted
 * straight from where it lies into a reused scratch buffer; a read's ciphertext is read into
 * the request's own buffer and decrypted in place. Requests are served with synchronous file
 * I/O (see {@link DRIVE_SYNC_IO}).
 */
import { now, traceStart } from '../trace.js';
import type { Volume } from '../volume/volume.js';
import {
  ERRNO,
  type FileAttributes,
  type FsStats,
  FuseErrno,
  type FuseHandlers,
  type RequestState,
} from './fuse-types.js';
import { config } from '../config.js';

/** Name of the decrypted drive file inside the drive mount. */
export const DRIVE_FILE_NAME = 'volume';
const DRIVE_PATH = '/' + DRIVE_FILE_NAME;

/** O_ACCMODE bits of open(2) flags. */
const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;

/** Options for {@link createDriveHandlers}. */
export interface DriveOptions {
  /** Owner shown for the drive (the user who mounted it). */
  uid: number;
  gid: number;
  /** Refuse writes even if the volume is writable. */
  readOnly?: boolean;
  /**
   * A request failed on the container (server-health.ts counts them): `write` for a write,
   * flush or fsync, whose data is then lost, `read` for a read.
   */
  onIoError?: (kind: 'read' | 'write', message: string) => void;
}

/** Counters for the benchmark and for tests (cheap: plain increments). */
export interface DriveStats {
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  syncs: number;
  /** Open handles on the drive file right now. */
  openHandles: number;
}

/** The handlers plus live counters. */
export interface Drive {
  handlers: FuseHandlers;
  stats: DriveStats;
}

/** Which requests use synchronous file I/O (bench/PERFORMANCE.md has the measurements). */
export const DRIVE_SYNC_IO = {
  readMaxBytes: config.syncReadMax(),
  writeMaxBytes: config.syncWriteMax(),
};

/** Build the FUSE handlers exposing `volume` as the single file `/volume`. */
export function createDriveHandlers(volume: Volume, options: DriveOptions): Drive {
  const readOnly = options.readOnly === true || volume.readOnly;
  volume.setSyncIo(DRIVE_SYNC_IO);
  const size = volume.sizeBytes;
  const started = new Date();
  const stats: DriveStats = {
    reads: 0,
    writes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    syncs: 0,
    openHandles: 0,
  };
  let nextHandle = 1;
  let lastWrite = started;

  /**
   * Count a request's failed container I/O before it is answered with EIO; returns the error
   * to rethrow. (A try/catch at each call: no extra promise per request on the success path.)
   */
  const failed = (kind: 'read' | 'write', err: unknown): unknown => {
    options.onIoError?.(kind, (err as Error)?.message ?? String(err));
    return err;
  };

  const checkFile = (path: string): void => {
    if (path !== DRIVE_PATH) throw new FuseErrno(ERRNO.ENOENT);
  };

  /** flush and fsync: make what was written durable, as closing or syncing a block device does. */
  async function syncVolume(op: 'flush' | 'fsync', path: string): Promise<void> {
    checkFile(path);
    if (readOnly) return;
    stats.syncs++;
    const span = traceStart(op, 0);
    const t = now();
    try {
      await volume.sync();
    } catch (err) {
      throw failed('write', err);
    }
    span?.phase('io', t);
    span?.end();
  }

  const handlers: FuseHandlers = {
    async getattr(path): Promise<FileAttributes> {
      const base = { uid: options.uid, gid: options.gid, atime: started, ctime: started };
      if (path === '/') {
        return { ...base, mode: 0o040700, size: 4096, nlink: 2, mtime: started };
      }
      checkFile(path);
      return {
        ...base,
        mode: readOnly ? 0o100400 : 0o100600,
        size,
        nlink: 1,
        mtime: lastWrite,
        blksize: volume.sectorSize,
        blocks: Math.ceil(size / 512),
      };
    },

    async readdir(path) {
      if (path !== '/') throw new FuseErrno(path === DRIVE_PATH ? ERRNO.ENOTDIR : ERRNO.ENOENT);
      return [DRIVE_FILE_NAME];
    },

    async open(path, flags) {
      checkFile(path);
      if (readOnly && (flags & O_ACCMODE) !== O_RDONLY) throw new FuseErrno(ERRNO.EROFS);
      // O_TRUNC would mean "make the drive 0 bytes": a drive has a fixed size.
      if (flags & O_TRUNC) throw new FuseErrno(ERRNO.EPERM);
      stats.openHandles++;
      return nextHandle++;
    },

    async release() {
      stats.openHandles = Math.max(0, stats.openHandles - 1);
    },

    async read(path, _handle, buffer: Buffer, length, position, state: RequestState) {
      checkFile(path);
      const n = Math.min(length, size - position);
      if (n <= 0) return 0; // at or past the end: EOF
      const span = traceStart('read', n);
      // Decrypted straight into the kernel's buffer; after any wait the volume first asks
      // whether the request timed out (then the buffer is no longer ours).
      let done: boolean;
      try {
        done = await volume.readInto(position, buffer.subarray(0, n), {
          span,
          abandoned: () => state.answered,
        });
      } catch (err) {
        throw failed('read', err);
      }
      span?.end();
      if (!done) return 0;
      stats.reads++;
      stats.bytesRead += n;
      return n;
    },

    async write(path, _handle, buffer: Buffer, length, position) {
      checkFile(path);
      if (readOnly) throw new FuseErrno(ERRNO.EROFS);
      if (position >= size) throw new FuseErrno(ERRNO.ENOSPC); // as a block device would
      const n = Math.min(length, size - position);
      const span = traceStart('write', n);
      try {
        await volume.write(position, buffer.subarray(0, n), span);
      } catch (err) {
        throw failed('write', err);
      }
      span?.end();
      stats.writes++;
      stats.bytesWritten += n;
      lastWrite = new Date();
      return n;
    },

    // close(2) of a handle: make what was written durable, as closing a block device does.
    flush: (path) => syncVolume('flush', path),

    fsync: (path) => syncVolume('fsync', path),

    async truncate(path, newSize) {
      checkFile(path);
      if (newSize !== size) throw new FuseErrno(ERRNO.EPERM); // fixed size
    },

    async utimens(path) {
      if (path !== '/') checkFile(path);
    },

    async statfs(): Promise<FsStats> {
      const blocks = Math.ceil(size / 4096);
      return {
        bsize: 4096,
        frsize: 4096,
        blocks,
        bfree: 0,
        bavail: 0,
        files: 2,
        ffree: 0,
        favail: 0,
        namemax: 255,
      };
    },
  };
  return { handlers, stats };
}
