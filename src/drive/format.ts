/**
 * Formatting a new volume through its drive (issue 3: `create --filesystem ext4|ntfs`): the
 * volume is exposed through FUSE in a private runtime directory and mkfs writes to the drive
 * file, so every byte it writes is encrypted on its way to the container. This lives in
 * src/drive, one level above src/volume, which never imports the drive (ARCHITECTURE §3).
 */
import { join } from 'node:path';
import { CryptainerError, MountError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME, createDriveHandlers } from './drive-ops.js';
import { fuseUsable, makeFilesystem, unmountAfterTool } from './filesystem.js';
import { mountFuse } from './fuse-adapter.js';
import { createEntryDir, removeEntry } from './registry.js';

/** Options for {@link formatVolume}. */
export interface FormatOptions {
  /** Filesystem label (ext4: up to 16 bytes; NTFS: up to 128 characters). */
  label?: string;
  /** Messages for the server log or stderr. */
  log?: (line: string) => void;
}

/**
 * Make a `kind` filesystem inside `volume` (open read-write). The volume stays open; the
 * caller closes it. Throws `FUSE_ERROR` when FUSE cannot be used, `MOUNT_FAILED` naming the
 * tool that failed.
 */
export async function formatVolume(
  volume: Volume,
  kind: 'ext4' | 'ntfs',
  options: FormatOptions = {},
): Promise<void> {
  if (!(await fuseUsable())) {
    throw new MountError(
      'FUSE_ERROR',
      'formatting needs FUSE: /dev/fuse is missing or not usable by this user ' +
        '(or create the volume with --filesystem none)',
    );
  }
  const { id, dir } = await createEntryDir();
  // Ctrl-C reaches mkfs too (same process group) and stops it; we must not die with it, or the
  // drive would stay mounted, dead, in the runtime directory. Undo, then report ABORTED.
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = sig;
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);
  try {
    const driveDir = join(dir, 'drive');
    const drive = createDriveHandlers(volume, {
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
    });
    const fuse = await mountFuse(driveDir, drive.handlers, {
      fsname: 'cryptainer',
      onError: (op, err) => options.log?.(`drive ${op}: ${(err as Error)?.message ?? String(err)}`),
    });
    try {
      await makeFilesystem(join(driveDir, DRIVE_FILE_NAME), kind, {
        sectorSize: volume.sectorSize,
        ...(options.label !== undefined ? { label: options.label } : {}),
      });
    } finally {
      await unmountAfterTool(fuse);
    }
    await volume.sync();
  } catch (err) {
    if (interrupted)
      throw new CryptainerError('ABORTED', `formatting: interrupted by ${interrupted}`);
    throw err;
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    await removeEntry(id);
  }
  if (interrupted)
    throw new CryptainerError('ABORTED', `formatting: interrupted by ${interrupted}`);
}
