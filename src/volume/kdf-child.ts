/**
 * Argon2id in a short-lived child process, for the mount server (SPEC §4.2 unchanged; this is
 * only where the computation runs). The argon2 binding copies the password into memory we
 * cannot wipe (a JavaScript Buffer, and the native side's own buffers, freed but not zeroed);
 * in a child those copies vanish with the child, which exits as soon as it has answered.
 *
 * Protocol: the child's stdin gets one line of JSON (salt in hex, parameters, output length)
 * and then the KDF input bytes up to EOF; it answers with exactly `outputBytes` bytes on
 * stdout and exits 0, or writes one line to stderr and exits 1. It makes itself non-dumpable
 * first (src/secure-memory.ts), like the server.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { wipe } from '../../crypto/bytes.js';
import { type Argon2idParams, checkArgon2idParams } from '../../crypto/kdf.js';
import { IoError } from '../../volume-format/errors.js';

const CHILD_MAIN = fileURLToPath(new URL('./kdf-child-main.js', import.meta.url));

/** Request line of the protocol above. */
export interface KdfChildRequest {
  saltHex: string;
  params: Argon2idParams;
  outputBytes: number;
}

/** A {@link KekDeriver} (src/volume/unlock.ts) that runs Argon2id in a child process. */
export async function deriveArgon2idInChild(
  kdfInput: Uint8Array,
  salt: Uint8Array,
  params: Argon2idParams,
  outputBytes: number,
): Promise<Uint8Array> {
  checkArgon2idParams(params); // refuse a hostile header here, before any process starts
  const request: KdfChildRequest = {
    saltHex: Buffer.from(salt).toString('hex'),
    params,
    outputBytes,
  };
  const head = Buffer.from(JSON.stringify(request) + '\n', 'utf8');
  const frame = Buffer.alloc(head.length + kdfInput.length);
  frame.set(head, 0);
  frame.set(kdfInput, head.length);
  const child = spawn(process.execPath, [CHILD_MAIN], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: '/',
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (err += chunk));
  child.stdin.on('error', () => undefined); // the child may die before reading
  child.stdin.end(frame, () => wipe(frame));
  const status = await new Promise<number>((done) => {
    child.on('error', () => done(-1));
    child.on('close', (code) => done(code ?? -1));
  });
  wipe(frame);
  const key = Buffer.concat(out);
  wipe(...out);
  if (status !== 0 || key.length !== outputBytes) {
    wipe(key);
    const why = err.trim().split('\n')[0] || `exit status ${status}`;
    throw new IoError('IO_ERROR', `deriving the key in a helper process: ${why}`);
  }
  const result = Uint8Array.from(key);
  wipe(key);
  return result;
}
