// SIGKILL of the serving process while ext4 is being written: `unmount` cleans every layer of
// the dead mount (filesystem, loop device, FUSE drive, registry), the container still opens,
// e2fsck repairs what the crash left, and the volume mounts again. Also: a mount of a
// container whose server died is cleaned up by the next mount of the same container.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  cliOk as ok,
  forceCleanup,
  mountInfo as mounted,
  mountTestDir,
  sh,
  withRawDrive,
  sleep,
  withTimeout,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('crash test passphrase');
const vol = join(dir, 'v.img');
const TEST_MS = 300_000;
const loops = (): string => sh('losetup', ['-a']).stdout;

/**
 * Mount, start writing, SIGKILL the server mid-write; returns (once the writer has stopped)
 * the loop device the mount used.
 */
async function crashWhileWriting(): Promise<string> {
  const rec = JSON.parse(ok(['mount', vol, mnt, '--passphrase-file', pass, '--json']));
  const pid = rec.pid as number;
  // Many files, each fsync'd, so the journal, the bitmaps and data are all in flight.
  const writer = spawn(
    'sh',
    [
      '-c',
      `i=0; while [ $i -lt 2000 ]; do dd if=/dev/urandom of="${mnt}/w$i" bs=32k count=4 conv=fsync 2>/dev/null || exit 1; i=$((i+1)); done`,
    ],
    { stdio: 'ignore' },
  );
  const writerDone = new Promise((r) => writer.on('exit', r));
  await sleep(2000);
  process.kill(pid, 'SIGKILL');
  await Promise.race([writerDone, sleep(20_000)]);
  writer.kill('SIGKILL');
  await writerDone;
  const listed = JSON.parse(ok(['list', '--json']));
  assert.is(listed[0].state, 'stale');
  return rec.loopDevice as string;
}

/** True while `dev` is attached to anything (sysfs; `losetup -a` would not show a loop device
 * whose drive was detached lazily under a path of ours). */
function attached(dev: string): boolean {
  return existsSync(`/sys/block/${dev.slice('/dev/'.length)}/loop/backing_file`);
}

test('SIGKILL during writes: unmount cleans up, volume opens, e2fsck repairs, mounts again', async () => {
  await withTimeout(
    (async () => {
      ok(['create', vol, '--size', '48M', '--passphrase-file', pass, ...CHEAP_KDF]);
      const loop = await crashWhileWriting();
      // The server died before its final flush: unmount cleans every layer but says that
      // data was lost (exit 6, issue 11 item 3).
      const r = runCli(['unmount', mnt]);
      assert.is(r.status, 6, r.stderr);
      assert.match(r.stderr, /had died before finishing its flush/);
      assert.not.ok(mounted().includes(dir), 'no mount left');
      assert.not.ok(loops().includes(dir), 'no loop device left');
      assert.not.ok(attached(loop), `${loop} detached`);
      assert.equal(JSON.parse(ok(['list', '--json'])), []);
      ok(['check', vol, '--passphrase-file', pass]); // the lock of the dead server is taken over
      await withRawDrive(vol, mnt, pass, (drive) => {
        const fix = sh('e2fsck', ['-fy', drive], 120_000);
        assert.ok(
          fix.status !== null && fix.status <= 2,
          `e2fsck -fy: ${fix.status} ${fix.stdout}`,
        );
        const again = sh('e2fsck', ['-fn', drive], 120_000);
        assert.is(again.status, 0, again.stdout);
      });
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      writeFileSync(join(mnt, 'after'), 'still works');
      ok(['unmount', mnt]);
    })(),
    TEST_MS,
    'sigkill',
  );
});

test('mounting a container whose server died cleans the dead mount first', async () => {
  await withTimeout(
    (async () => {
      const loop = await crashWhileWriting();
      const other = join(dir, 'other');
      mkdirSync(other);
      const again = runCli(['mount', vol, other, '--passphrase-file', pass]);
      assert.is(again.status, 0, again.stderr);
      assert.match(again.stderr, /cleaned up an earlier mount of this volume/, 'and says so');
      assert.not.ok(mounted().includes(` ${mnt} `), 'the dead mount is gone');
      const listed = JSON.parse(ok(['list', '--json']));
      assert.is(listed.length, 1);
      assert.is(listed[0].mountpoint, other);
      assert.not.ok(attached(loop) && loop !== listed[0].loopDevice, `${loop} detached`);
      ok(['unmount', '--all']);
      assert.not.ok(mounted().includes(dir));
      assert.not.ok(loops().includes(dir));
    })(),
    TEST_MS,
    'remount after crash',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
