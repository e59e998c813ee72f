/**
 * Header backup files (SPEC §13): encode, decode and validate the self-describing file that
 * `header-backup` writes and `header-restore` reads, and the pure check that a backup belongs
 * to a given volume. No I/O: src/volume/backup.ts reads and writes the files.
 *
 * A backup holds both header copies verbatim (each with its own magic, MAC and checksum), so a
 * restore writes them back without any key: the keyed MACs were computed by the volume itself
 * and are verified on the next unlock (SPEC §8 step 6).
 */
import {
  constantTimeEqual,
  isAllZero,
  readU32LE,
  readU64LE,
  writeU32LE,
  writeU64LE,
} from '../crypto/bytes.js';
import { sha256 } from '../crypto/hkdf.js';
import {
  BACKUP_COPY_COUNT,
  BACKUP_FIELD_OFFSETS as K,
  BACKUP_MAGIC,
  BACKUP_SIZE,
  BACKUP_VERSION,
  FORMAT_VERSION,
  HEADER_SIZE,
  type HeaderCopyName,
  MAGIC_BYTES,
  UUID_BYTES,
} from './constants.js';
import { CryptainerError, FormatError, UnsupportedError } from './errors.js';
import { INCOMPAT_REENCRYPT } from './features.js';
import {
  type HeaderFields,
  decodeHeaderCopy,
  formatUuid,
  keyGenerationOf,
  sameHeaderContent,
} from './header.js';
import type { Layout } from './layout.js';

/** A decoded, validated header backup (its byte arrays are copies, never views of the input). */
export interface HeaderBackup {
  /** What both embedded copies say (they are equal apart from magic, MAC and checksum). */
  fields: HeaderFields;
  /** The embedded copies, 4096 bytes each, exactly as they are written back on restore. */
  copies: Record<HeaderCopyName, Uint8Array>;
}

/**
 * Encode a backup of a consistent header: `copyA` and `copyB` are the bytes read at the two
 * copy offsets of a volume (SPEC §13.2). Both must be valid, with the same seqid and content;
 * otherwise this throws (`BACKUP_INVALID`, or the copy's own code): a backup is only taken of
 * a healthy header, so restoring it never reinstates damage.
 */
export function encodeHeaderBackup(copyA: Uint8Array, copyB: Uint8Array): Uint8Array {
  const fields = checkCopies({ A: copyA, B: copyB }, 'backing up the header');
  const out = new Uint8Array(BACKUP_SIZE);
  out.set(BACKUP_MAGIC, K.magic);
  writeU32LE(out, K.backupVersion, BACKUP_VERSION);
  writeU32LE(out, K.formatVersion, FORMAT_VERSION);
  out.set(fields.uuid, K.uuid);
  writeU64LE(out, K.seqid, fields.seqid);
  writeU32LE(out, K.sectorSize, fields.sectorSize);
  writeU32LE(out, K.copySize, HEADER_SIZE);
  writeU64LE(out, K.journalOffset, fields.journalOffset);
  writeU64LE(out, K.journalSize, fields.journalSize);
  writeU64LE(out, K.dataOffset, fields.dataOffset);
  writeU64LE(out, K.dataSize, fields.dataSize);
  writeU32LE(out, K.copyCount, BACKUP_COPY_COUNT);
  out.set(copyA.subarray(0, HEADER_SIZE), K.copyA);
  out.set(copyB.subarray(0, HEADER_SIZE), K.copyB);
  out.set(sha256(out.subarray(0, K.checksum)), K.checksum);
  return out;
}

/**
 * Decode and validate a backup file in the order of SPEC §13.3: magic, backup version, length,
 * checksum, preamble fields, then each embedded copy (SPEC §10) and their agreement with each
 * other and with the preamble. Throws `BACKUP_INVALID`, or `UNSUPPORTED_VERSION` /
 * `UNSUPPORTED_FEATURE` / `KDF_LIMITS` when the backup is well formed but asks for something
 * this reader refuses.
 */
export function decodeHeaderBackup(bytes: Uint8Array): HeaderBackup {
  const bad = (why: string, cause?: unknown): never => {
    throw new FormatError('BACKUP_INVALID', `header backup: ${why}`, { cause });
  };
  checkBackupPrefix(bytes, bytes.length);
  const expected = sha256(bytes.subarray(0, K.checksum));
  if (!constantTimeEqual(expected, bytes.subarray(K.checksum, K.checksum + 32))) {
    bad('checksum mismatch (the file is damaged)');
  }
  const formatVersion = readU32LE(bytes, K.formatVersion);
  if (formatVersion !== FORMAT_VERSION) {
    throw new UnsupportedError(
      'UNSUPPORTED_VERSION',
      `header backup: holds a format version ${formatVersion} header`,
    );
  }
  if (readU32LE(bytes, K.copySize) !== HEADER_SIZE) bad('copy size is not 4096');
  if (readU32LE(bytes, K.copyCount) !== BACKUP_COPY_COUNT) bad('copy count is not 2');
  if (!isAllZero(bytes.subarray(K.reserved, K.copyA))) bad('reserved bytes are not zero');
  const u64 = (off: number, name: string): number => {
    try {
      return readU64LE(bytes, off);
    } catch (err) {
      return bad(`${name} exceeds 2^53-1`, err);
    }
  };
  const preamble = {
    uuid: Uint8Array.from(bytes.subarray(K.uuid, K.uuid + UUID_BYTES)),
    seqid: u64(K.seqid, 'seqid'),
    sectorSize: readU32LE(bytes, K.sectorSize),
    journalOffset: u64(K.journalOffset, 'journal offset'),
    journalSize: u64(K.journalSize, 'journal size'),
    dataOffset: u64(K.dataOffset, 'data offset'),
    dataSize: u64(K.dataSize, 'data size'),
  };
  const copies = {
    A: Uint8Array.from(bytes.subarray(K.copyA, K.copyA + HEADER_SIZE)),
    B: Uint8Array.from(bytes.subarray(K.copyB, K.copyB + HEADER_SIZE)),
  };
  const fields = checkCopies(copies, 'header backup');
  // SPEC §13.3: the preamble describes the embedded copies; a disagreement means the file was
  // assembled or edited by something other than a writer of this format.
  if (!constantTimeEqual(preamble.uuid, fields.uuid)) bad('uuid does not match its header copies');
  if (preamble.seqid !== fields.seqid) bad('seqid does not match its header copies');
  if (!sameLayout(preamble, fields)) bad('layout does not match its header copies');
  return { fields, copies };
}

/**
 * The first checks of SPEC §13.3 on the start of a file whose full length is `totalLength`:
 * magic, backup version, then length. Lets a reader reject a wrong-sized file from its first
 * bytes without reading all of it. Throws `BACKUP_INVALID` or `UNSUPPORTED_VERSION`.
 */
export function checkBackupPrefix(prefix: Uint8Array, totalLength: number): void {
  const bad = (why: string): never => {
    throw new FormatError('BACKUP_INVALID', `header backup: ${why}`);
  };
  if (prefix.length < K.formatVersion) bad(`only ${prefix.length} bytes`);
  if (!constantTimeEqual(prefix.subarray(0, MAGIC_BYTES), BACKUP_MAGIC)) {
    bad('not a cryptainer header backup (bad magic)');
  }
  const version = readU32LE(prefix, K.backupVersion);
  if (version !== BACKUP_VERSION) {
    throw new UnsupportedError('UNSUPPORTED_VERSION', `header backup: backup version ${version}`);
  }
  if (totalLength !== BACKUP_SIZE) bad(`length ${totalLength}, expected ${BACKUP_SIZE}`);
}

/**
 * SPEC §13.4: a backup may only be restored onto the volume it was taken from, with the same
 * layout. `current` is what the volume's winning header copy says. Throws `BACKUP_MISMATCH`.
 */
export function checkBackupMatches(backup: HeaderBackup, current: HeaderFields): void {
  const b = backup.fields;
  if (!constantTimeEqual(b.uuid, current.uuid)) {
    throw new FormatError(
      'BACKUP_MISMATCH',
      `header backup belongs to another volume: backup uuid ${formatUuid(b.uuid)}, ` +
        `volume uuid ${formatUuid(current.uuid)}`,
    );
  }
  if (!sameLayout(b, current)) {
    throw new FormatError(
      'BACKUP_MISMATCH',
      `header backup describes another layout: backup data area ${b.dataOffset}+${b.dataSize} ` +
        `(${b.sectorSize}-byte sectors), volume ${current.dataOffset}+${current.dataSize} ` +
        `(${current.sectorSize}-byte sectors)`,
    );
  }
}

/** Why a backup does not describe the key the container's data is under (SPEC §13.4). */
export interface BackupStaleness {
  /** Key generation in the backup (SPEC §3.1; 0 for a revision-1.0 header). */
  backupGeneration: number;
  /** Key generation of the container's winning header copy. */
  volumeGeneration: number;
  /** One line for the user. */
  reason: string;
}

/**
 * SPEC §13.4 precondition 4: compare a backup with the container's current header (which
 * {@link checkBackupMatches} accepted). Returns `null` when the backup is current, otherwise why
 * it is stale: another key generation, or another re-encryption state (a flag set on one side
 * only, or a different progress record). Restoring a stale backup makes the data unreadable.
 */
export function planBackupStaleness(
  backup: HeaderBackup,
  current: HeaderFields,
): BackupStaleness | null {
  const backupGeneration = keyGenerationOf(backup.fields);
  const volumeGeneration = keyGenerationOf(current);
  const gens = { backupGeneration, volumeGeneration };
  if (backupGeneration !== volumeGeneration) {
    const when = backupGeneration < volumeGeneration ? 'before' : 'after';
    return {
      ...gens,
      reason:
        `the backup is of key generation ${backupGeneration}, the volume's data is under key ` +
        `generation ${volumeGeneration}: the backup was made ${when} a re-encryption`,
    };
  }
  const flagBackup = (backup.fields.features.incompat & INCOMPAT_REENCRYPT) !== 0n;
  const flagVolume = (current.features.incompat & INCOMPAT_REENCRYPT) !== 0n;
  if (flagBackup !== flagVolume) {
    return {
      ...gens,
      reason: flagBackup
        ? 'the backup was made during a re-encryption that has finished since'
        : 'the volume is being re-encrypted and the backup was made before or after that',
    };
  }
  if (flagBackup && !constantTimeEqual(backup.fields.featureArea, current.featureArea)) {
    return {
      ...gens,
      reason: 'the backup records another point of the unfinished re-encryption',
    };
  }
  return null;
}

/** True when two layouts are identical (SPEC §13.4). */
export function sameLayout(a: Layout, b: Layout): boolean {
  return (
    a.sectorSize === b.sectorSize &&
    a.journalOffset === b.journalOffset &&
    a.journalSize === b.journalSize &&
    a.dataOffset === b.dataOffset &&
    a.dataSize === b.dataSize
  );
}

/**
 * Both copies decode at their own offsets (SPEC §8 step 2), carry the same seqid and say the
 * same thing (SPEC §8 step 5). Format errors become `BACKUP_INVALID`; unsupported-but-valid
 * reasons keep their own code so the user learns why.
 */
function checkCopies(copies: Record<HeaderCopyName, Uint8Array>, what: string): HeaderFields {
  const decode = (copy: HeaderCopyName): HeaderFields => {
    try {
      return decodeHeaderCopy(copies[copy], copy);
    } catch (err) {
      if (err instanceof UnsupportedError) {
        throw new UnsupportedError(err.code, `${what}: ${err.message}`, { cause: err });
      }
      if (err instanceof CryptainerError) {
        throw new FormatError('BACKUP_INVALID', `${what}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  };
  const a = decode('A');
  const b = decode('B');
  if (a.seqid !== b.seqid || !sameHeaderContent(a, b)) {
    throw new FormatError(
      'BACKUP_INVALID',
      `${what}: header copies A (seqid ${a.seqid}) and B (seqid ${b.seqid}) differ`,
    );
  }
  return a;
}
