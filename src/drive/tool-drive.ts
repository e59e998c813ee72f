/**
 * A volume exposed as a drive file in a private runtime directory for the length of one job
 * (mkfs for `create`, resize2fs/ntfsresize for `resize`): the tools run as child processes on
 * the drive file, never in this process, which serves the drive, so every byte they write is
 * encrypted on its way to the container.
 */
import { join } from 'node:path';
import { MountError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME, createDriveHandlers } from './drive-ops.js';
import { fuseUsable, unmountAfterTool } from './filesystem.js';
import { mountFuse } from './fuse-adapter.js';
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
 * flush the volume. Throws `FUSE_ERROR` when FUSE cannot be used.
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
    const fuse = await mountFuse(driveDir, drive.handlers, {
      fsname: 'cryptainer',
      onError: (op, err) => log?.(`drive ${op}: ${(err as Error)?.message ?? String(err)}`),
    });
    try {
      return await fn(join(driveDir, DRIVE_FILE_NAME));
    } finally {
      await unmountAfterTool(fuse);
      await volume.sync();
    }
  } finally {
    await removeEntry(id);
  }
}
