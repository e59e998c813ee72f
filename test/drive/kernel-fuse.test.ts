// The drive served over /dev/fuse directly (src/drive/kernel-fuse.ts, root only): the raw
// drive (--filesystem none) takes unaligned and aligned reads and writes from another process,
// and the bytes match what the library reads after unmount and what the fuse-native drive
// (CRYPTAINER_DRIVE=fuse-native) serves; fixed size, read-only, and the mount's identity;
// concurrent unaligned writes to shared sectors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openVolume } from '../../src/index.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { forceCleanup, run, withTimeout } from '../helpers/mount.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
process.env.CRYPTAINER_RUNTIME_DIR = join(dir, 'run');
const pass = join(dir, 'pass');
writeFileSync(pass, 'kernel fuse passphrase\n');
const vol = join(dir, 'raw.img');
const mnt = join(dir, 'mnt');
mkdirSync(mnt);
const SIZE = 4 * 1024 * 1024;
const drive = join(mnt, 'volume');
const TEST_MS = 180_000;
const asRoot = process.getuid?.() === 0;

function ok(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const r = runCli(args, '', 120_000);
    assert.is(r.status, 0, `cryptainer ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

/**
 * pread/pwrite on the drive from a child process (the server must never be touched from its
 * own process, and this one is not the server anyway). Ops: [offset, hex] writes, [offset, n]
 * reads; prints the reads as hex lines.
 */
async function driveIo(ops: [number, string | number][]): Promise<string[]> {
  const script = `
    const fs = require('fs');
    const ops = JSON.parse(fs.readFileSync(0, 'utf8'));
    const fd = fs.openSync(${JSON.stringify(drive)}, 'r+');
    for (const [off, arg] of ops) {
      if (typeof arg === 'string') {
        const b = Buffer.from(arg, 'hex');
        if (fs.writeSync(fd, b, 0, b.length, off) !== b.length) throw new Error('short write');
      } else {
        const b = Buffer.alloc(arg);
        const n = fs.readSync(fd, b, 0, arg, off);
        console.log(b.subarray(0, n).toString('hex'));
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);`;
  const r = await run(process.execPath, ['-e', script], {
    input: JSON.stringify(ops),
    timeoutMs: 60_000,
  });
  assert.is(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

const model = new Uint8Array(SIZE);

test('the raw drive over /dev/fuse: unaligned and aligned writes read back', async () => {
  if (!asRoot) return; // mount(2) with fd= needs root; users get fuse-native (other tests)
  await withTimeout(
    (async () => {
      ok([
        'create',
        vol,
        '--size',
        String(SIZE),
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
        '--filesystem',
        'none',
        '--sector-size',
        '512',
      ]);
      ok(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none']);
      const line = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.includes(` ${mnt} `));
      assert.ok(line, 'mounted');
      assert.match(line!, / - fuse cryptainer /);
      const ops: [number, string | number][] = [];
      let seed = 7;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let i = 0; i < 120; i++) {
        const big = rand(4) === 0;
        const len = big ? 512 * (1 + rand(256)) : 1 + rand(3000);
        const off = big ? 512 * rand(SIZE / 512 - 256) : rand(SIZE - len);
        const data = randomBytes(len);
        model.set(data, off);
        ops.push([off, data.toString('hex')]);
      }
      ops.push([SIZE - 5, 64]); // a read across the end is short
      ops.push([1000, 70_000]);
      const reads = await driveIo(ops);
      assert.is(reads[0], Buffer.from(model.subarray(SIZE - 5)).toString('hex'));
      assert.is(reads[1], Buffer.from(model.subarray(1000, 71_000)).toString('hex'));
      // Fixed size: truncating the drive is refused.
      const t = await run('truncate', ['-s', '1M', drive]);
      assert.is.not(t.status, 0, 'truncate refused');
      ok(['unmount', mnt]);
      const v = await openVolume(vol, { passphrase: 'kernel fuse passphrase' });
      assert.equal(await v.read(0, SIZE), model, 'the library reads what the drive wrote');
      await v.close();
    })(),
    TEST_MS,
    'kernel fuse raw drive',
  );
});

test('fuse-native serves the same bytes; a read-only kernel mount refuses writes', async () => {
  if (!asRoot) return;
  await withTimeout(
    (async () => {
      ok(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none'], {
        CRYPTAINER_DRIVE: 'fuse-native',
      });
      const [all] = await driveIo([[0, SIZE]]);
      assert.is(all, Buffer.from(model).toString('hex'), 'fuse-native reads the same drive');
      ok(['unmount', mnt]);
      ok(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none', '--read-only']);
      const r = await run(process.execPath, [
        '-e',
        `require('fs').openSync(${JSON.stringify(drive)}, 'r+')`,
      ]);
      assert.is.not(r.status, 0, 'opening for writing is refused');
      const [head] = await run(process.execPath, [
        '-e',
        `const fs=require('fs');const b=Buffer.alloc(4096);fs.readSync(fs.openSync(${JSON.stringify(drive)},'r'),b,0,4096,0);console.log(b.toString('hex'))`,
      ]).then((x) => [x.stdout.trim()]);
      assert.is(head, Buffer.from(model.subarray(0, 4096)).toString('hex'));
      ok(['unmount', mnt]);
    })(),
    TEST_MS,
    'fuse-native and read-only',
  );
});

/**
 * Two processes writing interleaved 100-byte pieces with O_DIRECT, served by two threads: each
 * write reaches the server as it is (unaligned), and most 512-byte sectors get pieces from
 * both, so every write is a read-modify-write of a sector the other process also writes. The
 * kernel holds the file's lock for a direct write, so these arrive one at a time; the lock
 * between the serving threads themselves is tested in shared-range-lock.test.ts.
 */
test('concurrent unaligned direct writes to shared sectors lose nothing', async () => {
  if (!asRoot) return;
  await withTimeout(
    (async () => {
      ok(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none'], {
        CRYPTAINER_DRIVE_THREADS: '2',
      });
      const PIECE = 100;
      const PIECES = 1500;
      const writer = (parity: number) => `
        const fs = require('fs');
        const fd = fs.openSync(${JSON.stringify(drive)}, fs.constants.O_RDWR | fs.constants.O_DIRECT);
        for (let i = ${parity}; i < ${PIECES}; i += 2) {
          const b = Buffer.alloc(${PIECE}, (i % 251) + 1);
          if (fs.writeSync(fd, b, 0, b.length, i * ${PIECE}) !== b.length) throw new Error('short');
        }
        fs.closeSync(fd);`;
      const [a, b] = await Promise.all([
        run(process.execPath, ['-e', writer(0)], { timeoutMs: 120_000 }),
        run(process.execPath, ['-e', writer(1)], { timeoutMs: 120_000 }),
      ]);
      assert.is(a.status, 0, a.stderr);
      assert.is(b.status, 0, b.stderr);
      for (let i = 0; i < PIECES; i++) model.fill((i % 251) + 1, i * PIECE, (i + 1) * PIECE);
      ok(['unmount', mnt]);
      const v = await openVolume(vol, { passphrase: 'kernel fuse passphrase' });
      const got = await v.read(0, PIECES * PIECE);
      await v.close();
      let lost = 0;
      for (let i = 0; i < PIECES; i++) if (got[i * PIECE] !== (i % 251) + 1) lost++;
      assert.is(lost, 0, `${lost} pieces lost`);
      assert.equal(got, model.subarray(0, PIECES * PIECE));
    })(),
    TEST_MS,
    'concurrent direct writes',
  );
});

test.after(() => {
  forceCleanup(dir, process.env.CRYPTAINER_RUNTIME_DIR!);
  cleanup();
});
test.run();
