// Library round trips: random unaligned writes read back after reopen, and the container
// never holds the plaintext.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createVolume, openVolume } from '../../src/index.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'correct horse battery staple';

for (const sectorSize of [512, 4096]) {
  test(`random unaligned writes survive reopen (${sectorSize}-byte sectors)`, async () => {
    const path = join(dir, `rw-${sectorSize}.img`);
    const size = 2 * 1024 * 1024;
    const v = await createVolume(path, {
      passphrase: PASS,
      sizeBytes: size,
      sectorSize,
      kdf: TEST_KDF,
    });
    const model = new Uint8Array(size); // what the drive should contain
    assert.equal(await v.read(0, 8192), new Uint8Array(8192), 'a new volume reads as zeros');
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      const len = 1 + rand(3 * sectorSize);
      const off = rand(size - len);
      const data = randomBytes(len);
      model.set(data, off);
      // Sequential awaits keep the model's ordering exact.
      await v.write(off, data);
      if (i % 50 === 0) writes.push(v.sync());
    }
    await Promise.all(writes);
    // Edge cases: last byte, whole volume tail.
    const last = randomBytes(1);
    model.set(last, size - 1);
    await v.write(size - 1, last);
    await v.close();
    const again = await openVolume(path, { passphrase: PASS });
    assert.equal(await again.read(0, size), model);
    const piece = await again.read(777, 5000);
    assert.equal(piece, model.subarray(777, 5777));
    await again.close();
  });
}

test('concurrent overlapping unaligned writes to one sector keep every byte', async () => {
  const path = join(dir, 'concurrent.img');
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  const model = new Uint8Array(4096);
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 64; i++) {
    const data = new Uint8Array(64).fill(i + 1);
    model.set(data, i * 64);
    jobs.push(v.write(i * 64, data)); // all in flight at once, all within sector 0
  }
  await Promise.all(jobs);
  assert.equal(await v.read(0, 4096), model);
  await v.close();
});

test('the container holds none of the plaintext written', async () => {
  const path = join(dir, 'canary.img');
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  const canary = Buffer.from('CANARY-cryptainer-plaintext-0123456789-'.repeat(200));
  await v.write(4096 * 3 + 5, canary);
  await v.write(100, Buffer.from('SECRET-NEEDLE-XYZ'));
  await v.close();
  const raw = readFileSync(path);
  assert.is(raw.indexOf('CANARY-cryptainer'), -1);
  assert.is(raw.indexOf('SECRET-NEEDLE'), -1);
  assert.is(raw.indexOf(Buffer.from(PASS)), -1);
});

test('container is created with mode 0600 and the layout size', async () => {
  const path = join(dir, 'mode.img');
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
  const st = statSync(path);
  assert.is(st.mode & 0o777, 0o600);
  assert.is(st.size, (13 << 20) + (1 << 20)); // SPEC §2: the data area starts at 13 MiB
});

test('out-of-range and read-only access is refused', async () => {
  const path = join(dir, 'ro.img');
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
  const ro = await openVolume(path, { passphrase: PASS, readOnly: true });
  try {
    await ro.write(0, new Uint8Array(1));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'READ_ONLY');
  }
  try {
    await ro.read((1 << 20) - 10, 11);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RangeError);
  }
  await ro.close();
});

test.after(cleanup);
test.run();
