/**
 * Unlock and authenticate a header (SPEC §8 steps 6 and 7): unlock a keyslot of the winning
 * copy, verify its MAC, and when that fails, try the other copy before giving up.
 */
import { wipe } from '../../crypto/bytes.js';
import { AuthError } from '../../volume-format/errors.js';
import { type HeaderChoice, planOtherCopy } from '../../volume-format/header-copies.js';
import type { Storage } from '../io/storage.js';
import { readHeaderCopies } from './header-store.js';
import { authenticHeaderMacKey, headerTampered } from './keys.js';
import { type KekDeriver, type Unlocked, unlockKeyslots } from './unlock.js';

/** An authenticated header: the choice to use, its master key and MAC key (caller wipes). */
export interface AuthenticatedHeader extends Unlocked {
  /** The copy whose MAC verified, and the copies to repair from it. */
  choice: HeaderChoice;
  macKey: Uint8Array;
}

/**
 * Unlock `choice` with `kdfInput` and verify the winner's MAC (SPEC §8 step 6). On a MAC
 * mismatch, re-read both copies and try the other one (step 7): under the same master key when
 * its keyslots are byte-identical, else after unlocking one of its own keyslots. Throws
 * `WRONG_PASSPHRASE` when the winner's keyslots do not open, `HEADER_TAMPERED` when no valid
 * copy authenticates.
 */
export async function unlockAuthenticated(
  storage: Storage,
  choice: HeaderChoice,
  kdfInput: Uint8Array,
  onlySlot?: number,
  derive?: KekDeriver,
): Promise<AuthenticatedHeader> {
  const first = await unlockKeyslots(choice.fields, kdfInput, onlySlot, derive);
  const firstMac = authenticHeaderMacKey(first.masterKey, choice);
  if (firstMac !== null) return { ...first, choice, macKey: firstMac };
  const tampered = headerTampered(choice);
  let alternative;
  try {
    const raw = await readHeaderCopies(storage);
    alternative = planOtherCopy(raw.A, raw.B, choice.winner);
  } catch (err) {
    wipe(first.masterKey);
    throw err;
  }
  if (alternative === null) {
    wipe(first.masterKey);
    throw tampered;
  }
  const other = alternative.choice;
  let unlocked: Unlocked = first;
  if (!alternative.sameKeyslots) {
    wipe(first.masterKey);
    try {
      unlocked = await unlockKeyslots(other.fields, kdfInput, onlySlot, derive);
    } catch (err) {
      // The secret opens the first copy only: that copy's failed MAC is the finding.
      if (err instanceof AuthError) throw tampered;
      throw err;
    }
  }
  const macKey = authenticHeaderMacKey(unlocked.masterKey, other);
  if (macKey !== null) return { ...unlocked, choice: other, macKey };
  wipe(unlocked.masterKey);
  throw tampered;
}
