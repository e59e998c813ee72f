/**
 * Header backup and restore (SPEC §13): the effects around the pure format in
 * volume-format/backup.ts. A backup holds both header copies verbatim, so restoring one needs
 * no key; everything the backup's keyslots unlocked unlocks again after a restore.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { constantTimeEqual } from '../../crypto/bytes.js';
import {
  HEADER_COPY_OFFSETS,
  HEADER_FIELD_OFFSETS,
  HEADER_MAGICS,
  type HeaderCopyName,
  MAGIC_BYTES,
  UUID_BYTES,
} from '../../volume-format/constants.js';
import {
  type BackupStaleness,
  type HeaderBackup,
  checkBackupMatches,
  checkBackupPrefix,
  decodeHeaderBackup,
  encodeHeaderBackup,
  planBackupStaleness,
} from '../../volume-format/backup.js';
import { CryptainerError, FormatError, UsageError } from '../../volume-format/errors.js';
import { type HeaderChoice, planHeaderChoice } from '../../volume-format/header-copies.js';
import { containerSizeOf } from '../../volume-format/layout.js';
import { ioErrorFrom } from '../io/file-storage.js';
import { closeContainer, openContainer } from '../io/container-file.js';
import type { Storage } from '../io/storage.js';
import { type Rng, systemRng } from '../rng.js';
import { readHeaderCopies } from './header-store.js';

/** Largest file read as a candidate backup (a real one is {@link BACKUP_SIZE} bytes). */
const MAX_BACKUP_READ_BYTES = 64 * 1024;

/** Errors from SPEC §8 that mean "no usable header here" rather than a broken call. */
const NO_HEADER_CODES = new Set([
  'NO_VALID_HEADER',
  'UNSUPPORTED_FEATURE',
  'UNSUPPORTED_VERSION',
  'KDF_LIMITS',
]);

/**
 * Write a backup of `path`'s header to `backupPath` (SPEC §13.2). The header must be healthy:
 * both copies valid and equal (otherwise `USAGE`, asking for `repair` first). The backup is
 * created with mode 0600 and never replaces an existing file (`FILE_EXISTS`); it appears at
 * `backupPath` only once complete (written to a temporary file, fsynced, then linked).
 */
export async function writeHeaderBackup(
  path: string,
  backupPath: string,
  rng: Rng = systemRng,
): Promise<HeaderBackup> {
  // SPEC §9.2: a reader of the header alone takes no lock (it works on a mounted volume).
  const { storage } = await openContainer(path, { readOnly: true, lock: 'none' });
  let bytes: Uint8Array;
  try {
    const raw = await readHeaderCopies(storage);
    const choice = planHeaderChoice(raw.A, raw.B);
    for (const copy of choice.repair) {
      const r = choice.copies[copy];
      const why = r.error ? `${r.status} (${r.error.message})` : r.status;
      throw new UsageError(
        'USAGE',
        `backing up the header of ${path}: header copy ${copy} is ${why}; ` +
          `run "cryptainer repair ${path}" first`,
      );
    }
    bytes = encodeHeaderBackup(raw.A!, raw.B!);
  } finally {
    await storage.close();
  }
  await writeNewFileAtomically(backupPath, bytes, rng);
  return decodeHeaderBackup(bytes);
}

/**
 * Read and validate a backup file (SPEC §13.3). Throws `BACKUP_INVALID`, `NOT_FOUND`, or
 * `UNSUPPORTED_VERSION`/`UNSUPPORTED_FEATURE`/`KDF_LIMITS` for a backup this reader refuses.
 */
export async function readHeaderBackup(backupPath: string): Promise<HeaderBackup> {
  let bytes: Uint8Array;
  try {
    // O_NONBLOCK: a FIFO given as the backup must be refused below, not wait for a writer.
    const handle = await fsp.open(backupPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw new FormatError('BACKUP_INVALID', `header backup ${backupPath}: not a regular file`);
      }
      // Never slurp a huge file given by mistake: SPEC §13.3 accepts exactly one length, and
      // the magic, version and length checks need only the first bytes.
      const buf = Buffer.alloc(Math.min(st.size, MAX_BACKUP_READ_BYTES));
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      bytes = buf.subarray(0, bytesRead);
      checkBackupPrefix(bytes, st.size);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof CryptainerError) throw err;
    throw ioErrorFrom(err, `reading header backup ${backupPath}`);
  }
  return decodeHeaderBackup(bytes);
}

/** What a restore would do to a container (SPEC §13.4). */
export interface RestoreTarget {
  /**
   * `match`: the container has a valid header with the backup's uuid and layout.
   * `unverified`: the container has no valid header, so nothing can be compared; the container
   * is at least as long as the backup's layout requires.
   */
  kind: 'match' | 'unverified';
  /** The container's current header choice (only for `match`). */
  current?: HeaderChoice;
  /**
   * For `match`: set when the backup does not describe the key the data is under (another key
   * generation or re-encryption state, SPEC §13.4 precondition 4). Restoring it is refused
   * with `BACKUP_STALE` unless forced.
   */
  stale?: BackupStaleness;
  /** Why the container's header is unusable (only for `unverified`). */
  headerError?: CryptainerError;
  /**
   * For `unverified`: uuids still readable in damaged copies that carry their copy's magic but
   * differ from the backup's (a hint that the backup may belong to another volume).
   */
  otherUuids: Uint8Array[];
}

/**
 * Decide whether `backup` may be restored onto the container behind `storage` (SPEC §13.4):
 * the container must be long enough for the backup's layout; if it has a valid header, the
 * uuid and layout must match (`BACKUP_MISMATCH` otherwise).
 */
export async function planRestoreTarget(
  storage: Storage,
  backup: HeaderBackup,
): Promise<RestoreTarget> {
  const need = containerSizeOf(backup.fields);
  const have = await storage.size();
  if (have < need) {
    throw new FormatError(
      'BACKUP_MISMATCH',
      `header backup does not fit this container: it describes ${need} bytes, the file has ${have}`,
    );
  }
  const raw = await readHeaderCopies(storage);
  let current: HeaderChoice;
  try {
    current = planHeaderChoice(raw.A, raw.B);
  } catch (err) {
    if (err instanceof CryptainerError && NO_HEADER_CODES.has(err.code)) {
      return { kind: 'unverified', headerError: err, otherUuids: leftoverUuids(raw, backup) };
    }
    throw err;
  }
  checkBackupMatches(backup, current.fields);
  const stale = planBackupStaleness(backup, current.fields);
  return { kind: 'match', current, otherUuids: [], ...(stale ? { stale } : {}) };
}

/** Options for {@link restoreHeaderBackup}. */
export interface RestoreOptions {
  /** Replace the file storage (fault-injection tests); it is closed afterwards. */
  storage?: Storage;
  /**
   * Restore even a stale backup (SPEC §13.4 precondition 4). Only for a user who confirmed
   * this very case: the data then no longer decrypts under the restored keyslots.
   */
  allowStale?: boolean;
}

/** The `BACKUP_STALE` refusal for `target` (SPEC §10 row 34). */
export function staleBackupError(path: string, stale: BackupStaleness): FormatError {
  return new FormatError(
    'BACKUP_STALE',
    `restoring the header of ${path}: the backup is stale: ${stale.reason}; restoring it would ` +
      'make the data unreadable (nothing was written)',
  );
}

/**
 * Restore both header copies of `path` from `backup` (SPEC §13.4): under the volume's
 * exclusive lock (`VOLUME_BUSY` if it is open elsewhere), re-check the target (`BACKUP_MISMATCH`;
 * `BACKUP_STALE` for a stale backup unless `allowStale`), then write copy A, fsync, copy B,
 * fsync. A crash leaves the old header or the restored one (SPEC §13.4).
 */
export async function restoreHeaderBackup(
  path: string,
  backup: HeaderBackup,
  options: RestoreOptions = {},
): Promise<RestoreTarget> {
  // SPEC §9.2: locked before the target's header is read for the checks.
  const opened = await openContainer(path, {
    lock: 'exclusive',
    ...(options.storage ? { storage: options.storage } : {}),
  });
  try {
    const { storage } = opened;
    const target = await planRestoreTarget(storage, backup);
    if (target.stale && options.allowStale !== true) {
      throw staleBackupError(path, target.stale);
    }
    for (const copy of ['A', 'B'] as const) {
      await storage.writeAt(HEADER_COPY_OFFSETS[copy], backup.copies[copy]);
      await storage.sync();
    }
    return target;
  } finally {
    await closeContainer(opened);
  }
}

/** uuid fields of damaged copies that still carry their magic and differ from the backup's. */
function leftoverUuids(
  raw: Record<HeaderCopyName, Uint8Array | null>,
  backup: HeaderBackup,
): Uint8Array[] {
  const found: Uint8Array[] = [];
  for (const copy of ['A', 'B'] as const) {
    const bytes = raw[copy];
    if (bytes === null) continue;
    if (!constantTimeEqual(bytes.subarray(0, MAGIC_BYTES), HEADER_MAGICS[copy])) continue;
    const uuid = bytes.slice(HEADER_FIELD_OFFSETS.uuid, HEADER_FIELD_OFFSETS.uuid + UUID_BYTES);
    if (constantTimeEqual(uuid, backup.fields.uuid)) continue;
    if (!found.some((u) => constantTimeEqual(u, uuid))) found.push(uuid);
  }
  return found;
}

/**
 * Create `path` with exactly `bytes`, mode 0600, never replacing an existing file: write a
 * temporary file beside it (O_EXCL), fsync, link(2) it to `path` (fails with `FILE_EXISTS` if
 * something is there), remove the temporary name, fsync the directory. A crash leaves no file
 * or the complete one at `path`.
 */
async function writeNewFileAtomically(path: string, bytes: Uint8Array, rng: Rng): Promise<void> {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.cryptainer-tmp-${Buffer.from(rng.bytes(6)).toString('hex')}`,
  );
  try {
    await fsp.lstat(path);
    throw new UsageError('FILE_EXISTS', `writing header backup ${path}: file exists`);
  } catch (err) {
    if (err instanceof CryptainerError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw ioErrorFrom(err, `writing header backup ${path}`);
    }
  }
  try {
    const handle = await fsp.open(tmp, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask says
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.link(tmp, path);
    const dir = await fsp.open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    throw ioErrorFrom(err, `writing header backup ${path}`);
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}
