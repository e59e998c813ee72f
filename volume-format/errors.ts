/**
 * The error model (ARCHITECTURE.md §5): one class per failure layer, each carrying a stable
 * string `code` that tests and the CLI's exit-code table rely on. Messages are lowercase
 * "what failed: why" and never contain key material or passphrases.
 */

/** Every stable error code. Never renumber or rename one: scripts match on them. */
export type ErrorCode =
  // format: bytes on disk are not a valid v1 volume (SPEC §10)
  | 'HEADER_SHORT'
  | 'HEADER_MAGIC'
  | 'HEADER_CHECKSUM'
  | 'HEADER_FIELD'
  | 'KEYSLOT_FIELD'
  | 'NO_VALID_HEADER'
  | 'TRUNCATED'
  | 'BACKUP_INVALID'
  | 'BACKUP_MISMATCH'
  | 'BACKUP_STALE'
  | 'JOURNAL_CORRUPT'
  // integrity: valid-looking bytes that fail a keyed check
  | 'HEADER_TAMPERED'
  | 'WEAK_KEY'
  // unsupported: valid but asks for something this reader does not implement or allow
  | 'UNSUPPORTED_VERSION'
  | 'UNSUPPORTED_FEATURE'
  | 'KDF_LIMITS'
  | 'REENCRYPT_IN_PROGRESS'
  // auth
  | 'WRONG_PASSPHRASE'
  // busy
  | 'VOLUME_BUSY'
  // I/O and filesystem
  | 'IO_ERROR'
  | 'FILE_EXISTS'
  | 'NOT_FOUND'
  | 'READ_ONLY'
  | 'NO_SPACE'
  // mount / FUSE
  | 'MOUNT_FAILED'
  | 'NOT_MOUNTED'
  | 'FUSE_ERROR'
  // usage
  | 'USAGE'
  | 'ABORTED'
  | 'NO_KEYSLOT'
  | 'LAST_KEYSLOT'
  | 'SHRINK_TOO_SMALL';

/** Base class: every error we raise on purpose carries a stable `code`. */
export class CryptainerError extends Error {
  /** Stable machine-readable code (never the message) that callers and tests match on. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The bytes on disk are not a valid volume (bad magic, checksum, field, layout). */
export class FormatError extends CryptainerError {}

/** Bytes are well formed but fail a keyed check (MAC mismatch, weak unwrapped key). */
export class IntegrityError extends CryptainerError {}

/** Valid, but uses a version, feature or cost this reader refuses. */
export class UnsupportedError extends CryptainerError {}

/** No keyslot opened with the supplied secret (wrong passphrase or damaged keyslot). */
export class AuthError extends CryptainerError {}

/** The volume is locked by another process or mounted. */
export class BusyError extends CryptainerError {}

/** Reading or writing a file failed. */
export class IoError extends CryptainerError {}

/** Mounting, unmounting or serving the FUSE drive failed. */
export class MountError extends CryptainerError {}

/** The caller asked for something invalid (bad argument, refused without --force). */
export class UsageError extends CryptainerError {}

/** True when `err` is one of ours (has a stable code). */
export function isCryptainerError(err: unknown): err is CryptainerError {
  return err instanceof CryptainerError;
}
