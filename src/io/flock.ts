/**
 * flock(2) on a file descriptor (SPEC §9.2), which Node has no API for. The one file that
 * loads native/file-lock.c (built into dist/native/file-lock.node by scripts/build-native.mjs).
 *
 * Without the addon (a build with CRYPTAINER_SKIP_NATIVE=1, or no C compiler) the same kernel
 * lock is taken by util-linux's `flock -n -x|-s 3`, run as a child that inherits our
 * descriptor as its fd 3. A flock lock belongs to the open file description, which the child
 * shares with us: when the child exits, its copy of the descriptor closes, but ours keeps the
 * description open and so keeps the lock (test/io/lock.test.ts checks this). Both engines call
 * flock(2), so they see each other; fcntl/OFD record locks would not (Linux keeps the two kinds
 * apart), which is why neither engine offers them.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { IoError } from '../../volume-format/errors.js';

/** `exclusive` (LOCK_EX) for writers, `shared` (LOCK_SH) for readers that exclude writers. */
export type FlockMode = 'exclusive' | 'shared';

/** One way of calling flock(2). Never waits: LOCK_NB always. */
export interface FlockEngine {
  readonly name: 'native' | 'flock(1)';
  /** True when taken; false when another open file description holds a conflicting lock. */
  tryLock(fd: number, mode: FlockMode): boolean;
  /** Release the lock of this descriptor's open file description. */
  unlock(fd: number): void;
}

interface FileLockAddon {
  tryLock(fd: number, exclusive: boolean): boolean;
  unlock(fd: number): void;
}

/** dist/src/io/flock.js → dist/native/file-lock.node. */
const ADDON_PATH = '../../native/file-lock.node';

function loadAddon(): FileLockAddon | null {
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as FileLockAddon;
    return typeof addon.tryLock === 'function' && typeof addon.unlock === 'function' ? addon : null;
  } catch {
    return null;
  }
}

const addon = loadAddon();

/** flock(2) through the native addon, or null when it is not built. */
export const nativeFlock: FlockEngine | null = addon && {
  name: 'native',
  tryLock: (fd, mode) => addon.tryLock(fd, mode === 'exclusive'),
  unlock: (fd) => addon.unlock(fd),
};

/** flock(1)'s exit status on a conflict (`-E`): distinct from its error statuses (1, 64–74). */
const CONFLICT_STATUS = 100;

/** Run `flock ARGS 3` with `fd` as the child's fd 3; returns its exit status. */
function runFlock(fd: number, args: string[]): number {
  const r = spawnSync('flock', [...args, '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
  });
  if (r.error || r.status === null) {
    const why = r.error ? r.error.message : `killed by ${r.signal}`;
    throw new IoError(
      'IO_ERROR',
      `locking: running flock(1): ${why} (install util-linux, or build the native addon)`,
    );
  }
  if (r.status !== 0 && r.status !== CONFLICT_STATUS) {
    const why = r.stderr.trim().split('\n')[0] || `exit status ${r.status}`;
    throw new IoError('IO_ERROR', `locking: flock(1): ${why}`);
  }
  return r.status;
}

/** flock(2) through util-linux's flock(1) on an inherited descriptor (see the module note). */
export const utilLinuxFlock: FlockEngine = {
  name: 'flock(1)',
  tryLock: (fd, mode) =>
    runFlock(fd, ['-n', '-E', String(CONFLICT_STATUS), mode === 'exclusive' ? '-x' : '-s']) === 0,
  unlock: (fd) => void runFlock(fd, ['-u']),
};

/** The engine in use: the addon when it loaded, else flock(1). */
export const flockEngine: FlockEngine = nativeFlock ?? utilLinuxFlock;
