/**
 * The FUSE round-trip floor on this machine: a drive file whose handlers do nothing (reads
 * return zeros, writes are dropped), served two ways, with fio 4 KiB random read and write at
 * queue depth 1 (direct I/O) on it:
 * - through fuse-native (libfuse2's reader thread → the event loop → libfuse again), as
 *   src/drive/fuse-adapter.ts serves normal users;
 * - through /dev/fuse directly, one thread reading requests and answering them synchronously,
 *   as src/drive/kernel-fuse-worker.ts serves root's mounts.
 * This is the evidence for kernel-fuse.ts (bench/PERFORMANCE.md). Root, fio; ~20 s.
 *
 * Run with `node dist/bench/fuse-floor.js`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { mountFuse } from '../src/drive/fuse-adapter.js';
import { fio } from './mount.js';

const SIZE = 256 * 1024 * 1024;

/** A no-op FUSE server on /dev/fuse in a worker thread (protocol 7.31, one file `f`). */
const RAW_SERVER = `
const { readSync, writeSync } = require('node:fs');
const { workerData } = require('node:worker_threads');
const fd = workerData.fd, SIZE = ${SIZE};
const inBuf = Buffer.alloc(196608), out = Buffer.alloc(135168);
const reply = (u, err, n) => { out.writeUInt32LE(16 + n, 0); out.writeInt32LE(err, 4); out.writeBigUInt64LE(u, 8); try { writeSync(fd, out, 0, 16 + n); } catch {} };
const attr = (at, ino) => { out.fill(0, at, at + 88); out.writeBigUInt64LE(BigInt(ino), at);
  out.writeBigUInt64LE(BigInt(ino === 1 ? 4096 : SIZE), at + 8); out.writeUInt32LE(ino === 1 ? 0o40755 : 0o100644, at + 60);
  out.writeUInt32LE(1, at + 64); out.writeUInt32LE(4096, at + 80); };
for (;;) {
  let len; try { len = readSync(fd, inBuf, 0, inBuf.length, null); } catch (e) { if (e.code === 'ENODEV') break; continue; }
  const op = inBuf.readUInt32LE(4), u = inBuf.readBigUInt64LE(8), node = Number(inBuf.readBigUInt64LE(16));
  if (op === 26) { out.fill(0, 16, 80); out.writeUInt32LE(7, 16); out.writeUInt32LE(31, 20); out.writeUInt32LE(131072, 24);
    out.writeUInt32LE(33, 28); out.writeUInt32LE(131072, 36); reply(u, 0, 64); }
  else if (op === 1) { if (inBuf.toString('latin1', 40, len - 1) !== 'f') { reply(u, -2, 0); continue; }
    out.fill(0, 16, 56); out.writeBigUInt64LE(2n, 16); attr(56, 2); reply(u, 0, 128); }
  else if (op === 3) { out.fill(0, 16, 32); attr(32, node); reply(u, 0, 104); }
  else if (op === 14 || op === 27) { out.fill(0, 16, 32); reply(u, 0, 16); }
  else if (op === 15) { const n = inBuf.readUInt32LE(56); out.fill(0, 16, 16 + n); reply(u, 0, n); }
  else if (op === 16) { out.writeUInt32LE(inBuf.readUInt32LE(56), 16); out.writeUInt32LE(0, 20); reply(u, 0, 8); }
  else if (op === 2 || op === 42 || op === 36) {}
  else reply(u, op === 28 || op === 18 || op === 29 || op === 25 || op === 20 ? 0 : -38, 0);
}`;

/** Measure both servers; returns IOPS by server and workload. */
export async function benchFuseFloor(seconds = 4): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-floor-'));
  const results: Record<string, number> = {};
  try {
    // fuse-native, through our adapter, handlers that do nothing.
    const now = new Date();
    const fuse = await mountFuse(
      dir,
      {
        async getattr(path) {
          const dirAttr = path === '/';
          return {
            mode: dirAttr ? 0o40755 : 0o100644,
            size: dirAttr ? 4096 : SIZE,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: now,
            atime: now,
            ctime: now,
          };
        },
        async readdir() {
          return ['f'];
        },
        async open() {
          return 1;
        },
        async release() {},
        async read(_p, _h, _b, length) {
          return length;
        },
        async write(_p, _h, _b, length) {
          return length;
        },
      },
      { fsname: 'floor' },
    );
    try {
      results['fuse-native randread'] = await fio(join(dir, 'f'), 'randread', SIZE, seconds, 0);
      results['fuse-native randwrite'] = await fio(join(dir, 'f'), 'randwrite', SIZE, seconds, 0);
    } finally {
      await fuse.unmount();
    }

    // /dev/fuse directly: mount(2) with fd=3, then the worker serves.
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync('/dev/fuse', 'r+');
    const mounted = await new Promise<number>((done) => {
      const opts = 'fd=3,rootmode=40000,user_id=0,group_id=0,max_read=131072';
      const child = spawn('mount', ['-i', '-t', 'fuse', '-o', opts, 'floor', dir], {
        stdio: ['ignore', 'ignore', 'inherit', fd],
      });
      child.on('close', (code) => done(code ?? 1));
    });
    if (mounted !== 0) throw new Error('mount -t fuse failed');
    const worker = new Worker(RAW_SERVER, { eval: true, workerData: { fd } });
    const exited = new Promise((done) => worker.on('exit', done));
    try {
      results['/dev/fuse randread'] = await fio(join(dir, 'f'), 'randread', SIZE, seconds, 0);
      results['/dev/fuse randwrite'] = await fio(join(dir, 'f'), 'randwrite', SIZE, seconds, 0);
    } finally {
      spawnSync('umount', [dir]);
      await exited;
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchFuseFloor();
  console.log('no-op FUSE server, fio 4 KiB QD1 direct (IOPS; µs per request = 1e6 / IOPS)');
  for (const [name, iops] of Object.entries(r)) {
    console.log(
      `  ${name.padEnd(24)} ${iops.toFixed(0).padStart(7)}  (${(1e6 / iops).toFixed(1)} µs)`,
    );
  }
}
