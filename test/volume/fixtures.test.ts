// Frozen volumes from each released format version stay readable forever (ARCHITECTURE §7).
// test/fixtures/v1-*.img were written once by format v1 and must never be regenerated: if this
// test fails, the reader broke compatibility.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { inspectVolume, openVolume } from '../../src/index.js';

const FIXTURES = new URL('../../../test/fixtures/', import.meta.url).pathname;
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

test.run();
