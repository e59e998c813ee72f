// Re-encryption (SPEC §15) through the library: data survives under a new master key, kept
// passphrases keep working, dropped ones stop, mid-way the volume is refused by openVolume and
// resumed by resumeReencrypt, and the journal and feature area end up zero.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JOURNAL_OFFSET } from '../../volume-format/constants.js';
import { decodeReencryptState, isReencrypting } from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../../src/io/file-storage.js';
import type { Storage } from '../../src/io/storage.js';
import { readHeaderChoice } from '../../src/volume/header-store.js';
import { resumeReencrypt, startReencrypt } from '../../src/volume/reencrypt.js';
import { addKeyslot, createVolume, openVolume } from '../../src/index.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'first passphrase';
const PASS2 = 'second passphrase';

/** Create a volume filled with random plaintext; returns that plaintext. */
async function makeVolume(
  path: string,
  sizeBytes: number,
  sectorSize = 4096,
  extraSlot = false,
): Promise<{ plain: Uint8Array; masterKey: Uint8Array }> {
  const v = await createVolume(path, { passphrase: PASS, sizeBytes, sectorSize, kdf: TEST_KDF });
  const plain = new Uint8Array(randomBytes(sizeBytes));
  await v.write(0, plain);
  if (extraSlot) await addKeyslot(v, { passphrase: PASS2 }, { kdf: TEST_KDF });
  const masterKey = v.exportMasterKey();
  await v.close();
  return { plain, masterKey };
}

async function readAll(
  path: string,
  passphrase: string,
): Promise<{ data: Uint8Array; key: Uint8Array }> {
  const v = await openVolume(path, { passphrase, readOnly: true });
  try {
    return { data: await v.read(0, v.sizeBytes), key: v.exportMasterKey() };
  } finally {
    await v.close();
  }
}

async function header(path: string) {
  const s = await FileStorage.open(path, { readOnly: true });
  try {
    return (await readHeaderChoice(s)).fields;
  } finally {
    await s.close();
  }
}

for (const [sectorSize, resilience] of [
  [4096, 'checksum'],
  [512, 'checksum'],
  [4096, 'journal'],
  [512, 'journal'],
] as const) {
  test(`re-encrypts every sector under a new key (${sectorSize}, ${resilience})`, async () => {
    const path = join(dir, `basic-${sectorSize}-${resilience}.img`);
    const { plain, masterKey } = await makeVolume(path, 3 << 20, sectorSize);
    const before = readFileSync(path);
    const report = await startReencrypt(path, {
      keep: new Map([[0, { passphrase: PASS }]]),
      resilience,
      segmentBytes: 256 * 1024,
    });
    assert.ok(report.finished);
    assert.is(report.sectorsDone, (3 << 20) / sectorSize);
    const after = await readAll(path, PASS);
    assert.equal(after.data, plain, 'plaintext unchanged');
    assert.not.equal(after.key, masterKey, 'master key changed');
    const fields = await header(path);
    assert.not.ok(isReencrypting(fields));
    assert.ok(
      fields.featureArea.every((b) => b === 0),
      'feature area cleared',
    );
    const file = readFileSync(path);
    assert.ok(
      file.subarray(JOURNAL_OFFSET, fields.dataOffset).every((b) => b === 0),
      'journal area zero again',
    );
    // Every data sector changed (a sector left under the old key would be identical).
    for (let s = 0; s < (3 << 20) / sectorSize; s++) {
      const at = fields.dataOffset + s * sectorSize;
      assert.not.ok(
        Buffer.compare(before.subarray(at, at + 16), file.subarray(at, at + 16)) === 0,
        `sector ${s} rewritten`,
      );
    }
  });
}

test('worker threads give the same result as this thread', async () => {
  const path = join(dir, 'threads.img');
  const { plain } = await makeVolume(path, 6 << 20, 512);
  const r = await startReencrypt(path, {
    keep: new Map([[0, { passphrase: PASS }]]),
    threads: 2,
    segmentBytes: 1 << 20,
  });
  assert.ok(r.finished);
  assert.equal((await readAll(path, PASS)).data, plain);
  const again = await startReencrypt(path, {
    keep: new Map([[0, { passphrase: PASS }]]),
    threads: 1,
  });
  assert.ok(again.finished);
  assert.equal((await readAll(path, PASS)).data, plain);
});

test('keeps every passphrase given; drops the slots not kept', async () => {
  const path = join(dir, 'slots.img');
  const { plain } = await makeVolume(path, 1 << 20, 4096, true);
  const both = await startReencrypt(path, {
    keep: new Map([
      [0, { passphrase: PASS }],
      [1, { passphrase: PASS2 }],
    ]),
  });
  assert.equal(both.keptSlots, [0, 1]);
  assert.equal(both.removedSlots, []);
  const a = await readAll(path, PASS);
  const b = await readAll(path, PASS2);
  assert.equal(a.data, plain);
  assert.equal(b.key, a.key, 'both slots hold the same new key');
  const one = await startReencrypt(path, { keep: new Map([[1, { passphrase: PASS2 }]]) });
  assert.equal(one.removedSlots, [0]);
  assert.equal((await readAll(path, PASS2)).data, plain);
  try {
    await openVolume(path, { passphrase: PASS, readOnly: true });
    assert.unreachable('slot 0 was removed');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'WRONG_PASSPHRASE');
  }
});

test('a wrong secret for a kept slot changes nothing', async () => {
  const path = join(dir, 'wrong.img');
  await makeVolume(path, 1 << 20, 4096, true);
  const before = readFileSync(path);
  try {
    await startReencrypt(path, {
      keep: new Map([
        [0, { passphrase: PASS }],
        [1, { passphrase: 'not it' }],
      ]),
    });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'WRONG_PASSPHRASE');
    assert.match((err as Error).message, /keyslot 1/);
  }
  assert.ok(Buffer.compare(before, readFileSync(path)) === 0, 'container unchanged');
});

test('stopped mid-way: open refuses, resume with any kept passphrase finishes', async () => {
  const path = join(dir, 'stop.img');
  const { plain } = await makeVolume(path, 2 << 20, 4096, true);
  const ac = new AbortController();
  const report = await startReencrypt(path, {
    keep: new Map([
      [0, { passphrase: PASS }],
      [1, { passphrase: PASS2 }],
    ]),
    segmentBytes: 64 * 1024,
    signal: ac.signal,
    onProgress: (done) => {
      if (done >= 512 * 1024) ac.abort();
    },
  });
  assert.not.ok(report.finished);
  assert.ok(report.sectorsDone > 0 && report.sectorsDone < report.sectorCount);
  const fields = await header(path);
  assert.ok(isReencrypting(fields));
  const state = decodeReencryptState(fields.featureArea, fields);
  assert.is(state.sectorsDone, report.sectorsDone);
  assert.is(state.segmentSectors, 0, 'stopped at a safe point: nothing in flight');
  try {
    await openVolume(path, { passphrase: PASS });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'REENCRYPT_IN_PROGRESS');
    assert.match((err as Error).message, /cryptainer reencrypt/);
  }
  try {
    await startReencrypt(path, { keep: new Map([[0, { passphrase: PASS }]]) });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'REENCRYPT_IN_PROGRESS');
  }
  const resumed = await resumeReencrypt(path, { passphrase: PASS2 });
  assert.ok(resumed.finished);
  assert.is(resumed.startedAtSector, report.sectorsDone);
  assert.equal((await readAll(path, PASS)).data, plain);
  assert.equal((await readAll(path, PASS2)).data, plain);
  try {
    await resumeReencrypt(path, { passphrase: PASS });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'USAGE');
  }
});

test('resume with a wrong passphrase: WRONG_PASSPHRASE, nothing written', async () => {
  const path = join(dir, 'resume-wrong.img');
  await makeVolume(path, 1 << 20);
  const ac = new AbortController();
  ac.abort();
  const r = await startReencrypt(path, {
    keep: new Map([[0, { passphrase: PASS }]]),
    signal: ac.signal,
  });
  assert.is(r.sectorsDone, 0);
  const before = readFileSync(path);
  try {
    await resumeReencrypt(path, { passphrase: 'nope' });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'WRONG_PASSPHRASE');
  }
  assert.ok(Buffer.compare(before, readFileSync(path)) === 0);
});

test('the journal digest guards recovery: a damaged record is JOURNAL_CORRUPT', async () => {
  const { FaultStorage, SimulatedCrash } = await import('../helpers/fault-storage.js');
  const path = join(dir, 'journal-corrupt.img');
  await makeVolume(path, 1 << 20);
  // Crash right after a segment's header update (start: journal area zeros, A, B; segment 0:
  // journal record, A, B).
  const fault = new FaultStorage(await FileStorage.open(path), 6);
  try {
    await startReencrypt(path, {
      keep: new Map([[0, { passphrase: PASS }]]),
      segmentBytes: 64 * 1024,
      storage: fault,
    });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, SimulatedCrash);
  }
  const state = decodeReencryptState((await header(path)).featureArea, await header(path));
  assert.ok(state.segmentSectors > 0, 'a segment is in flight');
  const s = await FileStorage.open(path);
  // Flip bits rather than write a constant: the record is ciphertext, so any fixed byte value
  // is already there one time in 256 and would leave the record undamaged.
  const at = JOURNAL_OFFSET + (state.journalSlot * (await header(path)).journalSize) / 2 + 3;
  const byte = await s.readAt(at, 1);
  await s.writeAt(at, new Uint8Array([byte[0]! ^ 0xff]));
  await s.close();
  try {
    await resumeReencrypt(path, { passphrase: PASS });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'JOURNAL_CORRUPT');
  }
});

for (const threads of [0, 1]) {
  test(`a segment that reads back different in step 4 is not rewritten (threads: ${threads})`, async () => {
    const path = join(dir, `reread-${threads}.img`);
    const { plain } = await makeVolume(path, 1 << 20);
    const inner = await FileStorage.open(path);
    const dataOffset = (await header(path)).dataOffset;
    // The second segment (sectors 64..127) is read twice: for its record (step 1), then to be
    // re-encrypted (step 4, SPEC §15.6). The second read comes back with a bit flipped in its
    // 512-byte block 3, as a failing disk or another writer could make it.
    const target = dataOffset + 64 * 4096;
    let reads = 0;
    const flaky: Storage = Object.assign(Object.create(inner) as FileStorage, {
      async readInto(offset: number, buffer: Uint8Array): Promise<number> {
        const n = await inner.readInto(offset, buffer);
        if (offset === target && ++reads === 2) buffer[3 * 512 + 5]! ^= 1;
        return n;
      },
    });
    try {
      await startReencrypt(path, {
        keep: new Map([[0, { passphrase: PASS }]]),
        segmentBytes: 256 * 1024,
        storage: flaky,
        threads,
      });
      assert.unreachable();
    } catch (err) {
      assert.is((err as { code?: string }).code, 'IO_ERROR');
      assert.match((err as Error).message, /block 515 of the data area read back different/);
    }
    assert.is(reads, 2);
    const state = decodeReencryptState((await header(path)).featureArea, await header(path));
    assert.is(state.sectorsDone, 64, 'the first segment is done');
    assert.is(state.segmentSectors, 64, 'the second is in flight, its record intact');
    // The disk itself never changed, so recovery from the record finishes the job.
    const report = await resumeReencrypt(path, { passphrase: PASS });
    assert.ok(report.finished);
    assert.equal((await readAll(path, PASS)).data, plain);
  });
}

test.after(cleanup);
test.run();
