/**
 * Reading secrets from stdin and from passphrase files, with a cap on every read so that a
 * mistaken source (`/dev/zero`, a disk image, an endless pipe) fails fast instead of growing
 * the process until the OOM killer steps in.
 *
 * Stdin is read with blocking `read(2)` calls on fd 0, in the caller's order, one line at a
 * time: a writer that is slow (`(sleep 1; echo pw) | cryptainer check`, `gpg -d | ...`) is
 * simply waited for. If fd 0 is non-blocking anyway (its open file description is shared with
 * a process that made it so), `read` reports EAGAIN, and the rest of stdin is read through
 * Node's stream API, which waits for readability without spinning. Nothing here touches
 * `process.stdin` before that: creating it switches a pipe to non-blocking mode.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { wipe } from '../../crypto/bytes.js';
import { UsageError } from '../../volume-format/errors.js';
import { ioErrorFrom } from './file-storage.js';

/** Longest passphrase accepted from a file or a stdin line (the line ending not counted). */
export const MAX_PASSPHRASE_BYTES = 64 * 1024;

const CHUNK_BYTES = 16 * 1024;

/** Bytes read from stdin past the last line handed out (owned here, wiped when consumed). */
let carry: Buffer = Buffer.alloc(0);
let stdinEnded = false;
/** Set once fd 0 turned out to be non-blocking: the rest is read through the stream API. */
let stream: AsyncIterator<Buffer> | null = null;

/** The next piece of stdin (a buffer the caller owns and wipes), or null at end of input. */
async function readStdinChunk(): Promise<Buffer | null> {
  if (stdinEnded) return null;
  if (stream === null) {
    const buf = Buffer.alloc(CHUNK_BYTES);
    try {
      const n = readSync(0, buf, 0, buf.length, null);
      if (n > 0) return buf.subarray(0, n);
      wipe(buf);
      stdinEnded = true;
      return null;
    } catch (err) {
      wipe(buf);
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN') {
        // EBADF (stdin closed), EISDIR, ...: there is no secret on stdin.
        stdinEnded = true;
        return null;
      }
      stream = (process.stdin as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    }
  }
  try {
    const next = await stream.next();
    if (!next.done) return next.value;
  } catch {
    // a read error on stdin ends it, as above
  }
  stdinEnded = true;
  return null;
}

/**
 * The next line of stdin without its line ending ("\n", with one "\r" before it dropped), or
 * null once stdin is exhausted (a last line without "\n" counts). Throws `USAGE` for a line
 * longer than {@link MAX_PASSPHRASE_BYTES}, without reading the rest of it.
 */
export async function readStdinLine(): Promise<Uint8Array | null> {
  for (;;) {
    const nl = carry.indexOf(0x0a);
    if (nl >= 0) return takeCarry(nl, nl + 1);
    if (carry.length > MAX_PASSPHRASE_BYTES + 1) {
      wipe(carry);
      carry = Buffer.alloc(0);
      throw lineTooLong();
    }
    const chunk = await readStdinChunk();
    if (chunk === null) {
      return carry.length === 0 ? null : takeCarry(carry.length, carry.length);
    }
    const joined = Buffer.concat([carry, chunk]);
    wipe(carry, chunk);
    carry = joined;
  }
}

function lineTooLong(): UsageError {
  return new UsageError(
    'USAGE',
    `reading stdin: a passphrase line is longer than ${MAX_PASSPHRASE_BYTES} bytes`,
  );
}

/** Hand out `carry[0, end)` (minus a trailing "\r") as a new buffer; keep `carry[next..]`. */
function takeCarry(end: number, next: number): Uint8Array {
  let stop = end;
  if (stop > 0 && carry[stop - 1] === 0x0d) stop--;
  if (stop > MAX_PASSPHRASE_BYTES) {
    wipe(carry);
    carry = Buffer.alloc(0);
    throw lineTooLong();
  }
  const line = Uint8Array.from(carry.subarray(0, stop));
  const rest = Buffer.from(carry.subarray(next));
  wipe(carry);
  carry = rest;
  return line;
}

/**
 * All of stdin up to end of input, refusing more than `maxBytes` (`USAGE`). For a peer that
 * sends one message and closes (the mount server's request and passphrase).
 */
export async function readStdinToEnd(maxBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [carry];
  let total = carry.length;
  carry = Buffer.alloc(0);
  try {
    for (;;) {
      const chunk = await readStdinChunk();
      if (chunk === null) return Buffer.concat(parts, total);
      parts.push(chunk);
      total += chunk.length;
      if (total > maxBytes) {
        throw new UsageError('USAGE', `reading stdin: more than ${maxBytes} bytes`);
      }
    }
  } finally {
    wipe(...parts);
  }
}

/**
 * Read a passphrase file; one trailing "\n" or "\r\n" is removed (SPEC §4.1). FIFOs and other
 * streams (`<(gpg -d ...)`) are fine; reading stops after {@link MAX_PASSPHRASE_BYTES} + 2
 * bytes, and a longer file is refused with `USAGE` (so `/dev/zero` fails at once).
 */
export function readPassphraseFile(path: string): Uint8Array {
  const limit = MAX_PASSPHRASE_BYTES + 2; // room for the "\r\n" that is removed
  const buf = Buffer.alloc(limit + 1);
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOCTTY);
  } catch (err) {
    throw ioErrorFrom(err, `reading passphrase file ${path}`);
  }
  let length = 0;
  try {
    if (fstatSync(fd).isDirectory()) {
      throw new UsageError('USAGE', `reading passphrase file ${path}: is a directory`);
    }
    for (;;) {
      const n = readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > limit) {
        throw new UsageError(
          'USAGE',
          `reading passphrase file ${path}: longer than ${MAX_PASSPHRASE_BYTES} bytes`,
        );
      }
    }
    let end = length;
    if (end > 0 && buf[end - 1] === 0x0a) end--;
    if (end > 0 && buf[end - 1] === 0x0d) end--;
    if (end > MAX_PASSPHRASE_BYTES) {
      throw new UsageError(
        'USAGE',
        `reading passphrase file ${path}: longer than ${MAX_PASSPHRASE_BYTES} bytes`,
      );
    }
    return Uint8Array.from(buf.subarray(0, end));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw ioErrorFrom(err, `reading passphrase file ${path}`);
  } finally {
    wipe(buf);
    closeSync(fd);
  }
}
