/**
 * `unmount` and `list` over the registry. Unmounting a live mount: this process unmounts the
 * filesystem itself (never lazily, so a busy mount is refused here, naming who holds it, and
 * nothing changes), then asks the server with SIGTERM to detach the loop device and the drive,
 * flush and wipe its keys, waits for it to exit and reads its last word (status.json): a
 * server that counted I/O errors, whose final flush failed, or that died before finishing
 * makes `unmount` fail with `IO_ERROR` (exit 6) after cleaning up. A stale mount (its server
 * was killed) is cleaned here, layer by layer, and reported the same way: what it had not
 * written is lost.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BusyError, CryptainerError, IoError, MountError } from '../../volume-format/errors.js';
import { DRIVE_FILE_NAME } from './drive-ops.js';
import { detachLoop, findMount, loopBackingFile, sleep, unmountFilesystem } from './filesystem.js';
import { cleanStaleFuseMount, unmountStrict } from './host-mount.js';
import { verifyMounted } from './mount.js';
import {
  type MountRecord,
  type ServerStatus,
  entryAbandoned,
  entryDir,
  fileIdentityOf,
  isContainerOf,
  listEntryIds,
  readRecords,
  readServerStatus,
  removeEntry,
  serverState,
} from './registry.js';
import { describeErrors } from './server-health.js';

/** How long `unmount` waits for the server to finish (flushing a large cache can take a while). */
const SERVER_EXIT_TIMEOUT_MS = 5 * 60 * 1000;

/**
 * Absolute, symlink-free form of `path`, resolving only its parent: the last component may be
 * a mountpoint whose server is dead or stuck, and stat'ing it could hang.
 */
function canonical(path: string): string {
  const abs = resolve(path);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

/**
 * The record whose mountpoint or container is `target`; `NOT_MOUNTED` if none. A container is
 * recognised through any of its names (symlink, hard link, bind mount) by its identity; the
 * path is compared first, so a mountpoint whose server hangs is never stat'ed.
 */
export async function findRecord(target: string): Promise<MountRecord> {
  const want = canonical(target);
  const records = await readRecords();
  let hit = records.find((r) => r.mountpoint === want || r.container === want);
  if (!hit) {
    const id = await fileIdentityOf(target);
    if (id) hit = records.find((r) => isContainerOf(r, id));
  }
  if (!hit) throw new MountError('NOT_MOUNTED', `${target}: not mounted by cryptainer`);
  return hit;
}

/** The record for `container` if it is mounted (any state), through any of its names. */
export async function recordForContainer(container: string): Promise<MountRecord | undefined> {
  const records = await readRecords();
  const id = await fileIdentityOf(container);
  const byId = id ? records.find((r) => isContainerOf(r, id)) : undefined;
  if (byId) return byId;
  // Records of earlier versions carry no identity.
  const want = canonical(container);
  return records.find((r) => r.containerDev === undefined && r.container === want);
}

/** Where to look when a server failed. */
function logHint(record: MountRecord): string {
  return `see ${join(entryDir(record.id), 'server.log')}`;
}

/** What to do after data may have been lost. */
const CHECK_HINT =
  'check the filesystem (cryptainer mount FILE DIR --filesystem none, then e2fsck -f or ' +
  'ntfsfix on DIR/volume)';

/** Refusal for a record naming a process that is not our server (planted, or another install's). */
function foreignServer(record: MountRecord): MountError {
  return new MountError(
    'MOUNT_FAILED',
    `${record.mountpoint}: the record names pid ${record.pid}, which is not a cryptainer ` +
      `server of yours; nothing was signalled or unmounted (the record: ${entryDir(record.id)})`,
  );
}

/**
 * Unmount one recorded mount. Throws `VOLUME_BUSY` (with the processes holding it) when the
 * filesystem is in use; the mount is then left exactly as it was. Throws `IO_ERROR` (after
 * unmounting and cleaning up) when data may have been lost: the server counted I/O errors,
 * its final flush failed, or it died before finishing (including before this call).
 */
export async function unmountRecord(record: MountRecord): Promise<void> {
  const state = serverState(record);
  if (state === 'foreign') throw foreignServer(record);
  if (state === 'gone') {
    await concludeServer(record, 'had died');
    return;
  }
  await unmountFilesystem(record.mountpoint, { fuse: record.filesystem !== 'ext4' });
  // Checked again right before the signal: the PID must still be our server.
  if (serverState(record) === 'ours') {
    try {
      process.kill(record.pid, 'SIGTERM');
    } catch {
      // it exited on its own (it watches its mount): fine
    }
  }
  const until = Date.now() + SERVER_EXIT_TIMEOUT_MS;
  while (serverState(record) === 'ours') {
    if (Date.now() > until) {
      throw new MountError(
        'MOUNT_FAILED',
        `unmounting ${record.mountpoint}: the server (pid ${record.pid}) did not finish; ` +
          logHint(record),
      );
    }
    await sleep(50);
  }
  await concludeServer(record, 'ended');
}

/**
 * After the server of `record` is gone: judge by what it left. No record any more means it
 * flushed, tore everything down and removed its entry (it does so only when nothing failed).
 * A final status names the errors; neither means it died before its final flush. In the two
 * failing cases the rest is cleaned here and `IO_ERROR` says what was lost.
 */
async function concludeServer(record: MountRecord, how: 'had died' | 'ended'): Promise<void> {
  if (!(await readRecords()).some((r) => r.id === record.id)) return;
  const status = await readServerStatus(record.id);
  const last = status?.pid === record.pid ? status : null;
  await cleanStale(record);
  throw new IoError('IO_ERROR', lossMessage(record, last, how));
}

function lossMessage(record: MountRecord, status: ServerStatus | null, how: string): string {
  const errors = status ? describeErrors(status) : '';
  const lastError = status?.lastError ? ` (last: ${status.lastError})` : '';
  if (status?.phase === 'finished') {
    const what = [
      errors ? `${errors} occurred while it was mounted${lastError}` : '',
      status.flushed === false ? 'the final flush of the container failed' : '',
    ].filter(Boolean);
    return (
      `unmounted ${record.mountpoint}, but ${what.join(' and ') || 'its server failed'}: ` +
      `data written to it may be lost; ${CHECK_HINT}`
    );
  }
  return (
    `${record.mountpoint}: its server (pid ${record.pid}) ${how} before finishing its flush ` +
    `and teardown${errors ? `, after ${errors}${lastError}` : ''}; cleaned up what it left, ` +
    `but data it had not written is lost; ${CHECK_HINT}`
  );
}

/**
 * Clean up after a server that died (SIGKILL, crash): unmount the filesystem (strictly: a
 * busy one is refused), detach the loop device if it still points at our drive, unmount the
 * dead FUSE drive and drop the registry entry. The container's lock died with its process
 * (SPEC §9.2).
 */
export async function cleanStale(record: MountRecord): Promise<void> {
  // Only our own filesystem: a record is no licence to unmount whatever sits there now.
  if (record.filesystem !== 'none' && (await ourMountAt(record))) {
    await unmountFilesystem(record.mountpoint, { fuse: record.filesystem === 'ntfs' });
  }
  if (record.loopDevice) {
    // Detach only if the device still belongs to our drive (numbers are reused). Asked of
    // sysfs, not `losetup -j`, which would stat the drive file on the dead FUSE mount.
    const drivePath = join(record.driveDir, DRIVE_FILE_NAME);
    if ((await loopBackingFile(record.loopDevice)) === drivePath)
      await detachLoop(record.loopDevice);
  }
  if (await findMount(record.driveDir)) {
    if (!(await cleanStaleFuseMount(record.driveDir))) await unmountStrict(record.driveDir);
  }
  await removeEntry(record.id);
}

/** Whether the filesystem at the record's mountpoint is the one the record describes. */
async function ourMountAt(record: MountRecord): Promise<boolean> {
  try {
    await verifyMounted(record);
    return true;
  } catch {
    return false;
  }
}

/** One failure of {@link unmountAll}. */
export interface UnmountFailure {
  record: MountRecord;
  error: CryptainerError;
}

/**
 * Unmount every recorded mount; returns the failures (the others are unmounted) and notes on
 * leftovers that were cleaned. Every failure is a {@link CryptainerError}: an unexpected
 * system error is wrapped as `IO_ERROR` naming the mountpoint.
 */
export async function unmountAll(): Promise<{ failures: UnmountFailure[]; notes: string[] }> {
  const notes = await cleanOrphanEntries();
  const failures: UnmountFailure[] = [];
  for (const record of await readRecords()) {
    try {
      await unmountRecord(record);
    } catch (error) {
      failures.push({ record, error: asCryptainerError(error, record.mountpoint) });
    }
  }
  return { failures, notes };
}

/** `err` itself if it is one of ours, else an `IO_ERROR` with its message (never a stack). */
export function asCryptainerError(err: unknown, what: string): CryptainerError {
  if (err instanceof CryptainerError) return err;
  return new IoError('IO_ERROR', `${what}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

/**
 * Refuse to mount a container that is already mounted (`VOLUME_BUSY`); clean up first after a
 * server of it that died, and after interrupted mounts. Returns notes on what was cleaned.
 */
export async function checkNotMounted(container: string): Promise<string[]> {
  const notes = await cleanOrphanEntries();
  const rec = await recordForContainer(container);
  if (!rec) return notes;
  const state = serverState(rec);
  if (state === 'ours') {
    throw new BusyError(
      'VOLUME_BUSY',
      `${container}: already mounted at ${rec.mountpoint} (pid ${rec.pid})`,
    );
  }
  if (state === 'foreign') throw foreignServer(rec);
  try {
    await unmountRecord(rec);
  } catch (err) {
    if (!(err instanceof IoError)) throw err;
    notes.push(`cleaned up an earlier mount of this volume: ${err.message}`);
  }
  return notes;
}

/** What `list` says about one mount. */
export interface RecordState {
  /**
   * `mounted`; `degraded` (mounted, but the server counted I/O errors); `stopping` (the
   * filesystem is gone, the server not yet); `stale` (the server died: `unmount` cleans up);
   * `foreign` (the recorded PID is not a server of ours).
   */
  state: 'mounted' | 'degraded' | 'stopping' | 'stale' | 'foreign';
  writeErrors: number;
  readErrors: number;
  lastError: string | null;
  /** The state with its error counts, for people: `degraded: 3 write errors`. */
  text: string;
}

/** The state of `record`'s server and filesystem, and the errors it counted (for `list`). */
export async function recordState(record: MountRecord): Promise<RecordState> {
  const st = await readServerStatus(record.id);
  const status = st?.pid === record.pid ? st : null;
  const counts = {
    writeErrors: status?.writeErrors ?? 0,
    readErrors: status?.readErrors ?? 0,
    lastError: status?.lastError ?? null,
  };
  const server = serverState(record);
  let state: RecordState['state'];
  if (server === 'foreign') state = 'foreign';
  else if (server === 'gone') state = 'stale';
  else if (!(await ourMountAt(record))) state = 'stopping';
  else state = describeErrors(counts) ? 'degraded' : 'mounted';
  const errors = describeErrors(counts);
  return { state, ...counts, text: errors ? `${state}: ${errors}` : state };
}

/**
 * Clean the runtime directory of what a killed process left without a record: an entry whose
 * creator (`mount`, `create`, `resize`) and server are both gone, e.g. a `mount` killed before
 * its server reported, or a `create` killed while formatting (its drive a dead FUSE mount).
 * Entries still being set up are alive and left alone. Returns a note per cleaned entry.
 */
export async function cleanOrphanEntries(): Promise<string[]> {
  const notes: string[] = [];
  const recorded = new Set((await readRecords()).map((r) => r.id));
  for (const id of await listEntryIds()) {
    if (recorded.has(id) || !(await entryAbandoned(id))) continue;
    const drive = join(entryDir(id), 'drive');
    if ((await findMount(drive)) && !(await cleanStaleFuseMount(drive))) continue;
    try {
      await removeEntry(id);
      notes.push(`removed the runtime entry ${id} left by an interrupted command`);
    } catch (err) {
      notes.push(`could not remove the leftover runtime entry ${id}: ${(err as Error).message}`);
    }
  }
  return notes;
}
