// Fuzzing behind the MAC, container level (issue 12): whole small volumes in memory with real
// keyslot wraps, mutated and re-sealed, then opened read-write, read-only or repaired. Each case
// must give the outcome SPEC §8–§10 require, write nothing when it fails, and leave two valid,
// equal copies after a repair.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { arbContainerCase, preparePool, runContainerCase } from './container-cases.js';
import { tally } from './format-cases.js';
import { describe, runAsyncFuzz } from './run.js';

const CI_CASES = Number(process.env.FUZZ_CONTAINER_CASES ?? 400);
const SEED = 20261204;

test(`fuzz open/repair: ${CI_CASES} mutated containers get the SPEC outcome`, async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    await preparePool();
    const path = join(dir, 'fuzz.img');
    const r = await runAsyncFuzz(
      'container',
      arbContainerCase,
      (c) => runContainerCase(c, path),
      CI_CASES,
      SEED,
    );
    console.log(`  ${describe(r)}`);
    const outcomes = [...tally].filter(([k]) => k.startsWith('open') || k.startsWith('repair'));
    console.log(`  ${outcomes.map(([k, v]) => `${k}: ${v}`).join(', ')}`);
    assert.not.ok(r.failure, r.failure);
    assert.is(r.cases, CI_CASES);
    assert.ok(r.maxCaseMs < 10_000, `slowest case ${r.maxCaseMs} ms`);
    // The fuzzer must reach past the checks: some cases open, some are refused late.
    assert.ok((tally.get('open ok') ?? 0) > 0, 'no case opened');
    assert.ok(
      [...tally].some(([k, n]) => k.endsWith(' HEADER_TAMPERED') && n > 0),
      'no case reached the MAC check',
    );
  } finally {
    cleanup();
  }
});

test.run();
