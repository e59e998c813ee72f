// Issue 4 acceptance, as a new user would run it: passphrases and keyfiles (add-key,
// change-key, remove-key), header backup and restore after both header copies are destroyed,
// repair, and the refusal to restore another volume's backup (exit codes: README table).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openVolume } from '../../src/index.js';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const keyfile = join(dir, 'my.key');
writeFileSync(keyfile, randomBytes(512));
const passFile = join(dir, 'pass');
writeFileSync(passFile, 'file-pass\n');
/** Data written through the library before the key changes, checked at the end. */
const DATA = [
  { offset: 0, bytes: randomBytes(4096 * 3 + 17) },
  { offset: 5_000_000, bytes: randomBytes(70_000) },
];

const hash = (path: string): string =>
  createHash('sha256').update(readFileSync(path)).digest('hex');

function ok(args: string[], input = ''): string {
  const r = runCli(args, input);
  assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function fails(args: string[], input: string, status: number, stderr?: RegExp): string {
  const r = runCli(args, input);
  assert.is(
    r.status,
    status,
    `${args.join(' ')}: expected ${status}, got ${r.status}: ${r.stderr}`,
  );
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('cryptainer: '));
  assert.is(lines.length, 1, `one error line: ${r.stderr}`);
  if (stderr) assert.match(r.stderr, stderr);
  return r.stderr;
}

function smashHeaders(path: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(4096), 0, 4096, 0);
  writeSync(fd, randomBytes(4096), 0, 4096, 32768);
  closeSync(fd);
}

async function dataIntact(path: string, passphrase: string): Promise<void> {
  const v = await openVolume(path, { passphrase, readOnly: true });
  try {
    for (const d of DATA) {
      const got = Buffer.from(await v.read(d.offset, d.bytes.length));
      assert.ok(got.equals(d.bytes), `data at ${d.offset} intact`);
    }
  } finally {
    await v.close();
  }
}

test('acceptance: passphrases, keyfile, change, remove, backup, destroy, restore', async () => {
  const vol = join(dir, 'vol.img');
  ok(['create', vol, '--size', '8M', ...CHEAP_KDF], 'pass-A\n');
  const w = await openVolume(vol, { passphrase: 'pass-A' });
  for (const d of DATA) await w.write(d.offset, d.bytes);
  await w.close();

  // add B (existing passphrase first, then the new one), then a keyfile-only keyslot
  assert.match(ok(['add-key', vol, ...CHEAP_KDF], 'pass-A\npass-B\n'), /added keyslot 1/);
  assert.match(
    ok(['add-key', vol, '--new-key-file', keyfile, ...CHEAP_KDF], 'pass-B\n'),
    /keyslot 2/,
  );
  const info = JSON.parse(ok(['info', vol, '--json']));
  assert.equal(
    info.keyslots.map((s: { state: string }) => s.state),
    ['active', 'active', 'active', 'inactive', 'inactive', 'inactive', 'inactive', 'inactive'],
  );

  // each unlocks
  assert.match(ok(['check', vol], 'pass-A\n'), /keyslot 0/);
  assert.match(ok(['check', vol], 'pass-B\n'), /keyslot 1/);
  assert.match(ok(['check', vol, '--key-file', keyfile]), /keyslot 2/);

  // change A to C; remove B (the slot its passphrase opens)
  assert.match(ok(['change-key', vol], 'pass-A\npass-C\n'), /changed keyslot 0/);
  assert.match(ok(['remove-key', vol], 'pass-B\n'), /removed keyslot 1/);

  // A and B fail with the wrong-passphrase code; C and the keyfile work
  fails(['check', vol], 'pass-A\n', 2);
  fails(['check', vol], 'pass-B\n', 2);
  assert.match(ok(['check', vol], 'pass-C\n'), /keyslot 0/);
  assert.match(ok(['check', vol, '--key-file', keyfile]), /keyslot 2/);
  await dataIntact(vol, 'pass-C');

  // backup the header: mode 0600, refuses to overwrite, verifies
  const bk = join(dir, 'vol.header');
  const made = runCli(['header-backup', vol, bk]);
  assert.is(made.status, 0, made.stderr);
  assert.match(made.stderr, /still unlock the volume after restoring it/);
  assert.is(statSync(bk).mode & 0o777, 0o600);
  const bkBytes = readFileSync(bk);
  fails(['header-backup', vol, bk], '', 1, /exists/);
  assert.ok(bkBytes.equals(readFileSync(bk)));
  assert.match(ok(['header-backup', '--verify', bk, vol]), /matches/);

  // destroy both header copies: "no valid header", exit 4, never a passphrase error
  smashHeaders(vol);
  const dead = fails(['check', vol], 'pass-C\n', 4, /no valid header/);
  assert.not.match(dead, /passphrase/);
  fails(['info', vol], '', 4, /no valid header/);
  fails(['repair', vol], 'pass-C\n', 4, /header-restore/);

  // restore: refused off a terminal without --yes, then done with --yes
  const before = hash(vol);
  fails(['header-restore', vol, bk], '', 1, /--yes/);
  assert.is(hash(vol), before, 'nothing written without confirmation');
  const restored = runCli(['header-restore', vol, bk, '--yes']);
  assert.is(restored.status, 0, restored.stderr);
  assert.match(restored.stderr, /WARNING: .*no valid header/);
  assert.match(restored.stdout, /restored both header copies/);

  // C works, the keyfile works, A and B still fail, data written before is intact
  assert.match(ok(['check', vol], 'pass-C\n'), /keyslot 0/);
  assert.match(ok(['check', vol, '--key-file', keyfile]), /keyslot 2/);
  fails(['check', vol], 'pass-A\n', 2);
  fails(['check', vol], 'pass-B\n', 2);
  await dataIntact(vol, 'pass-C');
  const after = JSON.parse(ok(['info', vol, '--json']));
  assert.is(after.headerCopies.A.status, 'ok');
  assert.is(after.headerCopies.B.status, 'ok');
});

test("restoring another volume's backup is refused and the container is unchanged", () => {
  const one = join(dir, 'one.img');
  const two = join(dir, 'two.img');
  ok(['create', one, '--size', '4M', ...CHEAP_KDF], 'one\n');
  ok(['create', two, '--size', '4M', ...CHEAP_KDF], 'two\n');
  const bk = join(dir, 'two.header');
  ok(['header-backup', two, bk]);
  const before = hash(one);
  const err = fails(['header-restore', one, bk, '--yes'], '', 4, /belongs to another volume/);
  assert.match(err, /uuid/);
  assert.is(hash(one), before, 'container unchanged');
  fails(['header-backup', '--verify', bk, one], '', 4, /another volume/);
  ok(['check', one], 'one\n');
  const json = JSON.parse(ok(['header-backup', '--verify', bk, two, '--json']));
  assert.is(json.matches, true);
  assert.is(json.intact, true);
});

test('bad backups: garbage, damaged, truncated (exit 4), missing (exit 6)', () => {
  const vol = join(dir, 'bb.img');
  ok(['create', vol, '--size', '4M', ...CHEAP_KDF], 'bb\n');
  const bk = join(dir, 'bb.header');
  ok(['header-backup', vol, bk]);
  const junk = join(dir, 'junk.header');
  writeFileSync(junk, randomBytes(8736));
  fails(['header-backup', '--verify', junk], '', 4, /not a cryptainer header backup/);
  const damaged = readFileSync(bk);
  damaged[1000]! ^= 4;
  writeFileSync(junk, damaged);
  fails(['header-restore', vol, junk, '--yes'], '', 4, /checksum/);
  writeFileSync(junk, readFileSync(bk).subarray(0, 8000));
  fails(['header-backup', '--verify', junk, vol], '', 4, /length/);
  fails(['header-backup', '--verify', join(dir, 'nope')], '', 6);
  fails(['header-backup', vol], '', 1, /missing BACKUP/);
});

test('repair: reports what it rewrote, nothing to do on a healthy volume, no passphrase needed then', () => {
  const vol = join(dir, 'rep.img');
  ok(['create', vol, '--size', '4M', ...CHEAP_KDF], 'rep\n');
  assert.match(ok(['repair', vol]), /nothing to repair/);
  const fd = openSync(vol, 'r+');
  writeSync(fd, randomBytes(4096), 0, 4096, 32768);
  closeSync(fd);
  assert.is(JSON.parse(ok(['info', vol, '--json'])).headerCopies.B.status, 'corrupt');
  fails(['repair', vol], 'wrong\n', 2);
  assert.is(JSON.parse(ok(['info', vol, '--json'])).headerCopies.B.status, 'corrupt');
  const out = ok(['repair', vol], 'rep\n');
  assert.match(out, /header copy B was corrupt \(HEADER_\w+: .*\): rewritten from copy A/);
  assert.is(JSON.parse(ok(['info', vol, '--json'])).headerCopies.B.status, 'ok');
});

test('remove-key: --slot, the last keyslot needs --force, inactive slots are refused', () => {
  const vol = join(dir, 'rm.img');
  ok(['create', vol, '--size', '4M', ...CHEAP_KDF], 'first\n');
  fails(['remove-key', vol], 'first\n', 1, /last/);
  ok(['add-key', vol, '--slot', '6', ...CHEAP_KDF], 'first\nsecond\n');
  fails(['remove-key', vol, '--slot', '3'], 'first\n', 1, /not in use/);
  fails(['remove-key', vol, '--slot', '9'], 'first\n', 1);
  fails(['remove-key', vol, '--slot', '6'], 'wrong\n', 2);
  const json = JSON.parse(ok(['remove-key', vol, '--slot', '6', '--json'], 'first\n'));
  assert.equal(json, { path: vol, removedKeyslot: 6, activeKeyslots: [0] });
  fails(['check', vol], 'second\n', 2);
  const forced = runCli(['remove-key', vol, '--force'], 'first\n');
  assert.is(forced.status, 0, forced.stderr);
  assert.match(forced.stderr, /WARNING: no keyslot is left/);
  fails(['check', vol], 'first\n', 2);
});

test('keyfiles with create, add-key and change-key; passphrase files; --slot', () => {
  const vol = join(dir, 'kf.img');
  const kf2 = join(dir, 'second.key');
  writeFileSync(kf2, randomBytes(64));
  // create with passphrase + keyfile: both are needed
  ok(['create', vol, '--size', '4M', '--key-file', keyfile, ...CHEAP_KDF], 'both\n');
  ok(['check', vol, '--key-file', keyfile], 'both\n');
  fails(['check', vol], 'both\n', 2);
  fails(['check', vol, '--key-file', keyfile], '', 2);
  // new slot from a passphrase file plus two keyfiles (order does not matter on unlock)
  ok(
    [
      'add-key',
      vol,
      '--key-file',
      keyfile,
      '--new-passphrase-file',
      passFile,
      '--new-key-file',
      kf2,
      '--new-key-file',
      keyfile,
      ...CHEAP_KDF,
    ],
    'both\n',
  );
  ok(['check', vol, '--passphrase-file', passFile, '--key-file', keyfile, '--key-file', kf2]);
  ok(['check', vol, '--key-file', kf2, '--key-file', keyfile], 'file-pass\n');
  // change the keyfile slot to a plain passphrase, addressing it with --slot
  const changed = JSON.parse(
    ok(
      ['change-key', vol, '--slot', '1', '--key-file', keyfile, '--key-file', kf2, '--json'],
      'file-pass\nplain\n',
    ),
  );
  assert.is(changed.keyslot, 1);
  assert.equal(changed.kdf, { timeCost: 1, memoryKiB: 64, parallelism: 1 }, 'cost kept');
  assert.match(ok(['check', vol], 'plain\n'), /keyslot 1/);
  // --slot on change-key with a passphrase that opens another slot: wrong passphrase
  fails(['change-key', vol, '--slot', '1', '--key-file', keyfile], 'both\nx\n', 2);
  // an empty new passphrase without a keyfile is refused
  fails(['add-key', vol, ...CHEAP_KDF], 'plain\n\n', 1, /empty passphrase/);
  fails(['add-key', vol, '--new-key-file', join(dir, 'missing'), ...CHEAP_KDF], 'plain\n', 6);
});

test('add-key: all slots in use, KDF above the limits, damaged volume fails before prompting', () => {
  const vol = join(dir, 'full.img');
  ok(['create', vol, '--size', '4M', ...CHEAP_KDF], 'p0\n');
  for (let i = 1; i < 8; i++) ok(['add-key', vol, ...CHEAP_KDF], `p0\np${i}\n`);
  fails(['add-key', vol, ...CHEAP_KDF], 'p0\np8\n', 1, /all 8 keyslots are in use/);
  const vol2 = join(dir, 'kdf.img');
  ok(['create', vol2, '--size', '4M', ...CHEAP_KDF], 'p0\n');
  fails(['add-key', vol2, '--kdf-memory', '8G'], 'p0\np1\n', 8);
  writeFileSync(join(dir, 'garbage.img'), randomBytes(5 << 20));
  fails(['add-key', join(dir, 'garbage.img')], '', 4);
  fails(['change-key', join(dir, 'garbage.img')], '', 4);
  fails(['remove-key', join(dir, 'garbage.img')], '', 4);
});

test('--help of every new command; backups are said to keep old passphrases working', () => {
  for (const cmd of [
    'add-key',
    'remove-key',
    'change-key',
    'header-backup',
    'header-restore',
    'repair',
  ]) {
    const r = runCli([cmd, '--help']);
    assert.is(r.status, 0, `${cmd}: ${r.stderr}`);
    assert.match(r.stdout, /Usage:/);
  }
  for (const cmd of ['header-backup', 'header-restore', 'change-key', 'remove-key']) {
    assert.match(
      runCli([cmd, '--help']).stdout.replace(/\s+/g, ' '),
      /still unlock the volume after restoring it/,
    );
  }
});

test.after(cleanup);
test.run();
