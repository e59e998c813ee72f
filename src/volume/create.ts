/**
 * Creating a volume (SPEC §9.1): build the whole container in a temporary file next to the
 * target and rename it into place only when complete, so a crash never leaves a half-made
 * volume at the target and never destroys the file `--force` would replace.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { type Argon2idParams, checkArgon2idParams, deriveArgon2id } from '../../crypto/kdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import {
  KDF_SALT_BYTES,
  KEYSLOT_COUNT,
  MASTER_KEY_BYTES,
  UUID_BYTES,
  WRAP_NONCE_BYTES,
  FEATURE_AREA_BYTES,
  DEFAULT_SECTOR_SIZE,
} from '../../volume-format/constants.js';
import { UnsupportedError, UsageError } from '../../volume-format/errors.js';
import { noFeatures } from '../../volume-format/features.js';
import { type HeaderFields, makeUuidV4 } from '../../volume-format/header.js';
import { type Keyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { containerSizeOf, planLayout, sectorCountOf } from '../../volume-format/layout.js';
import { FileStorage, ioErrorFrom } from '../io/file-storage.js';
import { lockCreateTarget } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { type Rng, systemRng } from '../rng.js';
import { writeHeaderUpdate } from './header-store.js';
import { type KdfTuning, planKdfParams } from './kdf-tuning.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import { Volume } from './volume.js';

/** Bytes encrypted and written per step while filling the data area. */
const FILL_CHUNK_BYTES = 1024 * 1024;

/** Options for {@link createVolume}. */
export interface CreateOptions extends UnlockSecret {
  /** Size of the decrypted drive in bytes (the data area). */
  sizeBytes: number;
  /** 512 or 4096 (default). */
  sectorSize?: number;
  /** Explicit Argon2id parameters; otherwise tuned to `kdfTuning`. */
  kdf?: Argon2idParams;
  kdfTuning?: KdfTuning;
  /** Replace an existing file at the target (only once the new volume is complete). */
  force?: boolean;
  rng?: Rng;
  /** Called as the data area fills. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Open the temporary file through this instead of FileStorage (fault-injection tests). */
  wrapStorage?: (storage: Storage) => Storage;
}

/**
 * Create a new volume at `path` and return it open read-write (locked). The caller closes it.
 * Throws `FILE_EXISTS` unless `force`, `VOLUME_BUSY` if the target is in use, `KDF_LIMITS`
 * for parameters beyond SPEC §11.
 */
export async function createVolume(path: string, options: CreateOptions): Promise<Volume> {
  const rng = options.rng ?? systemRng;
  const layout = planLayout(options.sizeBytes, options.sectorSize ?? DEFAULT_SECTOR_SIZE);
  if (!options.force && (await exists(path))) {
    throw ioErrorFrom(Object.assign(new Error(), { code: 'EEXIST' }), `creating ${path}`);
  }
  if (options.kdf) checkKdf(options.kdf);
  const lock = await lockCreateTarget(path); // SPEC §9.2: an existing target, even via --force
  const tmpPath = join(
    dirname(path),
    `.${basename(path)}.cryptainer-tmp-${Buffer.from(rng.bytes(6)).toString('hex')}`,
  );
  const masterKey = drawMasterKey(rng);
  let kdfInput: Uint8Array | null = null;
  let kek: Uint8Array | null = null;
  let macKey: Uint8Array | null = null;
  let renamed = false;
  try {
    const kdf = options.kdf ?? (await planKdfParams(options.kdfTuning));
    checkKdf(kdf);
    const uuid = makeUuidV4(rng.bytes(UUID_BYTES));
    const kdfSalt = rng.bytes(KDF_SALT_BYTES);
    kdfInput = await resolveKdfInput(options);
    kek = await deriveArgon2id(kdfInput, kdfSalt, kdf, 32);
    const keyslots: Keyslot[] = Array.from({ length: KEYSLOT_COUNT }, inactiveKeyslot);
    keyslots[0] = wrapMasterKey(kek, masterKey, uuid, 0, {
      kdf,
      kdfSalt,
      wrapNonce: rng.bytes(WRAP_NONCE_BYTES),
    });
    const fields: HeaderFields = {
      ...layout,
      seqid: 1,
      uuid,
      features: noFeatures(),
      featureArea: new Uint8Array(FEATURE_AREA_BYTES),
      keyslots,
    };
    macKey = deriveHeaderMacKey(masterKey, uuid);
    const file = await FileStorage.open(tmpPath, { createExclusive: true });
    await lock.lockNew(file); // SPEC §9.2: locked from its creation, through the rename
    const storage = options.wrapStorage ? options.wrapStorage(file) : file;
    try {
      await writeNewContainer(storage, fields, masterKey, macKey, options.onProgress);
    } finally {
      await storage.close();
    }
    await placeFile(tmpPath, path, options.force === true);
    renamed = true;
    const volume = new Volume({
      path,
      storage: await FileStorage.open(path),
      fields,
      masterKey,
      readOnly: false,
      lock,
      unlockedSlot: 0,
    });
    return volume;
  } catch (err) {
    wipe(masterKey);
    if (!renamed) await fsp.rm(tmpPath, { force: true });
    await lock.release();
    throw err;
  } finally {
    wipe(kdfInput, kek, macKey);
  }
}

/**
 * SPEC §9.1 steps 2–4 on an empty file: set the length, fill the data area with encrypted
 * zero sectors (SPEC §6), then write header copies A and B and fsync.
 */
export async function writeNewContainer(
  storage: Storage,
  fields: HeaderFields,
  masterKey: Uint8Array,
  macKey: Uint8Array,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<void> {
  await storage.truncate(containerSizeOf(fields));
  await fillEncryptedZeros(storage, fields, masterKey, 0, sectorCountOf(fields), onProgress);
  await writeHeaderUpdate(storage, fields, macKey);
}

/**
 * Write encrypted zero sectors [firstSector, endSector) (SPEC §6 "Fill"): the drive reads as
 * zeros there and the sectors look like any other ciphertext. Used by create and grow.
 */
export async function fillEncryptedZeros(
  storage: Storage,
  fields: HeaderFields,
  masterKey: Uint8Array,
  firstSector: number,
  endSector: number,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<void> {
  const ss = fields.sectorSize;
  const xts = new XtsCipher(masterKey, ss);
  try {
    const zeros = new Uint8Array(FILL_CHUNK_BYTES);
    const total = (endSector - firstSector) * ss;
    for (let sector = firstSector; sector < endSector;) {
      const n = Math.min(endSector - sector, FILL_CHUNK_BYTES / ss);
      const cipher = xts.encryptSectors(zeros.subarray(0, n * ss), sector);
      await storage.writeAt(fields.dataOffset + sector * ss, cipher);
      sector += n;
      onProgress?.((sector - firstSector) * ss, total);
    }
    await storage.syncData();
  } finally {
    xts.dispose();
  }
}

function drawMasterKey(rng: Rng): Uint8Array {
  // SPEC §5.1: K1 != K2. Equal halves from a CSPRNG are astronomically unlikely, but a test
  // Rng can produce them, and XTS must never run with them.
  for (;;) {
    const key = rng.bytes(MASTER_KEY_BYTES);
    const half = MASTER_KEY_BYTES / 2;
    if (Buffer.compare(key.subarray(0, half), key.subarray(half)) !== 0) return key;
    wipe(key);
  }
}

function checkKdf(kdf: Argon2idParams): void {
  try {
    checkArgon2idParams(kdf);
  } catch (err) {
    throw new UnsupportedError('KDF_LIMITS', `kdf parameters: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** SPEC §9.1 step 5: move the finished file into place, then fsync the directory. */
async function placeFile(tmpPath: string, path: string, force: boolean): Promise<void> {
  try {
    if (force) await fsp.rename(tmpPath, path);
    else {
      // link(2) fails if the target appeared meanwhile: never replace a file without --force.
      await fsp.link(tmpPath, path);
      await fsp.rm(tmpPath);
    }
    const dir = await fsp.open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    throw ioErrorFrom(err, `creating ${path}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch {
    return false;
  }
}
