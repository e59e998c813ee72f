/**
 * Opening a volume (SPEC §9.2): take the lock, choose a header copy, check the layout against
 * the file, unlock a keyslot, verify the header MAC and repair the other copy.
 */
import { wipe } from '../../crypto/bytes.js';
import { FormatError } from '../../volume-format/errors.js';
import { checkFeatures } from '../../volume-format/features.js';
import type { HeaderChoice } from '../../volume-format/header-copies.js';
import { containerSizeOf } from '../../volume-format/layout.js';
import { checkNotReencrypting } from '../../volume-format/reencrypt-state.js';
import { type OpenedContainer, closeContainer, openContainer } from '../io/container-file.js';
import type { Storage } from '../io/storage.js';
import { readHeaderChoice, repairHeaderCopies } from './header-store.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import { type AuthenticatedHeader, unlockAuthenticated } from './header-auth.js';
import type { KekDeriver } from './unlock.js';
import { Volume } from './volume.js';

/** Options for {@link openVolume}. */
export interface OpenOptions extends UnlockSecret {
  /** Open without writing anything: no header repair, writes refused. */
  readOnly?: boolean;
  /**
   * The lock of a read-only open (SPEC §9.2): `shared` (default) excludes writers for as long
   * as the volume is open; `none` takes no lock, for callers that only read the header (they
   * then work on a mounted volume). A read-write open always locks exclusively.
   */
  lock?: 'shared' | 'none';
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
  // SPEC §9.2: a reader of the header alone takes no lock (it works on a mounted volume).
  const { storage } = await openContainer(path, { readOnly: true, lock: 'none' });
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
 * copy (SPEC §8); read-only opens take a shared lock unless `lock: 'none'`. Throws
 * `WRONG_PASSPHRASE`, `NO_VALID_HEADER`, `HEADER_TAMPERED`, `VOLUME_BUSY`, `TRUNCATED`,
 * `KDF_LIMITS`, `UNSUPPORTED_FEATURE`, ...
 */
export async function openVolume(path: string, options: OpenOptions): Promise<Volume> {
  const readOnly = options.readOnly === true;
  // SPEC §9.2: the lock comes before the first header byte is read.
  const opened = await openContainer(path, {
    readOnly,
    lock: readOnly ? (options.lock ?? 'shared') : 'exclusive',
    ...(options.storage ? { storage: options.storage } : {}),
  });
  return openVolumeOn(path, opened, options);
}

/**
 * {@link openVolume} on a container the caller opened and locked (repair reads the header
 * first, under the same lock). Owns `opened` from here: closes it on failure.
 */
export async function openVolumeOn(
  path: string,
  opened: OpenedContainer,
  options: OpenOptions,
): Promise<Volume> {
  const { storage, lock } = opened;
  let masterKey: Uint8Array | null = null;
  try {
    const choice = await readHeaderChoice(storage);
    await checkContainerLength(storage, choice);
    // SPEC §15.4: mid-re-encryption part of the data is under the old key; refuse, before any
    // Argon2 work, and say how to resume (only `reencrypt` opens such a volume).
    checkNotReencrypting(choice.fields, path);
    // Unknown read-only-compatible features open read-only, keeping the exclusive lock taken.
    let readOnly = options.readOnly === true || checkFeatures(choice.fields.features).readOnly;
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
      // Read-only from here on; the lock taken stays (SPEC §9.2: held until closed).
      if (!readOnly && checkFeatures(used.fields.features).readOnly) readOnly = true;
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
    await closeContainer(opened);
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
