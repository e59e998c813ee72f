// Issue 4 acceptance with real mounts (ext4 on the kernel loop driver, root only): files are
// written through a mount, then the volume is mounted with each key as the keys change, both
// header copies are destroyed (mount fails: "no valid header"), the header is restored from a
// backup, and every file written before reads back with the same hash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
process.env.CRYPTAINER_RUNTIME_DIR = join(dir, 'run'); // runCli passes our environment on
const vol = join(dir, 'v.img');
const mnt = join(dir, 'mnt');
mkdirSync(mnt);
const keyfile = join(dir, 'my.key');
writeFileSync(keyfile, randomBytes(256));
const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');

const isMounted = (): boolean => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `);

function ok(args: string[], input = ''): string {
  const r = runCli(args, input, 120_000);
  assert.is(r.status, 0, `cryptainer ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Mount with `secret` (stdin line and extra args), hash every file, unmount. */
function mountAndHash(input: string, extra: string[] = []): Record<string, string> {
  ok(['mount', vol, mnt, ...extra], input);
  try {
    assert.ok(isMounted(), 'mounted');
    const hashes: Record<string, string> = {};
    for (const name of readdirSync(join(mnt, 'data')).sort()) {
      hashes[name] = createHash('sha256')
        .update(readFileSync(join(mnt, 'data', name)))
        .digest('hex');
    }
    return hashes;
  } finally {
    ok(['unmount', mnt]);
  }
}

/** A mount that must fail with `status`, leaving nothing mounted. */
function mountFails(input: string, status: number, stderr?: RegExp, extra: string[] = []): void {
  const r = runCli(['mount', vol, mnt, ...extra], input, 120_000);
  assert.is(r.status, status, `mount: expected ${status}, got ${r.status}: ${r.stderr}`);
  if (stderr) assert.match(r.stderr, stderr);
  assert.not.ok(isMounted(), 'nothing mounted after a failed mount');
  assert.equal(readdirSync(mnt), [], 'mountpoint still empty');
}

test('mount with each key as keys are added, changed, removed; destroy and restore the header', () => {
  if (!canMount) {
    console.log('    skipped: real mounts need root and /dev/fuse');
    return;
  }
  try {
    ok(['create', vol, '--size', '48M', ...CHEAP_KDF], 'pass-A\n');
    ok(['mount', vol, mnt], 'pass-A\n');
    const written: Record<string, string> = {};
    try {
      mkdirSync(join(mnt, 'data'));
      for (const [i, size] of [0, 1, 4095, 4097, 300_000, 2_000_000].entries()) {
        const bytes = randomBytes(size);
        writeFileSync(join(mnt, 'data', `f${i}`), bytes);
        written[`f${i}`] = createHash('sha256').update(bytes).digest('hex');
      }
    } finally {
      ok(['unmount', mnt]);
    }
    assert.equal(mountAndHash('pass-A\n'), written, 'remount with A');

    ok(['add-key', vol, ...CHEAP_KDF], 'pass-A\npass-B\n');
    ok(['add-key', vol, '--new-key-file', keyfile, ...CHEAP_KDF], 'pass-A\n');
    assert.equal(mountAndHash('pass-B\n'), written, 'mount with B');
    assert.equal(mountAndHash('', ['--key-file', keyfile]), written, 'mount with the keyfile');

    ok(['change-key', vol], 'pass-A\npass-C\n');
    ok(['remove-key', vol], 'pass-B\n');
    mountFails('pass-A\n', 2);
    mountFails('pass-B\n', 2);
    assert.equal(mountAndHash('pass-C\n'), written, 'mount with C');
    assert.equal(mountAndHash('', ['--key-file', keyfile]), written, 'keyfile still works');

    const bk = join(dir, 'v.header');
    ok(['header-backup', vol, bk]);
    const fd = openSync(vol, 'r+');
    writeSync(fd, randomBytes(4096), 0, 4096, 0);
    writeSync(fd, randomBytes(4096), 0, 4096, 32768);
    closeSync(fd);
    mountFails('pass-C\n', 4, /no valid header/);

    ok(['header-restore', vol, bk, '--yes']);
    assert.equal(mountAndHash('pass-C\n'), written, 'every file intact after the restore');
    mountFails('pass-A\n', 2);
  } finally {
    if (isMounted()) runCli(['unmount', mnt]);
  }
});

test.after(cleanup);
test.run();
