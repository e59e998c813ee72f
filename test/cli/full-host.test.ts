// A full host file system (issue 11 item 8; SPEC §2 "The journal area is allocated", §15.6
// step S0): `reencrypt` of a volume whose journal area is a hole (as earlier versions left it)
// refuses before it sets its flag and says the volume is unchanged; a volume made by `create`
// re-encrypts on a full host because its journal area is already allocated; a growing
// `resize` fails without leaving the file longer than its header says. The host is a small
// tmpfs mounted by this test (root), always unmounted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_JOURNAL_SIZE, JOURNAL_OFFSET } from '../../volume-format/constants.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { forceCleanup, mountTestDir, sh, sha256File, withRawDrive } from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('full host secret');
const host = join(dir, 'host');
mkdirSync(host);

/** Mount a fresh 48 MiB tmpfs at `host`, run `fn`, always unmount. */
async function withSmallHost(fn: () => void | Promise<void>): Promise<void> {
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0700', 'tmpfs', host]);
  assert.is(m.status, 0, m.stderr);
  try {
    await fn();
  } finally {
    if (sh('umount', [host]).status !== 0) sh('umount', ['-l', host]);
  }
}

/**
 * Write filler files until the host file system has no space left, then give back
 * `leaveBytes`: room for small files (the `.lock` beside the container takes a page), never
 * for the 12 MiB journal area or new data.
 */
function fillHost(leaveBytes = 8192): void {
  const filler = join(host, 'filler');
  const fd = openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  try {
    // Large pieces, then pages, until not even one page fits.
    for (const size of [chunk.length, 4096]) {
      try {
        for (;;) writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  truncateSync(filler, statSync(filler).size - leaveBytes);
}

function create(path: string, size: string): void {
  const r = runCli([
    'create',
    path,
    '--size',
    size,
    '--passphrase-file',
    pass,
    '--filesystem',
    'none',
    ...CHEAP_KDF,
  ]);
  assert.is(r.status, 0, r.stderr);
}

const info = (path: string): { dataSize: number; dataOffset: number; reencryption: unknown } =>
  JSON.parse(runCli(['info', path, '--json']).stdout);

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});

test('reencrypt with a sparse journal area on a full host: refused before the flag, unchanged', async () => {
  await withSmallHost(async () => {
    const vol = join(host, 'legacy.img');
    create(vol, '16M');
    // Make the journal area a hole again, as every version before this one left it.
    const hole = sh('fallocate', [
      '--punch-hole',
      '--offset',
      String(JOURNAL_OFFSET),
      '--length',
      String(DEFAULT_JOURNAL_SIZE),
      vol,
    ]);
    assert.is(hole.status, 0, hole.stderr);
    const blocksBefore = statSync(vol).blocks;
    fillHost();
    const before = sha256File(vol);
    const r = runCli(['reencrypt', vol, '--passphrase-file', pass]);
    assert.is(info(vol).reencryption, null, 'no re-encryption flag');
    const check = runCli(['check', vol, '--passphrase-file', pass]);
    assert.is(check.status, 0, check.stderr);
    assert.is(sha256File(vol), before, 'same bytes');
    // It mounts, and its drive reads as a new volume's: zeros (the key did not change).
    await withRawDrive(vol, mnt, pass, (drive) => {
      assert.ok(readFileSync(drive).equals(Buffer.alloc(16 * 1048576)), 'drive reads zeros');
    });
    assert.is(r.status, 6, r.stderr);
    assert.match(r.stderr, /cannot write the journal area: no space left/);
    assert.match(r.stderr, /nothing was changed \(the volume is as it was\)/);
    assert.not.ok(r.stderr.includes('    at '), 'no stack trace');
    console.log(
      `    container blocks: ${blocksBefore} before, ${statSync(vol).blocks} after the refusal`,
    );
  });
});

test('a volume made by create re-encrypts on a full host (its journal area is allocated)', async () => {
  await withSmallHost(() => {
    const vol = join(host, 'new.img');
    create(vol, '16M');
    fillHost();
    const r = runCli(['reencrypt', vol, '--passphrase-file', pass]);
    assert.is(r.status, 0, r.stderr);
    assert.is(info(vol).reencryption, null);
    const check = runCli(['check', vol, '--passphrase-file', pass]);
    assert.is(check.status, 0, check.stderr);
  });
});

test('resize growing on a full host fails cleanly: the file is as long as the header says', async () => {
  await withSmallHost(() => {
    const vol = join(host, 'grow.img');
    create(vol, '8M');
    fillHost();
    const r = runCli(['resize', vol, '--size', '+16M', '--passphrase-file', pass]);
    assert.is(r.status, 6, r.stderr);
    assert.not.ok(r.stderr.includes('    at '), 'no stack trace');
    const f = info(vol);
    assert.is(f.dataSize, 8 * 1048576, 'the header keeps the old size');
    assert.is(statSync(vol).size, f.dataOffset + f.dataSize, 'no bytes beyond the header');
    const check = runCli(['check', vol, '--passphrase-file', pass]);
    assert.is(check.status, 0, check.stderr);
  });
});

test.run();
