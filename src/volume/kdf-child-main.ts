/**
 * Entry point of the Argon2id helper process (src/volume/kdf-child.ts has the protocol).
 * Never run by users; a failure is one line on stderr and exit status 1.
 */
import { writeSync } from 'node:fs';
import { wipe } from '../../crypto/bytes.js';
import { deriveArgon2id } from '../../crypto/kdf.js';
import { MAX_PASSPHRASE_BYTES, readStdinToEnd } from '../io/secret-input.js';
import { makeUndumpable } from '../secure-memory.js';
import type { KdfChildRequest } from './kdf-child.js';

async function main(): Promise<number> {
  makeUndumpable();
  // The KDF input is a passphrase, or a passphrase with keyfile digests (SPEC §4.1).
  const input = await readStdinToEnd(4096 + 2 * MAX_PASSPHRASE_BYTES);
  const nl = input.indexOf(0x0a);
  if (nl < 0) throw new Error('no request line');
  const req = JSON.parse(input.subarray(0, nl).toString('utf8')) as KdfChildRequest;
  const kdfInput = input.subarray(nl + 1);
  let key: Uint8Array | null = null;
  try {
    key = await deriveArgon2id(
      kdfInput,
      Buffer.from(req.saltHex, 'hex'),
      req.params,
      req.outputBytes,
    );
    let done = 0;
    while (done < key.length) done += writeSync(1, key, done, key.length - done);
    return 0;
  } finally {
    wipe(input, key);
  }
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
