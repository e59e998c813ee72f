/**
 * Exclusive lock on a container for read-write use (SPEC §9.2): a `<container>.lock` file
 * created with O_EXCL holding the owner's PID and process start time. Node has no flock(2);
 * a lock file whose owner is gone (SIGKILL, power loss) is recognised as stale and replaced,
 * and the start time guards against a recycled PID.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { BusyError } from '../../volume-format/errors.js';
import { ioErrorFrom } from './file-storage.js';

/** A held lock; `release()` removes the lock file (idempotent). */
export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  start: string;
}

/** Path of the lock file guarding `containerPath`. */
export function lockPathFor(containerPath: string): string {
  return `${containerPath}.lock`;
}

/** Start time of a process (field 22 of /proc/PID/stat), or null if it does not exist. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A zombie (state Z) has exited and closed everything; it only waits to be reaped, which
    // init may take seconds to do for an orphaned mount server killed by SIGKILL.
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return fields[19] ?? null; // field 22 overall = index 19 after pid and comm
  } catch {
    return null;
  }
}

/** The owner recorded in an existing lock file, or null when it is gone or unreadable. */
export async function readLockOwner(containerPath: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse(await fsp.readFile(lockPathFor(containerPath), 'utf8')) as LockOwner;
    if (typeof owner.pid !== 'number' || typeof owner.start !== 'string') return null;
    return processStartTime(owner.pid) === owner.start ? owner : null;
  } catch {
    return null;
  }
}

/**
 * Take the exclusive lock on `containerPath`. Throws `VOLUME_BUSY` when a live process holds it.
 */
export async function acquireLock(containerPath: string): Promise<HeldLock> {
  const path = lockPathFor(containerPath);
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid) ?? '' };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await fsp.open(path, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify(me));
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          await fsp.rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw ioErrorFrom(err, `locking ${containerPath}`);
      }
    }
    const owner = await readLockOwner(containerPath);
    if (owner !== null) {
      throw new BusyError(
        'VOLUME_BUSY',
        `volume is busy: in use by process ${owner.pid} (lock ${path})`,
      );
    }
    // Stale: its owner died without releasing it. Remove and try again.
    await fsp.rm(path, { force: true });
  }
  throw new BusyError('VOLUME_BUSY', `volume is busy: could not take lock ${path}`);
}
