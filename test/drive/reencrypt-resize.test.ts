// Issue 5's acceptance session on real mounts: create 256 MiB ext4, copy files in, reencrypt
// (SIGKILL halfway, mount refused, run again to finish), files intact under a new master key;
// resize to 512M then 200M with files intact and e2fsck clean; a shrink below the used size
// and a resize of a mounted volume are refused with the container unchanged. Then NTFS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeReencryptState, isReencrypting } from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { readHeaderChoice } from '../../src/volume/header-store.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  CANARIES,
  findInFile,
  forceCleanup,
  sh,
  sha256File,
  snapshotTree,
  mountTestDir,
  withRawDrive,
  withTimeout,
  writeTree,
} from '../helpers/mount.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup, runtime, pass, mnt } = mountTestDir('acceptance passphrase');
const TEST_MS = 600_000;
const MiB = 1024 * 1024;

function cli(args: string[]) {
  return runCli(args, '', 300_000);
}
function ok(args: string[]): string {
  const r = cli(args);
  assert.is(r.status, 0, `cryptainer ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function masterKey(vol: string): string {
  const out = ok(['info', vol, '--dump-master-key', '--yes', '--passphrase-file', pass]);
  return /master key:\s+([0-9a-f]{128})/.exec(out)![1]!;
}

function dataSize(vol: string): number {
  return JSON.parse(ok(['info', vol, '--json'])).dataSize as number;
}

/** Mount, snapshot the tree (and the filesystem size), unmount. */
function mountedSnapshot(vol: string): { tree: Record<string, string>; fsBytes: number } {
  ok(['mount', vol, mnt, '--passphrase-file', pass]);
  try {
    const s = statfsSync(mnt);
    return { tree: snapshotTree(mnt), fsBytes: s.blocks * s.bsize };
  } finally {
    ok(['unmount', mnt]);
  }
}

/** The filesystem checker, read-only, on the raw drive. */
async function fsckClean(vol: string, kind: 'ext4' | 'ntfs'): Promise<void> {
  await withRawDrive(vol, mnt, pass, (drive) => {
    const r = kind === 'ext4' ? sh('e2fsck', ['-fn', drive]) : sh('ntfsfix', ['-n', drive]);
    assert.is(r.status, 0, `${kind} check: ${r.stdout}${r.stderr}`);
  });
}

async function progress(vol: string): Promise<{ flagged: boolean; done: number }> {
  const s = await FileStorage.open(vol, { readOnly: true });
  try {
    const f = (await readHeaderChoice(s)).fields;
    if (!isReencrypting(f)) return { flagged: false, done: 0 };
    return { flagged: true, done: decodeReencryptState(f.featureArea, f).sectorsDone };
  } catch {
    return { flagged: false, done: 0 };
  } finally {
    await s.close();
  }
}

/** Start `reencrypt`, SIGKILL it once it has recorded progress; true when it died mid-way. */
async function reencryptKilledHalfway(vol: string): Promise<boolean> {
  const child = spawn(
    process.execPath,
    [MAIN, 'reencrypt', vol, '--passphrase-file', pass, '--segment-size', '4M'],
    { stdio: 'ignore' },
  );
  const exit = new Promise((r) => child.on('exit', r));
  for (;;) {
    const p = await progress(vol);
    if (p.flagged && p.done > 0) break;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill('SIGKILL');
  await exit;
  return (await progress(vol)).flagged;
}

test('acceptance: ext4 256M, reencrypt killed halfway and resumed, resize 512M then 200M', async () => {
  await withTimeout(
    (async () => {
      const vol = join(dir, 'accept.img');
      ok(['create', vol, '--size', '256M', '--passphrase-file', pass, ...CHEAP_KDF]);
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      writeTree(mnt, { hardLinks: true });
      const tree = snapshotTree(mnt);
      ok(['unmount', mnt]);
      const keyBefore = masterKey(vol);

      let midway = false;
      for (let attempt = 0; attempt < 5 && !midway; attempt++) {
        midway = await reencryptKilledHalfway(vol);
      }
      assert.ok(midway, 'SIGKILL landed mid-way');
      const refused = cli(['mount', vol, mnt, '--passphrase-file', pass]);
      assert.is(refused.status, 8, refused.stderr);
      assert.match(refused.stderr, /re-encryption is unfinished .*cryptainer reencrypt/);
      const resumed = cli(['reencrypt', vol, '--passphrase-file', pass]);
      assert.is(resumed.status, 0, resumed.stderr);
      assert.is.not(masterKey(vol), keyBefore, 'new master key');
      assert.equal(mountedSnapshot(vol).tree, tree, 'files intact after reencrypt');
      await fsckClean(vol, 'ext4');

      const grow = ok(['resize', vol, '--size', '512M', '--passphrase-file', pass]);
      assert.match(grow, /256 MiB -> 512 MiB/);
      assert.is(dataSize(vol), 512 * MiB);
      const big = mountedSnapshot(vol);
      assert.equal(big.tree, tree, 'files intact after grow');
      assert.ok(big.fsBytes > 400 * MiB, `filesystem grew: ${big.fsBytes}`);
      await fsckClean(vol, 'ext4');

      ok(['resize', vol, '--size', '200M', '--passphrase-file', pass]);
      assert.is(dataSize(vol), 200 * MiB);
      assert.is(statSync(vol).size, 13 * MiB + 200 * MiB, 'container truncated');
      const small = mountedSnapshot(vol);
      assert.equal(small.tree, tree, 'files intact after shrink');
      assert.ok(small.fsBytes <= 200 * MiB && small.fsBytes > 150 * MiB, `fs ${small.fsBytes}`);
      await fsckClean(vol, 'ext4');

      // Below what the files use: refused, nothing written.
      const hash = sha256File(vol);
      const tooSmall = cli(['resize', vol, '--size', '8M', '--passphrase-file', pass]);
      assert.is(tooSmall.status, 1, tooSmall.stderr);
      assert.match(tooSmall.stderr, /needs at least [\d.]+ MiB .*nothing was changed/);
      assert.is(sha256File(vol), hash, 'container unchanged');

      // Mounted: refused (the mount holds the volume's lock), nothing written.
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      try {
        const busy = cli(['resize', vol, '--size', '+64M', '--passphrase-file', pass]);
        assert.is(busy.status, 5, busy.stderr);
      } finally {
        ok(['unmount', mnt]);
      }
      assert.is(dataSize(vol), 200 * MiB);

      // Relative sizes.
      ok(['resize', vol, '--size', '+56M', '--passphrase-file', pass]);
      assert.is(dataSize(vol), 256 * MiB);
      ok(['resize', vol, '--size=-16M', '--passphrase-file', pass]);
      assert.is(dataSize(vol), 240 * MiB);
      assert.equal(mountedSnapshot(vol).tree, tree);
      await fsckClean(vol, 'ext4');
      assert.equal(findInFile(vol, CANARIES), [], 'no plaintext in the container');
    })(),
    TEST_MS,
    'acceptance session',
  );
});

test('ntfs: grow and shrink with files intact, ntfsfix clean; below the minimum refused', async () => {
  await withTimeout(
    (async () => {
      const vol = join(dir, 'ntfs.img');
      ok([
        'create',
        vol,
        '--size',
        '48M',
        '--filesystem',
        'ntfs',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
      ]);
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      writeTree(mnt, { hardLinks: true });
      const tree = snapshotTree(mnt);
      ok(['unmount', mnt]);
      ok(['resize', vol, '--size', '96M', '--passphrase-file', pass]);
      const big = mountedSnapshot(vol);
      assert.equal(big.tree, tree);
      assert.ok(big.fsBytes > 90 * MiB, `ntfs grew: ${big.fsBytes}`);
      await fsckClean(vol, 'ntfs');
      ok(['resize', vol, '--size', '40M', '--passphrase-file', pass]);
      assert.is(dataSize(vol), 40 * MiB);
      assert.equal(mountedSnapshot(vol).tree, tree);
      await fsckClean(vol, 'ntfs');
      const hash = sha256File(vol);
      const r = cli(['resize', vol, '--size', '4M', '--passphrase-file', pass]);
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, /ntfs filesystem needs at least/);
      assert.is(sha256File(vol), hash);
    })(),
    TEST_MS,
    'ntfs resize',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
