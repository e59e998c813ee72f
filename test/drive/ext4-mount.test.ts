// Real mounts, ext4 on the kernel loop driver (root): create → mount → write a tree → unmount →
// remount → every hash matches; no plaintext in the container; e2fsck clean; list, unmount by
// file, read-only, mount twice refused, a busy unmount refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  CANARIES,
  cliOk as ok,
  findInFile,
  forceCleanup,
  mountInfo as mounts,
  mountTestDir,
  run,
  sh,
  snapshotTree,
  withRawDrive,
  withTimeout,
  writeTree,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('ext4 test passphrase');
const vol = join(dir, 'v.img');
const TEST_MS = 240_000;

let snapshot: Record<string, string> = {};

test('create formats ext4 through the drive; mount returns a verified, usable mount', async () => {
  await withTimeout(
    (async () => {
      const created = JSON.parse(
        ok(['create', vol, '--size', '48M', '--passphrase-file', pass, ...CHEAP_KDF, '--json']),
      );
      assert.is(created.filesystem, 'ext4');
      const m = JSON.parse(ok(['mount', vol, mnt, '--passphrase-file', pass, '--json']));
      assert.is(m.filesystem, 'ext4');
      assert.is(m.mountpoint, mnt);
      assert.match(m.loopDevice, /^\/dev\/loop\d+$/);
      assert.ok(mounts().includes(` ${mnt} `), 'mountpoint is in mountinfo');
      assert.ok(readdirSync(mnt).includes('lost+found'), 'a fresh ext4');
      const listed = JSON.parse(ok(['list', '--json']));
      assert.is(listed.length, 1);
      assert.is(listed[0].state, 'mounted');
      assert.is(listed[0].container, vol);
    })(),
    TEST_MS,
    'create and mount',
  );
});

test('write a tree (0 B to 8 MiB, overwrites, truncates, renames, links); unmount; remount', async () => {
  await withTimeout(
    (async () => {
      writeTree(mnt, { hardLinks: true });
      snapshot = snapshotTree(mnt);
      assert.ok(Object.keys(snapshot).length >= 15);
      assert.match(snapshot['tree/hard-f4']!, /links 2$/);
      assert.ok(ok(['unmount', mnt]).includes('unmounted'));
      assert.not.ok(mounts().includes(dir), 'nothing of ours is mounted');
      assert.is(sh('losetup', ['-j', join(runtime, 'x')]).stdout, '');
      assert.equal(JSON.parse(ok(['list', '--json'])), []);
      // The lock is released: another read-write user can open the volume.
      ok(['check', vol, '--passphrase-file', pass]);
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      assert.equal(snapshotTree(mnt), snapshot);
    })(),
    TEST_MS,
    'tree',
  );
});

test('mounting twice is refused (exit 5); a non-empty or missing mountpoint is refused', async () => {
  await withTimeout(
    (async () => {
      const other = join(dir, 'other');
      mkdirSync(other);
      const twice = runCli(['mount', vol, other, '--passphrase-file', pass]);
      assert.is(twice.status, 5, twice.stderr);
      assert.match(twice.stderr, /already mounted/);
      const full = join(dir, 'full');
      mkdirSync(full);
      writeFileSync(join(full, 'x'), 'x');
      const v2 = join(dir, 'v2.img');
      ok(['create', v2, '--size', '8M', '--passphrase-file', pass, ...CHEAP_KDF]);
      const r = runCli(['mount', v2, full, '--passphrase-file', pass]);
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, /not empty/);
      assert.is(runCli(['mount', v2, join(dir, 'nope'), '--passphrase-file', pass]).status, 1);
      // A wrong passphrase: exit 2, and nothing is left mounted or registered.
      const wrong = runCli(['mount', v2, other, '--filesystem', 'ext4'], 'wrong\n');
      assert.is(wrong.status, 2, wrong.stderr);
      assert.not.ok(mounts().includes(` ${other} `));
      assert.is(JSON.parse(ok(['list', '--json'])).length, 1);
    })(),
    TEST_MS,
    'refusals',
  );
});

test('a busy unmount is refused and names the process; the mount stays', async () => {
  await withTimeout(
    (async () => {
      const holder = spawn('sleep', ['60'], { cwd: mnt, stdio: 'ignore' });
      const gone = new Promise((r) => holder.on('exit', r));
      await new Promise((r) => setTimeout(r, 300));
      const busy = runCli(['unmount', mnt]);
      assert.is(busy.status, 5, busy.stderr);
      assert.match(busy.stderr, /busy.*sleep/);
      assert.equal(snapshotTree(mnt), snapshot, 'still mounted and intact');
      holder.kill('SIGKILL');
      await gone;
      ok(['unmount', vol]); // by container file
      assert.not.ok(mounts().includes(dir));
    })(),
    TEST_MS,
    'busy',
  );
});

test('the container holds none of the plaintext; e2fsck -fn is clean', async () => {
  await withTimeout(
    (async () => {
      assert.equal(findInFile(vol, CANARIES), [], 'no canary in the container');
      // Positive control: the decrypted drive does contain them.
      await withRawDrive(vol, mnt, pass, (drive) => {
        assert.is(statSync(drive).size, 48 * 1024 * 1024);
        assert.is(findInFile(drive, CANARIES).length, CANARIES.length);
        const fsck = sh('e2fsck', ['-fn', drive], 120_000);
        assert.is(fsck.status, 0, fsck.stdout + fsck.stderr);
      });
    })(),
    TEST_MS,
    'canaries and fsck',
  );
});

test('read-only mount: files readable, writes refused, nothing written', async () => {
  await withTimeout(
    (async () => {
      const before = sh('sha256sum', [vol]).stdout;
      const m = JSON.parse(
        ok(['mount', vol, mnt, '--read-only', '--passphrase-file', pass, '--json']),
      );
      try {
        assert.is(m.readOnly, true);
        assert.equal(snapshotTree(mnt), snapshot);
        const w = sh('sh', ['-c', `echo x > ${mnt}/new`]);
        assert.is.not(w.status, 0);
        assert.match(w.stderr, /Read-only/);
      } finally {
        ok(['unmount', mnt]);
      }
      assert.is(sh('sha256sum', [vol]).stdout, before, 'container unchanged');
    })(),
    TEST_MS,
    'read-only',
  );
});

test('--foreground serves until SIGTERM; an external umount stops the server too', async () => {
  await withTimeout(
    (async () => {
      const main = new URL('../../src/cli/main.js', import.meta.url).pathname;
      const fg = run(
        process.execPath,
        [main, 'mount', vol, mnt, '--foreground', '--passphrase-file', pass],
        {
          timeoutMs: 120_000,
        },
      );
      for (let i = 0; i < 200 && !mounts().includes(` ${mnt} `); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(mounts().includes(` ${mnt} `), 'mounted in the foreground');
      const rec = JSON.parse(ok(['list', '--json']))[0];
      process.kill(rec.pid, 'SIGTERM');
      const r = await fg;
      assert.is(r.status, 0, r.stderr);
      assert.not.ok(mounts().includes(dir));

      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      const pid = JSON.parse(ok(['list', '--json']))[0].pid as number;
      assert.is(sh('umount', [mnt]).status, 0);
      for (let i = 0; i < 100 && sh('kill', ['-0', String(pid)]).status === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.not.ok(mounts().includes(dir), 'server tore down the drive and loop device');
      assert.equal(JSON.parse(ok(['list', '--json'])), []);
      ok(['check', vol, '--passphrase-file', pass]);
    })(),
    TEST_MS,
    'foreground',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
