// Fuzzing behind the MAC, re-encryption resume (issue 12): volumes in the middle of a
// re-encryption, with a torn segment in flight and its journal record, mutated and re-sealed,
// then resumed. Each case must give the outcome of SPEC §8, §10 rows 31–32 and §15.7, and an
// unmutated state must end with every sector readable under the new key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { preparePool } from './container-cases.js';
import { tally } from './format-cases.js';
import { type ResumeCase, arbResumeCase, runResumeCase } from './resume-cases.js';
import { describe, runAsyncFuzz } from './run.js';

const CI_CASES = Number(process.env.FUZZ_RESUME_CASES ?? 300);
const SEED = 20261204;

test(`fuzz resume: ${CI_CASES} mutated re-encryption states get the SPEC outcome`, async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    await preparePool();
    const path = join(dir, 'fuzz.img');
    const r = await runAsyncFuzz(
      'resume',
      arbResumeCase,
      (c) => runResumeCase(c, path),
      CI_CASES,
      SEED,
    );
    console.log(`  ${describe(r)}`);
    const outcomes = [...tally].filter(([k]) => k.startsWith('resume'));
    console.log(`  ${outcomes.map(([k, v]) => `${k}: ${v}`).join(', ')}`);
    assert.not.ok(r.failure, r.failure);
    assert.is(r.cases, CI_CASES);
    assert.ok((tally.get('resume ok') ?? 0) > 0, 'no case resumed to the end');
  } finally {
    cleanup();
  }
});

test('regression: a journal too small for one sector mid-re-encryption is refused, nothing written', async () => {
  // Found by this fuzzer (seed 20261204, first case): a valid, MAC-verified header with a 0-byte
  // journal and sectors left made resume write a record into a 0-byte slot, i.e. over data
  // sector 0, then throw a RangeError instead of a CryptainerError.
  const { dir, cleanup } = makeTempDir();
  try {
    await preparePool();
    const refusedBefore = tally.get('resume UNSUPPORTED_FEATURE') ?? 0;
    const right = { secret: 'right' as const, weakKey: false, entry: 0 };
    for (const [journalSize, sectorSize, resilience] of [
      [0, 512, 'checksum'],
      [4096, 4096, 'journal'],
    ] as const) {
      const c: ResumeCase = {
        plan: {
          layout: {
            sectorSize,
            journalOffset: 1 << 20,
            journalSize,
            dataOffset: (1 << 20) + journalSize,
            dataSize: 4 * sectorSize,
          },
          seqid: 1,
          seed: 0,
          roCompat: 0n,
          compat: 0n,
          reencrypt: {
            resilience,
            doneFraction: 0.25,
            segmentFraction: 0,
            inFlight: false,
            slot: 0,
          },
        },
        slots: [right, null, null, null, null, null, null, right],
        tornSeed: 0,
        mutations: [],
        both: false,
        sealHow: 'full',
      };
      await runResumeCase(c, join(dir, 'small-journal.img'));
    }
    assert.is((tally.get('resume UNSUPPORTED_FEATURE') ?? 0) - refusedBefore, 2);
  } finally {
    cleanup();
  }
});

test.run();
