// ARCHITECTURE.md §6 for re-encryption (SPEC §15.6/§15.7): crash `reencrypt` at every write index
// of a small volume (whole writes, writes torn at half their length, and for `journal` writes
// torn at an arbitrary byte), and at random points of a larger one (with crashes during the
// resume too). After each crash a resumed run finishes, every byte of the drive reads back as
// before, the master key is new, and the container never holds the plaintext.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isReencrypting } from '../../volume-format/reencrypt-state.js';
import type { Resilience } from '../../volume-format/reencrypt-state.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { readHeaderChoice } from '../../src/volume/header-store.js';
import { resumeReencrypt, startReencrypt } from '../../src/volume/reencrypt.js';
import { createVolume, openVolume } from '../../src/index.js';
import { FaultStorage, SimulatedCrash } from '../helpers/fault-storage.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const PASS = 'crash test passphrase';
const MARKER = Buffer.from('PLAINTEXT-MARKER-0123456789abcdef'); // must never reach the disk

/** How a crashing write is torn: not at all, at half its length, or at an odd byte. */
type Tear = 'none' | 'half' | 'odd';

/** FaultStorage's tear argument for each tear kind ('odd' lands an arbitrary, odd prefix). */
function tearOf(tear: Tear): boolean | ((length: number) => number) {
  if (tear === 'none') return false;
  if (tear === 'half') return true;
  return (length) => Math.floor(length / 3) + 7;
}

interface Base {
  path: string;
  plain: Uint8Array;
  masterKey: Uint8Array;
}

async function makeBase(name: string, sizeBytes: number, sectorSize: number): Promise<Base> {
  const path = join(dir, name);
  const v = await createVolume(path, { passphrase: PASS, sizeBytes, sectorSize, kdf: TEST_KDF });
  // Half random, half a recognisable text (so a plaintext leak would be found by a search).
  const plain = new Uint8Array(sizeBytes);
  plain.set(randomBytes(sizeBytes / 2));
  for (let off = sizeBytes / 2; off < sizeBytes; off += MARKER.length) {
    plain.set(MARKER.subarray(0, Math.min(MARKER.length, sizeBytes - off)), off);
  }
  await v.write(0, plain);
  const masterKey = v.exportMasterKey();
  await v.close();
  return { path, plain, masterKey };
}

function checkNoPlaintext(path: string, where: string): void {
  assert.is(readFileSync(path).indexOf(MARKER), -1, `plaintext on disk ${where}`);
}

async function reencrypting(path: string): Promise<boolean> {
  const s = await FileStorage.open(path, { readOnly: true });
  try {
    return isReencrypting((await readHeaderChoice(s)).fields);
  } finally {
    await s.close();
  }
}

/** Run start (or resume) through a crashing storage; true when it crashed. */
async function runCrashing(
  path: string,
  crashAt: number,
  tear: Tear,
  resilience: Resilience,
  segmentBytes: number,
  threads = 0,
): Promise<{ crashed: boolean; writes: number }> {
  const storage = new FaultStorage(await FileStorage.open(path), crashAt, tearOf(tear));
  const common = { storage, resilience, segmentBytes, threads };
  try {
    if (await reencrypting(path)) await resumeReencrypt(path, { passphrase: PASS, ...common });
    else await startReencrypt(path, { keep: new Map([[0, { passphrase: PASS }]]), ...common });
    return { crashed: false, writes: storage.writes };
  } catch (err) {
    if (!(err instanceof SimulatedCrash)) throw err;
    return { crashed: true, writes: storage.writes };
  }
}

/** After a crash: the volume is either untouched (old key, all data) or resumable. */
async function finishAndCheck(base: Base, path: string, where: string): Promise<void> {
  checkNoPlaintext(path, where);
  if (!(await reencrypting(path))) {
    // Crashed before the start header update took: old key, data intact. Start again.
    const v = await openVolume(path, { passphrase: PASS, readOnly: true });
    const key = v.exportMasterKey();
    const data = await v.read(0, v.sizeBytes);
    await v.close();
    if (Buffer.compare(key, base.masterKey) === 0) {
      assert.ok(Buffer.compare(data, base.plain) === 0, `old state intact ${where}`);
      await startReencrypt(path, { keep: new Map([[0, { passphrase: PASS }]]) });
    }
  } else {
    await resumeReencrypt(path, { passphrase: PASS });
  }
  assert.not.ok(await reencrypting(path), `finished ${where}`);
  const v = await openVolume(path, { passphrase: PASS, readOnly: true });
  const key = v.exportMasterKey();
  const data = await v.read(0, v.sizeBytes);
  await v.close();
  assert.not.ok(Buffer.compare(key, base.masterKey) === 0, `new master key ${where}`);
  assert.ok(Buffer.compare(data, base.plain) === 0, `every byte intact ${where}`);
  checkNoPlaintext(path, `after resume ${where}`);
}

const SMALL = 128 * 1024;
const SEGMENT = 16 * 1024;
const configs: { sectorSize: number; resilience: Resilience; tear: Tear }[] = [];
for (const sectorSize of [4096, 512]) {
  for (const tear of ['none', 'half'] as const)
    configs.push({ sectorSize, resilience: 'checksum', tear });
  for (const tear of ['none', 'half', 'odd'] as const)
    configs.push({ sectorSize, resilience: 'journal', tear });
}

let totalPoints = 0;
for (const c of configs) {
  test(`crash at every write: ${c.sectorSize}-byte sectors, ${c.resilience}, tear ${c.tear}`, async () => {
    const base = await makeBase(
      `base-${c.sectorSize}-${c.resilience}-${c.tear}.img`,
      SMALL,
      c.sectorSize,
    );
    const path = join(dir, 'work.img');
    let points = 0;
    for (let crashAt = 0; ; crashAt++) {
      copyFileSync(base.path, path);
      const r = await runCrashing(path, crashAt, c.tear, c.resilience, SEGMENT);
      if (!r.crashed) {
        // Past the last write: the run completed; it must be a finished re-encryption too.
        await finishAndCheck(base, path, 'uncrashed');
        break;
      }
      points++;
      await finishAndCheck(base, path, `after crash at write ${crashAt}`);
    }
    totalPoints += points;
    console.log(`    ${c.sectorSize}/${c.resilience}/${c.tear}: ${points} crash points`);
    // start (journal area zeros, header A, header B) + 8 segments × (journal, header A,
    // header B, data) + finish (2 + 1 + 2)
    assert.ok(points >= 3 + (SMALL / SEGMENT) * 4 + 5, `only ${points} crash points`);
  });
}

test('random crashes on a larger volume, crashing the resumes too', async () => {
  let seed = 20240531;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const bases = [
    await makeBase('big-4096.img', 8 << 20, 4096),
    await makeBase('big-512.img', 4 << 20, 512),
  ];
  const path = join(dir, 'big-work.img');
  let crashes = 0;
  for (let round = 0; round < 24; round++) {
    const base = bases[round % 2]!;
    copyFileSync(base.path, path);
    const resilience: Resilience = rand(3) === 0 ? 'journal' : 'checksum';
    const segmentBytes = [64 << 10, 192 << 10, 1 << 20][rand(3)]!;
    const tear: Tear = (['none', 'half', resilience === 'journal' ? 'odd' : 'half'] as const)[
      rand(3)
    ]!;
    // Up to three crashes in a row (start, resume, resume), each at a random write.
    for (let k = 0; k < 1 + rand(3); k++) {
      // Half the rounds re-encrypt on worker threads (src/volume/recrypt.ts).
      const r = await runCrashing(path, rand(120), tear, resilience, segmentBytes, 2 * (round % 2));
      if (!r.crashed) break;
      crashes++;
      checkNoPlaintext(path, `round ${round}`);
    }
    await finishAndCheck(base, path, `round ${round}`);
  }
  console.log(`    random: ${crashes} crashes over 24 rounds`);
  assert.ok(crashes >= 24);
});

test.after(() => {
  console.log(`    every-write total: ${totalPoints} crash points`);
  cleanup();
});
test.run();
