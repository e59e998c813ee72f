/**
 * `unmount` and `list` over the registry. Unmounting a live mount: this process unmounts the
 * filesystem itself (never lazily, so a busy mount is refused here, naming who holds it, and
 * nothing changes), then asks the server with SIGTERM to detach the loop device and the drive,
 * flush and wipe its keys, and waits for it to exit. A stale mount (its server was killed)
 * is cleaned here, layer by layer.
 */
import { promises as fsp, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BusyError, MountError } from '../../volume-format/errors.js';
import { DRIVE_FILE_NAME } from './drive-ops.js';
import { detachLoop, findMount, loopBackingFile, sleep, unmountFilesystem } from './filesystem.js';
import { cleanStaleFuseMount, unmountStrict } from './fuse-adapter.js';
import { verifyMounted } from './mount.js';
import {
  type MountRecord,
  fileIdentityOf,
  isContainerOf,
  readRecords,
  removeEntry,
  runtimeDir,
  serverAlive,
} from './registry.js';

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

/**
 * Unmount one recorded mount. Throws `VOLUME_BUSY` (with the processes holding it) when the
 * filesystem is in use; the mount is then left exactly as it was.
 */
export async function unmountRecord(record: MountRecord): Promise<void> {
  if (!serverAlive(record)) {
    await cleanStale(record);
    return;
  }
  await unmountFilesystem(record.mountpoint, { fuse: record.filesystem !== 'ext4' });
  try {
    process.kill(record.pid, 'SIGTERM');
  } catch {
    // it exited on its own (it watches its mount): fine
  }
  const until = Date.now() + SERVER_EXIT_TIMEOUT_MS;
  while (serverAlive(record)) {
    if (Date.now() > until) {
      throw new MountError(
        'MOUNT_FAILED',
        `unmounting ${record.mountpoint}: the server (pid ${record.pid}) did not finish; ` +
          `see ${join(record.driveDir, '..', 'server.log')}`,
      );
    }
    await sleep(50);
  }
  // A server that failed half-way leaves its entry: finish the job as for a dead one.
  if ((await readRecords()).some((r) => r.id === record.id)) await cleanStale(record);
}

/**
 * Clean up after a server that died (SIGKILL, crash): unmount the filesystem (strictly: a
 * busy one is refused), detach the loop device if it still points at our drive, unmount the
 * dead FUSE drive and drop the registry entry. The container's lock died with its process
 * (SPEC §9.2).
 */
export async function cleanStale(record: MountRecord): Promise<void> {
  if (record.filesystem !== 'none') {
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

/** Unmount every recorded mount; returns the failures (the others are unmounted). */
export async function unmountAll(): Promise<{ record: MountRecord; error: Error }[]> {
  await cleanOrphanEntries();
  const failures: { record: MountRecord; error: Error }[] = [];
  for (const record of await readRecords()) {
    try {
      await unmountRecord(record);
    } catch (error) {
      failures.push({ record, error: error as Error });
    }
  }
  return failures;
}

/**
 * Refuse to mount a container that is already mounted (`VOLUME_BUSY`); clean up first after a
 * server of it that died.
 */
export async function checkNotMounted(container: string): Promise<void> {
  await cleanOrphanEntries();
  const rec = await recordForContainer(container);
  if (!rec) return;
  if (serverAlive(rec)) {
    throw new BusyError(
      'VOLUME_BUSY',
      `${container}: already mounted at ${rec.mountpoint} (pid ${rec.pid})`,
    );
  }
  await cleanStale(rec);
}

/** Whether `record`'s server is alive and its filesystem mounted (for `list`). */
export async function recordState(record: MountRecord): Promise<'mounted' | 'stale' | 'stopping'> {
  if (!serverAlive(record)) return 'stale';
  try {
    await verifyMounted(record);
    return 'mounted';
  } catch {
    return 'stopping';
  }
}

/**
 * Clean the runtime directory of what a killed process left without a record: an entry whose
 * drive is a dead FUSE mount (a `create` killed while formatting, a server killed while
 * mounting). Entries still being set up are alive and left alone.
 */
export async function cleanOrphanEntries(): Promise<void> {
  const mounts = join(runtimeDir(), 'mounts');
  let ids: string[];
  try {
    ids = await fsp.readdir(mounts);
  } catch {
    return;
  }
  const recorded = new Set((await readRecords()).map((r) => r.id));
  for (const id of ids) {
    if (recorded.has(id)) continue;
    const drive = join(mounts, id, 'drive');
    if (await findMount(drive)) {
      if (await cleanStaleFuseMount(drive)) await removeEntry(id);
    }
  }
}
