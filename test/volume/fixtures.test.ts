// Frozen volumes from each released format version stay readable forever (ARCHITECTURE.md §7).
// test/fixtures/v1-*.img were written once by format v1 and must never be regenerated: if this
// test fails, the reader broke compatibility.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectVolume, openVolume } from '../../src/index.js';
import { startReencrypt } from '../../src/volume/reencrypt.js';
import {
  readHeaderBackup,
  restoreHeaderBackup,
  writeHeaderBackup,
} from '../../src/volume/backup.js';
import { addKeyslot } from '../../src/volume/keyslots.js';
import { keyGenerationOf } from '../../volume-format/header.js';
import { TEST_KDF } from '../helpers/tmp.js';
import { growVolumeData } from '../../src/volume/resize.js';
import { planResize } from '../../volume-format/resize.js';

const FIXTURES = new URL('../../../test/fixtures/', import.meta.url).pathname;
/** SPEC §12.4: the fixtures' passphrase (21 bytes of UTF-8, no line ending). */
const PASSPHRASE = 'fixture v1 passphrase';
/** SHA-256 of the whole 64 KiB decrypted drive of every v1 fixture. */
const DRIVE_SHA256 = '8285445e77d2a5d0dac342a3d570ed130be89c8a03ab9c6747bccdf565cbcb58';

for (const name of ['v1-sector4096.img', 'v1-sector512.img']) {
  test(`${name} opens and reads back its frozen content`, async () => {
    const path = FIXTURES + name;
    const choice = await inspectVolume(path);
    assert.is(choice.copies.A.status, 'ok');
    assert.is(choice.copies.B.status, 'ok');
    const v = await openVolume(path, { passphrase: PASSPHRASE, readOnly: true });
    try {
      assert.is(v.sizeBytes, 64 * 1024);
      const drive = await v.read(0, v.sizeBytes);
      assert.is(createHash('sha256').update(drive).digest('hex'), DRIVE_SHA256);
      assert.match(
        Buffer.from(await v.read(1000, 31)).toString(),
        'line 0 of the frozen v1 fixture',
      );
    } finally {
      await v.close();
    }
  });
}

test('the fixtures refuse a wrong passphrase', async () => {
  try {
    await openVolume(FIXTURES + 'v1-sector4096.img', { passphrase: 'wrong', readOnly: true });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'WRONG_PASSPHRASE');
  }
});

test('a fixture (3 MiB journal of earlier writers, SPEC §2) re-encrypts and resizes', async () => {
  // On a copy: the fixtures themselves never change.
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-fixture-'));
  try {
    const path = join(dir, 'copy.img');
    copyFileSync(FIXTURES + 'v1-sector4096.img', path);
    const report = await startReencrypt(path, {
      keep: new Map([[0, { passphrase: PASSPHRASE }]]),
      segmentBytes: 16 * 1024,
    });
    assert.ok(report.finished);
    const rw = await openVolume(path, { passphrase: PASSPHRASE });
    try {
      await growVolumeData(rw, planResize(rw.header, { kind: 'grow', bytes: 64 * 1024 }));
    } finally {
      await rw.close();
    }
    const v = await openVolume(path, { passphrase: PASSPHRASE, readOnly: true });
    try {
      assert.is(v.sizeBytes, 128 * 1024);
      const drive = await v.read(0, 64 * 1024);
      assert.is(createHash('sha256').update(drive).digest('hex'), DRIVE_SHA256);
    } finally {
      await v.close();
    }
    assert.is(statSync(path).size, (4 << 20) + 128 * 1024, 'the 4 MiB data offset is kept');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fixture (revision 1.0, key generation 0) restores its own backup; after a 1.1 re-encryption that backup is stale', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-fixture-'));
  try {
    const path = join(dir, 'copy.img');
    const hdr = join(dir, 'copy.hdr');
    copyFileSync(FIXTURES + 'v1-sector512.img', path);
    assert.is(keyGenerationOf((await inspectVolume(path)).fields), 0);
    await writeHeaderBackup(path, hdr);
    const v = await openVolume(path, { passphrase: PASSPHRASE });
    try {
      await addKeyslot(v, { passphrase: 'later' }, { kdf: TEST_KDF });
    } finally {
      await v.close();
    }
    const backup = await readHeaderBackup(hdr);
    await restoreHeaderBackup(path, backup); // same generation (0): no force needed
    assert.is((await inspectVolume(path)).fields.seqid, 1, 'the backup is back');
    const r = await openVolume(path, { passphrase: PASSPHRASE, readOnly: true });
    try {
      const drive = await r.read(0, r.sizeBytes);
      assert.is(createHash('sha256').update(drive).digest('hex'), DRIVE_SHA256);
    } finally {
      await r.close();
    }
    await startReencrypt(path, { keep: new Map([[0, { passphrase: PASSPHRASE }]]) });
    assert.is(keyGenerationOf((await inspectVolume(path)).fields), 1);
    const w = await openVolume(path, { passphrase: PASSPHRASE });
    try {
      await addKeyslot(w, { passphrase: 'after' }, { kdf: TEST_KDF });
    } finally {
      await w.close();
    }
    assert.is(keyGenerationOf((await inspectVolume(path)).fields), 1, 'a key change keeps it');
    try {
      await restoreHeaderBackup(path, backup);
      assert.unreachable('a pre-re-encryption backup must be refused');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'BACKUP_STALE');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
