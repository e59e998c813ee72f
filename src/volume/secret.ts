/**
 * Turning what the user supplies (passphrase, keyfile paths) into the Argon2id input of
 * SPEC §4.1. Keyfiles are read here, in src/, because reading files is an effect.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { wipe } from '../../crypto/bytes.js';
import { UsageError } from '../../volume-format/errors.js';
import { buildKdfInput, digestKeyfile } from '../../volume-format/secret.js';
import { ioErrorFrom } from '../io/file-storage.js';

/** Largest keyfile accepted: hashing is cheap, but a mistyped path to a disk image is not. */
export const MAX_KEYFILE_BYTES = 64 * 1024 * 1024;

const KEYFILE_CHUNK_BYTES = 1024 * 1024;

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

/**
 * Read and digest one keyfile. The cap is enforced on the bytes actually read, on the opened
 * descriptor, not on a size looked up before: a file that grows meanwhile, or a device
 * (`/dev/zero`), cannot make us read more than {@link MAX_KEYFILE_BYTES} + 1 bytes.
 */
async function digestKeyfileAt(path: string): Promise<Uint8Array> {
  const tooLarge = (): UsageError =>
    new UsageError('USAGE', `keyfile ${path}: larger than ${MAX_KEYFILE_BYTES} bytes`);
  const parts: Buffer[] = [];
  let handle: fsp.FileHandle | null = null;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) throw new UsageError('USAGE', `keyfile ${path}: not a regular file`);
    if (st.size > MAX_KEYFILE_BYTES) throw tooLarge();
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(KEYFILE_CHUNK_BYTES, MAX_KEYFILE_BYTES + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      parts.push(chunk);
      if (bytesRead === 0) break;
      total += bytesRead;
      parts[parts.length - 1] = chunk.subarray(0, bytesRead);
      if (total > MAX_KEYFILE_BYTES) throw tooLarge();
    }
    const contents = Buffer.concat(parts.slice(0, -1), total);
    try {
      return digestKeyfile(contents);
    } finally {
      wipe(contents);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw ioErrorFrom(err, `reading keyfile ${path}`);
  } finally {
    wipe(...parts);
    await handle?.close();
  }
}
