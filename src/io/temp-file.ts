/**
 * Temporary files that become their target by a rename (SPEC §9.1 step 1): named
 * `.<name>.cryptainer-tmp-<pid>-<start>-<random>` next to the target, so that the name says
 * which process owns the file. A process killed before its rename (SIGKILL, power loss) leaves
 * the file behind; {@link removeStaleTemps} finds those of a target whose owner no longer runs.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ioErrorFrom } from './file-storage.js';
import { liveProcessStartTime, processRuns } from './process-start.js';

const MARK = '.cryptainer-tmp-';
/** `<pid>-<start>-<random hex>`: the owner's PID and start time (field 22 of /proc/PID/stat). */
const OWNED = /^([1-9][0-9]{0,9})-([0-9]{1,20})-[0-9a-f]{8,64}$/;
/** Earlier versions named temporaries `<12 random hex>`, without their owner. */
const LEGACY = /^[0-9a-f]{12}$/;
/**
 * A legacy temporary file unchanged for this long is stale: its writer filled it without a
 * pause (many writes a second) and renamed it right after, so an idle one was abandoned.
 */
const LEGACY_IDLE_MS = 10 * 60 * 1000;

/** A temporary name for `target` owned by this process (`random`: a few random bytes). */
export function tempPathFor(target: string, random: Uint8Array): string {
  const start = liveProcessStartTime(process.pid) ?? '0';
  const hex = Buffer.from(random).toString('hex');
  return join(dirname(target), `.${basename(target)}${MARK}${process.pid}-${start}-${hex}`);
}

/** A stale temporary file of a target, and whether it could be removed. */
export interface StaleTemp {
  path: string;
  /** Why it is stale ("its process 1234 no longer runs"). */
  why: string;
  /** Why it could not be removed, or null once it is gone. */
  error: string | null;
}

/**
 * Remove the temporary files of `target` whose owner no longer runs (a recorded PID that is
 * gone or now belongs to a process with another start time; for an earlier version's name,
 * no change for ten minutes). A temporary file of a running process is left alone. Returns
 * what was found stale; a file that cannot be removed is reported, not thrown.
 */
export async function removeStaleTemps(target: string): Promise<StaleTemp[]> {
  const dir = dirname(target);
  const prefix = `.${basename(target)}${MARK}`;
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    throw ioErrorFrom(err, `reading the directory of ${target}`);
  }
  const found: StaleTemp[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const path = join(dir, name);
    const why = await staleReason(path, name.slice(prefix.length));
    if (why === null) continue;
    let error: string | null = null;
    try {
      await fsp.unlink(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // removed meanwhile (by another create)
      error = code ?? (err as Error).message;
    }
    found.push({ path, why, error });
  }
  return found;
}

/** Why `path` (a regular file, suffix `rest` after the mark) is stale, or null if it is not. */
async function staleReason(path: string, rest: string): Promise<string | null> {
  const owned = OWNED.exec(rest);
  if (owned === null && !LEGACY.test(rest)) return null; // not one of ours
  let st;
  try {
    st = await fsp.lstat(path);
  } catch {
    return null;
  }
  if (!st.isFile()) return null;
  if (owned !== null) {
    const pid = Number(owned[1]);
    return processRuns(pid, owned[2]!) ? null : `its process ${pid} no longer runs`;
  }
  const idleMs = Date.now() - st.mtimeMs;
  if (idleMs < LEGACY_IDLE_MS) return null;
  return `left by an earlier version, unchanged for ${Math.floor(idleMs / 60_000)} minutes`;
}
