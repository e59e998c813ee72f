/**
 * Worker thread of src/drive/kernel-fuse.ts: serves the decrypted drive by speaking the FUSE
 * kernel protocol on /dev/fuse directly (linux/fuse.h, protocol 7.31), synchronously: read a
 * request, do the work (pread + XTS, or XTS + pwrite), write the answer. No libfuse, no
 * hand-off between threads: the kernel wakes this thread and this thread answers. Measured on
 * the project machine, the round trip of a no-op 4 KiB request is ≈ 25–45 µs this way against
 * ≈ 80–120 µs through fuse-native (bench/fuse-floor.ts).
 *
 * Several of these threads read the same /dev/fuse descriptor (the kernel hands each request
 * to one reader), so one can decrypt while another waits for the disk or the kernel; requests
 * touching the same sectors are serialised by a shared range lock (shared-range-lock.ts).
 *
 * One file system: the root directory (node 1) holding one file, `volume` (node 2), whose
 * bytes are the decrypted drive (SPEC §6). Unaligned requests are read-modify-written here.
 *
 * Messages in: `{ key }` (a SharedArrayBuffer holding the 64-byte master key, zeroed here once
 * the cipher holds it). Messages out: `{ ready }`, `{ log }` (with `ioError: 'read' | 'write'`
 * and `message` when a request failed on the container), `{ flush }`, and `{ stats }` on exit. The
 * thread ends when the kernel ends the connection (unmount or abort: ENODEV on read).
 */
import { fdatasyncSync, readSync, writeSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { wipe } from '../../crypto/bytes.js';
import { XtsCipher } from '../../crypto/xts.js';
import { SharedRangeLock } from './shared-range-lock.js';
import { flushTraceIfDue, now, setTraceSink, stopTrace, traceStart } from '../trace.js';

/** What the main thread hands over (see kernel-fuse.ts). */
export interface KernelFuseWorkerData {
  fuseFd: number;
  containerFd: number;
  dataOffset: number;
  sectorSize: number;
  sizeBytes: number;
  readOnly: boolean;
  uid: number;
  gid: number;
  /** Largest read or write request (FUSE_MAX_PAGES), a multiple of 4096. */
  maxRequestBytes: number;
  /** Ask for the kernel's writeback cache (FUSE_WRITEBACK_CACHE). */
  writebackCache: boolean;
  fileName: string;
  /** Ask the main thread to start flushing the container every this many bytes written (0: never). */
  flushKickBytes: number;
  /** This thread's index and the lock shared by all serving threads. */
  thread: number;
  rangeLock: SharedArrayBuffer;
}

const d = workerData as KernelFuseWorkerData;
const port = parentPort!;
// This thread's stderr is a stream flushed by its event loop, which never runs here: trace
// lines go to the main thread as messages, into the server log.
setTraceSink((line) => port.postMessage({ log: line }));

// linux/fuse.h opcodes and flags
const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
} as const;
const FUSE_ASYNC_READ = 1 << 0;
const FUSE_BIG_WRITES = 1 << 5;
const FUSE_WRITEBACK_CACHE = 1 << 16;
const FUSE_MAX_PAGES = 1 << 22;
const FOPEN_KEEP_CACHE = 1 << 1;
const FATTR_SIZE = 1 << 3;
const IN_HEADER = 40;
const OUT_HEADER = 16;
const ENOENT = 2;
const EIO = 5;
const EPERM = 1;
const ENOTDIR = 20;
const EROFS = 30;
const ENOSPC = 28;
const ENOSYS = 38;
const EINVAL = 22;
/** Requests whose failure loses written data. */
const DATA_LOSS_OPS = new Set<number>([OP.WRITE, OP.FSYNC, OP.FLUSH]);
const ROOT = 1;
const FILE = 2;
/** Attribute and entry validity handed to the kernel: the drive never changes shape. */
const VALID_SECONDS = 3600n;

const ss = d.sectorSize;
const inBuf = Buffer.alloc(d.maxRequestBytes + 65536);
const outBuf = Buffer.alloc(d.maxRequestBytes + 4096);
/** Ciphertext scratch for one request (plus a sector at each end for read-modify-write). */
const scratch = Buffer.alloc(d.maxRequestBytes + 2 * ss);
const started = BigInt(Math.floor(Date.now() / 1000));
const sectors = new SharedRangeLock(d.rangeLock, d.thread);

/**
 * Only for the fallback XTS engines (the native one allocates nothing per call):
 * Node's `cipher.update()` returns a fresh off-heap buffer per 64 KiB of XTS, and V8 collects
 * those only after external memory grew by tens of MiB: the serving process's RSS rose by
 * ≈ 35 MiB of dead buffers during a sequential write. A minor GC of this thread's small heap
 * every {@link GC_EVERY_BYTES} keeps it flat: every 4 MiB gave a peak of 86–92 MiB with one
 * thread (112–117 without), and with two threads every 1 MiB (one full request) gives 98–100
 * MiB against 106 for 2 MiB and 109–110 for 4 MiB, throughput within noise
 * (bench/PERFORMANCE.md). `--expose-gc` set at run time only makes a `gc` function available
 * to the new context it is asked from.
 */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as (options: { type: 'minor' }) => void;
const GC_EVERY_BYTES = 1024 * 1024;
let bytesSinceGc = 0;

function countCrypto(bytes: number): void {
  if (xts?.engine === 'native') return;
  bytesSinceGc += bytes;
  if (bytesSinceGc >= GC_EVERY_BYTES) {
    bytesSinceGc = 0;
    collectGarbage({ type: 'minor' });
  }
}
/**
 * Written data sits in the container's page cache until a flush: the FSYNC that ends a large
 * write would then wait for all of it to reach the disk only after everything was encrypted.
 * Every {@link KernelFuseWorkerData.flushKickBytes} the main thread starts an fdatasync in the
 * background (kernel-fuse.ts), so the disk writes while this thread encrypts.
 */
let bytesSinceFlushKick = 0;

function countWritten(bytes: number): void {
  if (d.flushKickBytes === 0) return;
  bytesSinceFlushKick += bytes;
  if (bytesSinceFlushKick >= d.flushKickBytes) {
    bytesSinceFlushKick = 0;
    port.postMessage({ flush: true });
  }
}

let xts: XtsCipher | null = null;
let requests = 0;

function reply(unique: bigint, error: number, bodyBytes: number): void {
  outBuf.writeUInt32LE(OUT_HEADER + bodyBytes, 0);
  outBuf.writeInt32LE(-error, 4);
  outBuf.writeBigUInt64LE(unique, 8);
  try {
    writeSync(d.fuseFd, outBuf, 0, OUT_HEADER + bodyBytes);
  } catch (err) {
    // ENOENT: the request was interrupted and is gone; anything else ends with the connection.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** struct fuse_attr (88 bytes) of node `ino` at `at` in the answer. */
function writeAttr(at: number, ino: number): void {
  outBuf.fill(0, at, at + 88);
  const dir = ino === ROOT;
  outBuf.writeBigUInt64LE(BigInt(ino), at);
  outBuf.writeBigUInt64LE(BigInt(dir ? 4096 : d.sizeBytes), at + 8);
  outBuf.writeBigUInt64LE(BigInt(Math.ceil((dir ? 4096 : d.sizeBytes) / 512)), at + 16);
  for (const t of [24, 32, 40]) outBuf.writeBigUInt64LE(started, at + t); // atime, mtime, ctime
  const mode = dir ? 0o040700 : d.readOnly ? 0o100400 : 0o100600;
  outBuf.writeUInt32LE(mode, at + 60);
  outBuf.writeUInt32LE(dir ? 2 : 1, at + 64); // nlink
  outBuf.writeUInt32LE(d.uid, at + 68);
  outBuf.writeUInt32LE(d.gid, at + 72);
  outBuf.writeUInt32LE(dir ? 4096 : ss, at + 80); // blksize
}

/** struct fuse_attr_out: validity, then the attributes. */
function replyAttr(unique: bigint, ino: number): void {
  outBuf.fill(0, OUT_HEADER, OUT_HEADER + 16);
  outBuf.writeBigUInt64LE(VALID_SECONDS, OUT_HEADER);
  writeAttr(OUT_HEADER + 16, ino);
  reply(unique, 0, 104);
}

function readCipher(first: number, into: Buffer): void {
  let done = 0;
  const at = d.dataOffset + first * ss;
  while (done < into.length) {
    const n = readSync(d.containerFd, into, done, into.length - done, at + done);
    if (n === 0) throw new Error(`reading sector ${first}: container is truncated`);
    done += n;
  }
}

function writeCipher(first: number, from: Buffer): void {
  let done = 0;
  const at = d.dataOffset + first * ss;
  while (done < from.length) {
    done += writeSync(d.containerFd, from, done, from.length - done, at + done);
  }
}

/**
 * READ: whole sectors are read into the answer and decrypted there in place (one 1 MiB buffer
 * touched instead of two: less cache traffic per request); partial ones go through the scratch.
 */
function serveRead(unique: bigint, offset: number, size: number): void {
  const length = Math.max(0, Math.min(size, d.sizeBytes - offset));
  if (length === 0) return reply(unique, 0, 0);
  const first = Math.floor(offset / ss);
  const end = Math.ceil((offset + length) / ss);
  const span = traceStart('read', length);
  const head = offset - first * ss;
  const whole = head === 0 && (end - first) * ss === length;
  const cipher = whole
    ? outBuf.subarray(OUT_HEADER, OUT_HEADER + length)
    : scratch.subarray(0, (end - first) * ss);
  let t = now();
  sectors.acquire(first, end);
  span?.phase('lock', t);
  try {
    t = now();
    readCipher(first, cipher);
  } finally {
    sectors.release();
  }
  span?.phase('io', t);
  t = now();
  if (whole) xts!.decryptSectors(cipher, first, cipher);
  else {
    span?.markPartial();
    xts!.decryptSectors(cipher, first, cipher);
    cipher.copy(outBuf, OUT_HEADER, head, head + length);
    wipe(cipher); // plaintext of the sectors around the request
  }
  span?.phase('crypto', t);
  t = now();
  reply(unique, 0, length);
  span?.phase('copy', t); // the answer's copy into the kernel
  span?.end();
  countCrypto(cipher.length);
}

/**
 * WRITE: whole sectors are encrypted in place in the request buffer (no plaintext left behind
 * there, one buffer touched); partial ones are read-modify-written in the scratch.
 */
function serveWrite(unique: bigint, offset: number, data: Buffer): void {
  if (d.readOnly) return reply(unique, EROFS, 0);
  if (offset >= d.sizeBytes) return reply(unique, ENOSPC, 0);
  const length = Math.min(data.length, d.sizeBytes - offset);
  const first = Math.floor(offset / ss);
  const end = Math.ceil((offset + length) / ss);
  const head = offset - first * ss;
  const whole = head === 0 && length === (end - first) * ss;
  const buf = whole ? data.subarray(0, length) : scratch.subarray(0, (end - first) * ss);
  const span = traceStart('write', length);
  let t = now();
  // Whole sectors are encrypted before taking the lock, which then covers only the write; a
  // partial sector holds it from reading the old contents to writing the patched ones.
  if (whole) xts!.encryptSectors(buf, first, buf);
  span?.phase('crypto', t);
  t = now();
  sectors.acquire(first, end);
  span?.phase('lock', t);
  try {
    if (!whole) {
      t = now();
      // SPEC §9.4: partial sectors are read, decrypted, patched and re-encrypted.
      if (head !== 0) {
        readCipher(first, buf.subarray(0, ss));
        xts!.decryptSectors(buf.subarray(0, ss), first, buf.subarray(0, ss));
      }
      const tail = (end - 1 - first) * ss;
      if ((offset + length) % ss !== 0 && (end - 1 !== first || head === 0)) {
        readCipher(end - 1, buf.subarray(tail, tail + ss));
        xts!.decryptSectors(buf.subarray(tail, tail + ss), end - 1, buf.subarray(tail, tail + ss));
      }
      data.copy(buf, head, 0, length);
      xts!.encryptSectors(buf, first, buf);
      span?.markPartial();
      span?.phase('crypto', t);
    }
    t = now();
    writeCipher(first, buf);
    span?.phase('io', t);
  } finally {
    sectors.release();
  }
  outBuf.writeUInt32LE(length, OUT_HEADER);
  outBuf.writeUInt32LE(0, OUT_HEADER + 4);
  reply(unique, 0, 8);
  span?.end();
  countCrypto(buf.length);
  countWritten(buf.length);
}

/** READDIR: ".", ".." and the drive file, as struct fuse_dirent records from `offset` on. */
function serveReaddir(unique: bigint, offset: number, size: number): void {
  const entries: [number, string, number][] = [
    [ROOT, '.', 4],
    [ROOT, '..', 4],
    [FILE, d.fileName, 8],
  ];
  let at = OUT_HEADER;
  for (let i = offset; i < entries.length; i++) {
    const [ino, name, type] = entries[i]!;
    const recLen = (24 + name.length + 7) & ~7;
    if (at - OUT_HEADER + recLen > size) break;
    outBuf.fill(0, at, at + recLen);
    outBuf.writeBigUInt64LE(BigInt(ino), at);
    outBuf.writeBigUInt64LE(BigInt(i + 1), at + 8); // offset of the next entry
    outBuf.writeUInt32LE(name.length, at + 16);
    outBuf.writeUInt32LE(type, at + 20); // DT_DIR = 4, DT_REG = 8
    outBuf.write(name, at + 24, 'latin1');
    at += recLen;
  }
  reply(unique, 0, at - OUT_HEADER);
}

function serveInit(unique: bigint): void {
  const minor = inBuf.readUInt32LE(IN_HEADER + 4);
  outBuf.fill(0, OUT_HEADER, OUT_HEADER + 64);
  outBuf.writeUInt32LE(7, OUT_HEADER); // major
  outBuf.writeUInt32LE(Math.min(minor, 31), OUT_HEADER + 4);
  outBuf.writeUInt32LE(inBuf.readUInt32LE(IN_HEADER + 8), OUT_HEADER + 8); // max_readahead
  // Writeback cache: the kernel keeps the drive's pages and sends them back in large batches
  // (writes return once copied; reads of cached pages never reach us), and fsync/flush still
  // end in FSYNC here, so a flush from the filesystem above is still a flush of the container.
  const cache = d.writebackCache ? FUSE_WRITEBACK_CACHE : 0;
  outBuf.writeUInt32LE(FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | cache, OUT_HEADER + 12);
  outBuf.writeUInt16LE(12, OUT_HEADER + 16); // max_background
  outBuf.writeUInt16LE(9, OUT_HEADER + 18); // congestion_threshold
  outBuf.writeUInt32LE(d.maxRequestBytes, OUT_HEADER + 20); // max_write
  outBuf.writeUInt32LE(1, OUT_HEADER + 24); // time_gran
  outBuf.writeUInt16LE(d.maxRequestBytes / 4096, OUT_HEADER + 28); // max_pages
  reply(unique, 0, 64);
}

/** Serve one request of `len` bytes in inBuf. */
function serve(len: number): void {
  const opcode = inBuf.readUInt32LE(4);
  const unique = inBuf.readBigUInt64LE(8);
  const node = Number(inBuf.readBigUInt64LE(16));
  const b = IN_HEADER;
  switch (opcode) {
    case OP.INIT:
      return serveInit(unique);
    case OP.LOOKUP: {
      const name = inBuf.toString('latin1', b, len - 1);
      if (node !== ROOT || name !== d.fileName) return reply(unique, ENOENT, 0);
      outBuf.fill(0, OUT_HEADER, OUT_HEADER + 40);
      outBuf.writeBigUInt64LE(BigInt(FILE), OUT_HEADER); // nodeid
      outBuf.writeBigUInt64LE(VALID_SECONDS, OUT_HEADER + 16); // entry_valid
      outBuf.writeBigUInt64LE(VALID_SECONDS, OUT_HEADER + 24); // attr_valid
      writeAttr(OUT_HEADER + 40, FILE);
      return reply(unique, 0, 128);
    }
    case OP.GETATTR:
      return replyAttr(unique, node);
    case OP.SETATTR: {
      const valid = inBuf.readUInt32LE(b);
      const size = Number(inBuf.readBigUInt64LE(b + 16));
      // A drive has a fixed size; times and modes are not kept.
      if (valid & FATTR_SIZE && size !== d.sizeBytes) return reply(unique, EPERM, 0);
      return replyAttr(unique, node);
    }
    case OP.OPEN:
    case OP.OPENDIR: {
      if (opcode === OP.OPEN && node !== FILE) return reply(unique, EINVAL, 0);
      if (opcode === OP.OPENDIR && node !== ROOT) return reply(unique, ENOTDIR, 0);
      const flags = inBuf.readUInt32LE(b);
      if (d.readOnly && (flags & 3) !== 0) return reply(unique, EROFS, 0);
      if (flags & 0o1000) return reply(unique, EPERM, 0); // O_TRUNC: fixed size
      outBuf.fill(0, OUT_HEADER, OUT_HEADER + 16);
      // The drive changes only through this mount: opening it again keeps the cached pages.
      if (opcode === OP.OPEN) outBuf.writeUInt32LE(FOPEN_KEEP_CACHE, OUT_HEADER + 8);
      return reply(unique, 0, 16);
    }
    case OP.READ: {
      const offset = Number(inBuf.readBigUInt64LE(b + 8));
      const size = inBuf.readUInt32LE(b + 16);
      return serveRead(unique, offset, Math.min(size, d.maxRequestBytes));
    }
    case OP.WRITE: {
      const offset = Number(inBuf.readBigUInt64LE(b + 8));
      const size = inBuf.readUInt32LE(b + 16);
      return serveWrite(unique, offset, inBuf.subarray(b + 40, b + 40 + size));
    }
    case OP.READDIR:
      return serveReaddir(unique, Number(inBuf.readBigUInt64LE(b + 8)), inBuf.readUInt32LE(b + 16));
    case OP.FSYNC:
    case OP.FLUSH: {
      if (node !== FILE || d.readOnly) return reply(unique, 0, 0);
      const span = traceStart(opcode === OP.FSYNC ? 'fsync' : 'flush', 0);
      const t = now();
      fdatasyncSync(d.containerFd);
      span?.phase('io', t);
      span?.end();
      return reply(unique, 0, 0);
    }
    case OP.STATFS: {
      outBuf.fill(0, OUT_HEADER, OUT_HEADER + 80);
      outBuf.writeBigUInt64LE(BigInt(Math.ceil(d.sizeBytes / 4096)), OUT_HEADER); // blocks
      outBuf.writeBigUInt64LE(2n, OUT_HEADER + 24); // files
      outBuf.writeUInt32LE(4096, OUT_HEADER + 40); // bsize
      outBuf.writeUInt32LE(255, OUT_HEADER + 44); // namelen
      outBuf.writeUInt32LE(4096, OUT_HEADER + 48); // frsize
      return reply(unique, 0, 80);
    }
    case OP.RELEASE:
    case OP.RELEASEDIR:
    case OP.FSYNCDIR:
    case OP.ACCESS:
    case OP.DESTROY:
      return reply(unique, 0, 0);
    case OP.FORGET:
    case OP.BATCH_FORGET:
    case OP.INTERRUPT:
      return; // no answer: forgets need none, and every request is answered in turn anyway
    default:
      return reply(unique, ENOSYS, 0);
  }
}

function loop(): void {
  for (;;) {
    let len: number;
    try {
      len = readSync(d.fuseFd, inBuf, 0, inBuf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENODEV') return; // unmounted: the connection is gone
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue;
      throw err;
    }
    requests++;
    flushTraceIfDue();
    try {
      serve(len);
    } catch (err) {
      const unique = inBuf.readBigUInt64LE(8);
      const opcode = inBuf.readUInt32LE(4);
      const message = (err as Error).message;
      // Counted by the main thread (server-health.ts): a failed WRITE, FSYNC or FLUSH is data
      // the user wrote and the container did not get.
      const ioError = opcode === OP.READ ? 'read' : DATA_LOSS_OPS.has(opcode) ? 'write' : null;
      port.postMessage({ log: `drive request ${opcode}: ${message}`, ioError, message });
      reply(unique, EIO, 0);
    }
  }
}

port.once('message', (msg: { key: SharedArrayBuffer }) => {
  const key = new Uint8Array(msg.key);
  try {
    xts = new XtsCipher(key, ss);
  } finally {
    key.fill(0); // the cipher holds its own copy; zeroed for both threads
  }
  port.postMessage({ ready: true });
  try {
    loop();
  } finally {
    stopTrace();
    xts.dispose();
    wipe(scratch, outBuf, inBuf);
    port.postMessage({ stats: { requests } });
  }
});
