// Opening: wrong passphrase, busy lock, header repair, both copies damaged, truncation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createVolume, inspectVolume, openVolume } from '../../src/index.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'pass-one';

async function fresh(name: string): Promise<string> {
  const path = join(dir, name);
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.write(0, Buffer.from('hello'));
  await v.close();
  return path;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    await (v as { close?: () => Promise<void> }).close?.();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

function smash(path: string, offset: number, length = 4096): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(length), 0, length, offset);
  closeSync(fd);
}

test('wrong passphrase is WRONG_PASSPHRASE', async () => {
  const path = await fresh('wrong.img');
  assert.is(await codeOf(openVolume(path, { passphrase: 'nope' })), 'WRONG_PASSPHRASE');
});

test('a second read-write open is VOLUME_BUSY; an old-style .lock file is ignored', async () => {
  const path = await fresh('busy.img');
  const v = await openVolume(path, { passphrase: PASS });
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'VOLUME_BUSY');
  // A read-only open excludes writers (shared lock) unless it reads only the header.
  assert.is(await codeOf(openVolume(path, { passphrase: PASS, readOnly: true })), 'VOLUME_BUSY');
  const header = openVolume(path, { passphrase: PASS, readOnly: true, lock: 'none' });
  assert.is(await codeOf(header), 'ok');
  await v.close();
  // Two read-only opens share; a writer is refused while they are open.
  const r1 = await openVolume(path, { passphrase: PASS, readOnly: true });
  assert.is(await codeOf(openVolume(path, { passphrase: PASS, readOnly: true })), 'ok');
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'VOLUME_BUSY');
  await r1.close();
  // SPEC §9.2: a `.lock` file of an earlier version, even naming a live process, is no lock.
  const { writeFileSync } = await import('node:fs');
  writeFileSync(`${path}.lock`, JSON.stringify({ pid: process.pid, start: '1' }));
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'ok');
});

for (const [copy, offset] of [
  ['A', 0],
  ['B', 32768],
] as const) {
  test(`damaged copy ${copy} is repaired on the next read-write open`, async () => {
    const path = await fresh(`repair-${copy}.img`);
    smash(path, offset);
    const before = await inspectVolume(path);
    assert.is(before.copies[copy].status, 'corrupt');
    const v = await openVolume(path, { passphrase: PASS });
    assert.equal(Buffer.from(await v.read(0, 5)).toString(), 'hello');
    await v.close();
    const after = await inspectVolume(path);
    assert.is(after.copies.A.status, 'ok');
    assert.is(after.copies.B.status, 'ok');
    assert.equal(after.repair, []);
  });
}

test('both copies damaged: NO_VALID_HEADER, never WRONG_PASSPHRASE', async () => {
  const path = await fresh('both.img');
  smash(path, 0);
  smash(path, 32768);
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'NO_VALID_HEADER');
  assert.is(await codeOf(openVolume(path, { passphrase: 'nope' })), 'NO_VALID_HEADER');
});

test('truncated container: TRUNCATED; garbage file: NO_VALID_HEADER', async () => {
  const path = await fresh('trunc.img');
  truncateSync(path, (13 << 20) + 4096); // one sector into the data area (SPEC §2)
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'TRUNCATED');
  truncateSync(path, 100);
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'NO_VALID_HEADER');
  const junk = join(dir, 'junk.img');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(junk, randomBytes(6 * 1024 * 1024));
  assert.is(await codeOf(openVolume(junk, { passphrase: PASS })), 'NO_VALID_HEADER');
});

test('a tampered header (checksum recomputed) is HEADER_TAMPERED after unlock', async () => {
  const path = await fresh('tamper.img');
  const { sha256 } = await import('../../crypto/hkdf.js');
  for (const offset of [0, 32768]) {
    const raw = readFileSync(path);
    const copy = new Uint8Array(raw.subarray(offset, offset + 4096));
    copy[16] = copy[16]! + 5; // raise seqid by 5 in both copies
    copy.set(sha256(copy.subarray(0, 4064)), 4064);
    const fd = openSync(path, 'r+');
    writeSync(fd, copy, 0, 4096, offset);
    closeSync(fd);
  }
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'HEADER_TAMPERED');
});

/** Overwrite copy `offset`'s MAC with other bytes and recompute its checksum (SPEC §3). */
async function breakMac(path: string, offset: number): Promise<void> {
  const { sha256 } = await import('../../crypto/hkdf.js');
  const raw = readFileSync(path);
  const copy = new Uint8Array(raw.subarray(offset, offset + 4096));
  copy[4032] = copy[4032]! ^ 0x01;
  copy.set(sha256(copy.subarray(0, 4064)), 4064);
  const fd = openSync(path, 'r+');
  writeSync(fd, copy, 0, 4096, offset);
  closeSync(fd);
}

test('copy A with a valid checksum but a bad MAC: copy B is used and A repaired (SPEC §8 step 7)', async () => {
  const path = await fresh('mac-a.img');
  await breakMac(path, 0);
  const before = await inspectVolume(path);
  assert.is(before.copies.A.status, 'ok'); // the checksum alone cannot tell
  // Read-only: opens from B, writes nothing.
  const ro = await openVolume(path, { passphrase: PASS, readOnly: true });
  assert.equal(ro.openedFrom, { winner: 'B', repaired: [] });
  assert.is(Buffer.from(await ro.read(0, 5)).toString(), 'hello');
  await ro.close();
  const { repairVolume } = await import('../../src/index.js');
  const report = await repairVolume(path, { passphrase: PASS });
  assert.is(report.winner, 'B');
  assert.equal(
    report.repaired.map((r) => [r.copy, r.was, r.reason?.code]),
    [['A', 'corrupt', 'HEADER_TAMPERED']],
  );
  // A now authenticates by itself: a volume whose B is destroyed still opens.
  smash(path, 32768);
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  assert.equal(v.openedFrom, { winner: 'A', repaired: [] });
  assert.is(Buffer.from(await v.read(0, 5)).toString(), 'hello');
  await v.close();
});

test('bad MAC on the newer copy, older copy with other keyslots: the older one is unlocked', async () => {
  const path = await fresh('mac-stale.img');
  const oldB = readFileSync(path).subarray(32768, 32768 + 4096);
  const { addKeyslot } = await import('../../src/index.js');
  const v = await openVolume(path, { passphrase: PASS });
  await addKeyslot(v, { passphrase: 'second' }, { kdf: TEST_KDF });
  await v.close();
  const fd = openSync(path, 'r+');
  writeSync(fd, oldB, 0, 4096, 32768); // B back to seqid 1, one keyslot
  closeSync(fd);
  await breakMac(path, 0); // A (seqid 2, two keyslots) wins by seqid but fails its MAC
  const again = await openVolume(path, { passphrase: PASS });
  assert.equal(again.openedFrom, { winner: 'B', repaired: ['A'] });
  assert.is(again.header.seqid, 1);
  await again.close();
  // Only the authentic copy's keyslots count: the key added in the failed copy is gone.
  assert.is(await codeOf(openVolume(path, { passphrase: 'second' })), 'WRONG_PASSPHRASE');
  const after = await inspectVolume(path);
  assert.is(after.copies.A.status, 'ok');
  assert.is(after.copies.B.status, 'ok');
});

test('bad MAC and the other copy invalid or failing too: HEADER_TAMPERED', async () => {
  const path = await fresh('mac-both.img');
  await breakMac(path, 0);
  await breakMac(path, 32768);
  assert.is(await codeOf(openVolume(path, { passphrase: PASS })), 'HEADER_TAMPERED');
  const other = await fresh('mac-smashed.img');
  await breakMac(other, 0);
  smash(other, 32768);
  assert.is(await codeOf(openVolume(other, { passphrase: PASS })), 'HEADER_TAMPERED');
});

test('not found is NOT_FOUND', async () => {
  assert.is(await codeOf(openVolume(join(dir, 'none.img'), { passphrase: PASS })), 'NOT_FOUND');
});

test('create refuses an existing file without force; force replaces it', async () => {
  const path = await fresh('exists.img');
  assert.is(
    await codeOf(createVolume(path, { passphrase: 'x', sizeBytes: 1 << 20, kdf: TEST_KDF })),
    'FILE_EXISTS',
  );
  assert.is(
    await codeOf(
      createVolume(path, { passphrase: 'x', sizeBytes: 1 << 20, kdf: TEST_KDF, force: true }),
    ),
    'ok',
  );
  assert.is(await codeOf(openVolume(path, { passphrase: 'x' })), 'ok');
});

test('KDF parameters above the limits are refused at creation', async () => {
  const code = await codeOf(
    createVolume(join(dir, 'kdf.img'), {
      passphrase: 'x',
      sizeBytes: 1 << 20,
      kdf: { timeCost: 1, memoryKiB: 8 * 1024 * 1024, parallelism: 1 },
    }),
  );
  assert.is(code, 'KDF_LIMITS');
});

test.after(cleanup);
test.run();
