/**
 * The container lock (SPEC §9.2): flock(2) on a descriptor of the container file itself,
 * `exclusive` for writers and `shared` for readers that must exclude them. The lock belongs to
 * the file, so every name of it (symlink, hard link, bind mount) sees it, and the kernel drops
 * it when its process ends, so no lock is ever stale. Nothing is written beside the container:
 * `<container>.lock` files of earlier versions are ignored.
 *
 * Each lock holds a descriptor of its own (read-only, close-on-exec), opened by path and
 * checked against the identity of the descriptor used for I/O (src/io/container-file.ts), so
 * it can be released independently of the storage and never touches a reused descriptor
 * number.
 */
import { constants as fsConstants, promises as fsp, readFileSync } from 'node:fs';
import { BusyError, CryptainerError, IoError } from '../../volume-format/errors.js';
import { type FileIdentity, type FileStorage, ioErrorFrom } from './file-storage.js';
import { type FlockEngine, type FlockMode, flockEngine } from './flock.js';
import { liveProcessStartTime } from './process-start.js';

export type { FlockMode as LockMode } from './flock.js';

/** A held lock; `release()` drops it (idempotent). */
export interface HeldLock {
  /** The path the locked file was opened by (for messages). */
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Lock the file at `path` in `mode` through a descriptor of its own. With `expect`, the file
 * must be that one (the caller's I/O descriptor), else `IO_ERROR`: it was replaced meanwhile.
 * Throws `VOLUME_BUSY` when another open file description holds a conflicting lock.
 */
export async function lockFile(
  path: string,
  mode: FlockMode,
  expect?: FileIdentity,
  engine: FlockEngine = flockEngine,
): Promise<HeldLock> {
  let handle: fsp.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer.
    handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw ioErrorFrom(err, `locking ${path}`);
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (expect && (st.dev !== expect.dev || st.ino !== expect.ino)) {
      throw new IoError('IO_ERROR', `locking ${path}: the file was replaced while opening it`);
    }
    if (!engine.tryLock(handle.fd, mode)) throw busyError(path, { dev: st.dev, ino: st.ino });
  } catch (err) {
    await handle.close();
    // ENOLCK (a filesystem without locks), ...: one line with our code, never a stack trace.
    throw err instanceof CryptainerError ? err : ioErrorFrom(err, `locking ${path}`);
  }
  let held: fsp.FileHandle | null = handle;
  return {
    path,
    async release() {
      const h = held;
      held = null;
      // Closing the only descriptor of the open file description releases its lock.
      if (h) await h.close();
    },
  };
}

/**
 * Check that `path` could be locked in `mode` right now (`VOLUME_BUSY` if not), holding
 * nothing afterwards: `mount` asks before it prompts for a passphrase. The serving process
 * takes the real lock.
 */
export async function probeLock(path: string, mode: FlockMode): Promise<void> {
  await (await lockFile(path, mode)).release();
}

/** The locks of a `create`: the file it will replace, and the new file. */
export interface CreateLock extends HeldLock {
  /** Lock the freshly created temporary file exclusively; the lock follows it through rename. */
  lockNew(file: FileStorage): Promise<void>;
}

/**
 * SPEC §9.2 (create): lock an existing file at `path` exclusively (`VOLUME_BUSY` if in use),
 * following symlinks, so `create --force` cannot replace a volume that is mounted or open
 * through any of its names. Nothing to lock when there is no file (or one we may not read:
 * then it is not ours to be using either).
 */
export async function lockCreateTarget(path: string): Promise<CreateLock> {
  const held: HeldLock[] = [];
  try {
    held.push(await lockFile(path, 'exclusive'));
  } catch (err) {
    const code = (err as IoError).code;
    if (code !== 'NOT_FOUND' && code !== 'READ_ONLY') throw err;
  }
  return {
    path,
    async lockNew(file) {
      held.push(await lockFile(file.path, 'exclusive', await file.identity()));
    },
    async release() {
      for (const lock of held.splice(0)) await lock.release();
    },
  };
}

function busyError(path: string, id: FileIdentity): BusyError {
  const pid = lockHolder(id);
  const who = pid !== null ? `process ${pid}` : 'another process';
  return new BusyError(
    'VOLUME_BUSY',
    `volume is busy: ${path} is locked by ${who} (mounted, or open in another command)`,
  );
}

/**
 * The live process that took a flock lock on the file `id`, read from /proc/locks, or null.
 * Best effort, for the message only: /proc/locks names the process that called flock(2),
 * which for the flock(1) engine is a child that has exited.
 */
function lockHolder(id: FileIdentity): number | null {
  // st_dev in the kernel's encoding: major in bits 8–19 and 32+, minor in 0–7 and 20–31;
  // /proc/locks prints them in hex.
  const dev = id.dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${id.ino}`;
  try {
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1] !== 'FLOCK' || f[5] !== want) continue;
      const pid = Number(f[4]);
      if (Number.isInteger(pid) && pid > 0 && liveProcessStartTime(pid) !== null) return pid;
    }
  } catch {
    // no /proc/locks: the message names no process
  }
  return null;
}
