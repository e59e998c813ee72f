/**
 * Explicit header repair (SPEC §8 "Repair"): rebuild a damaged or stale header copy from the
 * winning one. The rewritten copy needs a fresh `header_mac`, keyed from the master key
 * (SPEC §5.3), so repair unlocks the volume first; the winner's MAC is verified before
 * anything is written (SPEC §8 step 6).
 */
import type { HeaderCopyName } from '../../volume-format/constants.js';
import { UnsupportedError } from '../../volume-format/errors.js';
import type { CopyStatus } from '../../volume-format/header-copies.js';
import { closeContainer, openContainer } from '../io/container-file.js';
import { readHeaderChoice } from './header-store.js';
import { type OpenOptions, openVolumeOn } from './open.js';

/** One copy that repair rewrote. */
export interface RepairedCopy {
  copy: HeaderCopyName;
  /** What it was before: `stale` (valid, older or different) or `corrupt` (invalid). */
  was: Exclude<CopyStatus, 'ok'>;
  /** For a corrupt copy: the error code and message that made it invalid. */
  reason?: { code: string; message: string };
}

/** What {@link repairVolume} found and did. */
export interface RepairReport {
  /** The copy the volume was read from. */
  winner: HeaderCopyName;
  /** seqid of the winner, which the repaired copy now carries too. */
  seqid: number;
  /** Copies rewritten from the winner (empty when both were already ok). */
  repaired: RepairedCopy[];
  /** The keyslot that unlocked the volume. */
  unlockedSlot: number;
}

/**
 * Unlock `path` with `options` and rewrite every damaged or stale header copy from the winner
 * (SPEC §8). Only the bad copy is written, so a crash cannot hurt the good one. Throws
 * `NO_VALID_HEADER` when no copy is valid (restore a header backup then), `WRONG_PASSPHRASE`,
 * `HEADER_TAMPERED`, `VOLUME_BUSY`, and `UNSUPPORTED_FEATURE` when the volume may only be
 * opened read-only.
 */
export async function repairVolume(
  path: string,
  options: Omit<OpenOptions, 'readOnly'>,
): Promise<RepairReport> {
  // SPEC §9.2: locked before the first header byte is read, and kept through the repair.
  const opened = await openContainer(path, {
    lock: 'exclusive',
    ...(options.storage ? { storage: options.storage } : {}),
  });
  let before;
  try {
    before = await readHeaderChoice(opened.storage);
  } catch (err) {
    await closeContainer(opened);
    throw err;
  }
  // openVolumeOn repeats SPEC §8, verifies the winner's MAC and repairs.
  const volume = await openVolumeOn(path, opened, { ...options, readOnly: false });
  try {
    if (volume.readOnly) {
      throw new UnsupportedError(
        'UNSUPPORTED_FEATURE',
        `repairing ${path}: the volume has read-only-compatible features this version does ` +
          'not know, so its header must not be rewritten',
      );
    }
    // The winner may differ from `before`'s when its MAC failed and the other copy verified
    // (SPEC §8 step 7): then the first copy was the damaged one.
    const { winner, repaired } = volume.openedFrom;
    return {
      winner,
      seqid: volume.header.seqid,
      repaired: repaired.map((copy): RepairedCopy => {
        const r = before.copies[copy];
        if (r.status === 'ok') {
          const reason = { code: 'HEADER_TAMPERED', message: `header copy ${copy}: bad MAC` };
          return { copy, was: 'corrupt', reason };
        }
        return {
          copy,
          was: r.status,
          ...(r.error ? { reason: { code: r.error.code, message: r.error.message } } : {}),
        };
      }),
      unlockedSlot: volume.unlockedSlot,
    };
  } finally {
    await volume.close();
  }
}
