// `create` makes the filesystem inside the volume while it still has its temporary name and
// moves it to the target only afterwards (SPEC §9.1 steps 5–6, issue 11 item 2). A SIGKILL
// before or after mkfs wrote, a failing mkfs and a Ctrl-C during mkfs all leave the target as
// it was: nothing there, or the old volume byte for byte with --force. mkfs.ext4 is the real
// tool, reached through a wrapper first in PATH that marks the moment to strike (and, for the
// failure case, fails instead).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF } from '../helpers/cli.js';
import {
  cliOk,
  forceCleanup,
  mountInfo,
  mountTestDir,
  sh,
  sha256File,
  sleep,
} from '../helpers/mount.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup, runtime, pass } = mountTestDir('mkfs test passphrase');
const tools = join(dir, 'tools');
mkdirSync(tools);
const marker = join(dir, 'mkfs-reached');
const realMkfs = sh('sh', [
  '-c',
  'PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4',
]).stdout.trim();

/**
 * The wrapper: `before` marks and waits before the real mkfs runs; `after` runs it, then marks
 * and waits (the filesystem is written, the rename not done); `fail` fails like a broken tool.
 */
function writeWrapper(mode: 'before' | 'after' | 'fail', waitSeconds: number): void {
  const body = {
    before: `: > "${marker}"; sleep ${waitSeconds}; exec "${realMkfs}" "$@"`,
    after: `"${realMkfs}" "$@" || exit $?; : > "${marker}"; sleep ${waitSeconds}`,
    fail: `echo "mkfs.ext4: cannot write the superblock (simulated)" >&2; exit 1`,
  }[mode];
  const path = join(tools, 'mkfs.ext4');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

const createArgs = (path: string, extra: string[] = []): string[] => [
  'create',
  path,
  '--size',
  '48M',
  '--passphrase-file',
  pass,
  ...CHEAP_KDF,
  ...extra,
];

interface Background {
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr: () => string;
}

/** Start `create` in its own process group with the wrapper first in PATH. */
function startCreate(args: string[]): Background {
  rmSync(marker, { force: true });
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own group: the orphaned wrapper can be ended after a SIGKILL
    env: { ...process.env, PATH: `${tools}:${process.env.PATH}` },
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exit, stderr: () => err };
}

async function waitForMarker(run: Background): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!existsSync(marker)) {
    if (run.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`mkfs never reached: ${run.stderr()}`);
    }
    await sleep(2);
  }
}

/** SIGKILL the create process alone, then end what it left: the wrapper, the dead drive. */
async function killAndClean(run: Background): Promise<void> {
  run.child.kill('SIGKILL');
  await run.exit;
  try {
    process.kill(-run.child.pid!, 'SIGKILL');
  } catch {
    // the group is gone already
  }
  forceCleanup(dir, runtime);
  assert.not.ok(mountInfo().includes(runtime), 'no drive left mounted');
}

const tempsOf = (name: string): string[] =>
  readdirSync(dir).filter((f) => f.startsWith(`.${name}.cryptainer-tmp-`));

function makeOld(name: string): { path: string; hash: string } {
  const path = join(dir, name);
  cliOk(createArgs(path, ['--filesystem', 'none', '--size', '4M']));
  return { path, hash: sha256File(path) };
}

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});

for (const point of ['before', 'after'] as const) {
  test(`SIGKILL ${point} mkfs wrote: no file at the target; with --force the old one intact`, async () => {
    writeWrapper(point, 30);
    const fresh = join(dir, `fresh-${point}.img`);
    const run = startCreate(createArgs(fresh));
    await waitForMarker(run);
    await killAndClean(run);
    assert.not.ok(existsSync(fresh), 'nothing at the target');

    const old = makeOld(`old-${point}.img`);
    const forced = startCreate(createArgs(old.path, ['--force']));
    await waitForMarker(forced);
    await killAndClean(forced);
    assert.is(sha256File(old.path), old.hash, 'the old volume is byte-identical');
  });
}

test('mkfs fails with --force: the old volume stays intact, the temporary file is removed', async () => {
  writeWrapper('fail', 0);
  const old = makeOld('fail.img');
  const run = startCreate(createArgs(old.path, ['--force']));
  const code = await run.exit;
  assert.is(code, 7, run.stderr());
  assert.match(run.stderr(), /making the ext4 filesystem .*simulated/);
  assert.is(sha256File(old.path), old.hash, 'the old volume is byte-identical');
  assert.equal(tempsOf('fail.img'), []);
  assert.not.ok(existsSync(`${old.path}.lock`), 'lock released');
  cliOk(['check', old.path, '--passphrase-file', pass]);
});

test('Ctrl-C during mkfs with --force: exit 10, old volume intact, temporary file removed', async () => {
  writeWrapper('before', 1);
  const old = makeOld('sigint.img');
  const run = startCreate(createArgs(old.path, ['--force']));
  await waitForMarker(run);
  run.child.kill('SIGINT');
  const code = await run.exit;
  assert.is(sha256File(old.path), old.hash, 'the old volume is byte-identical');
  assert.is(code, 10, run.stderr());
  assert.match(
    run.stderr(),
    /interrupted by SIGINT: the unfinished volume was removed; .* is unchanged/,
  );
  assert.equal(tempsOf('sigint.img'), []);
  assert.not.ok(mountInfo().includes(runtime), 'the drive was unmounted');
});

test('the wrapper leaves a working create: ext4 made, volume at the target', () => {
  writeWrapper('after', 0);
  const path = join(dir, 'ok.img');
  const r = sh('env', [
    `PATH=${tools}:${process.env.PATH}`,
    process.execPath,
    MAIN,
    ...createArgs(path),
  ]);
  assert.is(r.status, 0, r.stderr);
  assert.equal(tempsOf('ok.img'), []);
  cliOk(['check', path, '--passphrase-file', pass]);
});

test.run();
