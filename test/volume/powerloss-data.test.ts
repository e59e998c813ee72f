// Issue 12: resize (SPEC §16) and the data path (SPEC §9.4) under the power-loss model. At every
// write, unsynced writes are lost, kept or torn at 512 bytes in several combinations:
// - grow and shrink leave the old or the new size with intact data (new space reads as zeros),
//   and the new size once the operation returned;
// - data written before Volume.sync(), the drive's fsync or flush, or Volume.close() returned is
//   there after the power cut; every sector is the old or the new one (512-byte sectors, so a
//   sector is one block of the model and cannot tear).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { planResize } from '../../volume-format/resize.js';
import { createDriveHandlers, DRIVE_FILE_NAME } from '../../src/drive/drive-ops.js';
import type { Storage } from '../../src/io/storage.js';
import { growVolumeData, shrinkVolumeData } from '../../src/volume/resize.js';
import type { Volume } from '../../src/volume/volume.js';
import { createVolume, openVolume } from '../../src/index.js';
import { type Outcome, describeStats, exploreCrashPoints } from '../helpers/power-loss.js';
import { TEST_KDF, makeMemoryTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeMemoryTempDir();
const PASS = 'power loss passphrase';
const MiB = 1 << 20;
const SECTOR = 512;

async function makeBase(name: string, size: number): Promise<{ path: string; data: Buffer }> {
  const path = join(dir, name);
  const v = await createVolume(path, {
    passphrase: PASS,
    sizeBytes: size,
    sectorSize: SECTOR,
    kdf: TEST_KDF,
  });
  const data = randomBytes(size);
  await v.write(0, data);
  await v.close();
  return { path, data };
}

async function contents(path: string): Promise<Buffer> {
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  try {
    return Buffer.from(await v.read(0, v.sizeBytes));
  } finally {
    await v.close();
  }
}

/** Open `path` through `storage`, apply `fn`, close (a crash makes close throw too). */
async function withVolume(path: string, storage: Storage, fn: (v: Volume) => Promise<void>) {
  const v = await openVolume(path, { passphrase: PASS, storage });
  try {
    await fn(v);
  } finally {
    await v.close().catch(() => undefined);
  }
}

for (const [name, from, to] of [
  ['grow', 2 * MiB, 5 * MiB],
  ['shrink', 3 * MiB, 1 * MiB],
] as const) {
  test(`${name}: power loss at any write leaves the old or the new size, data intact`, async () => {
    const { path: base, data } = await makeBase(`${name}-base.img`, from);
    const stats = await exploreCrashPoints({
      name,
      base,
      dir,
      run: (path, storage) =>
        withVolume(path, storage, async (v) => {
          const plan = planResize(v.header, { kind: 'absolute', bytes: to });
          if (plan.direction === 'grow') await growVolumeData(v, plan);
          else if (plan.direction === 'shrink') await shrinkVolumeData(v, plan);
        }),
      check: async (path, outcome) => {
        const now = await contents(path);
        assert.ok(now.length === from || now.length === to, `size ${now.length}`);
        if (outcome === 'completed') assert.is(now.length, to, 'returned, yet the old size');
        const kept = Math.min(from, now.length);
        assert.ok(now.subarray(0, kept).equals(data.subarray(0, kept)), 'data intact');
        assert.ok(
          now.subarray(kept).every((b) => b === 0),
          'new space reads as zeros',
        );
        return now.length === to ? 'new' : 'old';
      },
    });
    console.log(describeStats(name, stats));
    assert.ok(stats.points >= 3, 'both header copies and the fill or the truncate');
  });
}

/**
 * Two rounds of writes with a durability barrier after each: `sync` (Volume.sync), `fsync` or
 * `flush` (the drive's FUSE handlers) after the first, `close` after the second.
 */
for (const barrier of ['sync', 'fsync', 'flush'] as const) {
  test(`data writes: what ${barrier} and close returned for survives a power cut`, async () => {
    const SIZE = 1 * MiB;
    const { path: base, data: old } = await makeBase(`data-${barrier}.img`, SIZE);
    // Round 1 and round 2 write disjoint sector-aligned ranges.
    const rounds = [
      [
        { offset: 0, bytes: randomBytes(16 * SECTOR) },
        { offset: 300 * SECTOR, bytes: randomBytes(3 * SECTOR) },
      ],
      [
        { offset: 100 * SECTOR, bytes: randomBytes(40 * SECTOR) },
        { offset: SIZE - SECTOR, bytes: randomBytes(SECTOR) },
      ],
    ];
    let barriersPassed = 0;
    const stats = await exploreCrashPoints({
      name: `data ${barrier}`,
      base,
      dir,
      run: async (path, storage) => {
        barriersPassed = 0;
        const v = await openVolume(path, { passphrase: PASS, storage });
        const drive = createDriveHandlers(v, { uid: 0, gid: 0 }).handlers;
        const file = '/' + DRIVE_FILE_NAME;
        try {
          for (const w of rounds[0]!) {
            if (barrier === 'sync') await v.write(w.offset, w.bytes);
            else await drive.write(file, 1, w.bytes, w.bytes.length, w.offset);
          }
          if (barrier === 'sync') await v.sync();
          else if (barrier === 'fsync') await drive.fsync!(file, true, 1);
          else await drive.flush!(file, 1);
          barriersPassed = 1;
          for (const w of rounds[1]!) await v.write(w.offset, w.bytes);
        } catch (err) {
          await v.close().catch(() => undefined);
          throw err;
        }
        await v.close();
        barriersPassed = 2;
      },
      check: async (path, outcome: Outcome) => {
        const now = await contents(path);
        const expectNew = outcome === 'completed' ? 2 : barriersPassed;
        let sawNew = false;
        // Every sector is old or new; sectors written before a barrier that returned are new.
        const expected = Buffer.from(old);
        const allowed = Buffer.from(old);
        rounds.forEach((round, r) => {
          for (const w of round) {
            w.bytes.copy(allowed, w.offset);
            if (r < expectNew) w.bytes.copy(expected, w.offset);
          }
        });
        for (let at = 0; at < SIZE; at += SECTOR) {
          const sector = now.subarray(at, at + SECTOR);
          const isExpected = sector.equals(expected.subarray(at, at + SECTOR));
          const isAllowed = sector.equals(allowed.subarray(at, at + SECTOR));
          assert.ok(isExpected || isAllowed, `sector ${at / SECTOR} is neither old nor new`);
          if (isAllowed && !sector.equals(old.subarray(at, at + SECTOR))) sawNew = true;
        }
        return sawNew ? 'some new' : 'old';
      },
    });
    console.log(describeStats(`data ${barrier}`, stats));
    assert.ok(stats.points >= 4);
  });
}

test.after(cleanup);
test.run();
