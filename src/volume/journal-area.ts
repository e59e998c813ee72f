/**
 * Writing zeros over the journal area (SPEC §2 "The journal area is allocated"): at create
 * (SPEC §9.1 step 3), before a re-encryption starts (SPEC §15.6 step S0) and when it finishes
 * (step F2). A sparse journal area would make the first journal write of a re-encryption need
 * new space on the host file system, after the feature flag is already set.
 */
import type { HeaderFields } from '../../volume-format/header.js';
import type { Storage } from '../io/storage.js';

/**
 * Bytes written per call when no buffer is lent: the whole 12 MiB area of v1 writers in one
 * write (a fresh buffer costs no page faults until read, and one write is one crash point).
 */
const ZERO_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Write zeros over `[journal_offset, journal_offset + journal_size)`. `scratch`, if given, is
 * a buffer the caller owns and no longer needs (it is zero-filled and used for the writes),
 * which avoids faulting in fresh pages. Does not sync: the caller fdatasyncs in its order.
 */
export async function writeJournalZeros(
  storage: Storage,
  fields: Pick<HeaderFields, 'journalOffset' | 'journalSize'>,
  scratch?: Uint8Array | null,
): Promise<void> {
  const size = Math.min(fields.journalSize, scratch?.length || ZERO_CHUNK_BYTES);
  // A fresh buffer is not filled: its pages read as zero unfaulted.
  const zeros = scratch ? scratch.subarray(0, size).fill(0) : new Uint8Array(size);
  for (let at = 0; at < fields.journalSize; at += zeros.length) {
    const n = Math.min(zeros.length, fields.journalSize - at);
    await storage.writeAt(fields.journalOffset + at, zeros.subarray(0, n));
  }
}
