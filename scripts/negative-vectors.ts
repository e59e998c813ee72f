/**
 * Malformed-header cases for the format vectors (SPEC §10): each mutates a valid copy A (or,
 * for SPEC §13.3, a valid header backup) and names the error code a reader must report.
 * The generator writes one vector file per case; the checksum is recomputed after the mutation
 * (unless `reseal` is false) so each case exercises the field rule, not just the checksum.
 */
import { BACKUP_FIELD_OFFSETS, HEADER_FIELD_OFFSETS as H } from '../volume-format/constants.js';

/** One malformed-header case. */
export interface NegativeVector {
  /** File name stem: test/vectors/<name>.vector */
  name: string;
  description: string;
  /** Edit the 4096-byte copy in place. */
  mutate: (copy: Uint8Array, view: DataView) => void;
  /** Recompute the checksum after mutating (default true). */
  reseal?: boolean;
  /** The error code decodeHeaderCopy must throw. */
  expect: string;
}

const KS = H.keyslots; // keyslot 0

/** SPEC §10, row by row. */
export const NEGATIVE_VECTORS: NegativeVector[] = [
  {
    name: 'bad-checksum',
    description: 'one bit of data_size flipped, checksum not recomputed',
    mutate: (c) => (c[H.dataSize]! ^= 1),
    reseal: false,
    expect: 'HEADER_CHECKSUM',
  },
  {
    name: 'bad-magic',
    description: 'magic of copy B at copy A offset',
    mutate: (c) => c.set(new TextEncoder().encode('NIATPYRC'), 0),
    expect: 'HEADER_MAGIC',
  },
  {
    name: 'version-2',
    description: 'format_version = 2',
    mutate: (_c, v) => v.setUint32(H.formatVersion, 2, true),
    expect: 'UNSUPPORTED_VERSION',
  },
  {
    name: 'header-size',
    description: 'header_size = 8192',
    mutate: (_c, v) => v.setUint32(H.headerSize, 8192, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'seqid-zero',
    description: 'seqid = 0',
    mutate: (_c, v) => v.setBigUint64(H.seqid, 0n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'seqid-overflow',
    description: 'seqid = 2^53 (above the u64 limit of SPEC §1)',
    mutate: (_c, v) => v.setBigUint64(H.seqid, 1n << 53n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'uuid-zero',
    description: 'uuid all zero',
    mutate: (c) => c.fill(0, H.uuid, H.uuid + 16),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'unknown-incompat',
    description: 'feature_incompat bit 0 set (unknown to v1)',
    mutate: (_c, v) => v.setBigUint64(H.featureIncompat, 1n, true),
    expect: 'UNSUPPORTED_FEATURE',
  },
  {
    name: 'cipher',
    description: 'cipher = 2',
    mutate: (_c, v) => v.setUint32(H.cipher, 2, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'sector-size',
    description: 'sector_size = 1024',
    mutate: (_c, v) => v.setUint32(H.sectorSize, 1024, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'journal-offset',
    description: 'journal_offset = 0 (overlaps the header copies)',
    mutate: (_c, v) => v.setBigUint64(H.journalOffset, 0n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'journal-size-unaligned',
    description: 'journal_size = 4097',
    mutate: (_c, v) => v.setBigUint64(H.journalSize, 4097n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'journal-size-huge',
    description: 'journal_size = 128 MiB (above 64 MiB)',
    mutate: (_c, v) => v.setBigUint64(H.journalSize, 128n << 20n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-overlaps-journal',
    description: 'data_offset = 2 MiB, inside the journal area',
    mutate: (_c, v) => v.setBigUint64(H.dataOffset, 2n << 20n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-size-zero',
    description: 'data_size = 0',
    mutate: (_c, v) => v.setBigUint64(H.dataSize, 0n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-size-unaligned',
    description: 'data_size not a multiple of sector_size',
    mutate: (_c, v) => v.setBigUint64(H.dataSize, 4096n * 3n + 512n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-end-overflow',
    description: 'data_offset + data_size > 2^53 - 1',
    mutate: (_c, v) => v.setBigUint64(H.dataSize, (1n << 53n) - 4096n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-size-u64-max',
    description: 'data_size = 2^64 - 4096',
    mutate: (_c, v) => v.setBigUint64(H.dataSize, (1n << 64n) - 4096n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslot-count',
    description: 'keyslot_count = 9 (table would overrun the copy)',
    mutate: (_c, v) => v.setUint32(H.keyslotCount, 9, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslot-size',
    description: 'keyslot_size = 4096',
    mutate: (_c, v) => v.setUint32(H.keyslotSize, 4096, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslots-offset',
    description: 'keyslots_offset = 4000 (keyslot table outside its area)',
    mutate: (_c, v) => v.setUint32(H.keyslotsOffset, 4000, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'reserved-nonzero',
    description: 'the first reserved byte after key_generation (offset 124) is 1',
    mutate: (c) => (c[H.reserved0] = 1),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'feature-area-nonzero',
    description: 'feature_area byte set with no feature flag',
    mutate: (c) => (c[H.featureArea + 10] = 1),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslot-state',
    description: 'keyslot 0 state = 7',
    mutate: (_c, v) => v.setUint16(KS, 7, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-inactive-dirty',
    description: 'inactive keyslot 3 with a non-zero byte',
    mutate: (c) => (c[KS + 3 * 256 + 80] = 0xff),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-kdf-algorithm',
    description: 'keyslot 0 kdf_algorithm = 2',
    mutate: (_c, v) => v.setUint16(KS + 2, 2, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-wrap-algorithm',
    description: 'keyslot 0 wrap_algorithm = 2',
    mutate: (_c, v) => v.setUint16(KS + 48, 2, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-key-bytes',
    description: 'keyslot 0 key_bytes = 65535 (longer than its field)',
    mutate: (_c, v) => v.setUint16(KS + 50, 65535, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-flags',
    description: 'keyslot 0 flags = 1',
    mutate: (_c, v) => v.setUint32(KS + 52, 1, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'kdf-memory-over-limit',
    description: 'keyslot 0 kdf_memory_kib = 4 GiB + 1 KiB',
    mutate: (_c, v) => v.setUint32(KS + 8, 4 * 1024 * 1024 + 1, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-memory-u32-max',
    description: 'keyslot 0 kdf_memory_kib = 2^32 - 1',
    mutate: (_c, v) => v.setUint32(KS + 8, 0xffffffff, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-memory-below-8p',
    description: 'keyslot 0 kdf_memory_kib = 7 with p = 1',
    mutate: (_c, v) => v.setUint32(KS + 8, 7, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-time-zero',
    description: 'keyslot 0 kdf_time = 0',
    mutate: (_c, v) => v.setUint32(KS + 4, 0, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-time-over-limit',
    description: 'keyslot 0 kdf_time = 33',
    mutate: (_c, v) => v.setUint32(KS + 4, 33, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-parallelism-zero',
    description: 'keyslot 0 kdf_parallelism = 0',
    mutate: (_c, v) => v.setUint32(KS + 12, 0, true),
    expect: 'KDF_LIMITS',
  },
  {
    name: 'kdf-parallelism-over-limit',
    description: 'keyslot 0 kdf_parallelism = 17',
    mutate: (_c, v) => v.setUint32(KS + 12, 17, true),
    expect: 'KDF_LIMITS',
  },
  // Added with issue 4 (keys and headers): more bounds, overflows and overlaps.
  {
    name: 'version-0',
    description: 'format_version = 0',
    mutate: (_c, v) => v.setUint32(H.formatVersion, 0, true),
    expect: 'UNSUPPORTED_VERSION',
  },
  {
    name: 'magic-zero',
    description: 'magic all zero',
    mutate: (c) => c.fill(0, H.magic, H.magic + 8),
    expect: 'HEADER_MAGIC',
  },
  {
    name: 'header-size-short',
    description: 'header_size = 4095',
    mutate: (_c, v) => v.setUint32(H.headerSize, 4095, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'unknown-incompat-bit-63',
    description: 'feature_incompat bit 63 set (top bit of the u64)',
    mutate: (_c, v) => v.setBigUint64(H.featureIncompat, 1n << 63n, true),
    expect: 'UNSUPPORTED_FEATURE',
  },
  {
    name: 'sector-size-zero',
    description: 'sector_size = 0',
    mutate: (_c, v) => v.setUint32(H.sectorSize, 0, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'journal-offset-overflow',
    description: 'journal_offset = 2^63 (above the u64 limit of SPEC §1)',
    mutate: (_c, v) => v.setBigUint64(H.journalOffset, 1n << 63n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-offset-zero',
    description: 'data_offset = 0 (data area over the header copies)',
    mutate: (_c, v) => v.setBigUint64(H.dataOffset, 0n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-offset-past-journal',
    description: 'data_offset = journal end + 4096 (gap: does not follow the journal)',
    mutate: (_c, v) =>
      v.setBigUint64(H.dataOffset, v.getBigUint64(H.dataOffset, true) + 4096n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'data-offset-u64-max',
    description: 'data_offset = 2^64 - 1',
    mutate: (_c, v) => v.setBigUint64(H.dataOffset, (1n << 64n) - 1n, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslot-count-zero',
    description: 'keyslot_count = 0',
    mutate: (_c, v) => v.setUint32(H.keyslotCount, 0, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslots-offset-zero',
    description: 'keyslots_offset = 0 (keyslot table over the header fields)',
    mutate: (_c, v) => v.setUint32(H.keyslotsOffset, 0, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslots-offset-overflow',
    description: 'keyslots_offset = 2^32 - 1 (far outside the copy)',
    mutate: (_c, v) => v.setUint32(H.keyslotsOffset, 0xffffffff, true),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'reserved-tail-nonzero',
    description: 'last reserved byte before header_mac is 1',
    mutate: (c) => (c[H.headerMac - 1] = 1),
    expect: 'HEADER_FIELD',
  },
  {
    name: 'keyslot-reserved-nonzero',
    description: 'active keyslot 0 with a non-zero reserved byte',
    mutate: (c) => (c[KS + 255] = 1),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-key-bytes-short',
    description: 'keyslot 0 key_bytes = 32 (a half master key)',
    mutate: (_c, v) => v.setUint16(KS + 50, 32, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-7-state',
    description: 'last keyslot (7) state = 2',
    mutate: (_c, v) => v.setUint16(KS + 7 * 256, 2, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'keyslot-inactive-state-only',
    description: 'keyslot 0 state = 0 while its other bytes still hold a wrap',
    mutate: (_c, v) => v.setUint16(KS, 0, true),
    expect: 'KEYSLOT_FIELD',
  },
  {
    name: 'kdf-all-over-limit',
    description: 'keyslot 0 kdf_time, kdf_memory_kib and kdf_parallelism all 2^32 - 1',
    mutate: (_c, v) => {
      for (const off of [4, 8, 12]) v.setUint32(KS + off, 0xffffffff, true);
    },
    expect: 'KDF_LIMITS',
  },
];

/** One malformed header-backup case (SPEC §13.3, §10 rows 22–28). */
export interface NegativeBackupVector {
  /** File name stem: test/vectors/backup-<name>.vector */
  name: string;
  description: string;
  /** Edit the 8736-byte backup in place, or return a replacement Uint8Array (length changes). */
  mutate: (backup: Uint8Array, view: DataView) => unknown;
  /** Offsets of embedded copies whose own checksum is recomputed after mutating. */
  resealCopies?: number[];
  /** Recompute the backup's checksum after mutating (default true). */
  reseal?: boolean;
  /** The error code decodeHeaderBackup must throw. */
  expect: string;
}

/** SPEC §13.1 offsets inside a backup file. */
const BK = BACKUP_FIELD_OFFSETS;

/** Malformed header backups, one per rule of SPEC §13.3. */
export const NEGATIVE_BACKUP_VECTORS: NegativeBackupVector[] = [
  {
    name: 'bad-magic',
    description: 'magic CRYPTAIN (a header copy, not a backup)',
    mutate: (b) => b.set(new TextEncoder().encode('CRYPTAIN'), BK.magic),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'too-short-for-version',
    description: 'only the first 10 bytes',
    mutate: (b) => b.slice(0, 10),
    reseal: false,
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'version-2',
    description: 'backup_version = 2',
    mutate: (_b, v) => v.setUint32(BK.backupVersion, 2, true),
    expect: 'UNSUPPORTED_VERSION',
  },
  {
    name: 'truncated',
    description: 'last byte of the checksum missing',
    mutate: (b) => b.slice(0, b.length - 1),
    reseal: false,
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'bad-checksum',
    description: 'one bit of copy B flipped, checksum not recomputed',
    mutate: (b) => (b[BK.copyB + 1000]! ^= 1),
    reseal: false,
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'format-version-2',
    description: 'format_version = 2',
    mutate: (_b, v) => v.setUint32(BK.formatVersion, 2, true),
    expect: 'UNSUPPORTED_VERSION',
  },
  {
    name: 'copy-size',
    description: 'copy_size = 8192',
    mutate: (_b, v) => v.setUint32(BK.copySize, 8192, true),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'copy-count',
    description: 'copy_count = 1',
    mutate: (_b, v) => v.setUint32(BK.copyCount, 1, true),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'reserved-nonzero',
    description: 'last reserved byte of the preamble is 1',
    mutate: (b) => (b[BK.copyA - 1] = 1),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'seqid-overflow',
    description: 'preamble seqid = 2^53',
    mutate: (_b, v) => v.setBigUint64(BK.seqid, 1n << 53n, true),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'copy-a-corrupt',
    description: 'embedded copy A with a flipped bit (its own checksum fails)',
    mutate: (b) => (b[BK.copyA + H.dataSize]! ^= 1),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'copies-swapped',
    description: 'copy B stored first and copy A second',
    mutate: (b) => {
      const a = b.slice(BK.copyA, BK.copyB);
      b.copyWithin(BK.copyA, BK.copyB, BK.checksum);
      b.set(a, BK.copyB);
    },
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'copies-differ',
    description: 'keyslot 0 wrap nonce differs between the copies (both self-consistent)',
    mutate: (b) => (b[BK.copyB + KS + 60]! ^= 1),
    resealCopies: [BK.copyB],
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'copies-kdf-over-limit',
    description: 'both copies ask keyslot 0 for 8 GiB of Argon2 memory',
    mutate: (_b, v) => {
      for (const at of [BK.copyA, BK.copyB]) v.setUint32(at + KS + 8, 8 * 1024 * 1024, true);
    },
    resealCopies: [BK.copyA, BK.copyB],
    expect: 'KDF_LIMITS',
  },
  {
    name: 'uuid-mismatch',
    description: 'preamble uuid differs from the copies',
    mutate: (b) => (b[BK.uuid + 15]! ^= 1),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'seqid-mismatch',
    description: 'preamble seqid = copies + 1',
    mutate: (_b, v) => v.setBigUint64(BK.seqid, v.getBigUint64(BK.seqid, true) + 1n, true),
    expect: 'BACKUP_INVALID',
  },
  {
    name: 'layout-mismatch',
    description: 'preamble data_size twice the copies',
    mutate: (_b, v) => v.setBigUint64(BK.dataSize, v.getBigUint64(BK.dataSize, true) * 2n, true),
    expect: 'BACKUP_INVALID',
  },
];
