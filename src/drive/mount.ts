/**
 * Mount lifecycle, in the process that serves the drive: unlock, expose the drive through
 * FUSE, put the filesystem on it, verify, serve until asked to stop, then undo every step in
 * reverse order, flush and wipe the keys.
 *
 * Stack (ext4, root):   container ─► Volume ─► FUSE drive <entry>/drive/volume ─► losetup
 *                       /dev/loopN ─► mount -t ext4 ─► MOUNTPOINT
 * NTFS (any user):      ... FUSE drive ─► ntfs-3g ─► MOUNTPOINT
 * none:                 ... FUSE drive mounted at MOUNTPOINT itself (MOUNTPOINT/volume)
 *
 * Every step that succeeded pushes its undo; a failure undoes what was done and names the
 * step that failed. Stopping starts with the filesystem unmount, which is never lazy: while it
 * is busy, nothing is torn down and the volume keeps being served.
 */
import { join } from 'node:path';
import { wipe } from '../../crypto/bytes.js';
import {
  BusyError,
  CryptainerError,
  IoError,
  MountError,
  UsageError,
} from '../../volume-format/errors.js';
import { liveProcessStartTime } from '../io/process-start.js';
import { deriveArgon2idInChild } from '../volume/kdf-child.js';
import { openVolume } from '../volume/open.js';
import type { UnlockSecret } from '../volume/secret.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME, createDriveHandlers } from './drive-ops.js';
import { checkMountpoint, findMount, fuseUsable, sleep } from './filesystem.js';
import {
  DETECT_BYTES,
  FILESYSTEMS,
  type FilesystemKind,
  detectFilesystem,
  noneOfKnown,
} from './filesystems/index.js';
import { mountFuse } from './fuse-adapter.js';
import { kernelFuseUsable, mountKernelFuse } from './kernel-fuse.js';
import { ServerHealth, describeErrors } from './server-health.js';
import {
  type MountRecord,
  entryDir,
  fileIdentityOf,
  removeEntry,
  writeRecord,
} from './registry.js';

/** What to mount. Paths are absolute. */
export interface MountRequest {
  /** Registry entry (its directory exists already; see registry.createEntryDir). */
  id: string;
  container: string;
  mountpoint: string;
  /** `auto` detects ext4 or NTFS from the drive's first bytes. */
  filesystem: 'auto' | FilesystemKind;
  readOnly: boolean;
  keyfiles: string[];
  keyslot?: number;
}

/** Callbacks of {@link serveMount}. */
export interface ServeHooks {
  /**
   * The filesystem is mounted and verified. Returning false means nobody took delivery (the
   * `mount` command that asked for it is gone): the mount is then undone at once rather than
   * left running unknown to the user.
   */
  onReady(record: MountRecord): boolean;
  /** A line for the server log. */
  log(line: string): void;
}

/** How often the server checks that its filesystem is still mounted (an external umount). */
const WATCH_INTERVAL_MS = 2000;

interface UndoStep {
  what: string;
  run: () => Promise<void>;
}

/**
 * Mount `req` and serve it until it is unmounted (by `cryptainer unmount`, a signal, or an
 * external umount of the filesystem). Resolves after a clean teardown; rejects with the
 * failing step if mounting fails, after undoing everything already set up. The caller owns
 * `secret.passphrase`; a Uint8Array passphrase is also wiped here, right after the unlock.
 */
export async function serveMount(
  req: MountRequest,
  secret: UnlockSecret,
  hooks: ServeHooks,
): Promise<void> {
  const undo: UndoStep[] = [];
  let volume: Volume | null = null;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const asRoot = uid === 0;
  let record: MountRecord;
  // Published first, so the entry names its server from the outset (registry.entryAbandoned).
  const health = new ServerHealth(req.id, hooks.log);
  await health.publish();
  const onIoError = (kind: 'read' | 'write', message: string): void => health.count(kind, message);
  try {
    await step('checking the mountpoint', () => checkMountpoint(req.mountpoint));
    if (!(await fuseUsable())) {
      throw new MountError(
        'FUSE_ERROR',
        'FUSE is not usable: /dev/fuse is missing or not readable and writable by this user ' +
          '(install fuse3 and libfuse2; Debian gives /dev/fuse mode 0666)',
      );
    }
    // SPEC §9.2: held for the whole mount, exclusive (read-only: shared, excluding writers).
    try {
      volume = await openVolume(req.container, {
        ...secret,
        readOnly: req.readOnly,
        ...(req.keyslot !== undefined ? { keyslot: req.keyslot } : {}),
        // Argon2id in a child that exits after the unlock: the argon2 binding's copies of the
        // passphrase go with it (README, "Security notes").
        deriveKek: deriveArgon2idInChild,
      });
    } finally {
      // Not needed after the unlock: gone before the mount is even set up.
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
    const readOnly = volume.readOnly;
    const { kind, blockSize } = await resolveKind(volume, req.filesystem);
    const driver = kind === 'none' ? null : FILESYSTEMS[kind];
    await driver?.checkMountAllowed(asRoot);

    const driveDir = kind === 'none' ? req.mountpoint : join(entryDir(req.id), 'drive');
    const drive = createDriveHandlers(volume, { uid, gid, readOnly, onIoError });
    const served = volume;
    const fuse = await step('mounting the FUSE drive', () =>
      // Root: /dev/fuse served directly (kernel-fuse.ts, ≈ 3× shorter round trip per request).
      kernelFuseUsable()
        ? mountKernelFuse(driveDir, served, {
            fsname: 'cryptainer',
            uid,
            gid,
            readOnly,
            log: hooks.log,
            onIoError,
          })
        : mountFuse(driveDir, drive.handlers, {
            fsname: 'cryptainer',
            readOnly,
            allowRoot: driver?.driveNeedsAllowRoot(asRoot) ?? false,
            onError: (op, err) =>
              hooks.log(`drive ${op}: ${(err as Error)?.message ?? String(err)}`),
          }),
    );
    undo.push({ what: 'unmounting the FUSE drive', run: () => fuse.unmount() });
    const drivePath = join(driveDir, DRIVE_FILE_NAME);

    let loopDevice: string | null = null;
    if (driver !== null) {
      ({ loopDevice } = await driver.mount({
        drivePath,
        mountpoint: req.mountpoint,
        readOnly,
        uid,
        gid,
        volumeSectorSize: volume.sectorSize,
        blockSize,
        pageCached: fuse.pageCached,
        undo: (what, run) => undo.push({ what, run }),
      }));
    }

    const identity = await fileIdentityOf(req.container);
    record = {
      id: req.id,
      container: req.container,
      ...(identity
        ? { containerDev: String(identity.dev), containerIno: String(identity.ino) }
        : {}),
      mountpoint: req.mountpoint,
      filesystem: kind,
      readOnly,
      pid: process.pid,
      pidStart: liveProcessStartTime(process.pid) ?? '',
      driveDir,
      loopDevice,
      uid,
      startedAt: new Date().toISOString(),
    };
    await step('verifying the mount', () => verifyMounted(record));
    await writeRecord(record);
  } catch (err) {
    await undoAll(undo, hooks.log);
    await volume?.close().catch(() => undefined);
    throw err;
  }

  hooks.log(`mounted ${record.container} at ${record.mountpoint} (${record.filesystem})`);
  let tornDown = true;
  if (hooks.onReady(record)) await serveUntilStopped(record, undo, hooks.log);
  else {
    hooks.log('the mount command is gone: unmounting');
    tornDown = await undoAll(undo, hooks.log);
  }
  let flushed = true;
  try {
    await volume.close(); // fdatasync, wipe keys, release the lock
  } catch (err) {
    flushed = false;
    health.count('write', `final flush: ${(err as Error).message}`);
    hooks.log(`final flush of the container failed: ${(err as Error).message}`);
  }
  if (flushed && tornDown && health.clean) {
    // The clean end: the entry goes, and a waiting `unmount` takes that as success.
    await removeEntry(req.id);
    hooks.log(`unmounted ${record.container}`);
    return;
  }
  // Otherwise the record stays, with the last word in status.json, for `unmount` (or `list`).
  await health.finish({ flushed, tornDown });
  const errors = describeErrors({
    writeErrors: health.writeErrorCount,
    readErrors: health.readErrorCount,
  });
  throw new IoError(
    'IO_ERROR',
    `unmounted ${record.container}` +
      (errors ? ` after ${errors}` : '') +
      (flushed ? '' : '; its final flush failed') +
      (tornDown ? '' : '; some layers could not be undone'),
  );
}

/** Run one mount step; failures that are not ours yet are wrapped with the step's name. */
async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof CryptainerError) throw err;
    throw new MountError('MOUNT_FAILED', `${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Which filesystem to mount: the requested one, or the one the drive holds; with the ext4
 * block size (for the loop device, SPEC §6), null for other filesystems.
 */
async function resolveKind(
  volume: Volume,
  wanted: MountRequest['filesystem'],
): Promise<{ kind: FilesystemKind; blockSize: number | null }> {
  if (wanted === 'none') return { kind: 'none', blockSize: null };
  const head = await volume.read(0, Math.min(DETECT_BYTES, volume.sizeBytes));
  const found = detectFilesystem(head);
  const blockSize = found === null ? null : FILESYSTEMS[found].blockSize(head);
  wipe(head);
  if (wanted === 'auto') {
    if (found) return { kind: found, blockSize };
    throw new MountError(
      'MOUNT_FAILED',
      `detecting the filesystem: the volume holds ${noneOfKnown()} ` +
        '(use --filesystem none to mount the raw drive)',
    );
  }
  if (found !== wanted) {
    throw new MountError(
      'MOUNT_FAILED',
      `detecting the filesystem: asked for ${wanted}, the volume holds ${found ?? noneOfKnown()}`,
    );
  }
  return { kind: wanted, blockSize };
}

/**
 * Check in /proc/self/mountinfo that `record.mountpoint` really is our mount (FACTS.md: a
 * silently failed mount leaves an empty directory where files would be written in cleartext).
 * Throws `MOUNT_FAILED` otherwise.
 */
export async function verifyMounted(record: MountRecord): Promise<void> {
  const m = await findMount(record.mountpoint);
  const drivePath = join(record.driveDir, DRIVE_FILE_NAME);
  let ok = false;
  if (m) {
    if (record.filesystem !== 'none') {
      ok = FILESYSTEMS[record.filesystem].isOurMount(m, {
        drivePath,
        loopDevice: record.loopDevice,
      });
    } else ok = m.fstype === 'fuse' && m.source === 'cryptainer';
  }
  if (!ok) {
    throw new MountError(
      'MOUNT_FAILED',
      `verifying the mount: ${record.mountpoint} is ${m ? `a ${m.fstype} mount of ${m.source}` : 'not mounted'}, not this volume`,
    );
  }
}

/**
 * Run undo steps in reverse order, continuing past failures (mount failure path). Returns
 * whether every step succeeded.
 */
async function undoAll(undo: UndoStep[], log: (line: string) => void): Promise<boolean> {
  let ok = true;
  while (undo.length > 0) {
    const s = undo.pop()!;
    try {
      await s.run();
    } catch (err) {
      ok = false;
      log(`undo: ${s.what}: ${(err as Error).message}`);
    }
  }
  return ok;
}

/**
 * Serve until stopped, then tear down. A stop request (signal) or an external unmount of the
 * filesystem starts the teardown. If the filesystem is busy the teardown is abandoned and
 * serving continues; the loop device and the drive, which only the kernel holds, get a few
 * retries because releasing them can lag a moment behind the unmount.
 */
async function serveUntilStopped(
  record: MountRecord,
  undo: UndoStep[],
  log: (line: string) => void,
): Promise<void> {
  await new Promise<void>((finished) => {
    let busy = false;
    const stop = async (reason: string): Promise<void> => {
      if (busy) return;
      busy = true;
      log(`stopping: ${reason}`);
      try {
        while (undo.length > 0) {
          const s = undo[undo.length - 1]!;
          await retryWhileBusy(s, undo.length === 1 || s.what.startsWith('detaching'));
          undo.pop();
        }
      } catch (err) {
        log(`not unmounted: ${(err as Error).message}; still serving`);
        busy = false;
        return;
      }
      clearInterval(watcher);
      for (const sig of SIGNALS) process.off(sig, onSignal);
      finished();
    };
    const onSignal = (sig: NodeJS.Signals): void => void stop(`signal ${sig}`);
    const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
    for (const sig of SIGNALS) process.on(sig, onSignal);
    const watcher = setInterval(() => {
      if (busy) return;
      findMount(record.mountpoint).then(
        (m) => {
          if (!m) void stop('the filesystem was unmounted');
        },
        () => undefined,
      );
    }, WATCH_INTERVAL_MS);
  });
}

async function retryWhileBusy(s: UndoStep, retry: boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await s.run();
      return;
    } catch (err) {
      const isBusy = err instanceof BusyError;
      if (!retry || !isBusy || attempt >= 30) {
        throw err instanceof CryptainerError
          ? err
          : new MountError('MOUNT_FAILED', `${s.what}: ${(err as Error).message}`);
      }
      await sleep(100);
    }
  }
}
