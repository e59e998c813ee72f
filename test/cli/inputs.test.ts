// Hostile or awkward inputs (issue 11 items 4, 5 and 10): passphrases piped by slow writers,
// endless passphrase sources, and containers that are not regular files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, MAIN, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const volume = join(dir, 'v.img');
const passFile = join(dir, 'pass');
writeFileSync(passFile, 'pw\n');

/**
 * Run a shell command line (`$C` is the CLI) with a time limit and a cap on the address space:
 * an unbounded read dies of the cap (a signal or an allocation error) rather than growing until
 * the host's OOM killer fires, as `--passphrase-file /dev/zero` once did.
 */
function sh(
  script: string,
  timeoutMs = 30_000,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    'bash',
    ['-c', `ulimit -v 4000000; C="${process.execPath} ${MAIN}"; ${script}`],
    { encoding: 'utf8', timeout: timeoutMs, cwd: dir, env: { ...process.env, NO_COLOR: '1' } },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.is(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.match(lines[0]!, /^cryptainer: /);
  return lines[0]!;
}

test.before(() => {
  const r = runCli([
    'create',
    volume,
    '--size',
    '8M',
    '--passphrase-file',
    passFile,
    ...CHEAP_KDF,
    '--filesystem',
    'none',
  ]);
  assert.is(r.status, 0, r.stderr);
});

test.after(() => cleanup());

test('a passphrase piped by a slow writer is waited for (item 4)', () => {
  const r = sh('(sleep 1; echo pw) | $C check v.img --read-only');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /keyslot 0 unlocks/);
});

test('several secrets, one line each, written slowly (change-key: old, new, back)', () => {
  const r = sh('(sleep 0.5; printf "pw\\n"; sleep 0.5; printf "new\\r\\n") | $C change-key v.img');
  assert.is(r.status, 0, r.stderr);
  const back = sh('(echo new; sleep 0.5; echo pw) | $C change-key v.img');
  assert.is(back.status, 0, back.stderr);
  assert.is(sh('echo pw | $C check v.img --read-only').status, 0);
});

test('a non-blocking stdin inherited from the parent is waited for, not read as empty', () => {
  // The wrapper creates process.stdin, which makes the shared pipe non-blocking, then runs
  // the CLI on the same pipe: the CLI's read(2) gets EAGAIN until the writer wakes up.
  const wrapper =
    `process.stdin; const r = require('node:child_process').spawnSync(process.execPath, ` +
    `[${JSON.stringify(MAIN)}, 'check', 'v.img', '--read-only'], { stdio: 'inherit' }); ` +
    `process.exit(r.status ?? 99)`;
  const r = sh(`(sleep 1; echo pw) | ${process.execPath} -e ${JSON.stringify(wrapper)}`);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /keyslot 0 unlocks/);
});

test('the last line without a newline and `--passphrase-file -` read stdin lines', () => {
  assert.is(sh('printf pw | $C check v.img --read-only').status, 0);
  assert.is(sh('echo pw | $C check v.img --read-only --passphrase-file -').status, 0);
});

test('--passphrase-file /dev/zero fails at once with exit 1 (item 5)', () => {
  const r = sh('$C check v.img --passphrase-file /dev/zero');
  assert.is(r.status, 1, r.stderr);
  assert.match(oneLine(r.stderr), /longer than 65536 bytes/);
});

test('stdin from /dev/zero and an over-long stdin line fail with exit 1', () => {
  const zero = sh('$C check v.img < /dev/zero');
  assert.is(zero.status, 1, zero.stderr);
  assert.match(oneLine(zero.stderr), /longer than 65536 bytes/);
  const long = sh('head -c 70000 /dev/zero | tr "\\0" a | $C check v.img');
  assert.is(long.status, 1, long.stderr);
  assert.match(oneLine(long.stderr), /longer than 65536 bytes/);
});

test('a 65536-byte passphrase from a file is accepted (the cap is not below it)', () => {
  const big = join(dir, 'big-pass');
  writeFileSync(big, 'b'.repeat(65536) + '\r\n');
  const r = sh(
    `printf 'pw\\n' | $C add-key v.img --new-passphrase-file ${big} ${CHEAP_KDF.join(' ')}`,
  );
  assert.is(r.status, 0, r.stderr);
  assert.is(sh(`$C check v.img --read-only --passphrase-file ${big}`).status, 0);
});

test('keyfiles: /dev/zero, a FIFO and a file over 64 MiB are refused quickly', () => {
  const fifo = join(dir, 'key-fifo');
  spawnSync('mkfifo', [fifo]);
  const huge = join(dir, 'huge.key');
  const fd = openSync(huge, 'w');
  ftruncateSync(fd, 64 * 1024 * 1024 + 1);
  closeSync(fd);
  for (const key of ['/dev/zero', fifo, huge]) {
    const r = sh(`echo pw | $C check v.img --read-only --key-file ${key}`, 20_000);
    assert.is(r.status, 1, `${key}: ${r.stderr}`);
    oneLine(r.stderr);
  }
});

test('every command refuses a FIFO, a directory or a device as the container (item 10)', () => {
  const fifo = join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const subdir = join(dir, 'dir');
  mkdirSync(subdir);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  runCli(['header-backup', volume, join(dir, 'v.hdr')], 'pw\n');
  for (const target of [fifo, subdir, '/dev/null']) {
    const commands = [
      ['info', target],
      ['check', target],
      ['repair', target],
      ['header-backup', target, join(dir, 'out.hdr')],
      ['header-restore', target, join(dir, 'v.hdr'), '--yes'],
      ['add-key', target],
      ['change-key', target],
      ['remove-key', target],
      ['reencrypt', target],
      ['resize', target, '--size', '16M'],
      ['mount', target, mnt],
    ];
    for (const args of commands) {
      const r = runCli(args, 'pw\nnew\n', 15_000);
      assert.is(r.status, 1, `${args.join(' ')}: ${r.status} ${r.stderr}`);
      assert.match(oneLine(r.stderr), /not a regular file/, args.join(' '));
    }
    // A backup file that is not a regular file is refused too (exit 4), never waited on.
    for (const args of [
      ['header-backup', '--verify', target],
      ['header-restore', volume, target, '--yes'],
    ]) {
      const r = runCli(args, '', 15_000);
      assert.is(r.status, 4, `${args.join(' ')}: ${r.status} ${r.stderr}`);
      oneLine(r.stderr);
    }
  }
});

test.run();
