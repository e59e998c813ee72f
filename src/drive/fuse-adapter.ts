/**
 * The only importer of `fuse-native` (ARCHITECTURE.md §2: one native dependency, one file).
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
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { BusyError, CryptainerError, MountError } from '../../volume-format/errors.js';
import {
  ERRNO,
  FuseErrno,
  type FuseHandlers,
  type FuseMount,
  type FuseMountOptions,
  type RequestState,
} from './fuse-types.js';
import { cleanStaleFuseMount, isMountpoint, unmountStrict } from './host-mount.js';

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
