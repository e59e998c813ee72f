// `cryptainer reencrypt` as a user runs it (README "Re-encryption"): secrets per keyslot on
// stdin or files, --keep-slot, a new master key (info --dump-master-key), a SIGKILL halfway and
// a resume, Ctrl-C stopping at a safe point, and mount-time refusal while unfinished.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeReencryptState, isReencrypting } from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { readHeaderChoice } from '../../src/volume/header-store.js';
import { openVolume } from '../../src/index.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup } = makeTempDir();
const pass1 = join(dir, 'pass1');
const pass2 = join(dir, 'pass2');
writeFileSync(pass1, 'first secret\n');
writeFileSync(pass2, 'second secret\n');

/** A volume (no filesystem) filled with random bytes; returns them. */
async function make(
  name: string,
  size: string,
  twoSlots = false,
): Promise<{ path: string; data: Uint8Array }> {
  const path = join(dir, name);
  const r = runCli([
    'create',
    path,
    '--size',
    size,
    '--passphrase-file',
    pass1,
    '--filesystem',
    'none',
    ...CHEAP_KDF,
  ]);
  assert.is(r.status, 0, r.stderr);
  if (twoSlots) {
    const a = runCli([
      'add-key',
      path,
      '--passphrase-file',
      pass1,
      '--new-passphrase-file',
      pass2,
      ...CHEAP_KDF,
    ]);
    assert.is(a.status, 0, a.stderr);
  }
  const v = await openVolume(path, { passphrase: 'first secret' });
  const data = new Uint8Array(randomBytes(v.sizeBytes));
  await v.write(0, data);
  await v.close();
  return { path, data };
}

function masterKey(path: string, passFile: string): string {
  const r = runCli(['info', path, '--dump-master-key', '--yes', '--passphrase-file', passFile]);
  assert.is(r.status, 0, r.stderr);
  return /master key:\s+([0-9a-f]{128})/.exec(r.stdout)![1]!;
}

async function readAll(path: string, passphrase: string): Promise<Uint8Array> {
  const v = await openVolume(path, { passphrase, readOnly: true });
  try {
    return await v.read(0, v.sizeBytes);
  } finally {
    await v.close();
  }
}

async function progressOf(
  path: string,
): Promise<{ flagged: boolean; done: number; inFlight: number }> {
  const s = await FileStorage.open(path, { readOnly: true });
  try {
    const f = (await readHeaderChoice(s)).fields;
    if (!isReencrypting(f)) return { flagged: false, done: 0, inFlight: 0 };
    const st = decodeReencryptState(f.featureArea, f);
    return { flagged: true, done: st.sectorsDone, inFlight: st.segmentSectors };
  } catch {
    return { flagged: false, done: 0, inFlight: 0 }; // mid-write of a header copy: try again
  } finally {
    await s.close();
  }
}

/** Start `reencrypt` in the background, resolve once it has recorded some progress. */
async function startAndWaitForProgress(
  args: string[],
): Promise<{ child: ChildProcess; exit: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [MAIN, 'reencrypt', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const path = args[0]!;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const p = await progressOf(path);
    if (p.flagged && p.done > 0) break;
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`no progress seen: ${err}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return { child, exit, stderr: () => err };
}

test('new master key, data intact, every passphrase kept (one stdin line per keyslot)', async () => {
  const { path, data } = await make('two.img', '8M', true);
  const before = masterKey(path, pass1);
  const r = runCli(['reencrypt', path], 'first secret\nsecond secret\n');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /re-encrypted .* new master key.*keyslots kept: 0, 1/);
  const after = masterKey(path, pass1);
  assert.is.not(after, before);
  assert.is(masterKey(path, pass2), after);
  assert.equal(await readAll(path, 'second secret'), data);
});

test('missing secrets refuse and change nothing; --keep-slot drops the others', async () => {
  const { path, data } = await make('keep.img', '4M', true);
  const image = readFileSync(path);
  const r = runCli(['reencrypt', path], 'first secret\n');
  assert.is(r.status, 1);
  assert.match(r.stderr, /keyslot 1: no passphrase given/);
  assert.ok(Buffer.compare(image, readFileSync(path)) === 0, 'nothing written');
  const wrong = runCli(['reencrypt', path], 'first secret\nnot it\n');
  assert.is(wrong.status, 2);
  assert.match(wrong.stderr, /keyslot 1/);
  assert.ok(Buffer.compare(image, readFileSync(path)) === 0, 'nothing written');
  const keep = runCli([
    'reencrypt',
    path,
    '--keep-slot',
    '1',
    '--passphrase-file',
    pass2,
    '--json',
  ]);
  assert.is(keep.status, 0, keep.stderr);
  const doc = JSON.parse(keep.stdout);
  assert.equal(doc.keptSlots, [1]);
  assert.equal(doc.removedSlots, [0]);
  assert.is(runCli(['check', path, '--passphrase-file', pass1]).status, 2, 'slot 0 removed');
  assert.equal(await readAll(path, 'second secret'), data);
});

test('SIGKILL halfway: open refuses with a hint, running reencrypt again finishes', async () => {
  const { path, data } = await make('kill.img', '256M');
  const before = masterKey(path, pass1);
  let killedMidway = false;
  for (let attempt = 0; attempt < 5 && !killedMidway; attempt++) {
    const run = await startAndWaitForProgress([
      path,
      '--passphrase-file',
      pass1,
      '--segment-size',
      '4M',
    ]);
    run.child.kill('SIGKILL');
    await run.exit;
    killedMidway = (await progressOf(path)).flagged;
  }
  assert.ok(killedMidway, 'the kill landed before the end');
  console.log(`    killed at sector ${(await progressOf(path)).done}`);
  // SPEC §9.2: the kernel dropped the lock with the process; no lock file exists to go stale.
  assert.not.ok(existsSync(`${path}.lock`), 'no lock file beside the container');
  const info = JSON.parse(runCli(['info', path, '--json']).stdout);
  assert.ok(info.reencryption.sectorsDone > 0, 'info shows the progress without a secret');
  assert.match(runCli(['info', path]).stdout, /reencryption:\s+unfinished, \d+%/);
  const refused = runCli(['check', path, '--passphrase-file', pass1]);
  assert.is(refused.status, 8, refused.stderr);
  assert.match(refused.stderr, /re-encryption is unfinished .*cryptainer reencrypt/);
  const resumed = runCli(['reencrypt', path, '--passphrase-file', pass1]);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming/);
  assert.not.ok((await progressOf(path)).flagged);
  assert.is(JSON.parse(runCli(['info', path, '--json']).stdout).reencryption, null);
  assert.is.not(masterKey(path, pass1), before);
  assert.equal(await readAll(path, 'first secret'), data);
});

test('Ctrl-C stops at a safe point (exit 10, says how to resume); resume finishes', async () => {
  const { path, data } = await make('sigint.img', '256M');
  const run = await startAndWaitForProgress([
    path,
    '--passphrase-file',
    pass1,
    '--segment-size',
    '4M',
  ]);
  run.child.kill('SIGINT');
  const code = await run.exit;
  const p = await progressOf(path);
  if (p.flagged) {
    assert.is(code, 10, run.stderr());
    assert.match(run.stderr(), /stopped at \d+% .*run `cryptainer reencrypt .*` to resume/);
    assert.is(p.inFlight, 0, 'nothing in flight at a safe stop');
    assert.not.ok(existsSync(`${path}.lock`), 'lock released');
    const r = runCli(['reencrypt', path], 'first secret\n');
    assert.is(r.status, 0, r.stderr);
    console.log(`    stopped at sector ${p.done} by SIGINT, resumed`);
  } else {
    assert.is(code, 0, 'finished before the signal was seen');
    console.log('    finished before SIGINT was seen');
  }
  assert.equal(await readAll(path, 'first secret'), data);
});

test.after(cleanup);
test.run();
