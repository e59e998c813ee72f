// Issue 11 item 9: Ctrl-C (or SIGTERM) during `resize` stops at a consistent point, says where
// and what to run, exits 10, leaves no lock behind, the volume can be checked and mounted in
// between, and running the command it names finishes the resize with every file intact. A
// Ctrl-C during a tool is sent by the drive itself at a chosen write
// (CRYPTAINER_TEST_KILL_AT_WRITE=interrupt:N, src/drive/kill-hook.ts) to the CLI's whole
// process group, as a terminal does; the CLI runs in a process group of its own here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF } from '../helpers/cli.js';
import {
  type RunResult,
  cliOk,
  forceCleanup,
  mountTestDir,
  sh,
  snapshotTree,
  withRawDrive,
  withTimeout,
} from '../helpers/mount.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup, runtime, pass, mnt } = mountTestDir('interrupt me');
const MiB = 1024 * 1024;
const BASE = join(dir, 'base.img');
const VOL = join(dir, 'vol.img');
const TEST_MS = 300_000;

function dataSize(): number {
  return JSON.parse(cliOk(['info', VOL, '--json'])).dataSize as number;
}

/** The CLI in a process group of its own (as a shell runs a foreground job). */
function resize(
  size: string,
  env: NodeJS.ProcessEnv = {},
  whileRunning?: (pid: number) => Promise<void>,
): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(
      process.execPath,
      [MAIN, 'resize', VOL, `--size=${size}`, '--passphrase-file', pass],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...env } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      done({ status, signal, stdout, stderr });
    });
    void whileRunning?.(child.pid!);
  });
}

/** Files of the volume (mounted), and its ext4 size. */
function mountedTree(): { tree: Record<string, string>; fsBytes: number } {
  cliOk(['mount', VOL, mnt, '--passphrase-file', pass]);
  try {
    const out = sh('df', ['-B1', '--output=size', mnt]).stdout.trim().split('\n');
    return { tree: snapshotTree(mnt), fsBytes: Number(out[1]) };
  } finally {
    cliOk(['unmount', mnt]);
  }
}

async function fsckClean(): Promise<void> {
  await withRawDrive(VOL, mnt, pass, (drive) => {
    const r = sh('e2fsck', ['-fn', drive]);
    assert.is(r.status, 0, `e2fsck -fn: ${r.stdout}${r.stderr}`);
  });
}

/** Write requests the tools send during a resize of the base volume to `size`. */
async function countWrites(size: string): Promise<number> {
  copyFileSync(BASE, VOL);
  const file = join(dir, 'writes.txt');
  rmSync(file, { force: true });
  const r = await resize(size, { CRYPTAINER_TEST_KILL_AT_WRITE: `count:${file}` });
  assert.is(r.status, 0, r.stderr);
  return readFileSync(file, 'utf8').trim().split('\n').length;
}

/** What every interrupted run must show: exit 10, the message, no lock, a usable volume. */
function assertStopped(r: RunResult, where: RegExp, size: string): void {
  assert.is(r.signal, null, `ended by ${r.signal}: ${r.stderr}`);
  assert.is(r.status, 10, r.stderr);
  assert.match(r.stderr, where);
  assert.ok(
    r.stderr.includes(`run \`cryptainer resize ${VOL} --size ${size}\` to finish`),
    r.stderr,
  );
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(existsSync(`${VOL}.lock`), 'no lock left behind');
  cliOk(['check', VOL, '--passphrase-file', pass]);
}

let tree: Record<string, string> = {};

test('setup: a 48 MiB ext4 volume with files', () => {
  cliOk(['create', BASE, '--size', '48M', '--passphrase-file', pass, ...CHEAP_KDF]);
  cliOk(['mount', BASE, mnt, '--passphrase-file', pass]);
  try {
    writeFileSync(join(mnt, 'filler'), Buffer.alloc(30 * MiB));
    sh('sync', []);
    writeFileSync(join(mnt, 'late.bin'), Buffer.alloc(MiB, 7));
    writeFileSync(join(mnt, 'note.txt'), 'still here\n');
    rmSync(join(mnt, 'filler'));
    tree = snapshotTree(mnt);
  } finally {
    cliOk(['unmount', mnt]);
  }
});

test('SIGTERM while the new space is filled: given back, exit 10, the rerun grows', async () => {
  await withTimeout(
    (async () => {
      copyFileSync(BASE, VOL);
      const before = statSync(VOL).size;
      const target = before + 512 * MiB;
      // Signalled as soon as the container was extended: the fill of 512 MiB has begun.
      const r = await resize('+512M', {}, async (pid) => {
        while (statSync(VOL).size < target) await new Promise((w) => setTimeout(w, 1));
        process.kill(pid, 'SIGTERM');
      });
      assertStopped(r, /stopped before its size changed \(the new space was given back\)/, '560M');
      assert.is(statSync(VOL).size, before, 'the container is its old length again');
      assert.is(dataSize(), 48 * MiB);
      assert.equal(mountedTree().tree, tree);
      const again = await resize('560M');
      assert.is(again.status, 0, again.stderr);
      assert.is(dataSize(), 560 * MiB);
      const after = mountedTree();
      assert.equal(after.tree, tree);
      assert.ok(after.fsBytes > 500 * MiB, `ext4 grew: ${after.fsBytes}`);
      await fsckClean();
    })(),
    TEST_MS,
    'fill',
  );
});

test('Ctrl-C while e2fsck checks before a grow: exit 10 after the volume grew; rerun finishes', async () => {
  await withTimeout(
    (async () => {
      copyFileSync(BASE, VOL);
      // Write 1 is e2fsck -f -p's, before resize2fs.
      const r = await resize('+16M', { CRYPTAINER_TEST_KILL_AT_WRITE: 'interrupt:1' });
      assertStopped(r, /stopped after the volume grew to 64 MiB, before the ext4/, '64M');
      assert.is(dataSize(), 64 * MiB);
      const between = mountedTree(); // mounts in between: the ext4 is still 48 MiB
      assert.equal(between.tree, tree);
      assert.ok(between.fsBytes < 48 * MiB, `ext4 not grown yet: ${between.fsBytes}`);
      const again = await resize('64M');
      assert.is(again.status, 0, again.stderr);
      assert.match(again.stdout, /is already 64 MiB; ext4 fills it/);
      const after = mountedTree();
      assert.equal(after.tree, tree);
      assert.ok(after.fsBytes > 48 * MiB, `ext4 grew: ${after.fsBytes}`);
      await fsckClean();
    })(),
    TEST_MS,
    'grow',
  );
});

test('Ctrl-C while resize2fs shrinks: it finishes, exit 10 before the volume shrinks; rerun finishes', async () => {
  await withTimeout(
    (async () => {
      const writes = await countWrites('24M');
      copyFileSync(BASE, VOL);
      // Near the end: resize2fs writing its superblock.
      const r = await resize('-24M', { CRYPTAINER_TEST_KILL_AT_WRITE: `interrupt:${writes - 2}` });
      assertStopped(
        r,
        /stopped after the ext4 filesystem was shrunk, before the volume was/,
        '24M',
      );
      assert.is(dataSize(), 48 * MiB);
      const between = mountedTree();
      assert.equal(between.tree, tree);
      assert.ok(between.fsBytes <= 24 * MiB, `ext4 shrunk: ${between.fsBytes}`);
      const again = await resize('24M');
      assert.is(again.status, 0, again.stderr);
      assert.is(dataSize(), 24 * MiB);
      assert.equal(mountedTree().tree, tree);
      await fsckClean();
    })(),
    TEST_MS,
    'shrink',
  );
});

test('Ctrl-C twice during resize2fs: it is stopped at once, exit 10; rerun repairs and finishes', async () => {
  await withTimeout(
    (async () => {
      const writes = await countWrites('24M');
      copyFileSync(BASE, VOL);
      // Both while resize2fs moves blocks (its last ~30 writes), the second one write later.
      const at = writes - 25;
      const r = await resize('24M', {
        CRYPTAINER_TEST_KILL_AT_WRITE: `interrupt:${at},${at + 1}`,
      });
      assertStopped(r, /was stopped at once, in the middle of a filesystem step/, '24M');
      const again = await resize('24M');
      assert.is(again.status, 0, again.stderr);
      assert.is(dataSize(), 24 * MiB);
      assert.equal(mountedTree().tree, tree);
      await fsckClean();
    })(),
    TEST_MS,
    'twice',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});

test.run();
