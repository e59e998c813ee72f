/**
 * The only importer of `fuse-native` (ARCHITECTURE §2: one native dependency, one file).
 *
 * fuse-native 2.2.6 is unmaintained and has sharp edges (FACTS.md); this file turns it into a
 * small promise API with these guarantees:
 * - every FUSE request is answered exactly once: handler exceptions become errno replies (EIO
 *   when they carry no errno) and a per-operation timeout answers a request whose handler
 *   never settles, so no reader is wedged in uninterruptible sleep;
 * - a reply never touches the kernel's buffer after the request was answered (the handler gets
 *   a {@link RequestState} to check before writing into a read buffer);
 * - large requests: `big_writes` and `max_write` are missing from fuse-native's option
 *   whitelist, so they ride in the `fsname` option, which libfuse splits on commas;
 * - unmounting is never lazy: fuse-native's own unmount runs `fusermount -uz` and reports
 *   success even while busy; here a busy mount is refused with `VOLUME_BUSY`;
 * - a stale mount (its server died: ENOTCONN) at the mountpoint is detected and cleaned first.
 */
import { spawn } from 'node:child_process';
import { openSync, promises as fsp, readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { BusyError, CryptainerError, MountError } from '../../volume-format/errors.js';

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

// ---- fuse-native, typed just as far as we use it ----------------------------------------

type NativeCallback = (result: number, ...values: unknown[]) => void;
type NativeOps = Record<string, (...args: never[]) => void>;
interface NativeFuse {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface NativeFuseClass {
  new (mnt: string, ops: NativeOps, opts: Record<string, unknown>): NativeFuse;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
}

const requireCjs = createRequire(import.meta.url);
let nativeClass: NativeFuseClass | null = null;

/** Load fuse-native on first use (so commands that never mount do not load the addon). */
function loadNative(): NativeFuseClass {
  if (nativeClass) return nativeClass;
  let cls: NativeFuseClass;
  try {
    cls = requireCjs('fuse-native') as NativeFuseClass;
  } catch (err) {
    throw new MountError(
      'FUSE_ERROR',
      `loading fuse-native: ${(err as Error).message} (is the libfuse2 package installed?)`,
      { cause: err },
    );
  }
  // fuse-native's close path calls the static Fuse.unmount, which runs `fusermount -uz`: a
  // lazy detach that always "succeeds". We unmount strictly ourselves before closing, so the
  // replacement only has to unmount what is still mounted, never lazily.
  cls.unmount = (mnt, cb) => {
    unmountStrict(mnt).then(
      () => cb(null),
      (err: Error) => cb(err),
    );
  };
  nativeClass = cls;
  return cls;
}

// ---- mountinfo helpers (kept here so the adapter does not depend on the rest of drive/) -----

/** True when `path` is a mountpoint listed in /proc/self/mountinfo. */
export async function isMountpoint(path: string): Promise<boolean> {
  const abs = resolve(path);
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined && unescapeMountPath(field) === abs) return true;
  }
  return false;
}

/**
 * The device number ("major:minor") of the topmost mount at `path`, from mountinfo: unlike
 * stat(2), reading it sends no request to the file system (a FUSE mount not yet serving would
 * block the caller).
 */
export async function mountDevice(path: string): Promise<string | null> {
  const abs = resolve(path);
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  let device: string | null = null;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined && unescapeMountPath(fields[4]) === abs) device = fields[2] ?? null;
  }
  return device;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
export function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Output of a command run by {@link runCommand}. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The signal that ended the command, if one did (then `code` is 124 for SIGKILL, else 128). */
  signal?: NodeJS.Signals | null;
}

/** Options of {@link runCommand}. */
export interface RunCommandOptions {
  /**
   * The caller handles interruptions itself: the command runs in a process group of its own
   * (a Ctrl-C at the terminal reaches only the caller, which decides when to stop it), and
   * aborting this signal ends it (SIGTERM, then SIGKILL after {@link STOP_GRACE_MS}).
   */
  stop?: AbortSignal;
}

/** How long a command asked to stop (SIGTERM) may take before it is killed. */
export const STOP_GRACE_MS = 5000;

let devNull: number | null = null;

/** Our descriptors open on /dev/fuse (one per live mount of this process). */
function fuseDeviceFds(): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === '/dev/fuse') out.push(Number(name));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/**
 * Run a program asynchronously (never blocking: this process may be serving the drive the
 * program works on), with a time limit (`timeoutMs` 0 = none).
 *
 * libfuse opens /dev/fuse without O_CLOEXEC, so every child would inherit the drive's FUSE
 * connection. A long-lived child (the ntfs-3g daemon) would then keep that connection alive
 * after our death, and its own reads of the drive would wait forever for an answer instead of
 * failing with ENOTCONN (measured: ntfs-3g and everything touching its mount hung in
 * request_wait_answer). Node cannot set FD_CLOEXEC, so in each child those descriptor numbers
 * are overwritten with /dev/null through the stdio table (libuv dup2's each entry in place).
 */
export function runCommand(
  file: string,
  args: string[],
  timeoutMs: number,
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const stdio: (number | 'pipe' | 'ignore')[] = ['ignore', 'pipe', 'pipe'];
  const fds = fuseDeviceFds().filter((fd) => fd > 2);
  if (fds.length > 0) {
    devNull ??= openSync('/dev/null', 'r+');
    const max = Math.max(...fds);
    while (stdio.length <= max) stdio.push('ignore');
    for (const fd of fds) stdio[fd] = devNull;
  }
  return new Promise((done) => {
    let stdout = '';
    let stderr = '';
    let child;
    const { stop } = options;
    try {
      // detached: setsid(2), a process group (and session) of its own.
      child = spawn(file, args, { stdio, detached: stop !== undefined });
    } catch (err) {
      done({ code: 127, stdout, stderr: `${file}: ${(err as Error).message}` });
      return;
    }
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = timeoutMs > 0 ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    let grace: NodeJS.Timeout | undefined;
    const onStop = (): void => {
      child.kill('SIGTERM');
      grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    };
    if (stop?.aborted) onStop();
    else stop?.addEventListener('abort', onStop, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      stderr += err.code === 'ENOENT' ? `${file}: command not found` : err.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(grace);
      stop?.removeEventListener('abort', onStop);
      const status = code ?? (signal === 'SIGKILL' ? 124 : 128);
      done({ code: stderr.endsWith('command not found') ? 127 : status, stdout, stderr, signal });
    });
  });
}

/**
 * Unmount a FUSE mount, never lazily. Root uses umount(8) (libfuse mounted it with mount(2)
 * directly); a normal user needs the setuid fusermount. Busy → `VOLUME_BUSY`.
 */
export async function unmountStrict(mountpoint: string): Promise<void> {
  const abs = resolve(mountpoint);
  if (!(await isMountpoint(abs))) return;
  const asRoot = process.getuid?.() === 0;
  const r = asRoot
    ? await runCommand('umount', [abs], 60_000)
    : await runCommand('fusermount', ['-u', abs], 60_000);
  if (r.code === 0) return;
  if (!(await isMountpoint(abs))) return; // someone else unmounted it meanwhile
  if (/busy/i.test(r.stderr)) {
    throw new BusyError('VOLUME_BUSY', `unmounting ${abs}: target is busy`);
  }
  throw new MountError('FUSE_ERROR', `unmounting ${abs}: ${r.stderr.trim() || `status ${r.code}`}`);
}

/**
 * If `mountpoint` holds a FUSE mount whose server is gone (every access fails with ENOTCONN),
 * unmount it. Returns true if one was cleaned. A dead mount that is still in use (a loop device
 * or an open file on it) cannot be removed strictly; it is then detached lazily, which is safe
 * because no request can reach a dead server anyway.
 */
export async function cleanStaleFuseMount(mountpoint: string): Promise<boolean> {
  const abs = resolve(mountpoint);
  if (!(await isMountpoint(abs))) return false;
  try {
    await fsp.stat(abs);
    return false; // it answers: alive, not ours to clean
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTCONN') return false;
  }
  try {
    await unmountStrict(abs);
  } catch {
    const asRoot = process.getuid?.() === 0;
    await (asRoot
      ? runCommand('umount', ['-l', abs], 60_000)
      : runCommand('fusermount', ['-u', '-z', abs], 60_000));
  }
  return !(await isMountpoint(abs));
}

// ---- answering requests ------------------------------------------------------------------

/** Map an exception from a handler to a positive errno. */
function errnoOf(err: unknown): number {
  if (err instanceof FuseErrno) return err.errno;
  if (err instanceof CryptainerError) {
    switch (err.code) {
      case 'READ_ONLY':
        return ERRNO.EROFS;
      case 'NO_SPACE':
        return ERRNO.ENOSPC;
      case 'NOT_FOUND':
        return ERRNO.ENOENT;
      default:
        return ERRNO.EIO;
    }
  }
  if (err instanceof RangeError) return ERRNO.EINVAL;
  return ERRNO.EIO;
}

type Kind = 'data' | 'sync' | 'meta';

interface Answerer {
  /**
   * Run `work` and answer with its values, an errno for its failure, or ETIMEDOUT. fuse-native
   * fills in the defaults it needs after an error code itself.
   */
  run(
    op: string,
    kind: Kind,
    reply: NativeCallback,
    work: (state: RequestState) => Promise<unknown[]>,
  ): void;
  /** Number of requests being served right now. */
  readonly inFlight: number;
}

function makeAnswerer(options: FuseMountOptions): Answerer {
  const limits: Record<Kind, number> = {
    data: options.dataTimeoutMs ?? 60_000,
    sync: options.syncTimeoutMs ?? 300_000,
    meta: options.metaTimeoutMs ?? 10_000,
  };
  let inFlight = 0;
  return {
    get inFlight() {
      return inFlight;
    },
    run(op, kind, reply, work) {
      let answered = false;
      const state: RequestState = {
        get answered() {
          return answered;
        },
      };
      const send = (result: number, values: unknown[]): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        inFlight--;
        reply(result, ...values);
      };
      inFlight++;
      const timer = setTimeout(() => {
        options.onError?.(op, new Error(`${op}: no answer after ${limits[kind]} ms`));
        send(-ERRNO.ETIMEDOUT, []);
      }, limits[kind]);
      let promise: Promise<unknown[]>;
      try {
        promise = work(state);
      } catch (err) {
        promise = Promise.reject(err);
      }
      promise.then(
        (values) => {
          // read/write answer with the byte count as the result; others with 0 and values.
          if (op === 'read' || op === 'write') send(values[0] as number, []);
          else send(0, values);
        },
        (err: unknown) => {
          if (!(err instanceof FuseErrno)) options.onError?.(op, err);
          send(-errnoOf(err), []);
        },
      );
    },
  };
}

/** fuse-native's callback-style operation table over our promise handlers. */
function nativeOps(h: FuseHandlers, a: Answerer): NativeOps {
  const ops: Record<string, unknown> = {
    getattr: (path: string, cb: NativeCallback) =>
      a.run('getattr', 'meta', cb, async () => [await h.getattr(path)]),
    readdir: (path: string, cb: NativeCallback) =>
      a.run('readdir', 'meta', cb, async () => [await h.readdir(path)]),
    open: (path: string, flags: number, cb: NativeCallback) =>
      a.run('open', 'meta', cb, async () => [await h.open(path, flags)]),
    release: (path: string, fd: number, cb: NativeCallback) =>
      a.run('release', 'sync', cb, async () => {
        await h.release(path, fd);
        return [];
      }),
    read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: NativeCallback) =>
      a.run('read', 'data', cb, async (state) => [await h.read(path, fd, buf, len, pos, state)]),
    write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: NativeCallback) =>
      a.run('write', 'data', cb, async () => [await h.write(path, fd, buf, len, pos)]),
  };
  if (h.flush) {
    const flush = h.flush.bind(h);
    ops.flush = (path: string, fd: number, cb: NativeCallback) =>
      a.run('flush', 'sync', cb, async () => {
        await flush(path, fd);
        return [];
      });
  }
  if (h.fsync) {
    const fsync = h.fsync.bind(h);
    ops.fsync = (path: string, datasync: number, fd: number, cb: NativeCallback) =>
      a.run('fsync', 'sync', cb, async () => {
        await fsync(path, datasync !== 0, fd);
        return [];
      });
  }
  if (h.truncate) {
    const truncate = h.truncate.bind(h);
    ops.truncate = (path: string, size: number, cb: NativeCallback) =>
      a.run('truncate', 'data', cb, async () => {
        await truncate(path, size);
        return [];
      });
    ops.ftruncate = (path: string, _fd: number, size: number, cb: NativeCallback) =>
      a.run('ftruncate', 'data', cb, async () => {
        await truncate(path, size);
        return [];
      });
  }
  if (h.utimens) {
    const utimens = h.utimens.bind(h);
    ops.utimens = (path: string, atime: number, mtime: number, cb: NativeCallback) =>
      a.run('utimens', 'meta', cb, async () => {
        await utimens(path, new Date(atime), new Date(mtime));
        return [];
      });
  }
  if (h.chmod) {
    const chmod = h.chmod.bind(h);
    ops.chmod = (path: string, mode: number, cb: NativeCallback) =>
      a.run('chmod', 'meta', cb, async () => {
        await chmod(path, mode);
        return [];
      });
  }
  if (h.chown) {
    const chown = h.chown.bind(h);
    ops.chown = (path: string, uid: number, gid: number, cb: NativeCallback) =>
      a.run('chown', 'meta', cb, async () => {
        await chown(path, uid, gid);
        return [];
      });
  }
  if (h.statfs) {
    const statfs = h.statfs.bind(h);
    ops.statfs = (path: string, cb: NativeCallback) =>
      a.run('statfs', 'meta', cb, async () => [await statfs(path)]);
  }
  return ops as NativeOps;
}

/** The `-o` option string, with the options fuse-native does not whitelist inside fsname. */
export function fuseOptionString(options: FuseMountOptions): string {
  if (!/^[A-Za-z0-9._-]+$/.test(options.fsname)) {
    throw new RangeError(`fsname "${options.fsname}": use letters, digits, ".", "_" and "-"`);
  }
  // FACTS.md: without big_writes every write request is 4 KiB (4-6x slower); libfuse splits
  // the fsname value on commas, so these reach libfuse as options of their own.
  const extra = ['big_writes', `max_write=${options.maxWriteBytes ?? 131072}`];
  if (options.readOnly) extra.push('ro');
  return [options.fsname, ...extra].join(',');
}

/**
 * Mount `handlers` at `mountpoint` (an existing empty directory). Resolves once the kernel
 * has sent INIT, i.e. the mount is live. A stale mount left by a dead server at the same
 * place is cleaned first. Throws `MOUNT_FAILED` or `FUSE_ERROR`.
 */
export async function mountFuse(
  mountpoint: string,
  handlers: FuseHandlers,
  options: FuseMountOptions,
): Promise<FuseMount> {
  const abs = resolve(mountpoint);
  const Fuse = loadNative();
  await cleanStaleFuseMount(abs);
  if (await isMountpoint(abs)) {
    throw new BusyError('VOLUME_BUSY', `mounting the drive at ${abs}: something is mounted there`);
  }
  const answerer = makeAnswerer(options);
  const nativeOpts: Record<string, unknown> = {
    fsname: fuseOptionString(options),
    // Backstop only: our own answerer always replies first (its limits are shorter).
    timeout: { default: 2 * (options.syncTimeoutMs ?? 300_000) },
  };
  if (options.allowRoot) nativeOpts.allowRoot = true;
  const fuse = new Fuse(abs, nativeOps(handlers, answerer), nativeOpts);
  const limit = options.mountTimeoutMs ?? 30_000;
  await new Promise<void>((done, fail) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      fail(
        new MountError('MOUNT_FAILED', `mounting the drive at ${abs}: no INIT after ${limit} ms`),
      );
    }, limit);
    fuse.mount((err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!err) done();
      else {
        const hint =
          err.message === 'fuse failed'
            ? ' (is /dev/fuse usable by this user, and fusermount installed?)'
            : '';
        fail(
          new MountError('MOUNT_FAILED', `mounting the drive at ${abs}: ${err.message}${hint}`, {
            cause: err,
          }),
        );
      }
    });
  }).catch(async (err: unknown) => {
    await unmountStrict(abs).catch(() => undefined);
    throw err;
  });
  let unmounted = false;
  return {
    mountpoint: abs,
    pageCached: false,
    async unmount() {
      if (unmounted) return;
      await unmountStrict(abs); // throws VOLUME_BUSY and leaves the mount served
      unmounted = true;
      // Lets fuse-native release its event-loop handle; the kernel mount is already gone.
      await new Promise<void>((done) => fuse.unmount(() => done()));
    },
  };
}
