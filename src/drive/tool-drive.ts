/**
 * A volume exposed as a drive file in a private runtime directory for the length of one job
 * (mkfs for `create`, e2fsck and resize2fs/ntfsresize for `resize`): the tools run as child
 * processes on the drive file, never in this process, which serves the drive, so every byte
 * they write is encrypted on its way to the container.
 *
 * Unlike a mount's drive, this one merges the tools' partial-sector writes before they reach
 * the container (partial-sectors.ts, SPEC §9.4 "Tool runs"): a tool killed in the middle of an
 * update that it makes in several small writes (libext2fs's superblock) must not leave that
 * sector half-updated, or an ext4 without a backup superblock could not be repaired.
 */
import { join } from 'node:path';
import { CryptainerError, MountError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME, createDriveHandlers } from './drive-ops.js';
import { fuseUsable, unmountAfterTool } from './filesystem.js';
import { mountFuse } from './fuse-adapter.js';
import { ERRNO, type FuseHandlers, FuseErrno } from './fuse-types.js';
import { type ToolWriteHook, toolWriteHook } from './kill-hook.js';
import { PartialSectorRun } from './partial-sectors.js';
import { createEntryDir, removeEntry } from './registry.js';

/** Options of {@link withToolDrive}. */
export interface ToolDriveOptions {
  /** What needs the drive, for the `FUSE_ERROR` message ("formatting"). */
  purpose: string;
  /** Appended to that message (what to do instead). */
  hint?: string;
  /** Messages for the server log or stderr. */
  log?: ((line: string) => void) | undefined;
}

/**
 * Mount `volume` (open read-write) as a drive, run `fn` on the drive file's path, unmount and
 * flush the volume. The tools' last partial-sector writes reach the container if `fn` returns
 * or stops between tools (`ABORTED`), and are dropped if it throws anything else (a tool
 * failed or was killed: SPEC §9.4 "Tool runs"). Throws `FUSE_ERROR` when FUSE cannot be used.
 */
export async function withToolDrive<T>(
  volume: Volume,
  options: ToolDriveOptions,
  fn: (drivePath: string) => Promise<T>,
): Promise<T> {
  const log = options.log;
  if (!(await fuseUsable())) {
    throw new MountError(
      'FUSE_ERROR',
      `${options.purpose} needs FUSE: /dev/fuse is missing or not usable by this user` +
        (options.hint ?? ''),
    );
  }
  const { id, dir } = await createEntryDir();
  try {
    const driveDir = join(dir, 'drive');
    const drive = createDriveHandlers(volume, {
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
    });
    const run = new PartialSectorRun(volume);
    const handlers = mergingPartialSectors(drive.handlers, run, volume.sizeBytes, toolWriteHook());
    const fuse = await mountFuse(driveDir, handlers, {
      fsname: 'cryptainer',
      onError: (op, err) => log?.(`drive ${op}: ${(err as Error)?.message ?? String(err)}`),
    });
    const commit = () => handlers.fsync!(`/${DRIVE_FILE_NAME}`, true, 0);
    try {
      const result = await fn(join(driveDir, DRIVE_FILE_NAME));
      await commit(); // the job ended well
      return result;
    } catch (err) {
      // ABORTED: `fn` stopped between two tools (an interruption it was asked for), after the
      // last one ended normally: keep what it wrote. Anything else: a tool failed, was killed
      // or timed out, maybe in the middle of an update: drop its unfinished run.
      if (err instanceof CryptainerError && err.code === 'ABORTED') await commit();
      else run.discard();
      throw err;
    } finally {
      await unmountAfterTool(fuse);
      run.discard(); // nothing is left after a commit; after an unmount error, drop it
      await volume.sync();
    }
  } finally {
    await removeEntry(id);
  }
}

/**
 * The drive's handlers with writes merged through `run` and reads seeing it. Requests are
 * served one at a time: a read must not find the run committed between reading the volume
 * and laying the run over it, and tools issue one request at a time anyway.
 */
function mergingPartialSectors(
  inner: FuseHandlers,
  run: PartialSectorRun,
  sizeBytes: number,
  hook: ToolWriteHook | null,
): FuseHandlers {
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(work);
    queue = result.catch(() => undefined);
    return result;
  };
  return {
    ...inner,
    read: (path, handle, buffer, length, position, state) =>
      serial(async () => {
        if (state.answered) return 0; // timed out while queued: the buffer is no longer ours
        const n = await inner.read(path, handle, buffer, length, position, state);
        if (n > 0 && !state.answered) run.overlay(position, buffer.subarray(0, n));
        return n;
      }),
    write: (path, handle, buffer, length, position) =>
      serial(async () => {
        if (hook?.(position, length)) throw new FuseErrno(ERRNO.EIO);
        // Path and bounds errors are the plain drive's to answer.
        if (path !== `/${DRIVE_FILE_NAME}` || position >= sizeBytes) {
          return inner.write(path, handle, buffer, length, position);
        }
        const n = Math.min(length, sizeBytes - position);
        await run.write(position, buffer.subarray(0, n));
        return n;
      }),
    fsync: (path, dataOnly, handle) =>
      serial(async () => {
        if (path === `/${DRIVE_FILE_NAME}`) await run.commit();
        await inner.fsync!(path, dataOnly, handle);
      }),
    // FLUSH (close) keeps the run: see partial-sectors.ts.
    flush: (path, handle) => serial(() => inner.flush!(path, handle)),
  };
}
