/** {@link Storage} over a regular file, with positional I/O on one file descriptor. */
import {
  type Stats,
  constants as fsConstants,
  promises as fsp,
  readSync,
  writeSync,
} from 'node:fs';
import { IoError, UsageError } from '../../volume-format/errors.js';
import type { Storage } from './storage.js';

/** How to open a container file. */
export interface FileStorageOptions {
  readOnly?: boolean;
  /** Create the file; fails if it exists (`O_EXCL`). Mode 0600 (SPEC §9.1). */
  createExclusive?: boolean;
}

/** A file's identity, `(st_dev, st_ino)`: the same for every name of the file (SPEC §9.2). */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** A container file opened for positional reads and writes. */
export class FileStorage implements Storage {
  private constructor(
    private handle: fsp.FileHandle | null,
    /** Path the file was opened with (for messages). */
    readonly path: string,
  ) {}

  /**
   * Open (or exclusively create) `path`, which must be a regular file (`USAGE` otherwise).
   * Errors become `IoError`/`NOT_FOUND`/`FILE_EXISTS`.
   */
  static async open(path: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    let flags = options.readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR;
    if (options.createExclusive) flags |= fsConstants.O_CREAT | fsConstants.O_EXCL;
    // SPEC §9.1: container files are created with mode 0600, whatever the umask says.
    return new FileStorage(await openRegularFile(path, flags, 0o600), path);
  }

  private fd(): fsp.FileHandle {
    if (this.handle === null) throw new IoError('IO_ERROR', `${this.path}: already closed`);
    return this.handle;
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(length);
    const done = await this.readInto(offset, buf);
    return done === length ? buf : buf.subarray(0, done);
  }

  async readInto(offset: number, buffer: Uint8Array): Promise<number> {
    const length = buffer.length;
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await this.fd().read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) break; // end of file
        done += bytesRead;
      }
    } catch (err) {
      throw ioErrorFrom(err, `reading ${this.path} at ${offset}`);
    }
    return done;
  }

  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < data.length) {
        const { bytesWritten } = await this.fd().write(
          data,
          done,
          data.length - done,
          offset + done,
        );
        done += bytesWritten;
      }
    } catch (err) {
      throw ioErrorFrom(err, `writing ${this.path} at ${offset}`);
    }
  }

  readIntoSync(offset: number, buffer: Uint8Array): number {
    const fd = this.fd().fd;
    const length = buffer.length;
    let done = 0;
    try {
      while (done < length) {
        const n = readSync(fd, buffer, done, length - done, offset + done);
        if (n === 0) break; // end of file
        done += n;
      }
    } catch (err) {
      throw ioErrorFrom(err, `reading ${this.path} at ${offset}`);
    }
    return done;
  }

  writeAtSync(offset: number, data: Uint8Array): void {
    const fd = this.fd().fd;
    let done = 0;
    try {
      while (done < data.length) {
        done += writeSync(fd, data, done, data.length - done, offset + done);
      }
    } catch (err) {
      throw ioErrorFrom(err, `writing ${this.path} at ${offset}`);
    }
  }

  async sync(): Promise<void> {
    try {
      await this.fd().sync();
    } catch (err) {
      throw ioErrorFrom(err, `syncing ${this.path}`);
    }
  }

  async syncData(): Promise<void> {
    try {
      await this.fd().datasync();
    } catch (err) {
      throw ioErrorFrom(err, `syncing ${this.path}`);
    }
  }

  async size(): Promise<number> {
    return (await this.fd().stat()).size;
  }

  /** The identity of the open file (fstat), whatever name it was opened by. */
  async identity(): Promise<FileIdentity> {
    const st = await this.fd().stat({ bigint: true });
    return { dev: st.dev, ino: st.ino };
  }

  async truncate(length: number): Promise<void> {
    try {
      await this.fd().truncate(length);
    } catch (err) {
      throw ioErrorFrom(err, `resizing ${this.path}`);
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.close();
  }
}

/**
 * Open `path` with `flags` and refuse anything but a regular file. `O_NONBLOCK` is added so
 * that the open itself cannot wait: opening a FIFO read-only blocks until a writer appears,
 * which would hang the command before the check could refuse it. On a regular file the flag
 * changes nothing (Linux ignores it for disk files), so the descriptor serves normal I/O.
 */
export async function openRegularFile(
  path: string,
  flags: number,
  mode?: number,
): Promise<fsp.FileHandle> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, flags | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') {
      throw new UsageError('USAGE', `opening ${path}: not a regular file (a directory)`);
    }
    throw ioErrorFrom(err, `opening ${path}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new UsageError('USAGE', `opening ${path}: not a regular file (${kindOf(st)})`);
    }
    return handle;
  } catch (err) {
    await handle.close();
    if (err instanceof UsageError) throw err;
    throw ioErrorFrom(err, `opening ${path}`);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** Map a Node fs error to our error model with a "what failed: why" message. */
export function ioErrorFrom(err: unknown, what: string): IoError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EEXIST' ? 'file exists' : code;
  const ours =
    code === 'ENOENT'
      ? 'NOT_FOUND'
      : code === 'EEXIST'
        ? 'FILE_EXISTS'
        : code === 'ENOSPC'
          ? 'NO_SPACE'
          : code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
            ? 'READ_ONLY'
            : 'IO_ERROR';
  return new IoError(ours, `${what}: ${why ?? (err as Error).message}`, { cause: err });
}
