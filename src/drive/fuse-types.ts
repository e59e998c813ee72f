/**
 * The binding-neutral FUSE contract of the drive: errno numbers, the handler interface a
 * mount serves, mount options and the live-mount handle. Both servers implement it: the
 * fuse-native binding (fuse-adapter.ts, normal users) and the /dev/fuse server
 * (kernel-fuse.ts, root). Swapping the binding means a new file behind these types
 * (ARCHITECTURE.md §12).
 */
/** errno numbers (Linux) the drive answers with. Handlers throw {@link FuseErrno} with these. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EBUSY: 16,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;

/** Throw from a handler to answer the request with this errno. */
export class FuseErrno extends Error {
  constructor(
    /** Positive Linux errno, e.g. `ERRNO.ENOENT`. */
    readonly errno: number,
    message = `errno ${errno}`,
  ) {
    super(message);
    this.name = 'FuseErrno';
  }
}

/** Attributes of one file or directory (what `stat` shows inside the FUSE mount). */
export interface FileAttributes {
  mode: number;
  size: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
  blksize?: number;
  blocks?: number;
}

/** Result of `statfs` on the FUSE mount. */
export interface FsStats {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/** Lets a handler learn whether its request was already answered (timed out). */
export interface RequestState {
  /** True once a reply was sent; the request's buffer must not be touched any more. */
  readonly answered: boolean;
}

/**
 * The filesystem a FUSE mount serves. Every method may throw {@link FuseErrno}; any other
 * exception is answered with EIO and reported through {@link FuseMountOptions.onError}.
 * Optional methods that are absent are answered by the kernel's defaults (ENOSYS).
 */
export interface FuseHandlers {
  getattr(path: string): Promise<FileAttributes>;
  readdir(path: string): Promise<string[]>;
  /** Returns a file handle number. */
  open(path: string, flags: number): Promise<number>;
  release(path: string, handle: number): Promise<void>;
  /** Fill `buffer[0, length)` with the bytes at `position`; returns the count (short = EOF). */
  read(
    path: string,
    handle: number,
    buffer: Buffer,
    length: number,
    position: number,
    state: RequestState,
  ): Promise<number>;
  /** Store `buffer[0, length)` at `position`; returns the count written. */
  write(
    path: string,
    handle: number,
    buffer: Buffer,
    length: number,
    position: number,
  ): Promise<number>;
  flush?(path: string, handle: number): Promise<void>;
  fsync?(path: string, dataOnly: boolean, handle: number): Promise<void>;
  truncate?(path: string, size: number): Promise<void>;
  utimens?(path: string, atime: Date, mtime: Date): Promise<void>;
  chmod?(path: string, mode: number): Promise<void>;
  chown?(path: string, uid: number, gid: number): Promise<void>;
  statfs?(path: string): Promise<FsStats>;
}

/** How to mount. */
export interface FuseMountOptions {
  /** Shown as the mount's source in /proc/self/mountinfo; letters, digits, `-_.` only. */
  fsname: string;
  /** Mount read-only (the kernel refuses writes before they reach us). */
  readOnly?: boolean;
  /** Let root open the files of a mount owned by a normal user (needs `user_allow_other`). */
  allowRoot?: boolean;
  /** Largest write request; libfuse2 caps it at 128 KiB. */
  maxWriteBytes?: number;
  /** Answer read/write/truncate requests with ETIMEDOUT after this long (default 60 s). */
  dataTimeoutMs?: number;
  /** Same for fsync, flush and release, which may wait for the disk (default 300 s). */
  syncTimeoutMs?: number;
  /** Same for every other request (default 10 s). */
  metaTimeoutMs?: number;
  /** Give up mounting after this long (default 30 s). */
  mountTimeoutMs?: number;
  /** Called for handler failures that were not a deliberate {@link FuseErrno}. */
  onError?: (operation: string, error: unknown) => void;
}

/** A live FUSE mount. */
export interface FuseMount {
  /** Absolute mountpoint. */
  readonly mountpoint: string;
  /**
   * True when the kernel keeps the drive file's pages in its own cache and writes them back
   * later (FUSE writeback cache, kernel-fuse.ts): a loop device on the drive should then be
   * attached buffered, so reads and writes are served from that cache. False for fuse-native,
   * where every request is a round trip and the loop device should use direct I/O.
   */
  readonly pageCached: boolean;
  /**
   * Unmount without detaching lazily. Throws `VOLUME_BUSY` if a process or a loop device
   * still uses the mount (the mount stays and keeps being served). Idempotent.
   */
  unmount(): Promise<void>;
}
