/**
 * Opening a volume (SPEC §9.2): choose a header copy, check the layout against the file,
 * take the lock, unlock a keyslot, verify the header MAC and repair the other copy.
 */
import { wipe } from '../../crypto/bytes.js';
import { FormatError } from '../../volume-format/errors.js';
import { checkFeatures } from '../../volume-format/features.js';
import type { HeaderChoice } from '../../volume-format/header-copies.js';
import { containerSizeOf } from '../../volume-format/layout.js';
import { checkNotReencrypting } from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../io/file-storage.js';
import { type HeldLock, acquireLock } from '../io/lock.js';
import type { Storage } from '../io/storage.js';
import { readHeaderChoice, repairHeaderCopies } from './header-store.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import { type AuthenticatedHeader, unlockAuthenticated } from './header-auth.js';
import type { KekDeriver } from './unlock.js';
import { Volume } from './volume.js';

/** Options for {@link openVolume}. */
export interface OpenOptions extends UnlockSecret {
  /** Open without writing anything: no lock, no header repair, writes refused. */
  readOnly?: boolean;
  /** Try only this keyslot (faster with slow KDF parameters). */
  keyslot?: number;
  /** Replace the file storage (tests inject faults through this). */
  storage?: Storage;
  /** How keyslot KEKs are derived (default: Argon2id in this process). */
  deriveKek?: KekDeriver;
}

/**
 * Inspect a container without a key: which header copy wins and the state of each (SPEC §8).
 * Throws `NO_VALID_HEADER`/`TRUNCATED` and friends for a damaged file.
 */
export async function inspectVolume(path: string): Promise<HeaderChoice> {
  const storage = await FileStorage.open(path, { readOnly: true });
  try {
    const choice = await readHeaderChoice(storage);
    await checkContainerLength(storage, choice);
    return choice;
  } finally {
    await storage.close();
  }
}

/**
 * Open and unlock the volume in `path`. Tries every active keyslot with the secret
 * (SPEC §4.2). Read-write opens take the exclusive lock and repair a damaged or stale header
 * copy (SPEC §8). Throws `WRONG_PASSPHRASE`, `NO_VALID_HEADER`, `HEADER_TAMPERED`,
 * `VOLUME_BUSY`, `TRUNCATED`, `KDF_LIMITS`, `UNSUPPORTED_FEATURE`, ...
 */
export async function openVolume(path: string, options: OpenOptions): Promise<Volume> {
  const storage =
    options.storage ?? (await FileStorage.open(path, { readOnly: options.readOnly === true }));
  let lock: HeldLock | null = null;
  let masterKey: Uint8Array | null = null;
  try {
    const choice = await readHeaderChoice(storage);
    await checkContainerLength(storage, choice);
    // SPEC §15.4: mid-re-encryption part of the data is under the old key; refuse, before any
    // Argon2 work, and say how to resume (only `reencrypt` opens such a volume).
    checkNotReencrypting(choice.fields, path);
    let readOnly = options.readOnly === true || checkFeatures(choice.fields.features).readOnly;
    if (!readOnly) lock = await acquireLock(path);
    const kdfInput = await resolveKdfInput(options);
    let auth: AuthenticatedHeader;
    try {
      // SPEC §8 steps 6 and 7: nothing from the header is used to write before a MAC verifies.
      auth = await unlockAuthenticated(
        storage,
        choice,
        kdfInput,
        options.keyslot,
        options.deriveKek,
      );
    } finally {
      wipe(kdfInput);
    }
    masterKey = auth.masterKey;
    const slot = auth.slot;
    const used = auth.choice;
    if (used !== choice) {
      // SPEC §8 step 7 chose the other copy: its own fields decide from here on.
      await checkContainerLength(storage, used);
      checkNotReencrypting(used.fields, path);
      if (!readOnly && checkFeatures(used.fields.features).readOnly) {
        readOnly = true;
        await lock?.release();
        lock = null;
      }
    }
    try {
      if (!readOnly && used.repair.length > 0) {
        await repairHeaderCopies(storage, used, auth.macKey);
      }
    } finally {
      wipe(auth.macKey);
    }
    const volume = new Volume({
      path,
      storage,
      fields: used.fields,
      masterKey,
      readOnly,
      lock,
      unlockedSlot: slot,
      header: { winner: used.winner, repaired: readOnly ? [] : used.repair },
    });
    masterKey = null; // owned by the volume now
    return volume;
  } catch (err) {
    if (masterKey) wipe(masterKey);
    await storage.close();
    await lock?.release();
    throw err;
  }
}

/** SPEC §10 row 18: the file must hold the whole data area. */
async function checkContainerLength(storage: Storage, choice: HeaderChoice): Promise<void> {
  const need = containerSizeOf(choice.fields);
  const have = await storage.size();
  if (have < need) {
    throw new FormatError(
      'TRUNCATED',
      `container is truncated: ${have} bytes, the header says ${need}`,
    );
  }
}
