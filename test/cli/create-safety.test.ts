// `cryptainer create` builds the whole volume under a temporary name and moves it to the target
// last (SPEC §9.1, issue 11 item 2): a SIGKILL during the fill leaves the target as it was,
// SIGINT/SIGTERM/SIGHUP remove the unfinished file (exit 10), a later create removes the
// temporary file of a process that is gone (and says so) but not one of a running process, and
// the journal area is allocated, not a hole (SPEC §2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_JOURNAL_SIZE, JOURNAL_OFFSET } from '../../volume-format/constants.js';
import { liveProcessStartTime } from '../../src/io/process-start.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { sha256File, sleep } from '../helpers/mount.js';
import { makeTempDir } from '../helpers/tmp.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup } = makeTempDir();
const pass = join(dir, 'pass');
writeFileSync(pass, 'create secret\n');
/** Large enough that the fill takes a good fraction of a second on the project machine. */
const BIG = '1G';

const createArgs = (path: string, size: string, extra: string[] = []): string[] => [
  'create',
  path,
  '--size',
  size,
  '--passphrase-file',
  pass,
  '--filesystem',
  'none',
  ...CHEAP_KDF,
  ...extra,
];

/** Temporary files of `name` in the test directory. */
function tempsOf(name: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`.${name}.cryptainer-tmp-`));
}

interface Background {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/**
 * Start `create` in the background and resolve once its temporary file holds more than the
 * journal area: the fill of the data area is under way.
 */
async function startAndWaitForFill(args: string[], name: string): Promise<Background> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const filled = tempsOf(name).some((f) => {
      try {
        return statSync(join(dir, f)).blocks * 512 > DEFAULT_JOURNAL_SIZE + 8 * 1048576;
      } catch {
        return false; // removed meanwhile
      }
    });
    if (filled) break;
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`no fill seen: ${err}`);
    }
    await sleep(2);
  }
  return { child, exit, stderr: () => err };
}

test.after(cleanup);

test('SIGKILL during the fill: no file at the target; with --force the old one unchanged', async () => {
  const fresh = join(dir, 'fresh.img');
  const run = await startAndWaitForFill(createArgs(fresh, BIG), 'fresh.img');
  run.child.kill('SIGKILL');
  assert.is((await run.exit).signal, 'SIGKILL');
  assert.not.ok(existsSync(fresh), 'nothing at the target');
  assert.is(tempsOf('fresh.img').length, 1, 'the killed process left its temporary file');

  const old = join(dir, 'old.img');
  assert.is(runCli(createArgs(old, '4M')).status, 0);
  const before = sha256File(old);
  const forced = await startAndWaitForFill(createArgs(old, BIG, ['--force']), 'old.img');
  forced.child.kill('SIGKILL');
  await forced.exit;
  assert.is(sha256File(old), before, 'the old volume is byte-identical');
  assert.is(runCli(['check', old, '--passphrase-file', pass]).status, 0);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} during the fill: exit 10, temporary file and lock removed, target untouched`, async () => {
    const name = `${sig}.img`;
    const path = join(dir, name);
    const run = await startAndWaitForFill(createArgs(path, BIG), name);
    run.child.kill(sig);
    const { code } = await run.exit;
    assert.is(code, 10, run.stderr());
    assert.match(
      run.stderr(),
      new RegExp(`creating .*${name}: interrupted by ${sig}: the unfinished volume was removed`),
    );
    assert.not.ok(run.stderr().includes('    at '), 'no stack trace');
    assert.not.ok(existsSync(path), 'nothing at the target');
    assert.equal(tempsOf(name), [], 'temporary file removed');
    assert.not.ok(existsSync(`${path}.lock`), 'lock released');

    // With --force the existing volume stays as it was, and the message says so.
    assert.is(runCli(createArgs(path, '4M')).status, 0);
    const before = sha256File(path);
    const forced = await startAndWaitForFill(createArgs(path, BIG, ['--force']), name);
    forced.child.kill(sig);
    assert.is((await forced.exit).code, 10, forced.stderr());
    assert.match(forced.stderr(), /the unfinished volume was removed; .* is unchanged/);
    assert.is(sha256File(path), before);
    assert.equal(tempsOf(name), []);
  });
}

test('a later create removes temporary files whose process is gone, and says so', async () => {
  const name = 'stale.img';
  const path = join(dir, name);
  // A real leftover: a create killed during its fill.
  const run = await startAndWaitForFill(createArgs(path, BIG), name);
  const killedPid = run.child.pid!;
  run.child.kill('SIGKILL');
  await run.exit;
  const [leftover] = tempsOf(name);
  assert.ok(leftover, 'the kill left a temporary file');
  // One owned by a running process (a sleeper) must stay; one naming that PID with another
  // start time (a recycled PID) is stale.
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const start = liveProcessStartTime(sleeper.pid!);
    assert.ok(start !== null);
    const live = `.${name}.cryptainer-tmp-${sleeper.pid}-${start}-00112233aabb`;
    const recycled = `.${name}.cryptainer-tmp-${sleeper.pid}-${Number(start) + 1}-44556677ccdd`;
    writeFileSync(join(dir, live), 'x');
    writeFileSync(join(dir, recycled), 'x');
    // Earlier versions' names carry no owner: stale once unchanged for ten minutes.
    const legacyOld = `.${name}.cryptainer-tmp-0123456789ab`;
    const legacyNew = `.${name}.cryptainer-tmp-ba9876543210`;
    writeFileSync(join(dir, legacyOld), 'x');
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(join(dir, legacyOld), hourAgo, hourAgo);
    writeFileSync(join(dir, legacyNew), 'x');
    const r = runCli(createArgs(path, '4M'));
    assert.is(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`removed .*${leftover}, an unfinished volume .*process ${killedPid} no longer`),
    );
    assert.match(r.stderr, new RegExp(`removed .*${recycled}`));
    assert.match(r.stderr, new RegExp(`removed .*${legacyOld}, .*earlier version`));
    assert.not.ok(r.stderr.includes(live), 'a running process owns it: not mentioned');
    assert.equal(
      tempsOf(name).sort(),
      [legacyNew, live].sort(),
      "kept: the running process's file, and a recent one of an earlier version",
    );
  } finally {
    sleeper.kill('SIGKILL');
  }
});

test('the journal area of a new volume is allocated, not a hole (SPEC §2)', () => {
  const path = join(dir, 'journal.img');
  assert.is(runCli(createArgs(path, '8M')).status, 0);
  const st = statSync(path);
  // Everything from the journal area to the end is written: only the reserved gaps between
  // the header copies (under 1 MiB) may stay holes.
  const holesAtMost = JOURNAL_OFFSET - 2 * 4096;
  assert.ok(
    st.blocks * 512 >= st.size - holesAtMost,
    `allocated ${st.blocks * 512} of ${st.size} bytes`,
  );
});

test.run();
