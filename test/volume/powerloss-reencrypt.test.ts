// Issue 12: re-encryption (SPEC §15.6/§15.7, both resiliences, 512- and 4096-byte sectors)
// under the power-loss model: at every write, unsynced writes are lost, kept or torn at 512
// bytes in several combinations. Every persisted state is the old volume (old key, data
// intact) or one a resume finishes with every byte intact; a finished volume has a zero
// journal area (SPEC §15.6 F2: the records held old ciphertext); the plaintext never reaches
// the disk; after the run returned, the volume is finished.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { isReencrypting } from '../../volume-format/reencrypt-state.js';
import type { Resilience } from '../../volume-format/reencrypt-state.js';
import type { Storage } from '../../src/io/storage.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { readHeaderChoice } from '../../src/volume/header-store.js';
import { resumeReencrypt, startReencrypt } from '../../src/volume/reencrypt.js';
import { createVolume, openVolume } from '../../src/index.js';
import { SimulatedCrash } from '../helpers/fault-storage.js';
import {
  type Outcome,
  describeStats,
  exploreCrashPoints,
  plansFor,
} from '../helpers/power-loss.js';
import { PowerLossStorage } from '../helpers/power-loss-storage.js';
import { TEST_KDF, makeMemoryTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeMemoryTempDir();
const PASS = 'power loss passphrase';
const MARKER = Buffer.from('PLAINTEXT-MARKER-fedcba9876543210'); // must never reach the disk
const SIZE = 128 * 1024;
const SEGMENT = 16 * 1024;

/** A volume of SIZE bytes, half random and half MARKER text; its data and master key. */
async function makeBase(path: string, sectorSize: number) {
  const v = await createVolume(path, {
    passphrase: PASS,
    sizeBytes: SIZE,
    sectorSize,
    kdf: TEST_KDF,
  });
  const plain = Buffer.alloc(SIZE);
  randomBytes(SIZE / 2).copy(plain);
  for (let off = SIZE / 2; off < SIZE; off += MARKER.length) MARKER.copy(plain, off);
  await v.write(0, plain);
  const masterKey = v.exportMasterKey();
  await v.close();
  return { plain, masterKey };
}

/** A reused buffer (fresh 13 MiB buffers per state cost more than the checks themselves). */
let scratch = Buffer.alloc(0);
let zeros = Buffer.alloc(0);

/** The whole file at `path`, read into the reused buffer. */
function readWhole(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    let n = 0;
    for (;;) {
      if (n === scratch.length) scratch = Buffer.concat([scratch, Buffer.alloc(16 << 20)]);
      const got = readSync(fd, scratch, n, scratch.length - n, n);
      if (got === 0) return scratch.subarray(0, n);
      n += got;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The container with syncs as no-ops: the resume that checks a persisted state is not itself
 * under test here, and real fsyncs would dominate the run time.
 */
async function unsynced(path: string): Promise<Storage> {
  const s = await FileStorage.open(path);
  s.sync = s.syncData = async () => undefined;
  return s;
}

/** The header fields of `path` (SPEC §8, no key). */
async function header(path: string) {
  const s = await FileStorage.open(path, { readOnly: true });
  try {
    return (await readHeaderChoice(s)).fields;
  } finally {
    await s.close();
  }
}

/** Key and data as a read-only open sees them. */
async function contents(path: string) {
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  try {
    return { key: v.exportMasterKey(), data: await v.read(0, v.sizeBytes) };
  } finally {
    await v.close();
  }
}

/** Old volume, or one a resume finishes with every byte intact (see the file comment). */
function checkState(plain: Buffer, masterKey: Uint8Array) {
  return async (path: string, outcome: Outcome): Promise<string> => {
    assert.is(readWhole(path).indexOf(MARKER), -1, 'plaintext on disk');
    const h0 = await header(path);
    let label = 'new';
    if (isReencrypting(h0)) {
      assert.is(outcome, 'crashed', 'returned, yet unfinished');
      label = 'resumed';
      const storage = await unsynced(path);
      await resumeReencrypt(path, { passphrase: PASS, storage, threads: 0 });
      assert.not.ok(isReencrypting(await header(path)), 'the resume finishes');
      assert.is(readWhole(path).indexOf(MARKER), -1, 'plaintext on disk after resume');
    }
    const now = await contents(path);
    assert.ok(Buffer.from(now.data).equals(plain), 'every byte intact');
    if (Buffer.from(now.key).equals(masterKey)) {
      assert.is(outcome, 'crashed', 'returned, yet the old key');
      return 'old';
    }
    const h = await header(path);
    const journal = readWhole(path).subarray(h.journalOffset, h.journalOffset + h.journalSize);
    if (zeros.length < journal.length) zeros = Buffer.alloc(journal.length);
    assert.ok(journal.equals(zeros.subarray(0, journal.length)), 'journal zero once finished');
    return label;
  };
}

for (const sectorSize of [4096, 512]) {
  for (const resilience of ['checksum', 'journal'] as Resilience[]) {
    const name = `reencrypt ${resilience}, ${sectorSize}-byte sectors`;
    test(`${name}: power loss at any write leaves the old volume or a resumable one`, async () => {
      const base = join(dir, `base-${sectorSize}-${resilience}.img`);
      const { plain, masterKey } = await makeBase(base, sectorSize);
      const stats = await exploreCrashPoints({
        name,
        base,
        dir,
        run: async (path, storage) => {
          await startReencrypt(path, {
            keep: new Map([[0, { passphrase: PASS }]]),
            storage,
            resilience,
            segmentBytes: SEGMENT,
            threads: 0,
          });
        },
        check: checkState(plain, masterKey),
      });
      console.log(describeStats(name, stats));
      // start (2) + 8 segments × (record, header A, header B, data) + finish (2 + 1 + 2)
      assert.ok(stats.points >= 2 + (SIZE / SEGMENT) * 4 + 5, `only ${stats.points} points`);
    });
  }
}

/**
 * The resume, recovery included (SPEC §15.7), under the same model: the base is a run that
 * lost power while rewriting segment 6 of 8 (crash point 29: start 2, then 4 per segment), the
 * rewrite lost, so the resume recovers that segment, does segment 7 and the finish.
 */
for (const resilience of ['checksum', 'journal'] as Resilience[]) {
  const name = `resume ${resilience}, 4096-byte sectors`;
  test(`${name}: power loss at any write of the resume leaves a resumable volume`, async () => {
    const first = join(dir, `resume-first-${resilience}.img`);
    const { plain, masterKey } = await makeBase(first, 4096);
    const crashed = new PowerLossStorage(await FileStorage.open(first), 29);
    try {
      await startReencrypt(first, {
        keep: new Map([[0, { passphrase: PASS }]]),
        storage: crashed,
        resilience,
        segmentBytes: SEGMENT,
        threads: 0,
      });
      assert.unreachable('the first run crashes');
    } catch (err) {
      assert.instance(err, SimulatedCrash);
    } finally {
      await crashed.close();
    }
    // The rewrite of segment 6 lost (every unsynced write), so the recovery has work to do.
    const target = await FileStorage.open(first);
    try {
      await crashed.persistTo(target, plansFor('resume base', 29, crashed.pendingCount)[0]!);
    } finally {
      await target.close();
    }
    assert.ok(isReencrypting(await header(first)), 'a segment is in flight');
    const stats = await exploreCrashPoints({
      name,
      base: first,
      dir,
      run: async (path, storage) => {
        const report = await resumeReencrypt(path, { passphrase: PASS, storage, threads: 0 });
        assert.ok(report.recovered !== null, 'the resume recovers a segment');
      },
      check: checkState(plain, masterKey),
    });
    console.log(describeStats(name, stats));
    assert.ok(stats.points >= 10, `only ${stats.points} points`);
  });
}

test.after(cleanup);
test.run();
