/**
 * Keyslot management on an unlocked volume (SPEC §14): add a secret, remove a keyslot, change
 * a keyslot's secret. The master key never changes; each operation is exactly one header
 * update (SPEC §9.3), so a crash leaves the old or the new set of keyslots, never neither.
 */
import { wipe } from '../../crypto/bytes.js';
import { type Argon2idParams, checkArgon2idParams, deriveArgon2id } from '../../crypto/kdf.js';
import { KDF_SALT_BYTES, KEYSLOT_COUNT, WRAP_NONCE_BYTES } from '../../volume-format/constants.js';
import { IoError, UnsupportedError, UsageError } from '../../volume-format/errors.js';
import { type ActiveKeyslot, inactiveKeyslot, wrapMasterKey } from '../../volume-format/keyslot.js';
import { type Rng, systemRng } from '../rng.js';
import { type KdfTuning, planKdfParams } from './kdf-tuning.js';
import { type UnlockSecret, resolveKdfInput } from './secret.js';
import type { Volume } from './volume.js';

/** How the Argon2id cost of a new wrap is chosen. */
export interface NewKeyKdf {
  /** Explicit parameters (checked against SPEC §11). */
  kdf?: Argon2idParams;
  /** Otherwise tuned on this machine (like `create`). */
  kdfTuning?: KdfTuning;
  /** Source of the fresh salt and nonce (tests replace it). */
  rng?: Rng;
}

/** Options for {@link addKeyslot}. */
export interface AddKeyslotOptions extends NewKeyKdf {
  /** Keyslot to fill; default: the lowest inactive one. */
  slot?: number;
}

/** Options for {@link removeKeyslot}. */
export interface RemoveKeyslotOptions {
  /** Allow removing the last active keyslot (the volume then cannot be unlocked any more). */
  force?: boolean;
}

/** Indices of the active keyslots. */
export function activeKeyslots(volume: Volume): number[] {
  return volume.header.keyslots.flatMap((s, i) => (s.state === 'active' ? [i] : []));
}

/**
 * Add a keyslot that unlocks `volume` with `secret` (SPEC §14.1): one header update writing a
 * fresh wrap of the master key into an inactive slot. Returns the slot index. Throws
 * `NO_KEYSLOT` when the slot is taken or all eight are, `KDF_LIMITS` for parameters beyond
 * SPEC §11, `READ_ONLY` for a read-only volume.
 */
export async function addKeyslot(
  volume: Volume,
  secret: UnlockSecret,
  options: AddKeyslotOptions = {},
): Promise<number> {
  const slots = volume.header.keyslots;
  let index: number;
  if (options.slot !== undefined) {
    checkSlotIndex(options.slot);
    if (slots[options.slot]!.state === 'active') {
      throw new UsageError('NO_KEYSLOT', `adding a key: keyslot ${options.slot} is in use`);
    }
    index = options.slot;
  } else {
    index = slots.findIndex((s) => s.state === 'inactive');
    if (index < 0) {
      throw new UsageError(
        'NO_KEYSLOT',
        `adding a key: all ${KEYSLOT_COUNT} keyslots are in use (remove one first)`,
      );
    }
  }
  const wrapped = await wrapFor(volume, secret, index, options);
  await volume.updateHeader((h) => {
    h.keyslots[index] = wrapped;
    return h;
  });
  return index;
}

/**
 * Remove keyslot `index` (SPEC §14.2): one header update that writes the slot as 256 zero
 * bytes into both header copies, overwriting the old wrap in place. Refuses to remove the last
 * active keyslot without `force` (`LAST_KEYSLOT`); `NO_KEYSLOT` when the slot is inactive.
 */
export async function removeKeyslot(
  volume: Volume,
  index: number,
  options: RemoveKeyslotOptions = {},
): Promise<void> {
  checkSlotIndex(index);
  if (volume.header.keyslots[index]!.state !== 'active') {
    throw new UsageError('NO_KEYSLOT', `removing a key: keyslot ${index} is not in use`);
  }
  const remaining = activeKeyslots(volume).filter((i) => i !== index);
  if (remaining.length === 0 && options.force !== true) {
    throw new UsageError(
      'LAST_KEYSLOT',
      `removing a key: keyslot ${index} is the last one; without it nothing unlocks the volume ` +
        '(use --force to remove it anyway)',
    );
  }
  await volume.updateHeader((h) => {
    h.keyslots[index] = inactiveKeyslot(); // SPEC §4: an inactive keyslot is 256 zero bytes
    return h;
  });
}

/**
 * Give keyslot `index` a new secret (SPEC §14.3): a fresh wrap of the same master key, with a
 * fresh salt and nonce, written into the same slot in one header update. Without explicit KDF
 * options the slot keeps its current Argon2id cost. Throws `NO_KEYSLOT` for an inactive slot.
 */
export async function changeKeyslot(
  volume: Volume,
  index: number,
  secret: UnlockSecret,
  options: NewKeyKdf = {},
): Promise<void> {
  checkSlotIndex(index);
  const current = volume.header.keyslots[index]!;
  if (current.state !== 'active') {
    throw new UsageError('NO_KEYSLOT', `changing a key: keyslot ${index} is not in use`);
  }
  const kdfChoice: NewKeyKdf =
    options.kdf === undefined && options.kdfTuning === undefined
      ? { ...options, kdf: current.kdf }
      : options;
  const wrapped = await wrapFor(volume, secret, index, kdfChoice);
  await volume.updateHeader((h) => {
    h.keyslots[index] = wrapped;
    return h;
  });
}

/**
 * SPEC §4.2 for slot `index`: KEK = Argon2id(kdf_input, fresh salt), then XChaCha20-Poly1305
 * of the master key under a fresh nonce. Salt and nonce are new for every wrap, so a KEK never
 * meets the same nonce twice even when the user reuses a passphrase.
 */
async function wrapFor(
  volume: Volume,
  secret: UnlockSecret,
  index: number,
  options: NewKeyKdf,
): Promise<ActiveKeyslot> {
  if (volume.readOnly) {
    // Checked here too so no Argon2 time is spent before updateHeader would refuse.
    throw new IoError('READ_ONLY', 'changing keyslots: volume is open read-only');
  }
  const rng = options.rng ?? systemRng;
  const kdf = options.kdf ?? (await planKdfParams(options.kdfTuning));
  checkKdf(kdf);
  let kdfInput: Uint8Array | null = null;
  let kek: Uint8Array | null = null;
  let masterKey: Uint8Array | null = null;
  try {
    kdfInput = await resolveKdfInput(secret);
    const kdfSalt = rng.bytes(KDF_SALT_BYTES);
    kek = await deriveArgon2id(kdfInput, kdfSalt, kdf, 32);
    masterKey = volume.exportMasterKey();
    return wrapMasterKey(kek, masterKey, volume.header.uuid, index, {
      kdf,
      kdfSalt,
      wrapNonce: rng.bytes(WRAP_NONCE_BYTES),
    });
  } finally {
    wipe(kdfInput, kek, masterKey);
  }
}

function checkSlotIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= KEYSLOT_COUNT) {
    throw new UsageError('USAGE', `keyslot ${index}: must be 0 to ${KEYSLOT_COUNT - 1}`);
  }
}

/** SPEC §11 on parameters a user asks for. */
function checkKdf(kdf: Argon2idParams): void {
  try {
    checkArgon2idParams(kdf);
  } catch (err) {
    throw new UnsupportedError('KDF_LIMITS', `kdf parameters: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
