/**
 * Turning what the user supplies (passphrase, keyfile paths) into the Argon2id input of
 * SPEC §4.1. Keyfiles are read here, in src/, because reading files is an effect.
 */
import { promises as fsp } from 'node:fs';
import { wipe } from '../../crypto/bytes.js';
import { UsageError } from '../../volume-format/errors.js';
import { buildKdfInput, digestKeyfile } from '../../volume-format/secret.js';
import { ioErrorFrom } from '../io/file-storage.js';

/** Largest keyfile accepted: hashing is cheap, but a mistyped path to a disk image is not. */
export const MAX_KEYFILE_BYTES = 64 * 1024 * 1024;

/** What unlocks (or will unlock) a keyslot: a passphrase, keyfiles, or both. */
export interface UnlockSecret {
  /** A string is encoded as UTF-8; bytes are used as given. */
  passphrase?: string | Uint8Array;
  /** Paths of keyfiles; their order does not matter (SPEC §4.1). */
  keyfiles?: string[];
}

/** Build `kdf_input` for `secret`. The caller owns the result and must wipe it. */
export async function resolveKdfInput(secret: UnlockSecret): Promise<Uint8Array> {
  const keyfiles = secret.keyfiles ?? [];
  if (secret.passphrase === undefined && keyfiles.length === 0) {
    throw new UsageError('USAGE', 'unlocking: no passphrase or keyfile given');
  }
  const passphrase =
    typeof secret.passphrase === 'string'
      ? new TextEncoder().encode(secret.passphrase)
      : Uint8Array.from(secret.passphrase ?? new Uint8Array(0));
  const digests: Uint8Array[] = [];
  try {
    for (const path of keyfiles) digests.push(await digestKeyfileAt(path));
    return buildKdfInput(passphrase, digests);
  } finally {
    wipe(passphrase, ...digests);
  }
}

async function digestKeyfileAt(path: string): Promise<Uint8Array> {
  let contents: Buffer;
  try {
    const st = await fsp.stat(path);
    if (!st.isFile()) throw new UsageError('USAGE', `keyfile ${path}: not a regular file`);
    if (st.size > MAX_KEYFILE_BYTES) {
      throw new UsageError('USAGE', `keyfile ${path}: larger than ${MAX_KEYFILE_BYTES} bytes`);
    }
    contents = await fsp.readFile(path);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw ioErrorFrom(err, `reading keyfile ${path}`);
  }
  try {
    return digestKeyfile(contents);
  } finally {
    wipe(contents);
  }
}
