/**
 * The runtime registry of mounted volumes, read by `list` and `unmount`. One directory per
 * mount under the runtime directory:
 *
 * ```
 * <runtime>/mounts/<id>/info.json   what is mounted where, served by which process
 * <runtime>/mounts/<id>/drive/      mountpoint of the FUSE drive (holds the file "volume")
 * <runtime>/mounts/<id>/server.log  the background server's stderr
 * ```
 *
 * The runtime directory is /run/cryptainer for root, `$XDG_RUNTIME_DIR/cryptainer` for other
 * users (falling back to /tmp/cryptainer-<uid>), or `$CRYPTAINER_RUNTIME_DIR` when set (tests
 * use it to keep their mounts apart). It is created mode 0700 and must belong to the user:
 * the drive inside exposes cleartext.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoError } from '../../volume-format/errors.js';
import type { FileIdentity } from '../io/file-storage.js';
import type { FilesystemKind } from './filesystem.js';

/** What info.json records about one mount. */
export interface MountRecord {
  /** Registry id (directory name). */
  id: string;
  /** Absolute path of the container file. */
  container: string;
  /**
   * The container's identity, `st_dev` and `st_ino` in decimal: how `mount` and `unmount FILE`
   * recognise it through any name (symlink, hard link, bind mount). Absent in records written
   * by earlier versions, which are matched by path.
   */
  containerDev?: string;
  containerIno?: string;
  /** Absolute path where the user sees the files (or the raw drive with `none`). */
  mountpoint: string;
  filesystem: FilesystemKind;
  readOnly: boolean;
  /** Serving process and its start time (guards against a recycled PID). */
  pid: number;
  pidStart: string;
  /** Where the FUSE drive is mounted (equals `mountpoint` for `none`). */
  driveDir: string;
  /** Loop device for ext4, else null. */
  loopDevice: string | null;
  /** Unix uid of the user who mounted it. */
  uid: number;
  startedAt: string;
}

/** The runtime directory for this user (not created). */
export function runtimeDir(): string {
  const override = process.env.CRYPTAINER_RUNTIME_DIR;
  if (override) return override;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/cryptainer';
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? join(xdg, 'cryptainer') : `/tmp/cryptainer-${uid}`;
}

/** Create (if needed) and check the runtime directory; returns the mounts directory. */
export async function ensureMountsDir(): Promise<string> {
  const root = runtimeDir();
  await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  const st = await fsp.lstat(root);
  const uid = process.getuid?.() ?? 0;
  // Someone else's directory (e.g. planted in /tmp) could watch or swap our drive mounts.
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new IoError(
      'IO_ERROR',
      `runtime directory ${root}: must be a directory owned by uid ${uid} with mode 0700`,
    );
  }
  const mounts = join(root, 'mounts');
  await fsp.mkdir(mounts, { recursive: true, mode: 0o700 });
  return mounts;
}

/** A fresh entry directory for a new mount; returns its id and path. */
export async function createEntryDir(): Promise<{ id: string; dir: string }> {
  const mounts = await ensureMountsDir();
  const id = randomBytes(6).toString('hex');
  const dir = join(mounts, id);
  await fsp.mkdir(dir, { mode: 0o700 });
  await fsp.mkdir(join(dir, 'drive'), { mode: 0o700 });
  return { id, dir };
}

/** Path of an entry directory. */
export function entryDir(id: string): string {
  return join(runtimeDir(), 'mounts', id);
}

/** Write info.json atomically (write a temporary file, then rename). */
export async function writeRecord(record: MountRecord): Promise<void> {
  const dir = entryDir(record.id);
  const tmp = join(dir, 'info.json.tmp');
  await fsp.writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
  await fsp.rename(tmp, join(dir, 'info.json'));
}

/** Remove an entry directory (its drive/ must be unmounted: rm never crosses into a mount). */
export async function removeEntry(id: string): Promise<void> {
  const dir = entryDir(id);
  await fsp.rm(join(dir, 'info.json'), { force: true });
  await fsp.rm(join(dir, 'info.json.tmp'), { force: true });
  await fsp.rm(join(dir, 'server.log'), { force: true });
  await fsp.rmdir(join(dir, 'drive')).catch(() => undefined);
  await fsp.rmdir(dir).catch(() => undefined);
}

/** Every recorded mount (entries without a readable info.json are skipped). */
export async function readRecords(): Promise<MountRecord[]> {
  const mounts = join(runtimeDir(), 'mounts');
  let names: string[];
  try {
    names = await fsp.readdir(mounts);
  } catch {
    return [];
  }
  const out: MountRecord[] = [];
  for (const id of names.sort()) {
    try {
      const rec = JSON.parse(
        await fsp.readFile(join(mounts, id, 'info.json'), 'utf8'),
      ) as MountRecord;
      if (rec.id === id) out.push(rec);
    } catch {
      // a mount still starting, or a broken entry: not listed
    }
  }
  return out;
}

/** The identity (`st_dev`, `st_ino`) of the file `path` names, following symlinks; null if none. */
export async function fileIdentityOf(path: string): Promise<FileIdentity | null> {
  try {
    const st = await fsp.stat(path, { bigint: true });
    return { dev: st.dev, ino: st.ino };
  } catch {
    return null;
  }
}

/** Whether `record`'s container is the file `id` (false for records without an identity). */
export function isContainerOf(record: MountRecord, id: FileIdentity): boolean {
  return record.containerDev === String(id.dev) && record.containerIno === String(id.ino);
}

/** Start time of a process (field 22 of /proc/PID/stat), or null if it does not exist. */
export function processStartTime(pid: number): string | null {
  return readProcStat(pid)?.start ?? null;
}

function readProcStat(pid: number): { state: string; start: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    const start = fields[19];
    return state !== undefined && start !== undefined ? { state, start } : null;
  } catch {
    return null;
  }
}

/**
 * True while the serving process of `record` runs. A zombie counts as gone: a background
 * server is reaped by init, which may take a while (seconds, in some containers).
 */
export function serverAlive(record: Pick<MountRecord, 'pid' | 'pidStart'>): boolean {
  const st = readProcStat(record.pid);
  return st !== null && st.start === record.pidStart && st.state !== 'Z' && st.state !== 'X';
}
