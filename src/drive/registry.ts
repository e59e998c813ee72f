/**
 * The runtime registry of mounted volumes, read by `list` and `unmount`. One directory per
 * mount under the runtime directory:
 *
 * ```
 * <runtime>/mounts/<id>/owner.json   the process that created the entry (pid, start time)
 * <runtime>/mounts/<id>/info.json    what is mounted where, served by which process
 * <runtime>/mounts/<id>/status.json  the server's own account: I/O errors counted while
 *                                    serving, and at the end whether its last flush worked
 * <runtime>/mounts/<id>/drive/       mountpoint of the FUSE drive (holds the file "volume")
 * <runtime>/mounts/<id>/server.log   the background server's stderr
 * ```
 *
 * The runtime directory is /run/cryptainer for root, `$XDG_RUNTIME_DIR/cryptainer` for other
 * users (falling back to /tmp/cryptainer-<uid>), or `$CRYPTAINER_RUNTIME_DIR` when set (tests
 * use it to keep their mounts apart). It is created mode 0700 and must belong to the user,
 * checked on every read as well as on create: in /tmp another user could have created it
 * first and planted records naming processes of their choice, and the drive inside exposes
 * cleartext. A record's process is signalled only after /proc shows it is a server of ours
 * (see {@link serverState}).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoError } from '../../volume-format/errors.js';
import type { FileIdentity } from '../io/file-storage.js';
import { liveProcessStartTime, readProcStat } from '../io/process-start.js';
import type { FilesystemKind } from './filesystems/index.js';
import { config } from '../config.js';
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

/** Hidden CLI command that runs the server (launch.ts). */
export const SERVE_COMMAND = '__serve';

/** The CLI's main module, which `mount` runs as the server (`node CLI_MAIN __serve ...`). */
export const CLI_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** A leftover entry younger than this may still be being set up by its creator. */
const ENTRY_SETUP_GRACE_MS = 60_000;

/** The runtime directory for this user (not created). */
export function runtimeDir(): string {
  const override = config.runtimeDir();
  if (override) return override;
  const uid = myUid();
  if (uid === 0) return '/run/cryptainer';
  const xdg = config.xdgRuntimeDir();
  return xdg ? join(xdg, 'cryptainer') : `/tmp/cryptainer-${uid}`;
}

function myUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Check that `path` is a real directory (not a symlink) of this user that nobody else may
 * enter. Returns false if it does not exist; throws `IO_ERROR` naming the problem otherwise.
 */
async function checkPrivateDir(path: string): Promise<boolean> {
  let st;
  try {
    st = await fsp.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new IoError('IO_ERROR', `runtime directory ${path}: ${(err as Error).message}`);
  }
  const uid = myUid();
  const why = !st.isDirectory()
    ? 'it is not a directory'
    : st.uid !== uid
      ? `it belongs to uid ${st.uid}, not to you (uid ${uid})`
      : (st.mode & 0o077) !== 0
        ? `its mode is ${(st.mode & 0o777).toString(8)}, not 700`
        : null;
  if (why === null) return true;
  // Someone else's directory (e.g. created first in /tmp) could plant records and watch or
  // swap our drive mounts: nothing in it is read, nothing it names is signalled.
  throw new IoError(
    'IO_ERROR',
    `runtime directory ${path}: ${why}; refusing to use it (remove it, or set XDG_RUNTIME_DIR ` +
      'to a private directory)',
  );
}

/**
 * The mounts directory if the runtime directory exists and passes the ownership and mode
 * check, null if it does not exist yet. Throws `IO_ERROR` for a directory that is not ours.
 */
export async function checkedMountsDir(): Promise<string | null> {
  const root = runtimeDir();
  if (!(await checkPrivateDir(root))) return null;
  const mounts = join(root, 'mounts');
  return (await checkPrivateDir(mounts)) ? mounts : null;
}

/** Create (if needed) and check the runtime directory; returns the mounts directory. */
export async function ensureMountsDir(): Promise<string> {
  const root = runtimeDir();
  await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  await checkPrivateDir(root);
  const mounts = join(root, 'mounts');
  await fsp.mkdir(mounts, { recursive: true, mode: 0o700 });
  await checkPrivateDir(mounts);
  return mounts;
}

/** Who created an entry (owner.json): while it lives, an entry without a record is in use. */
interface EntryOwner {
  pid: number;
  pidStart: string;
}

/** A fresh entry directory for a new mount; returns its id and path. */
export async function createEntryDir(): Promise<{ id: string; dir: string }> {
  const mounts = await ensureMountsDir();
  const id = randomBytes(6).toString('hex');
  const dir = join(mounts, id);
  await fsp.mkdir(dir, { mode: 0o700 });
  const owner: EntryOwner = { pid: process.pid, pidStart: liveProcessStartTime(process.pid) ?? '' };
  await fsp.writeFile(join(dir, 'owner.json'), JSON.stringify(owner) + '\n', { mode: 0o600 });
  await fsp.mkdir(join(dir, 'drive'), { mode: 0o700 });
  return { id, dir };
}

/** Path of an entry directory. */
export function entryDir(id: string): string {
  return join(runtimeDir(), 'mounts', id);
}

/** Write info.json atomically (write a temporary file, then rename). */
export async function writeRecord(record: MountRecord): Promise<void> {
  await writeJsonAtomic(record.id, 'info.json', record);
}

async function writeJsonAtomic(id: string, name: string, value: unknown): Promise<void> {
  const dir = entryDir(id);
  const tmp = join(dir, `${name}.tmp`);
  await fsp.writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  await fsp.rename(tmp, join(dir, name));
}

/**
 * Remove an entry directory: every file in it, its empty drive/ and itself. Never recursive
 * beyond that: rm must not cross into a mount still at drive/. Throws `IO_ERROR` (with the
 * reason) if a file cannot be removed.
 */
export async function removeEntry(id: string): Promise<void> {
  const dir = entryDir(id);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IoError('IO_ERROR', `removing runtime entry ${dir}: ${(err as Error).message}`);
  }
  // info.json first: once it is gone the entry no longer counts as a mount.
  names.sort((a, b) => Number(b === 'info.json') - Number(a === 'info.json'));
  for (const name of names) {
    if (name === 'drive') continue;
    try {
      await fsp.unlink(join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new IoError('IO_ERROR', `removing runtime entry ${dir}: ${(err as Error).message}`);
    }
  }
  await fsp.rmdir(join(dir, 'drive')).catch(() => undefined);
  await fsp.rmdir(dir).catch(() => undefined);
}

/** The entry ids in the (checked) mounts directory. */
export async function listEntryIds(): Promise<string[]> {
  const mounts = await checkedMountsDir();
  if (mounts === null) return [];
  try {
    return (await fsp.readdir(mounts)).sort();
  } catch (err) {
    throw new IoError('IO_ERROR', `reading ${mounts}: ${(err as Error).message}`);
  }
}

/** Every recorded mount (entries without a readable info.json are skipped). */
export async function readRecords(): Promise<MountRecord[]> {
  const out: MountRecord[] = [];
  for (const id of await listEntryIds()) {
    const rec = await readJson<MountRecord>(id, 'info.json');
    if (rec && rec.id === id && typeof rec.pid === 'number') out.push(rec);
  }
  return out;
}

async function readJson<T>(id: string, name: string): Promise<T | null> {
  try {
    return JSON.parse(await fsp.readFile(join(entryDir(id), name), 'utf8')) as T;
  } catch {
    return null; // missing, still being written, or broken
  }
}

/**
 * What the server says about itself (status.json), written atomically: at start, whenever
 * its I/O error counts change, and once more at the very end.
 */
export interface ServerStatus {
  pid: number;
  pidStart: string;
  /** `serving` until the server is done; `finished` is its last word before exiting. */
  phase: 'serving' | 'finished';
  /** Requests whose write (or flush) of the container failed: data the user wrote is lost. */
  writeErrors: number;
  /** Requests whose read of the container failed. */
  readErrors: number;
  /** The most recent error, as the host reported it. */
  lastError: string | null;
  /** `finished` only: the last fdatasync of the container succeeded. */
  flushed?: boolean;
  /** `finished` only: every layer was undone (filesystem, loop device, drive). */
  tornDown?: boolean;
  updatedAt: string;
}

/** Write the server's status.json (atomic). */
export async function writeServerStatus(id: string, status: ServerStatus): Promise<void> {
  await writeJsonAtomic(id, 'status.json', status);
}

/** The server's status.json of an entry, or null. */
export async function readServerStatus(id: string): Promise<ServerStatus | null> {
  const st = await readJson<ServerStatus>(id, 'status.json');
  return st && typeof st.writeErrors === 'number' && typeof st.readErrors === 'number' ? st : null;
}

/**
 * Note the server of an entry as soon as it is spawned (server.json), so that the entry counts
 * as in use even if its creator dies before the server has written anything itself.
 */
export async function writeServerPid(id: string, pid: number): Promise<void> {
  const server: EntryOwner = { pid, pidStart: liveProcessStartTime(pid) ?? '' };
  await writeJsonAtomic(id, 'server.json', server);
}

function runsSince(p: EntryOwner | null): boolean {
  if (p === null || !Number.isSafeInteger(p.pid) || p.pid <= 0) return false;
  return liveProcessStartTime(p.pid) === p.pidStart;
}

/**
 * Whether an entry without a record is left over by processes that are gone: its creator
 * (owner.json) and its server (server.json, status.json) are all dead, or it names none of
 * them and is older than a creator needs to set it up.
 */
export async function entryAbandoned(id: string): Promise<boolean> {
  const owner = await readJson<EntryOwner>(id, 'owner.json');
  const server = await readJson<EntryOwner>(id, 'server.json');
  const status = await readServerStatus(id);
  if (runsSince(owner) || runsSince(server) || runsSince(status)) return false;
  if (owner || server || status) return true;
  try {
    const st = await fsp.stat(entryDir(id));
    return Date.now() - st.mtimeMs > ENTRY_SETUP_GRACE_MS;
  } catch {
    return false;
  }
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

/**
 * What the process named by a record (or status) is:
 * - `ours`: a live `cryptainer __serve` of our CLI, run by this user, started at the recorded
 *   time: the only kind of process `unmount` may signal;
 * - `gone`: no such process, or a zombie (a background server is reaped by init, which may
 *   take a while), or a recycled PID (another start time);
 * - `foreign`: a process started at the recorded time that is not our server, or belongs to
 *   another user: the record was planted or is not this CLI's (never signal it).
 */
export function serverState(
  record: Pick<MountRecord, 'pid' | 'pidStart'>,
): 'ours' | 'gone' | 'foreign' {
  if (!Number.isSafeInteger(record.pid) || record.pid <= 0) return 'foreign';
  const st = readProcStat(record.pid);
  if (st === null || st.state === 'Z' || st.state === 'X') return 'gone';
  if (st.start !== record.pidStart) return 'gone';
  try {
    const status = readFileSync(`/proc/${record.pid}/status`, 'utf8');
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    const uid = myUid();
    if (!uids || Number(uids[1]) !== uid || Number(uids[2]) !== uid) return 'foreign';
    const argv = readFileSync(`/proc/${record.pid}/cmdline`, 'utf8').split('\0');
    if (argv[1] !== CLI_MAIN || argv[2] !== SERVE_COMMAND) return 'foreign';
  } catch {
    return liveProcessStartTime(record.pid) !== null ? 'foreign' : 'gone';
  }
  // The start time again: the checks above must all have been about the same process.
  return readProcStat(record.pid)?.start === record.pidStart ? 'ours' : 'gone';
}
