// The virtual drive served in this process (tools run as separate processes, asynchronously:
// a process must never wait on its own FUSE mount). Unaligned reads and writes against the
// Volume, the drive's edges, read-only, large requests, and the adapter's guarantees: errors
// become errno replies, a hung handler is answered with ETIMEDOUT, a busy unmount is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createDriveHandlers, DRIVE_FILE_NAME } from '../../src/drive/drive-ops.js';
import { fuseOptionString, mountFuse } from '../../src/drive/fuse-adapter.js';
import { ERRNO, FuseErrno, type FuseHandlers } from '../../src/drive/fuse-types.js';
import { isMountpoint } from '../../src/drive/host-mount.js';
import { createVolume } from '../../src/volume/create.js';
import { openVolume } from '../../src/volume/open.js';
import type { Volume } from '../../src/volume/volume.js';
import { forceCleanup, run, withTimeout } from '../helpers/mount.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const TEST_MS = 60_000;
const MIB = 1024 * 1024;
let n = 0;
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

function freshDir(): string {
  const d = join(dir, `m${n++}`);
  mkdirSync(d);
  return d;
}

async function newVolume(sectorSize: number): Promise<Volume> {
  return createVolume(join(dir, `v${n++}.img`), {
    passphrase: 'drive test',
    sizeBytes: 8 * MIB,
    sectorSize,
    kdf: TEST_KDF,
  });
}

/** dd as a separate process; returns its status and stderr. */
function dd(args: string[]) {
  return run('dd', [...args, 'status=none'], { timeoutMs: 30_000 });
}

for (const sectorSize of [512, 4096]) {
  test(`unaligned writes and reads through the drive (${sectorSize}-byte sectors)`, async () => {
    await withTimeout(
      (async () => {
        const volume = await newVolume(sectorSize);
        const { handlers, stats } = createDriveHandlers(volume, { uid, gid });
        const mnt = freshDir();
        const fuse = await mountFuse(mnt, handlers, { fsname: 'cryptainer-test' });
        const drive = join(mnt, DRIVE_FILE_NAME);
        const model = Buffer.alloc(8 * MIB);
        try {
          for (const [offset, length] of [
            [0, 1],
            [1, 4097],
            [511, 2],
            [4095, 8193],
            [100_000, 300_001],
            [8 * MIB - 7, 7],
          ] as const) {
            const data = randomBytes(length);
            const src = join(dir, 'chunk');
            writeFileSync(src, data);
            // One write(2) per 64 KiB at a byte offset: unaligned requests reach the drive.
            const r = await dd([
              `if=${src}`,
              `of=${drive}`,
              'bs=65536',
              `seek=${offset}`,
              'oflag=seek_bytes',
              'conv=notrunc',
            ]);
            assert.is(r.status, 0, r.stderr);
            data.copy(model, offset);
          }
          // Whole drive read back by another process equals the model...
          const out = join(dir, 'back');
          assert.is((await dd([`if=${drive}`, `of=${out}`, 'bs=1M'])).status, 0);
          assert.ok(readFileSync(out).equals(model), 'drive content = model');
          // ...and so does the library's own view of the volume.
          assert.ok(Buffer.from(await volume.read(0, 8 * MIB)).equals(model));
          assert.ok(stats.writes > 0 && stats.reads > 0);
          // Past the end: reads are short (EOF), writes fail with ENOSPC.
          const tail = await run('sh', ['-c', `tail -c 100 ${drive} | wc -c`]);
          assert.is(tail.stdout.trim(), '100');
          const over = await dd([
            'if=/dev/zero',
            `of=${drive}`,
            'bs=4096',
            'count=1',
            `seek=${2048}`,
            'conv=notrunc',
          ]);
          assert.is.not(over.status, 0);
          assert.match(over.stderr, /No space left/);
          // The drive has a fixed size: truncation is refused.
          const trunc = await run('truncate', ['-s', '0', drive]);
          assert.is.not(trunc.status, 0);
        } finally {
          await fuse.unmount();
          await volume.close();
        }
        assert.not.ok(await isMountpoint(mnt));
      })(),
      TEST_MS,
      'unaligned',
    );
  });
}

test('what is written through the drive is in the container after close and reopen', async () => {
  await withTimeout(
    (async () => {
      const volume = await newVolume(4096);
      const path = volume.path;
      const { handlers } = createDriveHandlers(volume, { uid, gid });
      const mnt = freshDir();
      const fuse = await mountFuse(mnt, handlers, { fsname: 'cryptainer-test' });
      const data = randomBytes(3 * MIB + 5);
      writeFileSync(join(dir, 'big'), data);
      try {
        const r = await dd([
          `if=${join(dir, 'big')}`,
          `of=${join(mnt, DRIVE_FILE_NAME)}`,
          'bs=1M',
          'seek=1',
          'oflag=seek_bytes',
          'conv=notrunc,fsync',
        ]);
        assert.is(r.status, 0, r.stderr);
      } finally {
        await fuse.unmount();
        await volume.close();
      }
      const again = await openVolume(path, { passphrase: 'drive test', readOnly: true });
      try {
        assert.ok(Buffer.from(await again.read(1, data.length)).equals(data));
      } finally {
        await again.close();
      }
    })(),
    TEST_MS,
    'persist',
  );
});

test('large requests: big_writes and max_write reach libfuse through fsname', async () => {
  assert.is(fuseOptionString({ fsname: 'x' }), 'x,big_writes,max_write=131072');
  assert.is(fuseOptionString({ fsname: 'x', readOnly: true }), 'x,big_writes,max_write=131072,ro');
  assert.throws(() => fuseOptionString({ fsname: 'a,allow_other' }), RangeError);
  await withTimeout(
    (async () => {
      const volume = await newVolume(4096);
      const drive = createDriveHandlers(volume, { uid, gid });
      let largest = 0;
      const write = drive.handlers.write.bind(drive.handlers);
      drive.handlers.write = async (p, h, buf, len, pos) => {
        largest = Math.max(largest, len);
        return write(p, h, buf, len, pos);
      };
      const mnt = freshDir();
      const fuse = await mountFuse(mnt, drive.handlers, { fsname: 'cryptainer-test' });
      try {
        const r = await dd([
          'if=/dev/zero',
          `of=${join(mnt, DRIVE_FILE_NAME)}`,
          'bs=1M',
          'count=4',
          'oflag=direct',
          'conv=notrunc',
        ]);
        assert.is(r.status, 0, r.stderr);
      } finally {
        await fuse.unmount();
        await volume.close();
      }
      assert.is(largest, 131072, 'writes arrive in 128 KiB requests, not 4 KiB');
    })(),
    TEST_MS,
    'big writes',
  );
});

test('read-only drive: reads work, opening for writing is refused (EROFS)', async () => {
  await withTimeout(
    (async () => {
      const volume = await newVolume(4096);
      const path = volume.path;
      await volume.write(0, Buffer.from('hello drive'));
      await volume.close();
      const ro = await openVolume(path, { passphrase: 'drive test', readOnly: true });
      const { handlers } = createDriveHandlers(ro, { uid, gid });
      const mnt = freshDir();
      const fuse = await mountFuse(mnt, handlers, { fsname: 'cryptainer-test', readOnly: true });
      try {
        const r = await run('head', ['-c', '11', join(mnt, DRIVE_FILE_NAME)]);
        assert.is(r.stdout, 'hello drive');
        const w = await dd([
          'if=/dev/zero',
          `of=${join(mnt, DRIVE_FILE_NAME)}`,
          'count=1',
          'conv=notrunc',
        ]);
        assert.is.not(w.status, 0);
        assert.match(w.stderr, /Read-only/);
      } finally {
        await fuse.unmount();
        await ro.close();
      }
    })(),
    TEST_MS,
    'read-only',
  );
});

/** A tiny filesystem with one file whose handlers misbehave on purpose. */
function misbehaving(readImpl: FuseHandlers['read']): FuseHandlers {
  const now = new Date();
  return {
    async getattr(path) {
      if (path === '/')
        return { mode: 0o40700, size: 0, uid, gid, nlink: 2, mtime: now, atime: now, ctime: now };
      if (path === '/f')
        return {
          mode: 0o100600,
          size: 4096,
          uid,
          gid,
          nlink: 1,
          mtime: now,
          atime: now,
          ctime: now,
        };
      throw new FuseErrno(ERRNO.ENOENT);
    },
    async readdir() {
      return ['f'];
    },
    async open() {
      return 1;
    },
    async release() {},
    read: readImpl,
    async write() {
      throw new FuseErrno(ERRNO.EROFS);
    },
  };
}

test('adapter: an exception is answered with EIO, a FuseErrno with its errno', async () => {
  await withTimeout(
    (async () => {
      const errors: string[] = [];
      const mnt = freshDir();
      const fuse = await mountFuse(
        mnt,
        misbehaving(async () => {
          throw new Error('boom');
        }),
        { fsname: 'cryptainer-test', onError: (op) => errors.push(op) },
      );
      try {
        const r = await run('cat', [join(mnt, 'f')]);
        assert.is.not(r.status, 0);
        assert.match(r.stderr, /Input\/output error/);
        const e = await run('cat', [join(mnt, 'missing')]);
        assert.match(e.stderr, /No such file/);
        assert.ok(errors.includes('read'), 'unexpected failures are reported');
      } finally {
        await fuse.unmount();
      }
    })(),
    TEST_MS,
    'EIO',
  );
});

test('adapter: a handler that never answers gets ETIMEDOUT, and nobody hangs', async () => {
  await withTimeout(
    (async () => {
      const mnt = freshDir();
      let late: (() => void) | null = null;
      const fuse = await mountFuse(
        mnt,
        misbehaving((_p, _h, buf, _len, _pos, state) => {
          return new Promise<number>((resolve) => {
            late = () => {
              // The request was answered by the timeout: its buffer must not be touched.
              if (!state.answered) buf.fill(1);
              resolve(4096);
            };
          });
        }),
        { fsname: 'cryptainer-test', dataTimeoutMs: 1500 },
      );
      try {
        const started = Date.now();
        const r = await run('cat', [join(mnt, 'f')], { timeoutMs: 20_000 });
        assert.is.not(r.status, 0);
        assert.match(r.stderr, /timed out/);
        assert.ok(Date.now() - started < 15_000);
        (late as (() => void) | null)?.(); // settling after the timeout is harmless
      } finally {
        await fuse.unmount();
      }
    })(),
    TEST_MS,
    'ETIMEDOUT',
  );
});

test('adapter: a busy unmount is refused (VOLUME_BUSY) and the mount keeps working', async () => {
  await withTimeout(
    (async () => {
      const volume = await newVolume(4096);
      const { handlers } = createDriveHandlers(volume, { uid, gid });
      const mnt = freshDir();
      const fuse = await mountFuse(mnt, handlers, { fsname: 'cryptainer-test' });
      const holder = spawn('sleep', ['30'], { cwd: mnt, stdio: 'ignore' });
      const gone = new Promise((r) => holder.on('exit', r));
      try {
        await new Promise((r) => setTimeout(r, 200));
        let code = '';
        try {
          await fuse.unmount();
        } catch (err) {
          code = (err as { code: string }).code;
        }
        assert.is(code, 'VOLUME_BUSY');
        assert.ok(await isMountpoint(mnt));
        const r = await run('head', ['-c', '4', join(mnt, DRIVE_FILE_NAME)]);
        assert.is(r.status, 0, 'still served');
      } finally {
        holder.kill('SIGKILL');
        await gone;
        await fuse.unmount();
        await volume.close();
      }
      assert.not.ok(await isMountpoint(mnt));
    })(),
    TEST_MS,
    'busy',
  );
});

test.after(() => {
  forceCleanup(dir, join(dir, 'run'));
  cleanup();
});
test.run();
