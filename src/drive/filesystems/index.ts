/**
 * The filesystem registry: one line per driver. Every list of filesystem names (CLI choices,
 * the registry record's type, detection) is derived from it.
 */
import { UsageError } from '../../../volume-format/errors.js';
import { ext4 } from './ext4.js';
import { ntfs } from './ntfs.js';
import type { FilesystemDriver } from './types.js';

/** Every filesystem a volume can hold, tried in this order by detection. */
export const FILESYSTEMS = { ext4, ntfs } as const satisfies Record<string, FilesystemDriver>;

/** A filesystem name the registry knows. */
export type FilesystemName = keyof typeof FILESYSTEMS;
/** What a volume holds: a known filesystem, or `none` = the raw drive only. */
export type FilesystemKind = FilesystemName | 'none';

/** The names in registry order. */
export const FILESYSTEM_NAMES = Object.keys(FILESYSTEMS) as FilesystemName[];

/** Bytes of the drive that {@link detectFilesystem} needs (the ext superblock ends at 2048). */
export const DETECT_BYTES = 4096;

/** Which filesystem the first bytes of a drive hold, or null. */
export function detectFilesystem(head: Uint8Array): FilesystemName | null {
  return FILESYSTEM_NAMES.find((name) => FILESYSTEMS[name].detect(head)) ?? null;
}

/** "neither ext4 nor NTFS": the known filesystems, for messages. */
export function noneOfKnown(): string {
  const labels = FILESYSTEM_NAMES.map((n) => FILESYSTEMS[n].label);
  return labels.length === 2
    ? `neither ${labels[0]} nor ${labels[1]}`
    : `none of ${labels.join(', ')}`;
}

/** Refuse (`USAGE`) a drive too small for `kind`, before any costly work. */
export function checkFilesystemSize(kind: FilesystemKind, sizeBytes: number): void {
  if (kind === 'none') return;
  const min = FILESYSTEMS[kind].minBytes;
  if (sizeBytes < min) {
    throw new UsageError(
      'USAGE',
      `size ${sizeBytes}: ${kind} needs at least ${min / 1024 / 1024} MiB (or use --filesystem none)`,
    );
  }
}
