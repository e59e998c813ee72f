// Issue 11 item 1 (root, ext4 on the kernel loop): the lock is the file's, not the path's.
// With a volume mounted, every writing command run through a symlink, a hard link or a bind
// mount of the container's directory exits 5 (VOLUME_BUSY) and the mounted filesystem stays
// intact; a second mount through any of them is refused with exit 5; `unmount` accepts the
// container by any name; header readers (info, header-backup) keep working on the mounted
// volume. Afterwards e2fsck is clean and the files are all there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  linkSync,
  mkdirSync,
  openSync,
  closeSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  cliOk as ok,
  forceCleanup,
  mountInfo,
  mountTestDir,
  sh,
  snapshotTree,
  withRawDrive,
  withTimeout,
  writeTree,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('alias test passphrase');
const vols = join(dir, 'vols');
mkdirSync(vols);
const vol = join(vols, 'v.img');
const symlink = join(dir, 'sym.img');
const hardlink = join(vols, 'hard.img');
const bindDir = join(dir, 'bind');
mkdirSync(bindDir);
const viaBind = join(bindDir, 'v.img');
const mnt2 = join(dir, 'mnt2');
mkdirSync(mnt2);
const pass2 = join(dir, 'pass2');
writeFileSync(pass2, 'second passphrase\n');
const backup = join(dir, 'header.bak');
const TEST_MS = 300_000;

const ALIASES: [string, string][] = [
  ['symlink', symlink],
  ['hard link', hardlink],
  ['bind mount', viaBind],
];

/** Every command that writes the container, as run through `alias`. */
function writers(alias: string): string[][] {
  const secret = ['--passphrase-file', pass];
  return [
    ['add-key', alias, ...secret, '--new-passphrase-file', pass2, ...CHEAP_KDF],
    ['change-key', alias, ...secret, '--new-passphrase-file', pass2, ...CHEAP_KDF],
    ['remove-key', alias, ...secret, '--slot', '0', '--force'],
    ['reencrypt', alias, ...secret],
    ['resize', alias, ...secret, '--size', '+8M'],
    ['header-restore', alias, backup, '--yes'],
    ['repair', alias, ...secret],
    ['check', alias, ...secret],
    ['create', alias, '--force', '--size', '8M', '--filesystem', 'none', ...secret, ...CHEAP_KDF],
  ];
}

let snapshot: Record<string, string> = {};

test('setup: an ext4 volume mounted, a tree written, a symlink, a hard link, a bind mount', async () => {
  ok(['create', vol, '--size', '40M', '--passphrase-file', pass, ...CHEAP_KDF]);
  symlinkSync(vol, symlink);
  linkSync(vol, hardlink);
  const bind = sh('mount', ['--bind', vols, bindDir]);
  assert.is(bind.status, 0, bind.stderr);
  ok(['mount', symlink, mnt, '--passphrase-file', pass]);
  writeTree(mnt, { hardLinks: true });
  snapshot = snapshotTree(mnt);
  assert.is(sh('sync', []).status, 0);
});

test('header readers work on the mounted volume through an alias', async () => {
  ok(['info', hardlink]);
  ok(['header-backup', symlink, backup]);
  ok(['check', viaBind, '--passphrase-file', pass, '--read-only']);
  // Damage header copy B, so that `repair` has something to write (and must be refused).
  const fd = openSync(vol, 'r+');
  writeSync(fd, randomBytes(4096), 0, 4096, 32768);
  closeSync(fd);
});

for (const [what, alias] of ALIASES) {
  test(`through a ${what}: every writing command exits 5, the mount is untouched`, async () => {
    await withTimeout(
      (async () => {
        // Every command is run and judged, so a failure lists all that were not refused.
        const notRefused: string[] = [];
        const second = ['mount', alias, mnt2, '--passphrase-file', pass];
        for (const args of [second, ...writers(alias)]) {
          const r = runCli(args);
          if (r.status !== 5 || !/busy|already mounted/.test(r.stderr)) {
            notRefused.push(`${args[0]}: exit ${r.status} ${r.stderr.trim()}`);
          }
        }
        if (mountInfo().includes(` ${mnt2} `)) ok(['unmount', mnt2]);
        assert.equal(notRefused, [], `through the ${what}`);
        assert.equal(snapshotTree(mnt), snapshot, 'the mounted filesystem is unchanged');
        assert.is(JSON.parse(ok(['list', '--json'])).length, 1, 'still one mount');
      })(),
      TEST_MS,
      what,
    );
  });
}

test('unmount accepts the container by any name: symlink, then hard link', async () => {
  await withTimeout(
    (async () => {
      ok(['unmount', symlink]);
      assert.not.ok(mountInfo().includes(` ${mnt} `), 'unmounted');
      ok(['mount', hardlink, mnt, '--passphrase-file', pass]);
      ok(['unmount', hardlink]);
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      ok(['unmount', viaBind]);
      assert.equal(JSON.parse(ok(['list', '--json'])), []);
    })(),
    TEST_MS,
    'unmount',
  );
});

test('afterwards: repair fixes copy B, e2fsck is clean, every file is there', async () => {
  await withTimeout(
    (async () => {
      ok(['repair', symlink, '--passphrase-file', pass]);
      await withRawDrive(vol, mnt, pass, (drive) => {
        const fsck = sh('e2fsck', ['-fn', drive], 120_000);
        assert.is(fsck.status, 0, fsck.stdout + fsck.stderr);
      });
      ok(['mount', vol, mnt, '--passphrase-file', pass]);
      try {
        assert.equal(snapshotTree(mnt), snapshot);
      } finally {
        ok(['unmount', mnt]);
      }
    })(),
    TEST_MS,
    'after',
  );
});

test.after(() => {
  sh('umount', [bindDir]);
  forceCleanup(dir, runtime);
  sh('umount', [bindDir]);
  cleanup();
});
test.run();
