// The CLI as a user runs it: stdout, stderr and exit codes (README "Exit codes").
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  openSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../../crypto/hkdf.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const passFile = join(dir, 'pass');
const wrongFile = join(dir, 'wrong');
writeFileSync(passFile, 'my secret passphrase\n');
writeFileSync(wrongFile, 'not it\n');

function make(name: string, extra: string[] = []): string {
  const path = join(dir, name);
  const r = runCli([
    'create',
    path,
    '--size',
    '8M',
    '--passphrase-file',
    passFile,
    ...CHEAP_KDF,
    // raw volumes keep these tests fast; formatting is covered by test/drive
    '--filesystem',
    'none',
    ...extra,
  ]);
  assert.is(r.status, 0, r.stderr);
  return path;
}

function oneLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  assert.is(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.match(lines[0]!, /^cryptainer: /);
}

test('create, info --json, check', () => {
  const path = make('v.img');
  assert.is(statSync(path).mode & 0o777, 0o600);
  const info = runCli(['info', path, '--json']);
  assert.is(info.status, 0, info.stderr);
  const doc = JSON.parse(info.stdout);
  assert.is(doc.dataSize, 8 * 1024 * 1024);
  assert.is(doc.sectorSize, 4096);
  assert.is(doc.headerCopies.A.status, 'ok');
  assert.is(doc.headerCopies.B.status, 'ok');
  assert.is(doc.keyslots[0].state, 'active');
  assert.is(doc.keyslots[1].state, 'inactive');
  assert.not.match(info.stdout, /masterKey/);
  const check = runCli(['check', path, '--passphrase-file', passFile]);
  assert.is(check.status, 0, check.stderr);
  assert.match(check.stdout, /keyslot 0/);
  const human = runCli(['info', path]);
  assert.is(human.status, 0);
  assert.match(human.stdout, /header A:\s+ok/);
});

test('passphrase on stdin when it is not a terminal; open is an alias of check', () => {
  const path = join(dir, 'stdin.img');
  const r = runCli(
    ['create', path, '--size', '4M', ...CHEAP_KDF, '--filesystem', 'none'],
    'via stdin\n',
  );
  assert.is(r.status, 0, r.stderr);
  assert.is(runCli(['open', path], 'via stdin\n').status, 0);
  assert.is(runCli(['open', path], 'via stdinX\n').status, 2);
});

test('wrong passphrase: exit 2 and one line', () => {
  const path = make('wrong.img');
  const r = runCli(['check', path, '--passphrase-file', wrongFile]);
  assert.is(r.status, 2);
  oneLine(r.stderr);
  assert.is(r.stdout, '');
});

test('damaged copy is repaired by check; both damaged is exit 4 "no valid header"', () => {
  const path = make('dmg.img');
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(4096), 0, 4096, 32768);
  closeSync(fd);
  const info = JSON.parse(runCli(['info', path, '--json']).stdout);
  assert.is(info.headerCopies.B.status, 'corrupt');
  const fixed = runCli(['check', path, '--passphrase-file', passFile]);
  assert.is(fixed.status, 0, fixed.stderr);
  assert.match(fixed.stdout, /repaired header copy B/);
  assert.is(JSON.parse(runCli(['info', path, '--json']).stdout).headerCopies.B.status, 'ok');
  const fd2 = openSync(path, 'r+');
  writeSync(fd2, randomBytes(4096), 0, 4096, 0);
  writeSync(fd2, randomBytes(4096), 0, 4096, 32768);
  closeSync(fd2);
  for (const args of [
    ['check', path, '--passphrase-file', passFile],
    ['info', path],
  ]) {
    const r = runCli(args);
    assert.is(r.status, 4);
    oneLine(r.stderr);
    assert.match(r.stderr, /no valid header/);
    assert.not.match(r.stderr, /passphrase/);
  }
});

test('truncated and garbage files: exit 4', () => {
  const path = make('trunc.img');
  truncateSync(path, 5 * 1024 * 1024);
  const r = runCli(['check', path, '--passphrase-file', passFile]);
  assert.is(r.status, 4);
  assert.match(r.stderr, /truncated/);
  const junk = join(dir, 'junk.img');
  writeFileSync(junk, randomBytes(1 << 20));
  const j = runCli(['info', junk]);
  assert.is(j.status, 4);
  oneLine(j.stderr);
});

test('KDF parameters above the limits on disk: exit 8 before any Argon2 runs', () => {
  const path = make('kdf.img');
  const raw = readFileSync(path);
  for (const off of [0, 32768]) {
    const copy = raw.subarray(off, off + 4096);
    copy.writeUInt32LE(16 * 1024 * 1024, 512 + 8); // keyslot 0 kdf_memory_kib = 16 GiB
    copy.set(sha256(copy.subarray(0, 4064)), 4064);
  }
  writeFileSync(path, raw);
  const start = Date.now();
  const r = runCli(['check', path, '--passphrase-file', passFile]);
  assert.is(r.status, 8, r.stderr);
  assert.match(r.stderr, /kdf memory/);
  assert.ok(Date.now() - start < 5000);
  const t = runCli([
    'create',
    join(dir, 'kdf2.img'),
    '--size',
    '4M',
    '--passphrase-file',
    passFile,
    '--kdf-memory',
    '8G',
  ]);
  assert.is(t.status, 8);
});

test('create refuses an existing file without --force (exit 1) and bad sizes', () => {
  const path = make('exists.img');
  const before = readFileSync(path);
  const r = runCli(['create', path, '--size', '4M', '--passphrase-file', passFile, ...CHEAP_KDF]);
  assert.is(r.status, 1);
  oneLine(r.stderr);
  assert.ok(before.equals(readFileSync(path)), 'existing file untouched');
  for (const size of ['12Q', '-5M', '0', 'abc', '1000']) {
    const b = runCli([
      'create',
      join(dir, 'bad.img'),
      '--size',
      size,
      '--passphrase-file',
      passFile,
      ...CHEAP_KDF,
    ]);
    assert.is(b.status, 1, `size ${size}: ${b.stderr}`);
  }
});

test('info --dump-master-key needs the passphrase and --yes off a terminal', () => {
  const path = make('dump.img');
  const refused = runCli(['info', path, '--dump-master-key', '--passphrase-file', passFile]);
  assert.is(refused.status, 1);
  const r = runCli([
    'info',
    path,
    '--dump-master-key',
    '--yes',
    '--passphrase-file',
    passFile,
    '--json',
  ]);
  assert.is(r.status, 0, r.stderr);
  assert.match(JSON.parse(r.stdout).masterKey, /^[0-9a-f]{128}$/);
  assert.match(r.stderr, /WARNING/);
  const wrong = runCli([
    'info',
    path,
    '--dump-master-key',
    '--yes',
    '--passphrase-file',
    wrongFile,
  ]);
  assert.is(wrong.status, 2);
});

test('--help for every command; unknown command is a usage error', () => {
  for (const cmd of [[], ['create'], ['info'], ['check']]) {
    const r = runCli([...cmd, '--help']);
    assert.is(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage:/);
  }
  assert.is(runCli(['frobnicate']).status, 1);
  assert.is(runCli(['create', join(dir, 'x.img')]).status, 1, 'missing --size');
});

test.after(cleanup);
test.run();
