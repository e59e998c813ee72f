/**
 * The exit-code table (README "Exit codes"). Numbers are never reused or renumbered; they follow
 * cryptsetup where it has one (1 usage, 2 bad passphrase, 4 wrong device, 5 busy).
 */
import type { ErrorCode } from '../../volume-format/errors.js';

/** Exit statuses of the `cryptainer` command. */
export const EXIT = {
  OK: 0,
  USAGE: 1,
  WRONG_PASSPHRASE: 2,
  // 3 is reserved (cryptsetup: out of memory).
  INVALID_VOLUME: 4,
  BUSY: 5,
  IO: 6,
  MOUNT: 7,
  UNSUPPORTED: 8,
  INTEGRITY: 9,
  ABORTED: 10,
  INTERNAL: 70,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  USAGE: EXIT.USAGE,
  FILE_EXISTS: EXIT.USAGE,
  LAST_KEYSLOT: EXIT.USAGE,
  NO_KEYSLOT: EXIT.USAGE,
  WRONG_PASSPHRASE: EXIT.WRONG_PASSPHRASE,
  HEADER_SHORT: EXIT.INVALID_VOLUME,
  HEADER_MAGIC: EXIT.INVALID_VOLUME,
  HEADER_CHECKSUM: EXIT.INVALID_VOLUME,
  HEADER_FIELD: EXIT.INVALID_VOLUME,
  KEYSLOT_FIELD: EXIT.INVALID_VOLUME,
  NO_VALID_HEADER: EXIT.INVALID_VOLUME,
  TRUNCATED: EXIT.INVALID_VOLUME,
  BACKUP_INVALID: EXIT.INVALID_VOLUME,
  BACKUP_MISMATCH: EXIT.INVALID_VOLUME,
  VOLUME_BUSY: EXIT.BUSY,
  IO_ERROR: EXIT.IO,
  NOT_FOUND: EXIT.IO,
  READ_ONLY: EXIT.IO,
  NO_SPACE: EXIT.IO,
  MOUNT_FAILED: EXIT.MOUNT,
  NOT_MOUNTED: EXIT.MOUNT,
  FUSE_ERROR: EXIT.MOUNT,
  UNSUPPORTED_VERSION: EXIT.UNSUPPORTED,
  UNSUPPORTED_FEATURE: EXIT.UNSUPPORTED,
  KDF_LIMITS: EXIT.UNSUPPORTED,
  HEADER_TAMPERED: EXIT.INTEGRITY,
  WEAK_KEY: EXIT.INTEGRITY,
  ABORTED: EXIT.ABORTED,
};

/** Exit status for an error code. */
export function exitCodeFor(code: ErrorCode): number {
  return BY_CODE[code] ?? EXIT.INTERNAL;
}
