/**
 * Formatting a new volume through its drive (issue 3: `create --filesystem ext4|ntfs`): mkfs
 * writes to the drive file (tool-drive.ts), so every byte it writes is encrypted on its way to
 * the container. This lives in
 * src/drive, one level above src/volume, which never imports the drive (ARCHITECTURE.md §2).
 */
import { CryptainerError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { FILESYSTEMS, type FilesystemName } from './filesystems/index.js';
import { withToolDrive } from './tool-drive.js';

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
  kind: FilesystemName,
  options: FormatOptions = {},
): Promise<void> {
  // Ctrl-C reaches mkfs too (same process group) and stops it; we must not die with it, or the
  // drive would stay mounted, dead, in the runtime directory. Undo, then report ABORTED.
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = sig;
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);
  try {
    const purpose = 'formatting';
    const hint = ' (or create the volume with --filesystem none)';
    await withToolDrive(volume, { purpose, hint, log: options.log }, (drive) =>
      FILESYSTEMS[kind].make(drive, {
        sectorSize: volume.sectorSize,
        ...(options.label !== undefined ? { label: options.label } : {}),
      }),
    );
  } catch (err) {
    if (interrupted)
      throw new CryptainerError('ABORTED', `formatting: interrupted by ${interrupted}`);
    throw err;
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
  }
  if (interrupted)
    throw new CryptainerError('ABORTED', `formatting: interrupted by ${interrupted}`);
}
