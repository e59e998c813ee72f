/**
 * Reading and writing the two header copies in the order SPEC §8/§9.3 fixes. The decisions
 * (which copy wins, what to repair) are pure and live in volume-format/header-copies.ts.
 */
import {
  HEADER_COPY_OFFSETS,
  HEADER_SIZE,
  type HeaderCopyName,
} from '../../volume-format/constants.js';
import { type HeaderFields, encodeHeaderCopy } from '../../volume-format/header.js';
import { type HeaderChoice, planHeaderChoice } from '../../volume-format/header-copies.js';
import { FormatError } from '../../volume-format/errors.js';
import type { Storage } from '../io/storage.js';

/**
 * SPEC §1, §9.3: `seqid` rises by one per header update and may not pass 2^53 − 1, so a header
 * whose seqid is already there takes no more updates. Refused with `HEADER_FIELD` before
 * anything is written (a valid header from disk may carry any seqid up to that limit).
 */
export function checkSeqidRoom(seqid: number): void {
  if (!Number.isSafeInteger(seqid + 1)) {
    throw new FormatError(
      'HEADER_FIELD',
      `header update: seqid ${seqid} is at its limit 2^53-1, the header cannot be updated`,
    );
  }
}

/** Bytes found at both copy offsets (`null` when the file is too short to hold a copy). */
export interface RawHeaderCopies {
  A: Uint8Array | null;
  B: Uint8Array | null;
}

/** Read both copies as raw bytes (SPEC §8 step 1). */
export async function readHeaderCopies(storage: Storage): Promise<RawHeaderCopies> {
  const read = async (copy: HeaderCopyName): Promise<Uint8Array | null> => {
    const bytes = await storage.readAt(HEADER_COPY_OFFSETS[copy], HEADER_SIZE);
    return bytes.length === HEADER_SIZE ? bytes : null;
  };
  return { A: await read('A'), B: await read('B') };
}

/** Read both copies and decide which wins (SPEC §8 steps 1–5). */
export async function readHeaderChoice(storage: Storage): Promise<HeaderChoice> {
  const raw = await readHeaderCopies(storage);
  return planHeaderChoice(raw.A, raw.B);
}

/** Write one copy and fsync it. */
export async function writeHeaderCopy(
  storage: Storage,
  fields: HeaderFields,
  copy: HeaderCopyName,
  macKey: Uint8Array,
): Promise<void> {
  await storage.writeAt(HEADER_COPY_OFFSETS[copy], encodeHeaderCopy(fields, copy, macKey));
  await storage.sync();
}

/**
 * Rewrite the copies `choice.repair` names from the winner, keeping its seqid (SPEC §8
 * "Repair"): only the bad copy is written, so a crash here cannot hurt the good one.
 */
export async function repairHeaderCopies(
  storage: Storage,
  choice: HeaderChoice,
  macKey: Uint8Array,
): Promise<void> {
  for (const copy of choice.repair) await writeHeaderCopy(storage, choice.fields, copy, macKey);
}

/**
 * A header update (SPEC §9.3): write `next` (whose seqid the caller set to current + 1) to
 * copy A, fsync, then copy B, fsync. Both copies must be valid and equal beforehand.
 */
export async function writeHeaderUpdate(
  storage: Storage,
  next: HeaderFields,
  macKey: Uint8Array,
): Promise<void> {
  checkSeqidRoom(next.seqid - 1);
  await writeHeaderCopy(storage, next, 'A', macKey);
  await writeHeaderCopy(storage, next, 'B', macKey);
}
