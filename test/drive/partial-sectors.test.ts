// The tool drive's merging of partial-sector writes (SPEC §9.4 "Tool runs",
// src/drive/partial-sectors.ts): what it reads is always what was written; pieces of one
// sector reach the container once, whole, at commit, never piece by piece; a write elsewhere
// commits first (order kept); a discarded run leaves the container as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PartialSectorRun, RUN_MAX_BYTES } from '../../src/drive/partial-sectors.js';
import { createVolume } from '../../src/volume/create.js';
import type { Volume } from '../../src/volume/volume.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const MIB = 1024 * 1024;
const SIZE = 2 * MIB;
let n = 0;

async function newVolume(sectorSize: number): Promise<{ volume: Volume; path: string }> {
  const path = join(dir, `v${n++}.img`);
  const volume = await createVolume(path, {
    passphrase: 'partial sectors',
    sizeBytes: SIZE,
    sectorSize,
    kdf: TEST_KDF,
  });
  return { volume, path };
}

/** The ciphertext of sector `s` as the container file holds it now. */
function cipherOf(volume: Volume, path: string, s: number): Buffer {
  const ss = volume.sectorSize;
  const out = Buffer.alloc(ss);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, out, 0, ss, volume.header.dataOffset + s * ss);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** What a reader of the drive sees: the volume, with the run laid over it. */
async function readThrough(volume: Volume, run: PartialSectorRun, offset: number, len: number) {
  const out = await volume.read(offset, len);
  run.overlay(offset, out);
  return Buffer.from(out);
}

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

for (const ss of [512, 4096]) {
  test(`random writes: reads always match a model, and the container does after commit (${ss})`, async () => {
    const { volume } = await newVolume(ss);
    try {
      const run = new PartialSectorRun(volume);
      const model = Buffer.alloc(SIZE);
      const rand = rng(ss);
      for (let i = 0; i < 600; i++) {
        // Mostly small writes near a few hot spots, so runs are opened, merged and displaced.
        const hot = [1024, 8 * ss - 3, 64 * 1024, SIZE - 5000][Math.floor(rand() * 4)]!;
        const offset = Math.min(SIZE - 1, Math.max(0, hot + Math.floor((rand() - 0.5) * 3 * ss)));
        const big = rand() < 0.1;
        const len = Math.min(SIZE - offset, 1 + Math.floor(rand() * (big ? 150_000 : 2 * ss)));
        const data = Buffer.alloc(len);
        for (let j = 0; j < len; j++) data[j] = Math.floor(rand() * 256);
        await run.write(offset, data);
        data.copy(model, offset);
        assert.ok(run.heldSectors * ss <= RUN_MAX_BYTES, `run of ${run.heldSectors} sectors`);
        if (i % 25 === 0 || rand() < 0.05) {
          const at = Math.floor(rand() * (SIZE - 70_000));
          const got = await readThrough(volume, run, at, 70_000);
          assert.ok(got.equals(model.subarray(at, at + 70_000)), `read at ${at} after write ${i}`);
        }
        if (rand() < 0.03) await run.commit();
      }
      assert.ok((await readThrough(volume, run, 0, SIZE)).equals(model), 'whole drive via the run');
      await run.commit();
      assert.is(run.heldSectors, 0);
      assert.ok(Buffer.from(await volume.read(0, SIZE)).equals(model), 'container after commit');
    } finally {
      await volume.close();
    }
  });

  test(`a superblock written field by field reaches the container once, whole (${ss})`, async () => {
    const { volume, path } = await newVolume(ss);
    try {
      const run = new PartialSectorRun(volume);
      // libext2fs's write_primary_superblock: the changed 2- and 4-byte fields of the 1024
      // bytes at 1024, checksum (offset 1020 of the superblock) last.
      const sectors = ss === 512 ? [2, 3] : [0];
      const before = sectors.map((s) => cipherOf(volume, path, s));
      const fields: [number, number][] = [
        [1024 + 12, 2],
        [1024 + 16, 2],
        [1024 + 48, 4],
        [1024 + 58, 2],
        [1024 + 376, 2],
        [1024 + 1020, 4],
      ];
      for (const [offset, len] of fields) {
        await run.write(offset, Buffer.alloc(len, 0xab));
        sectors.forEach((s, i) => {
          assert.ok(cipherOf(volume, path, s).equals(before[i]!), `sector ${s} untouched so far`);
        });
      }
      const seen = await readThrough(volume, run, 1024, 1024);
      for (const [offset, len] of fields) {
        assert.ok(seen.subarray(offset - 1024, offset - 1024 + len).every((b) => b === 0xab));
      }
      await run.commit();
      sectors.forEach((s, i) => {
        assert.not.ok(cipherOf(volume, path, s).equals(before[i]!), `sector ${s} written`);
      });
      assert.ok(Buffer.from(await volume.read(1024, 1024)).equals(seen));
    } finally {
      await volume.close();
    }
  });

  test(`a write elsewhere commits the run first; a discarded run writes nothing (${ss})`, async () => {
    const { volume, path } = await newVolume(ss);
    try {
      const run = new PartialSectorRun(volume);
      const sector5 = cipherOf(volume, path, 5);
      await run.write(5 * ss + 7, Buffer.from('first'));
      assert.ok(cipherOf(volume, path, 5).equals(sector5));
      await run.write(100 * ss, Buffer.alloc(ss, 1)); // aligned, far away
      assert.not.ok(cipherOf(volume, path, 5).equals(sector5), 'the run went out first');
      assert.is(run.heldSectors, 0);

      const sector9 = cipherOf(volume, path, 9);
      await run.write(9 * ss + 1, Buffer.from('dropped'));
      await run.write(10 * ss - 2, Buffer.from('also dropped')); // adjacent: merged
      assert.is(run.heldSectors, 2);
      run.discard();
      assert.ok(cipherOf(volume, path, 9).equals(sector9), 'container unchanged');
      assert.ok(Buffer.from(await volume.read(9 * ss, ss)).every((b) => b === 0));
    } finally {
      await volume.close();
    }
  });
}

test.after(cleanup);
test.run();
