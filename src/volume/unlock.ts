/**
 * Unlocking (SPEC §4.2): try every active keyslot with the same KDF input until one's tag
 * verifies. A wrong passphrase and a damaged keyslot give the same error on purpose.
 */
import { wipe } from '../../crypto/bytes.js';
import { type Argon2idParams, deriveArgon2id } from '../../crypto/kdf.js';
import { AuthError } from '../../volume-format/errors.js';
import type { HeaderFields } from '../../volume-format/header.js';
import { unwrapMasterKey } from '../../volume-format/keyslot.js';
import { checkKeyHalves } from './keys.js';

/**
 * Derives a keyslot's KEK (SPEC §4.2): Argon2id of `kdfInput` under the slot's salt and
 * parameters. In-process by default; the mount server passes one that runs it in a
 * short-lived child process, so that no copy the argon2 binding makes outlives the unlock.
 */
export type KekDeriver = (
  kdfInput: Uint8Array,
  salt: Uint8Array,
  params: Argon2idParams,
  outputBytes: number,
) => Promise<Uint8Array>;

/** A master key and the keyslot that yielded it. The caller owns `masterKey` and wipes it. */
export interface Unlocked {
  masterKey: Uint8Array;
  slot: number;
}

/**
 * Try the active keyslots in index order (or only `onlySlot`). Throws `WRONG_PASSPHRASE` when
 * none opens and `WEAK_KEY` for a master key with equal halves (SPEC §5.1).
 */
export async function unlockKeyslots(
  fields: HeaderFields,
  kdfInput: Uint8Array,
  onlySlot?: number,
  derive: KekDeriver = deriveArgon2id,
): Promise<Unlocked> {
  for (let i = 0; i < fields.keyslots.length; i++) {
    const slot = fields.keyslots[i]!;
    if (slot.state !== 'active' || (onlySlot !== undefined && i !== onlySlot)) continue;
    // Parameters were checked against SPEC §11 when the header was decoded.
    const kek = await derive(kdfInput, slot.kdfSalt, slot.kdf, 32);
    try {
      const masterKey = unwrapMasterKey(kek, fields.uuid, i, slot);
      if (masterKey === null) continue;
      checkKeyHalves(masterKey, 'unlocking: master key');
      return { masterKey, slot: i };
    } finally {
      wipe(kek);
    }
  }
  throw new AuthError('WRONG_PASSPHRASE', 'no key available with this passphrase');
}
