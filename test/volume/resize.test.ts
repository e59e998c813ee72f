// SPEC §16 at the volume level: grow fills the new sectors with encrypted zeros before the
// header counts them, shrink updates the header before truncating. A crash at every write
// (whole or torn) leaves a volume that opens with the old or the new size and intact data,
// and running the same resize again completes it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { planResize } from '../../volume-format/resize.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { growVolumeData, shrinkVolumeData } from '../../src/volume/resize.js';
import { createVolume, openVolume } from '../../src/index.js';
import { FaultStorage, SimulatedCrash } from '../helpers/fault-storage.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'resize passphrase';
const MiB = 1 << 20;

async function base(name: string, size: number): Promise<{ path: string; data: Uint8Array }> {
  const path = join(dir, name);
  const v = await createVolume(path, { passphrase: PASS, sizeBytes: size, kdf: TEST_KDF });
  const data = new Uint8Array(randomBytes(size));
  await v.write(0, data);
  await v.close();
  return { path, data };
}

async function resizeWith(path: string, newSize: number, storage?: FaultStorage): Promise<boolean> {
  const v = await openVolume(path, { passphrase: PASS, ...(storage ? { storage } : {}) });
  try {
    const plan = planResize(v.header, { kind: 'absolute', bytes: newSize });
    if (plan.direction === 'grow') await growVolumeData(v, plan);
    else if (plan.direction === 'shrink') await shrinkVolumeData(v, plan);
    return true;
  } catch (err) {
    assert.instance(err, SimulatedCrash);
    return false;
  } finally {
    await v.close().catch(() => undefined);
  }
}

async function contents(path: string): Promise<Uint8Array> {
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  try {
    return await v.read(0, v.sizeBytes);
  } finally {
    await v.close();
  }
}

test('grow: crash at every write leaves the old or the new size; new space reads as zeros', async () => {
  const { path: src, data } = await base('grow-base.img', 2 * MiB);
  const path = join(dir, 'grow.img');
  let points = 0;
  const sizes = new Set<number>();
  for (const torn of [false, true]) {
    for (let crashAt = 0; ; crashAt++) {
      copyFileSync(src, path);
      const fault = new FaultStorage(await FileStorage.open(path), crashAt, torn);
      const done = await resizeWith(path, 5 * MiB, fault);
      const now = await contents(path);
      sizes.add(now.length);
      assert.ok(now.length === 2 * MiB || now.length === 5 * MiB, `size ${now.length}`);
      assert.equal(now.subarray(0, 2 * MiB), data, 'old data intact');
      assert.ok(
        now.subarray(2 * MiB).every((b) => b === 0),
        'new space reads as zeros',
      );
      if (done) break;
      points++;
      assert.ok(await resizeWith(path, 5 * MiB), 'running it again completes');
      assert.is((await contents(path)).length, 5 * MiB);
    }
  }
  console.log(`    grow: ${points} crash points`);
  assert.ok(points >= 2 * (3 + 2), 'fill writes and both header copies');
  assert.equal([...sizes].sort(), [2 * MiB, 5 * MiB]);
  // The new sectors are ciphertext like any other: no run of zero bytes in the container.
  const file = readFileSync(path);
  assert.is(file.subarray(13 * MiB).indexOf(Buffer.alloc(64)), -1); // data area: SPEC §2
});

test('shrink: header first, then truncate; a crash leaves the old or new size, data intact', async () => {
  const { path: src, data } = await base('shrink-base.img', 3 * MiB);
  const path = join(dir, 'shrink.img');
  let points = 0;
  for (const torn of [false, true]) {
    for (let crashAt = 0; ; crashAt++) {
      copyFileSync(src, path);
      const done = await resizeWith(
        path,
        1 * MiB,
        new FaultStorage(await FileStorage.open(path), crashAt, torn),
      );
      const now = await contents(path);
      assert.ok(now.length === 3 * MiB || now.length === 1 * MiB, `size ${now.length}`);
      assert.equal(now, data.subarray(0, now.length));
      if (done) break;
      points++;
      assert.ok(await resizeWith(path, 1 * MiB));
    }
    assert.is(statSync(path).size, 13 * MiB + 1 * MiB, 'truncated'); // data at 13 MiB
  }
  console.log(`    shrink: ${points} crash points`);
  assert.ok(points >= 4);
});

test.after(cleanup);
test.run();
