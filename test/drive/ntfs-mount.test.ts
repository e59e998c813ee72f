// Real mounts, NTFS with ntfs-3g on the drive file (as root here; test/drive/ntfs-user.test.ts
// runs it as a normal user): tree round trip, canaries, ntfsfix, SIGKILL of the server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  CANARIES,
  cliOk as ok,
  findInFile,
  forceCleanup,
  mountInfo as mounted,
  mountTestDir,
  sh,
  sleep,
  snapshotTree,
  withRawDrive,
  withTimeout,
  writeTree,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('ntfs test passphrase');
const vol = join(dir, 'n.img');
const TEST_MS = 300_000;

let snapshot: Record<string, string> = {};

test('create --filesystem ntfs; mount; tree round trip through unmount and remount', async () => {
  await withTimeout(
    (async () => {
      ok([
        'create',
        vol,
        '--size',
        '40M',
        '--filesystem',
        'ntfs',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
      ]);
      const m = JSON.parse(ok(['mount', vol, mnt, '--passphrase-file', pass, '--json']));
      assert.is(m.filesystem, 'ntfs');
      assert.is(m.loopDevice, null);
      writeTree(mnt, { hardLinks: true });
      snapshot = snapshotTree(mnt);
      assert.match(snapshot['tree/hard-f4']!, /links 2$/);
      assert.match(snapshot['tree/nested/link-to-f5']!, /symlink -> \.\.\/f5-4096\.bin/);
      ok(['unmount', mnt]);
      assert.not.ok(mounted().includes(dir));
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      assert.equal(snapshotTree(mnt), snapshot);
      ok(['unmount', vol]);
    })(),
    TEST_MS,
    'ntfs tree',
  );
});

test('no plaintext in the container; ntfsfix -n is clean', async () => {
  await withTimeout(
    (async () => {
      assert.equal(findInFile(vol, CANARIES), []);
      await withRawDrive(vol, mnt, pass, (drive) => {
        assert.is(findInFile(drive, CANARIES).length, CANARIES.length, 'positive control');
        const fix = sh('ntfsfix', ['-n', drive]);
        assert.is(fix.status, 0, fix.stdout + fix.stderr);
      });
    })(),
    TEST_MS,
    'canaries',
  );
});

test('SIGKILL of the server during writes: unmount cleans up, the volume opens, ntfsfix repairs', async () => {
  await withTimeout(
    (async () => {
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      const pid = JSON.parse(ok(['list', '--json']))[0].pid as number;
      const writer = spawn(
        'sh',
        [
          '-c',
          `i=0; while [ $i -lt 400 ]; do head -c 65536 /dev/urandom > "${mnt}/w$i" || exit 1; i=$((i+1)); done`,
        ],
        { stdio: 'ignore' },
      );
      const writerDone = new Promise((r) => writer.on('exit', r));
      await sleep(1500);
      process.kill(pid, 'SIGKILL');
      await Promise.race([writerDone, sleep(20_000)]);
      writer.kill('SIGKILL');
      await writerDone;
      assert.is(JSON.parse(ok(['list', '--json']))[0].state, 'stale');
      const r = runCli(['unmount', mnt]);
      assert.is(r.status, 6, r.stderr); // cleaned up, but what the server held is lost
      assert.not.ok(mounted().includes(dir), 'every layer is gone');
      assert.equal(JSON.parse(ok(['list', '--json'])), []);
      ok(['check', vol, '--passphrase-file', pass]);
      await withRawDrive(vol, mnt, pass, (drive) => {
        const fix = sh('ntfsfix', ['-d', drive]);
        assert.is(fix.status, 0, fix.stdout + fix.stderr);
      });
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      try {
        // Everything written before the crash that was complete is still there.
        assert.is(
          snapshotTree(join(mnt, 'tree'))['f9-8388608.bin'],
          snapshot['tree/f9-8388608.bin'],
        );
      } finally {
        ok(['unmount', mnt]);
      }
    })(),
    TEST_MS,
    'sigkill',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
