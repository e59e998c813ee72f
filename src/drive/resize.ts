/**
 * Resizing a volume together with the filesystem inside it (SPEC §16, `cryptainer resize`):
 * the volume-level steps come from src/volume/resize.ts; the filesystem tools (resize2fs,
 * ntfsresize) run on the decrypted drive, exposed through FUSE in a private runtime directory
 * as for `create --filesystem` (format.ts), so every byte they write is encrypted on its way to
 * the container. It lives here, one level above src/volume, which never imports the drive.
 *
 * Order (SPEC §16.2/§16.3): grow = volume first (extend, fill, header), then the filesystem;
 * shrink = filesystem first (after checking it fits), then the header, then the truncation. A
 * crash between the volume step and the filesystem step leaves a consistent volume whose
 * filesystem is smaller than the drive; running the same resize again finishes it.
 */
import { CryptainerError, MountError, UsageError } from '../../volume-format/errors.js';
import { type ResizePlan, type SizeRequest, planResize } from '../../volume-format/resize.js';
import { openVolume } from '../volume/open.js';
import { growVolumeData, shrinkVolumeData } from '../volume/resize.js';
import type { UnlockSecret } from '../volume/secret.js';
import {
  DETECT_BYTES,
  FILESYSTEMS,
  type FilesystemName,
  detectFilesystem,
} from './filesystems/index.js';
import type { RunCommandOptions } from './run-command.js';
import { withToolDrive } from './tool-drive.js';

/** What resize's drive is for, in its FUSE_ERROR message. */
const RESIZE_DRIVE = { purpose: 'resizing the filesystem' };

/** Options for {@link resizeVolume}. */
export interface ResizeOptions extends UnlockSecret {
  /** The new size: absolute, or bytes to add or remove. */
  request: SizeRequest;
  /** Try only this keyslot. */
  keyslot?: number;
  /** Shrink even when no ext4/NTFS filesystem is recognised (the end of the drive is cut). */
  force?: boolean;
  /** Called while new sectors are filled (grow). */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Messages about the filesystem steps. */
  log?: (line: string) => void;
  /**
   * Stop at the next consistent point: between two steps, or within the fill of new space
   * (which is then given back). A filesystem tool that is running is left to finish.
   */
  signal?: AbortSignal;
  /**
   * Stop now: also end the filesystem tool that is running (SIGTERM). Its writes since its
   * last fsync are dropped (SPEC §9.4 "Tool runs"); running the same resize again checks and
   * repairs the filesystem, then finishes.
   */
  stopNow?: AbortSignal;
}

/** What {@link resizeVolume} did. */
export interface ResizeReport {
  direction: ResizePlan['direction'];
  oldDataSize: number;
  newDataSize: number;
  /** The filesystem found inside, or null (raw drive or unknown content). */
  filesystem: FilesystemName | null;
  /** Shrink: the smallest size the filesystem reported it fits in. */
  minimumBytes?: number;
}

/**
 * Resize the volume in `path` and its filesystem (SPEC §16). Needs the volume unmounted: a
 * mounted volume holds the lock (`VOLUME_BUSY`). Throws `SHRINK_TOO_SMALL` naming the minimum,
 * with nothing changed, when the filesystem does not fit; `USAGE` for a size that is not a
 * multiple of the sector size, or a shrink of a drive without a known filesystem unless
 * `force`; `REENCRYPT_IN_PROGRESS`, `WRONG_PASSPHRASE`, `MOUNT_FAILED` (a tool failed);
 * `ABORTED` when `signal` or `stopNow` stopped it, with a message that says where it stopped
 * and the command that finishes it (the same resize, with the new size in bytes or units).
 */
export async function resizeVolume(path: string, options: ResizeOptions): Promise<ResizeReport> {
  const volume = await openVolume(path, {
    ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
    ...(options.keyfiles !== undefined ? { keyfiles: options.keyfiles } : {}),
    ...(options.keyslot !== undefined ? { keyslot: options.keyslot } : {}),
  });
  let finish = '';
  try {
    const plan = planResize(volume.header, options.request);
    // Relative sizes would add or remove again when rerun: the message names the absolute one.
    finish = `run \`cryptainer resize ${path} --size ${sizeArgument(plan.newDataSize)}\` to finish`;
    const stopped = (where: string): CryptainerError =>
      new CryptainerError('ABORTED', `resize of ${path} stopped ${where}: ${finish}`);
    const checkpoint = (where: string): void => {
      if (options.signal?.aborted || options.stopNow?.aborted) throw stopped(where);
    };
    const tools: RunCommandOptions = options.stopNow ? { stop: options.stopNow } : {};
    const head = await volume.read(0, Math.min(DETECT_BYTES, volume.sizeBytes));
    const fs = detectFilesystem(head);
    const driver = fs === null ? null : FILESYSTEMS[fs];
    const report: ResizeReport = {
      direction: plan.direction,
      oldDataSize: plan.oldDataSize,
      newDataSize: plan.newDataSize,
      filesystem: fs,
    };
    const unchanged = 'before its size changed (the volume is consistent)';
    checkpoint(unchanged);
    if (plan.direction === 'shrink') {
      if (fs === null && options.force !== true) {
        throw new UsageError(
          'USAGE',
          `shrinking ${path}: no ext4 or NTFS filesystem found inside, so nothing can check ` +
            'what the cut would lose (use --force to cut the end of the drive anyway)',
        );
      }
      if (driver !== null) {
        // SPEC §16.3 step 1: check the minimum before anything is written, then shrink.
        await withToolDrive(volume, { ...RESIZE_DRIVE, log: options.log }, async (drive) => {
          // resize2fs -P refuses to measure what an interrupted resize2fs left (not clean):
          // then check first. A clean one is measured first, so a refusal writes nothing.
          let checked = false;
          if (!(await driver.isClean(drive, tools))) {
            await driver.repair(drive, tools);
            checked = true;
          }
          checkpoint(unchanged);
          report.minimumBytes = await driver.minimumSize(drive, tools);
          if (plan.newDataSize < report.minimumBytes) {
            throw new UsageError(
              'SHRINK_TOO_SMALL',
              `shrinking ${path}: the ${fs} filesystem needs at least ` +
                `${mib(report.minimumBytes)} MiB (${report.minimumBytes} bytes); nothing was changed`,
            );
          }
          if (!checked) await driver.repair(drive, tools);
          checkpoint(unchanged);
          await driver.shrink(drive, plan.newDataSize, tools);
        });
        checkpoint(
          `after the ${fs} filesystem was shrunk, before the volume was (the volume is consistent)`,
        );
      }
      await shrinkVolumeData(volume, plan); // steps 2–3
    } else {
      if (plan.direction === 'grow') {
        await growVolumeData(volume, plan, options.onProgress, options.signal).catch((err) => {
          if (err instanceof CryptainerError && err.code === 'ABORTED') {
            throw stopped('before its size changed (the new space was given back)');
          }
          throw err;
        });
      }
      // SPEC §16.2 step 4; also finishes a grow whose filesystem step was interrupted.
      if (driver !== null) {
        const grown =
          (plan.direction === 'grow'
            ? `after the volume grew to ${formatMiB(plan.newDataSize)}, before`
            : 'before') + ` the ${fs} filesystem inside was grown (the volume is consistent)`;
        checkpoint(grown);
        await withToolDrive(volume, { ...RESIZE_DRIVE, log: options.log }, async (drive) => {
          await driver.repair(drive, tools);
          checkpoint(grown);
          await driver.grow(drive, tools);
        });
      }
    }
    return report;
  } catch (err) {
    if (options.stopNow?.aborted && !(err instanceof CryptainerError && err.code === 'ABORTED')) {
      // A tool was ended in the middle of its work (or failed because of it).
      throw new CryptainerError(
        'ABORTED',
        `resize of ${path} was stopped at once, in the middle of a filesystem step: ${finish} ` +
          '(it checks and repairs the filesystem first)',
        { cause: err },
      );
    }
    throw err;
  } finally {
    await volume.close();
  }
}

/** `size` as a `--size` argument: the largest binary unit that divides it, else bytes. */
function sizeArgument(size: number): string {
  for (const [unit, bytes] of [
    ['T', 1024 ** 4],
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (size % bytes === 0) return `${size / bytes}${unit}`;
  }
  return String(size);
}

/** "3 GiB", "64 MiB"; else MiB with one decimal. */
function formatMiB(bytes: number): string {
  if (bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3} GiB`;
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MiB`;
  return `${mib(bytes)} MiB`;
}

function mib(bytes: number): string {
  return (Math.ceil((bytes / 1048576) * 10) / 10).toFixed(1);
}
