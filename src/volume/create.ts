/**
 * Creating a volume (SPEC §9.1): build the whole container, and whatever the caller adds to it
 * (the filesystem inside), in a temporary file next to the target, and rename it into place
 * only when complete, so a crash, a kill or a failure never leaves a half-made volume at the
 * target and never destroys the file `force` would replace.
 */
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { wipe } from '../../crypto/bytes.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { type Argon2idParams, checkArgon2idParams, deriveArgon2id } from '../../crypto/kdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import {
  KDF_SALT_BYTES,
  KEYSLOT_COUNT,
  UUID_BYTES,
  WRAP_NONCE_BYTES,
  FEATURE_AREA_BYTES,
  DEFAULT_SECTOR_SIZE,
} from '../../volume-format/constants.js';
import { CryptainerError, UnsupportedError } from '../../volume-format/errors.js';
import { noFeatures } from '../../volume-format/features.js';
import { type HeaderFields, makeUuidV4 } from '../../volume-format/header.js';
import { type Keyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { containerSizeOf, planLayout, sectorCountOf } from '../../volume-format/layout.js';
import { FileStorage, ioErrorFrom } from '../io/file-storage.js';
import { lockCreateTarget } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { type StaleTemp, removeStaleTemps, tempPathFor } from '../io/temp-file.js';
import { type Rng, systemRng } from '../rng.js';
import { drawMasterKey } from './keys.js';
import { writeHeaderUpdate } from './header-store.js';
import { writeJournalZeros } from './journal-area.js';
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
  /**
   * Runs on the new volume, complete and open read-write, while it still has its temporary
   * name (SPEC §9.1 step 5), e.g. to make a filesystem inside it through its drive. If it
   * throws, the temporary file is removed and the target is untouched.
   */
  prepare?: (volume: Volume) => Promise<void>;
  /**
   * Aborting it stops the creation (`ABORTED`, naming `signal.reason`, e.g. "SIGINT") at the
   * next step and removes the temporary file; the target is untouched.
   */
  signal?: AbortSignal;
  /** Told of each stale temporary file of the target found (and removed) first. */
  onStaleTemp?: (temp: StaleTemp) => void;
}

/**
 * Create a new volume at `path` and return it open read-write (locked). The caller closes it.
 * Throws `FILE_EXISTS` unless `force`, `VOLUME_BUSY` if the target is in use, `KDF_LIMITS`
 * for parameters beyond SPEC §11, `ABORTED` when `signal` aborts, or what `prepare` throws.
 */
export async function createVolume(path: string, options: CreateOptions): Promise<Volume> {
  const rng = options.rng ?? systemRng;
  const layout = planLayout(options.sizeBytes, options.sectorSize ?? DEFAULT_SECTOR_SIZE);
  const existed = await exists(path);
  if (!options.force && existed) {
    throw ioErrorFrom(Object.assign(new Error(), { code: 'EEXIST' }), `creating ${path}`);
  }
  if (options.kdf) checkKdf(options.kdf);
  const stopIfAborted = (): void => {
    if (options.signal?.aborted) throw new CryptainerError('ABORTED', 'interrupted');
  };
  stopIfAborted();
  const lock = await lockCreateTarget(path); // SPEC §9.2: an existing target, even via --force
  const masterKey = drawMasterKey(rng);
  let kdfInput: Uint8Array | null = null;
  let kek: Uint8Array | null = null;
  let macKey: Uint8Array | null = null;
  let tmpPath: string | null = null;
  let volume: Volume | null = null;
  let placed = false;
  try {
    // SPEC §9.1 step 1: temporaries of this target left by a process that is gone.
    for (const stale of await removeStaleTemps(path)) options.onStaleTemp?.(stale);
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
    stopIfAborted();
    tmpPath = tempPathFor(path, rng.bytes(6));
    const file = await FileStorage.open(tmpPath, { createExclusive: true });
    await lock.lockNew(file); // SPEC §9.2: locked from its creation, through the rename
    const storage = options.wrapStorage ? options.wrapStorage(file) : file;
    try {
      // The progress callback runs after every chunk: the place to stop when aborted.
      await writeNewContainer(storage, fields, masterKey, macKey, (done, total) => {
        stopIfAborted();
        options.onProgress?.(done, total);
      });
    } catch (err) {
      await storage.close().catch(() => undefined);
      throw err;
    }
    volume = new Volume({
      path: tmpPath,
      storage,
      fields,
      masterKey,
      readOnly: false,
      lock,
      unlockedSlot: 0,
    });
    if (options.prepare) await options.prepare(volume); // step 5
    stopIfAborted();
    await volume.sync();
    await placeFile(tmpPath, path, options.force === true); // step 6
    placed = true;
    volume.renamedTo(path);
    await syncDirectoryOf(path);
    return volume;
  } catch (err) {
    if (volume !== null) await volume.close().catch(() => undefined);
    else {
      wipe(masterKey);
      await lock.release();
    }
    if (tmpPath !== null && !placed) await fsp.rm(tmpPath, { force: true });
    if (options.signal?.aborted) {
      const unchanged = existed ? `; ${path} is unchanged` : '';
      throw new CryptainerError(
        'ABORTED',
        `creating ${path}: interrupted by ${String(options.signal.reason)}: ` +
          `the unfinished volume was removed${unchanged}`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    wipe(kdfInput, kek, macKey);
  }
}

/**
 * SPEC §9.1 steps 2–4 on an empty file: set the length, write zeros over the journal area
 * (SPEC §2) and fill the data area with encrypted zero sectors (SPEC §6), then write header
 * copies A and B and fsync.
 */
export async function writeNewContainer(
  storage: Storage,
  fields: HeaderFields,
  masterKey: Uint8Array,
  macKey: Uint8Array,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<void> {
  await storage.truncate(containerSizeOf(fields));
  await writeJournalZeros(storage, fields); // SPEC §2: allocated, so re-encryption has its space
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

function checkKdf(kdf: Argon2idParams): void {
  try {
    checkArgon2idParams(kdf);
  } catch (err) {
    throw new UnsupportedError('KDF_LIMITS', `kdf parameters: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** SPEC §9.1 step 6: move the finished file to the target (the caller then syncs the directory). */
async function placeFile(tmpPath: string, path: string, force: boolean): Promise<void> {
  try {
    if (force) await fsp.rename(tmpPath, path);
    else {
      // link(2) fails if the target appeared meanwhile: never replace a file without --force.
      await fsp.link(tmpPath, path);
      // A crash before this unlink leaves a second name of the new volume, which a later
      // create removes as stale; the volume stays at the target.
      await fsp.rm(tmpPath, { force: true }).catch(() => undefined);
    }
  } catch (err) {
    throw ioErrorFrom(err, `creating ${path}`);
  }
}

/** fsync the directory holding `path`, so that a new name in it survives a crash. */
async function syncDirectoryOf(path: string): Promise<void> {
  try {
    const dir = await fsp.open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    throw ioErrorFrom(err, `syncing the directory of ${path}`);
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
