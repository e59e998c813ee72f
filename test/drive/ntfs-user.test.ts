// NTFS as an unprivileged user (issue 3 acceptance): create, mount, write, unmount, remount,
// all run as a normal user. Setup (as root): create the user if missing, give /dev/fuse the
// mode 0666 that Debian normally has, and put `user_allow_other` in /etc/fuse.conf (ntfs-3g is
// setuid root and may only open the user's drive if it is mounted with allow_root); the
// original fuse.conf is restored afterwards. Also: ext4 as a normal user is refused with a
// message that says what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF } from '../helpers/cli.js';
import {
  CANARIES,
  findInFile,
  forceCleanup,
  sh,
  snapshotTree,
  withTimeout,
  writeTree,
} from '../helpers/mount.js';
import { makeTempDir } from '../helpers/tmp.js';

const USER = 'cryptainer-tu';
const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const FUSE_CONF = '/etc/fuse.conf';
const TEST_MS = 300_000;

const { dir, cleanup } = makeTempDir();
const runtime = join(dir, 'run');
const vol = join(dir, 'u.img');
const mnt = join(dir, 'mnt');
const src = join(dir, 'src');
const pass = join(dir, 'pass');
let originalFuseConf: string | null = null;
let uid = 0;

/** Run the CLI as the test user (runuser; the environment carries only what we pass). */
function asUser(args: string[]) {
  const r = sh(
    'runuser',
    [
      '-u',
      USER,
      '--',
      'env',
      '-i',
      `PATH=${process.env.PATH}`,
      `CRYPTAINER_RUNTIME_DIR=${runtime}`,
      process.execPath,
      MAIN,
      ...args,
    ],
    180_000,
  );
  return r;
}

function okUser(args: string[]): string {
  const r = asUser(args);
  assert.is(r.status, 0, `as ${USER}: cryptainer ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Whether this run made the account (and so removes it at the end). */
let createdUser = false;

const mounted = (): string => readFileSync('/proc/self/mountinfo', 'utf8');

test.before(() => {
  if (sh('id', ['-u', USER]).status !== 0) {
    const r = sh('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
    assert.is(r.status, 0, r.stderr);
    createdUser = true;
  }
  uid = Number(sh('id', ['-u', USER]).stdout.trim());
  chmodSync('/dev/fuse', 0o666);
  originalFuseConf = readFileSync(FUSE_CONF, 'utf8');
  if (!originalFuseConf.split('\n').some((l) => l.trim() === 'user_allow_other')) {
    writeFileSync(FUSE_CONF, originalFuseConf.replace(/\n?$/, '\nuser_allow_other\n'));
  }
  chmodSync(dir, 0o755);
  for (const d of [mnt, src]) mkdirSync(d);
  writeFileSync(pass, 'user passphrase\n');
  writeTree(src, { hardLinks: true });
  sh('chown', ['-R', `${USER}:`, dir]);
  chownSync(dir, uid, -1);
});

test('as a normal user: create NTFS, mount, copy files in, unmount, remount, hashes match', async () => {
  await withTimeout(
    (async () => {
      okUser([
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
      const rec = JSON.parse(okUser(['mount', vol, mnt, '--passphrase-file', pass, '--json']));
      assert.is(rec.filesystem, 'ntfs');
      assert.is(rec.uid, uid);
      // The FUSE drive belongs to the user, in the user's runtime directory.
      assert.match(mounted(), new RegExp(`${rec.driveDir} .*user_id=${uid}`));
      const copy = sh('runuser', ['-u', USER, '--', 'cp', '-a', join(src, 'tree'), mnt]);
      assert.is(copy.status, 0, copy.stderr);
      const listed = JSON.parse(okUser(['list', '--json']));
      assert.is(listed[0].state, 'mounted');
      okUser(['unmount', mnt]);
      assert.not.ok(mounted().includes(dir), 'nothing left mounted');
      okUser(['mount', vol, mnt, '--passphrase-file', pass]);
      try {
        assert.equal(snapshotTree(join(mnt, 'tree')), snapshotTree(join(src, 'tree')));
        const w = sh('runuser', ['-u', USER, '--', 'sh', '-c', `echo more > ${mnt}/tree/more.txt`]);
        assert.is(w.status, 0, w.stderr);
      } finally {
        okUser(['unmount', vol]);
      }
      assert.equal(findInFile(vol, CANARIES), []);
    })(),
    TEST_MS,
    'user ntfs',
  );
});

test('as a normal user: ext4 is refused with a message saying what to do', async () => {
  await withTimeout(
    (async () => {
      const ext = join(dir, 'e.img');
      okUser(['create', ext, '--size', '8M', '--passphrase-file', pass, ...CHEAP_KDF]);
      const r = asUser(['mount', ext, mnt, '--passphrase-file', pass]);
      assert.is(r.status, 1, r.stderr);
      assert.match(r.stderr, /ext4 needs root/);
      assert.match(r.stderr, /--filesystem ntfs/);
      assert.not.ok(mounted().includes(dir));
      assert.equal(JSON.parse(okUser(['list', '--json'])), []);
    })(),
    TEST_MS,
    'user ext4',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  if (originalFuseConf !== null) writeFileSync(FUSE_CONF, originalFuseConf);
  cleanup();
  // The account is the test's own: remove it again (one that existed before is left alone).
  if (createdUser) sh('userdel', [USER]);
});
test.run();
