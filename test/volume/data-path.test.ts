// The mounted drive's data path (issue 6): readInto (straight into the caller's buffer) and
// synchronous I/O limits. Every mode must give the same bytes as the plain asynchronous path,
// with concurrent reads and writes in flight.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createVolume, openVolume } from '../../src/index.js';
import type { Volume } from '../../src/volume/volume.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'data path';
const SIZE = 2 * 1024 * 1024;
let n = 0;

async function fresh(sectorSize = 4096): Promise<{ v: Volume; path: string }> {
  const path = join(dir, `v${n++}.img`);
  const v = await createVolume(path, {
    passphrase: PASS,
    sizeBytes: SIZE,
    sectorSize,
    kdf: TEST_KDF,
  });
  return { v, path };
}

/** A deterministic generator, so a failure can be replayed. */
function rng(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
}

type Mode = 'async' | 'sync';

function configure(v: Volume, mode: Mode): void {
  if (mode === 'sync') v.setSyncIo({ readMaxBytes: 1 << 20, writeMaxBytes: 1 << 20 });
}

for (const mode of ['async', 'sync'] as Mode[]) {
  for (const sectorSize of [512, 4096]) {
    test(`${mode}, ${sectorSize}-byte sectors: random reads and writes match a model`, async () => {
      const { v, path } = await fresh(sectorSize);
      configure(v, mode);
      const model = new Uint8Array(SIZE);
      const rand = rng(sectorSize + mode.length);
      const inFlight: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        const aligned = rand(2) === 0;
        const len = aligned ? sectorSize * (1 + rand(40)) : 1 + rand(3 * sectorSize);
        const off = aligned ? sectorSize * rand(SIZE / sectorSize - 40) : rand(SIZE - len);
        if (rand(3) === 0) {
          // Reads check the model at the moment they are issued: earlier writes are visible.
          const expected = model.slice(off, off + len);
          const target = new Uint8Array(len + 2).fill(0xee); // guard bytes around the window
          inFlight.push(
            v.readInto(off, target.subarray(1, 1 + len)).then((done) => {
              assert.ok(done);
              assert.equal(target.subarray(1, 1 + len), expected, `read ${off}+${len}`);
              assert.is(target[0], 0xee);
              assert.is(target[len + 1], 0xee);
            }),
          );
        } else {
          const data = new Uint8Array(randomBytes(len));
          model.set(data, off);
          inFlight.push(v.write(off, data));
        }
        if (i % 7 === 0) await Promise.all(inFlight.splice(0));
      }
      await Promise.all(inFlight);
      assert.equal(await v.read(0, SIZE), model);
      await v.close();
      const again = await openVolume(path, { passphrase: PASS });
      assert.equal(await again.read(0, SIZE), model, 'after reopen');
      await again.close();
    });
  }
}

test('readInto can be abandoned after a wait, leaving the target untouched', async () => {
  const { v } = await fresh();
  await v.write(0, new Uint8Array(8192).fill(1));
  const target = new Uint8Array(8192).fill(9);
  // Async mode: the read awaits its I/O, then asks; "yes, abandoned" must leave target alone.
  const done = await v.readInto(0, target, { abandoned: () => true });
  assert.is(done, false);
  assert.equal(target, new Uint8Array(8192).fill(9));
  await v.close();
});

test.after(cleanup);
test.run();
