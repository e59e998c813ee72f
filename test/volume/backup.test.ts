// SPEC §13 and §8: writing, reading and restoring header backups through the library, and
// explicit repair with its report.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '../../src/io/file-storage.js';
import { createVolume, inspectVolume, openVolume } from '../../src/index.js';
import {
  planRestoreTarget,
  readHeaderBackup,
  restoreHeaderBackup,
  writeHeaderBackup,
} from '../../src/volume/backup.js';
import { addKeyslot, changeKeyslot } from '../../src/volume/keyslots.js';
import { repairVolume } from '../../src/volume/repair.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const A = { passphrase: 'alpha' };
const B = { passphrase: 'bravo' };
let n = 0;

async function fresh(sizeBytes = 1 << 20): Promise<string> {
  const path = join(dir, `v${n++}.img`);
  const v = await createVolume(path, { ...A, sizeBytes, kdf: TEST_KDF });
  await v.write(0, Buffer.from('payload'));
  await v.close();
  return path;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function opensWith(path: string, secret: { passphrase: string }): Promise<boolean> {
  try {
    const v = await openVolume(path, { ...secret, readOnly: true });
    assert.is(Buffer.from(await v.read(0, 7)).toString(), 'payload');
    await v.close();
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'WRONG_PASSPHRASE') return false;
    throw err;
  }
}

function smash(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, randomBytes(4096), 0, 4096, offset);
  closeSync(fd);
}

const hash = (path: string): string =>
  createHash('sha256').update(readFileSync(path)).digest('hex');

test('backup: mode 0600, 8736 bytes, never overwrites, no temporary file left', async () => {
  const path = await fresh();
  const bk = join(dir, 'one.backup');
  const backup = await writeHeaderBackup(path, bk);
  assert.is(statSync(bk).mode & 0o777, 0o600);
  assert.is(statSync(bk).size, 8736);
  assert.is(backup.fields.seqid, 1);
  const before = readFileSync(bk);
  assert.is(await codeOf(writeHeaderBackup(path, bk)), 'FILE_EXISTS');
  assert.ok(before.equals(readFileSync(bk)), 'existing backup untouched');
  assert.not.ok(readdirSync(dir).some((f) => f.includes('cryptainer-tmp')));
  const read = await readHeaderBackup(bk);
  assert.ok(Buffer.from(read.copies.A).equals(Buffer.from(backup.copies.A)));
  assert.is(
    await codeOf(writeHeaderBackup(join(dir, 'nope.img'), join(dir, 'x.backup'))),
    'NOT_FOUND',
  );
  assert.not.ok(existsSync(join(dir, 'x.backup')));
});

test('backup of an unhealthy header is refused until it is repaired', async () => {
  const path = await fresh();
  smash(path, 32768);
  assert.is(await codeOf(writeHeaderBackup(path, join(dir, 'bad.backup'))), 'USAGE');
  assert.not.ok(existsSync(join(dir, 'bad.backup')));
  smash(path, 0);
  assert.is(await codeOf(writeHeaderBackup(path, join(dir, 'bad.backup'))), 'NO_VALID_HEADER');
});

test('reading: garbage, a huge file, a directory, a damaged backup', async () => {
  const junk = join(dir, 'junk.backup');
  writeFileSync(junk, randomBytes(8736));
  assert.is(await codeOf(readHeaderBackup(junk)), 'BACKUP_INVALID');
  const huge = join(dir, 'huge.backup');
  const path = await fresh();
  await writeHeaderBackup(path, join(dir, 'good.backup'));
  writeFileSync(huge, readFileSync(join(dir, 'good.backup')));
  truncateSync(huge, 1 << 30); // sparse: reading it whole would take a gigabyte
  assert.is(await codeOf(readHeaderBackup(huge)), 'BACKUP_INVALID');
  assert.is(await codeOf(readHeaderBackup(dir)), 'BACKUP_INVALID');
  assert.is(await codeOf(readHeaderBackup(join(dir, 'missing'))), 'NOT_FOUND');
  const damaged = readFileSync(join(dir, 'good.backup'));
  damaged[5000]! ^= 1;
  writeFileSync(join(dir, 'damaged.backup'), damaged);
  assert.is(await codeOf(readHeaderBackup(join(dir, 'damaged.backup'))), 'BACKUP_INVALID');
});

test('restore brings back exactly the keyslots of the backup', async () => {
  const path = await fresh();
  const bk = join(dir, 'restore.backup');
  await writeHeaderBackup(path, bk);
  const v = await openVolume(path, A);
  await addKeyslot(v, B, { kdf: TEST_KDF });
  await changeKeyslot(v, 0, { passphrase: 'new-A' });
  await v.close();
  assert.not.ok(await opensWith(path, A));
  const target = await restoreHeaderBackup(path, await readHeaderBackup(bk));
  assert.is(target.kind, 'match');
  assert.is(target.current?.fields.seqid, 3);
  assert.ok(await opensWith(path, A), 'the old passphrase works again');
  assert.not.ok(await opensWith(path, B), 'the key added after the backup is gone');
  assert.not.ok(await opensWith(path, { passphrase: 'new-A' }));
  const choice = await inspectVolume(path);
  assert.equal(choice.repair, []);
  assert.is(choice.fields.seqid, 1);
});

test("another volume's backup is refused and the container is unchanged", async () => {
  const path = await fresh();
  const other = await fresh();
  const bk = join(dir, 'other.backup');
  await writeHeaderBackup(other, bk);
  const before = hash(path);
  const backup = await readHeaderBackup(bk);
  assert.is(await codeOf(restoreHeaderBackup(path, backup)), 'BACKUP_MISMATCH');
  assert.is(hash(path), before);
  // Same volume, other layout (a bigger file claiming another size): refused too.
  const bigger = await fresh(2 << 20);
  assert.is(await codeOf(restoreHeaderBackup(bigger, backup)), 'BACKUP_MISMATCH');
  // A container shorter than the backup's layout: refused even without a valid header.
  const small = join(dir, 'small.img');
  writeFileSync(small, randomBytes(2 << 20));
  assert.is(await codeOf(restoreHeaderBackup(small, backup)), 'BACKUP_MISMATCH');
});

test('restore onto a destroyed header: unverified target, then every key of the backup works', async () => {
  const path = await fresh();
  const bk = join(dir, 'dead.backup');
  await writeHeaderBackup(path, bk);
  const original = readFileSync(path).subarray(0, 36864);
  smash(path, 0);
  smash(path, 32768);
  assert.is(await codeOf(openVolume(path, A)), 'NO_VALID_HEADER');
  const backup = await readHeaderBackup(bk);
  const storage = await FileStorage.open(path, { readOnly: true });
  const plan = await planRestoreTarget(storage, backup);
  await storage.close();
  assert.is(plan.kind, 'unverified');
  assert.is(plan.headerError?.code, 'NO_VALID_HEADER');
  assert.equal(plan.otherUuids, []);
  await restoreHeaderBackup(path, backup);
  assert.ok(await opensWith(path, A));
  const restored = readFileSync(path);
  assert.ok(restored.subarray(0, 4096).equals(original.subarray(0, 4096)));
  assert.ok(restored.subarray(32768, 36864).equals(original.subarray(32768, 36864)));
});

test('a damaged copy that still names another uuid is reported', async () => {
  const path = await fresh();
  const other = await fresh();
  const bk = join(dir, 'hint.backup');
  await writeHeaderBackup(other, bk);
  // Break both checksums but keep magic and uuid readable.
  const fd = openSync(path, 'r+');
  for (const off of [0, 32768]) writeSync(fd, Buffer.from([0xff]), 0, 1, off + 4064);
  closeSync(fd);
  const storage = await FileStorage.open(path, { readOnly: true });
  const plan = await planRestoreTarget(storage, await readHeaderBackup(bk));
  await storage.close();
  assert.is(plan.kind, 'unverified');
  assert.is(plan.otherUuids.length, 1);
});

test('restore while the volume is open elsewhere: VOLUME_BUSY, nothing written', async () => {
  const path = await fresh();
  const bk = join(dir, 'busy.backup');
  await writeHeaderBackup(path, bk);
  const v = await openVolume(path, A);
  const before = hash(path);
  assert.is(await codeOf(restoreHeaderBackup(path, await readHeaderBackup(bk))), 'VOLUME_BUSY');
  assert.is(hash(path), before);
  await v.close();
});

test('repair reports what it rewrote; a healthy volume needs nothing', async () => {
  const path = await fresh();
  const healthy = await repairVolume(path, A);
  assert.equal(healthy.repaired, []);
  smash(path, 32768);
  const report = await repairVolume(path, A);
  assert.is(report.winner, 'A');
  assert.is(report.repaired.length, 1);
  assert.is(report.repaired[0]!.copy, 'B');
  assert.is(report.repaired[0]!.was, 'corrupt');
  assert.ok(report.repaired[0]!.reason);
  assert.equal((await inspectVolume(path)).repair, []);
  smash(path, 0);
  const fromB = await repairVolume(path, A);
  assert.is(fromB.winner, 'B');
  assert.is(fromB.repaired[0]!.copy, 'A');
  assert.is(await codeOf(repairVolume(path, B)), 'WRONG_PASSPHRASE');
  smash(path, 32768);
  assert.is(await codeOf(repairVolume(path, B)), 'WRONG_PASSPHRASE', 'nothing written');
  assert.is((await inspectVolume(path)).copies.B.status, 'corrupt');
  smash(path, 0);
  assert.is(await codeOf(repairVolume(path, A)), 'NO_VALID_HEADER');
});

test.after(cleanup);
test.run();
