/**
 * Which header copy wins and what must be repaired (SPEC §8): a pure decision over the bytes
 * read at both copy offsets.
 */
import { type HeaderCopyName, KEYSLOT_COUNT, KEYSLOT_SIZE, KEYSLOTS_OFFSET } from './constants.js';
import { CryptainerError, FormatError, IntegrityError } from './errors.js';
import { type HeaderFields, decodeHeaderCopy, sameHeaderContent } from './header.js';

/** What `info` reports for a copy: valid and current, valid but behind, or invalid. */
export type CopyStatus = 'ok' | 'stale' | 'corrupt';

/** The verdict on one copy. */
export interface CopyReport {
  status: CopyStatus;
  /** Set when the copy decoded. */
  seqid?: number;
  /** Set when the copy is corrupt: why. */
  error?: CryptainerError;
}

/** The outcome of SPEC §8 steps 1–5. */
export interface HeaderChoice {
  winner: HeaderCopyName;
  fields: HeaderFields;
  /** Raw bytes of the winning copy (for MAC verification after unlock). */
  winnerBytes: Uint8Array;
  copies: Record<HeaderCopyName, CopyReport>;
  /** Copies to rewrite from the winner (after unlock, on read-write opens). */
  repair: HeaderCopyName[];
}

type Decoded = { ok: true; fields: HeaderFields } | { ok: false; error: CryptainerError };

function tryDecode(bytes: Uint8Array | null, copy: HeaderCopyName): Decoded {
  if (bytes === null) {
    return { ok: false, error: new FormatError('HEADER_SHORT', `header copy ${copy}: unreadable`) };
  }
  try {
    return { ok: true, fields: decodeHeaderCopy(bytes, copy) };
  } catch (err) {
    if (err instanceof CryptainerError) return { ok: false, error: err };
    // A decoder bug must not be reported as a damaged volume: let it surface.
    throw err;
  }
}

/**
 * Copy verdicts that fail the whole volume (SPEC §7 "Scope", §8 step 3): a copy that passed
 * its checksum and still asks for an unknown incompat feature or KDF work beyond the limits was
 * written on purpose by another writer. Reading the other copy instead would roll that
 * writer's state back, and a read-write open would then overwrite it.
 */
const VOLUME_VERDICTS: ReadonlySet<string> = new Set(['UNSUPPORTED_FEATURE', 'KDF_LIMITS']);

/**
 * Decide which copy wins (SPEC §8). `bytesA`/`bytesB` are what was read at each copy's offset
 * (`null` if unreadable). Throws, in the order of SPEC §8 step 3: copy A's, else copy B's
 * `UNSUPPORTED_FEATURE`/`KDF_LIMITS` (whatever the other copy says); `UNSUPPORTED_VERSION` when
 * both copies fail with it; else `NO_VALID_HEADER` when neither copy is valid.
 */
export function planHeaderChoice(
  bytesA: Uint8Array | null,
  bytesB: Uint8Array | null,
): HeaderChoice {
  const a = tryDecode(bytesA, 'A');
  const b = tryDecode(bytesB, 'B');
  for (const d of [a, b]) {
    if (!d.ok && VOLUME_VERDICTS.has(d.error.code)) throw d.error;
  }
  if (!a.ok && !b.ok) {
    // SPEC §8 step 3: the only code that replaces NO_VALID_HEADER for two invalid copies.
    if (a.error.code === 'UNSUPPORTED_VERSION' && b.error.code === 'UNSUPPORTED_VERSION') {
      throw a.error;
    }
    throw new FormatError(
      'NO_VALID_HEADER',
      `no valid header: copy A: ${a.error.message}; copy B: ${b.error.message}`,
      { cause: a.error },
    );
  }
  if (a.ok && !b.ok) {
    return result('A', a.fields, bytesA!, { status: 'corrupt', error: b.error }, ['B']);
  }
  if (!a.ok && b.ok) {
    return result('B', b.fields, bytesB!, { status: 'corrupt', error: a.error }, ['A']);
  }
  const fa = (a as { fields: HeaderFields }).fields;
  const fb = (b as { fields: HeaderFields }).fields;
  if (fb.seqid > fa.seqid) {
    return result('B', fb, bytesB!, { status: 'stale', seqid: fa.seqid }, ['A']);
  }
  if (fa.seqid > fb.seqid) {
    return result('A', fa, bytesA!, { status: 'stale', seqid: fb.seqid }, ['B']);
  }
  // Equal seqids: A wins; B is rewritten only if it says something else (SPEC §8 step 5).
  const same = sameHeaderContent(fa, fb);
  return result(
    'A',
    fa,
    bytesA!,
    same ? { status: 'ok', seqid: fb.seqid } : { status: 'stale', seqid: fb.seqid },
    same ? [] : ['B'],
  );
}

function result(
  winner: HeaderCopyName,
  fields: HeaderFields,
  winnerBytes: Uint8Array,
  loser: CopyReport,
  repair: HeaderCopyName[],
): HeaderChoice {
  const other: HeaderCopyName = winner === 'A' ? 'B' : 'A';
  const copies = { [winner]: { status: 'ok', seqid: fields.seqid }, [other]: loser } as Record<
    HeaderCopyName,
    CopyReport
  >;
  return {
    winner,
    fields,
    winnerBytes: Uint8Array.prototype.slice.call(winnerBytes, 0, 4096),
    copies,
    repair,
  };
}

/**
 * SPEC §8 step 7: the choice to try when `failed`, the winner, did not verify its MAC: the
 * other copy, if it is valid, as the winner (whatever its seqid), with `failed` to repair.
 * `null` when the other copy is not valid. `sameKeyslots` tells whether the master key already
 * unlocked from `failed` can verify it (equal keyslot bytes) or its own keyslots must be tried.
 */
export function planOtherCopy(
  bytesA: Uint8Array | null,
  bytesB: Uint8Array | null,
  failed: HeaderCopyName,
): { choice: HeaderChoice; sameKeyslots: boolean } | null {
  const other: HeaderCopyName = failed === 'A' ? 'B' : 'A';
  const otherBytes = other === 'A' ? bytesA : bytesB;
  const failedBytes = failed === 'A' ? bytesA : bytesB;
  const decoded = tryDecode(otherBytes, other);
  if (!decoded.ok || failedBytes === null) return null;
  const error = new IntegrityError(
    'HEADER_TAMPERED',
    `header copy ${failed}: authentication failed (modified without the key)`,
  );
  const choice = result(other, decoded.fields, otherBytes!, { status: 'corrupt', error }, [failed]);
  const span = [KEYSLOTS_OFFSET, KEYSLOTS_OFFSET + KEYSLOT_COUNT * KEYSLOT_SIZE] as const;
  const sameKeyslots =
    Buffer.compare(failedBytes.subarray(...span), otherBytes!.subarray(...span)) === 0;
  return { choice, sameKeyslots };
}
