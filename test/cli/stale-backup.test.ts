// SPEC §3.1 and §13.4 precondition 4 (issue 12, deliverable 3): a header backup made before a
// re-encryption is stale. `header-restore` refuses it with exit 4 and leaves the container
// untouched (the data stays readable); `--force-stale` restores it anyway, as README documents.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openVolume } from '../../src/index.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup } = makeTempDir();
const passFile = join(dir, 'pass');
writeFileSync(passFile, 'stale secret\n');
const PASS = 'stale secret';
const DATA = randomBytes(256 * 1024);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The first `n` bytes of the decrypted drive, read through the library. */
async function driveHead(path: string, n = DATA.length): Promise<Buffer> {
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  try {
    return Buffer.from(await v.read(0, n));
  } finally {
    await v.close();
  }
}

/** A volume holding DATA, a backup of it, then a finished re-encryption. */
async function staleSetup(name: string): Promise<{ path: string; old: string }> {
  const path = join(dir, `${name}.img`);
  const old = join(dir, `${name}-before.hdr`);
  const c = runCli([
    'create',
    path,
    '--size',
    '1M',
    '--passphrase-file',
    passFile,
    '--filesystem',
    'none',
    ...CHEAP_KDF,
  ]);
  assert.is(c.status, 0, c.stderr);
  const v = await openVolume(path, { passphrase: PASS });
  await v.write(0, DATA);
  await v.close();
  assert.is(runCli(['header-backup', path, old]).status, 0);
  const r = runCli(['reencrypt', path], `${PASS}\n`);
  assert.is(r.status, 0, r.stderr);
  return { path, old };
}

test('backup, reencrypt, restore: refused with exit 4, container untouched, data readable', async () => {
  const { path, old } = await staleSetup('refused');
  const info = JSON.parse(runCli(['info', path, '--json']).stdout);
  assert.is(info.keyGeneration, 1, 'the re-encryption raised the key generation');
  assert.is(info.features.compat, '0x1');
  const before = readFileSync(path);

  const r = runCli(['header-restore', path, old, '--yes']);
  assert.is(r.status, 4, r.stderr);
  assert.match(r.stderr, /stale/);
  assert.match(r.stderr, /key generation 0.*key generation 1/);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.is(sha(readFileSync(path)), sha(before), 'the container is untouched');
  assert.ok((await driveHead(path)).equals(DATA), 'the data still decrypts');
  assert.is(runCli(['check', path, '--passphrase-file', passFile]).status, 0);

  const verify = runCli(['header-backup', '--verify', old, path]);
  assert.is(verify.status, 4, 'verify reports the stale backup with the same exit code');
  assert.match(verify.stdout, /STALE/);
});

test('--force-stale restores it as documented, and a current backup then needs it too', async () => {
  const { path, old } = await staleSetup('forced');
  const current = join(dir, 'forced-after.hdr');
  assert.is(runCli(['header-backup', path, current]).status, 0);
  const withoutYes = runCli(['header-restore', path, old, '--force-stale']);
  assert.is(withoutYes.status, 1, 'off a terminal the general confirmation still needs --yes');

  const r = runCli(['header-restore', path, old, '--yes', '--force-stale']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /WARNING: the backup is stale/);
  assert.equal(readFileSync(path).subarray(0, 4096), readFileSync(old).subarray(512, 512 + 4096));
  assert.is(JSON.parse(runCli(['info', path, '--json']).stdout).keyGeneration, 0);
  // The old keyslots unlock, but the data is under the new key: it no longer decrypts.
  assert.not.ok((await driveHead(path)).equals(DATA));

  // Undoing it: the post-re-encryption backup is now the "stale" one from the header's view.
  const back = runCli(['header-restore', path, current, '--yes']);
  assert.is(back.status, 4);
  assert.match(back.stderr, /made after a re-encryption/);
  const fixed = runCli(['header-restore', path, current, '--yes', '--force-stale']);
  assert.is(fixed.status, 0, fixed.stderr);
  assert.ok((await driveHead(path)).equals(DATA), 'the data decrypts again');
});

test('a current backup restores without any force (same key generation)', async () => {
  const { path } = await staleSetup('current');
  const current = join(dir, 'current-after.hdr');
  assert.is(runCli(['header-backup', path, current]).status, 0);
  const r = runCli(['header-restore', path, current, '--yes']);
  assert.is(r.status, 0, r.stderr);
  assert.ok((await driveHead(path)).equals(DATA));
});

/**
 * Run `cryptainer args` on a pseudo-terminal (util-linux `script`), answering each prompt that
 * matches a regexp with its line once it appears. Returns the exit status and the output.
 */
function onTerminal(
  args: string[],
  answers: Array<[RegExp, string]>,
): Promise<{ status: number | null; output: string }> {
  const cmd = [process.execPath, MAIN, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const pending = [...answers];
  const onData = (d: Buffer) => {
    output += d.toString();
    while (pending.length > 0 && pending[0]![0].test(output)) {
      child.stdin.write(`${pending.shift()![1]}\r`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    }),
  );
}

test('on a terminal: the typed phrase restores a stale backup; anything else refuses (exit 4)', async () => {
  const { path, old } = await staleSetup('terminal');
  const before = readFileSync(path);
  const wrong = await onTerminal(
    ['header-restore', path, old],
    [[/Type "restore stale backup"/, 'yes']],
  );
  assert.is(wrong.status, 4, wrong.output);
  assert.match(wrong.output, /stale/);
  assert.ok(before.equals(readFileSync(path)), 'nothing written');
  const yesOnly = await onTerminal(
    ['header-restore', path, old, '--yes'],
    [[/Type "restore/, 'YES']],
  );
  assert.is(yesOnly.status, 4, '--yes does not cover a stale backup');
  assert.ok(before.equals(readFileSync(path)), 'nothing written');
  const typed = await onTerminal(
    ['header-restore', path, old],
    [
      [/Type "restore stale backup"/, 'restore stale backup'],
      [/Type YES/, 'YES'],
    ],
  );
  assert.is(typed.status, 0, typed.output);
  assert.equal(readFileSync(path).subarray(0, 4096), readFileSync(old).subarray(512, 512 + 4096));
});

test.after(cleanup);
test.run();
