// SPEC §1, §9.3: seqid may not pass 2^53 − 1. A header update from a valid header whose seqid is
// already there must be refused with HEADER_FIELD before anything is written (it used to throw
// a RangeError from the encoder: found by the behind-the-MAC fuzzer, test/fuzz/).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVolume } from '../../src/index.js';
import { startReencrypt } from '../../src/volume/reencrypt.js';
import { writeHeaderUpdate } from '../../src/volume/header-store.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { preparePool } from '../fuzz/container-cases.js';
import { tally } from '../fuzz/format-cases.js';
import { type ResumeCase, runResumeCase } from '../fuzz/resume-cases.js';
import { SAMPLE_MAC_KEY, sampleFields, writeBothCopies } from '../helpers/headers.js';
import { MemoryStorage } from '../helpers/memory-storage.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const MAX = Number.MAX_SAFE_INTEGER;

test('a header update past seqid 2^53-1 is HEADER_FIELD and writes nothing', async () => {
  const storage = new MemoryStorage(new Uint8Array(1 << 20));
  const next = { ...sampleFields(MAX), seqid: MAX + 1 };
  let code = 'ok';
  try {
    await writeHeaderUpdate(storage, next, SAMPLE_MAC_KEY);
  } catch (err) {
    code = err instanceof CryptainerError ? err.code : `escaped ${String(err)}`;
  }
  assert.is(code, 'HEADER_FIELD');
  assert.is(storage.writes, 0);
});

test('resuming a re-encryption whose seqid is 2^53-1 is HEADER_FIELD, journal and data untouched', async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    await preparePool();
    const before = tally.get('resume HEADER_FIELD') ?? 0;
    const right = { secret: 'right' as const, weakKey: false, entry: 0 };
    const c: ResumeCase = {
      plan: {
        layout: {
          sectorSize: 512,
          journalOffset: 1 << 20,
          journalSize: 4096,
          dataOffset: (1 << 20) + 4096,
          dataSize: 4 * 512,
        },
        seqid: MAX,
        seed: 0,
        roCompat: 0n,
        compat: 0n,
        reencrypt: {
          resilience: 'checksum',
          doneFraction: 0.25,
          segmentFraction: 0,
          inFlight: true,
          slot: 1,
        },
      },
      slots: [right, null, null, null, null, null, null, null],
      tornSeed: 5,
      mutations: [],
      both: false,
      sealHow: 'full',
    };
    // runResumeCase checks the code against the SPEC oracle and that nothing but a header
    // repair was written when it fails.
    await runResumeCase(c, join(dir, 'max-seqid.img'));
    assert.is((tally.get('resume HEADER_FIELD') ?? 0) - before, 1);
  } finally {
    cleanup();
  }
});

test('starting a re-encryption at key generation 2^53-1 is HEADER_FIELD, nothing written', async () => {
  // SPEC §3.1: step S raises the generation; it used to throw a RangeError from the encoder.
  const { dir, cleanup } = makeTempDir();
  try {
    const path = join(dir, 'max-generation.img');
    const secret = { passphrase: 'generation' };
    const v = await createVolume(path, { ...secret, sizeBytes: 256 * 1024, kdf: TEST_KDF });
    const key = v.exportMasterKey();
    const fields = { ...v.header, seqid: v.header.seqid + 1, keyGeneration: MAX };
    await v.close();
    writeBothCopies(path, fields, key);
    const before = readFileSync(path);
    let code = 'ok';
    try {
      await startReencrypt(path, { keep: new Map([[0, secret]]) });
    } catch (err) {
      code = err instanceof CryptainerError ? err.code : `escaped ${String(err)}`;
    }
    assert.is(code, 'HEADER_FIELD');
    assert.ok(readFileSync(path).equals(before), 'the container is unchanged');
  } finally {
    cleanup();
  }
});

test.run();
