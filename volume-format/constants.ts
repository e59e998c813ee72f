/**
 * Every layout number and magic of format v1 (SPEC.md §2–§4, §11), in one place like
 * cryptsetup's luks2.h. Nothing else in the code base spells these values.
 */

/** SPEC §3: the only format version this code reads and writes. */
export const FORMAT_VERSION = 1;

/** SPEC §3: length of one header copy. */
export const HEADER_SIZE = 4096;

/** SPEC §2: where each header copy lives. */
export const HEADER_COPY_OFFSETS = { A: 0, B: 32768 } as const;

/** The two header copies, A (primary) and B (secondary). */
export type HeaderCopyName = keyof typeof HEADER_COPY_OFFSETS;

/** SPEC §3: `CRYPTAIN` for copy A, the same letters reversed for copy B (as LUKS/SKUL). */
export const HEADER_MAGICS: Readonly<Record<HeaderCopyName, Uint8Array>> = {
  A: new TextEncoder().encode('CRYPTAIN'),
  B: new TextEncoder().encode('NIATPYRC'),
};

/** SPEC §3: field offsets inside a header copy. */
export const HEADER_FIELD_OFFSETS = {
  magic: 0,
  formatVersion: 8,
  headerSize: 12,
  seqid: 16,
  uuid: 24,
  featureIncompat: 40,
  featureRoCompat: 48,
  featureCompat: 56,
  cipher: 64,
  sectorSize: 68,
  journalOffset: 72,
  journalSize: 80,
  dataOffset: 88,
  dataSize: 96,
  keyslotCount: 104,
  keyslotSize: 108,
  keyslotsOffset: 112,
  /** SPEC §3.1 (revision 1.1): u64, zero unless `COMPAT_KEY_GENERATION` is set. */
  keyGeneration: 116,
  reserved0: 124,
  featureArea: 192,
  keyslots: 512,
  reserved1: 2560,
  headerMac: 4032,
  checksum: 4064,
} as const;

/** SPEC §3: lengths of the byte-string fields and reserved ranges. */
export const MAGIC_BYTES = 8;
export const UUID_BYTES = 16;
export const FEATURE_AREA_BYTES = 320;
export const HEADER_MAC_BYTES = 32;
export const CHECKSUM_BYTES = 32;

/** SPEC §3: `cipher` value for XTS-AES-256. */
export const CIPHER_XTS_AES_256 = 1;

/** SPEC §3: allowed `sector_size` values; 4096 is the default (fewer tweaks, faster). */
export const SECTOR_SIZES = [512, 4096] as const;
export const DEFAULT_SECTOR_SIZE = 4096;

/** SPEC §2/§3: fixed journal offset and the sizes v1 writers use. */
export const JOURNAL_OFFSET = 1024 * 1024;
/**
 * 12 MiB: two slots of 6 MiB, so a re-encryption segment can be 192 MiB (its checksum record
 * is 1/32 of it, SPEC §15.5): larger segments re-encrypt faster than the 48 MiB of the 3 MiB
 * journal of earlier writers (bench/PERFORMANCE.md, "A 12 MiB journal for new volumes"); the
 * data area then starts at 13 MiB, still less than LUKS2's default 16 MiB header.
 */
export const DEFAULT_JOURNAL_SIZE = 12 * 1024 * 1024;
export const MAX_JOURNAL_SIZE = 64 * 1024 * 1024;
/** Alignment of `journal_size` (and therefore of `data_offset`). */
export const JOURNAL_ALIGNMENT = 4096;

/** SPEC §4: keyslot table geometry. */
export const KEYSLOT_COUNT = 8;
export const KEYSLOT_SIZE = 256;
export const KEYSLOTS_OFFSET = 512;

/** SPEC §4: keyslot field offsets (relative to the keyslot). */
export const KEYSLOT_FIELD_OFFSETS = {
  state: 0,
  kdfAlgorithm: 2,
  kdfTime: 4,
  kdfMemoryKiB: 8,
  kdfParallelism: 12,
  kdfSalt: 16,
  wrapAlgorithm: 48,
  keyBytes: 50,
  flags: 52,
  wrapNonce: 56,
  wrappedKey: 80,
  reserved: 160,
} as const;

/** SPEC §4: keyslot `state` values. */
export const KEYSLOT_STATE_INACTIVE = 0;
export const KEYSLOT_STATE_ACTIVE = 1;
/** SPEC §4: `kdf_algorithm` 1 = Argon2id v1.3; `wrap_algorithm` 1 = XChaCha20-Poly1305. */
export const KDF_ALGORITHM_ARGON2ID = 1;
export const WRAP_ALGORITHM_XCHACHA20_POLY1305 = 1;
export const KDF_SALT_BYTES = 32;
export const WRAP_NONCE_BYTES = 24;
/** SPEC §5.1: the master key is K1 (data) || K2 (tweak), 32 bytes each. */
export const MASTER_KEY_BYTES = 64;
/** SPEC §4: wrapped master key = 64-byte ciphertext || 16-byte tag. */
export const WRAPPED_KEY_BYTES = 80;
/** SPEC §4: the AAD covers keyslot bytes [0, 56): everything before the nonce. */
export const KEYSLOT_AAD_PREFIX_BYTES = 56;

/** SPEC §1: largest integer a u64 field may hold. */
export const MAX_SAFE_U64 = Number.MAX_SAFE_INTEGER;

/** SPEC §13: header backup file: magic `CRYPTBAK`, version 1, both copies verbatim. */
export const BACKUP_MAGIC = new TextEncoder().encode('CRYPTBAK');
export const BACKUP_VERSION = 1;
/** SPEC §13.1: number of header copies a backup holds (A then B). */
export const BACKUP_COPY_COUNT = 2;
/** SPEC §13.1: preamble 512 bytes, two 4096-byte copies, 32-byte checksum. */
export const BACKUP_SIZE = 512 + 2 * 4096 + 32;

/** SPEC §13.1: field offsets inside a header backup file. */
export const BACKUP_FIELD_OFFSETS = {
  magic: 0,
  backupVersion: 8,
  formatVersion: 12,
  uuid: 16,
  seqid: 32,
  sectorSize: 40,
  copySize: 44,
  journalOffset: 48,
  journalSize: 56,
  dataOffset: 64,
  dataSize: 72,
  copyCount: 80,
  reserved: 84,
  copyA: 512,
  copyB: 512 + 4096,
  checksum: 512 + 2 * 4096,
} as const;

/** SPEC §15.2: layout of `feature_area` while re-encryption is in progress (flag set). */
export const REENCRYPT_FIELD_OFFSETS = {
  version: 0,
  resilience: 4,
  journalSlot: 6,
  sectorsDone: 8,
  segmentSectors: 16,
  journalDigest: 24,
  oldKeyNonce: 56,
  wrappedOldKey: 80,
  reserved: 160,
} as const;
/** SPEC §15.2: the only `reencrypt_version` defined. */
export const REENCRYPT_VERSION = 1;
/** SPEC §15.2: `resilience` values. */
export const RESILIENCE_CHECKSUM = 1;
export const RESILIENCE_JOURNAL = 2;
/** SPEC §15.5: the journal area is split into this many equal record slots. */
export const JOURNAL_SLOT_COUNT = 2;
/** SPEC §15.5: checksum records hold one fingerprint per 512-byte block of the segment. */
export const FINGERPRINT_BLOCK_BYTES = 512;
/** SPEC §15.5: a fingerprint is the first 16 bytes (one AES block) of the block's ciphertext. */
export const FINGERPRINT_BYTES = 16;
/** SPEC §15.2: SHA-256 of the journal record. */
export const JOURNAL_DIGEST_BYTES = 32;
