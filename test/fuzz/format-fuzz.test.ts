// Fuzzing behind the checksum and the MAC, decode level (issue 12): header copies, pairs of
// copies and backup files built valid, mutated field by field, re-sealed with the known keys,
// then judged against the SPEC reference in test/fuzz/oracle.ts. Fixed seeds, so a failure
// here is reproducible; `npm run fuzz` runs the same cases at scale with any seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describe, runFormatFuzz } from './run.js';

/** Cases per kind in CI (together ≥ 10,000 with the container cases). */
const CI_CASES = { copy: 5000, choice: 2500, backup: 2500 } as const;
const SEED = 20261204;

let total = 0;

for (const kind of ['copy', 'choice', 'backup'] as const) {
  test(`fuzz ${kind}: ${CI_CASES[kind]} mutated cases get the SPEC verdict`, () => {
    const r = runFormatFuzz(kind, CI_CASES[kind], SEED);
    console.log(`  ${describe(r)}`);
    assert.not.ok(r.failure, r.failure);
    assert.is(r.cases, CI_CASES[kind]);
    // No single case may take long: decode work is bounded by the fixed structure sizes.
    assert.ok(r.maxCaseMs < 2000, `slowest case ${r.maxCaseMs} ms`);
    total += r.cases;
  });
}

test('fuzz: memory stays bounded and the total is counted', () => {
  const rss = process.memoryUsage().rss;
  console.log(`  format fuzz cases in this file: ${total}, rss ${Math.round(rss / 1048576)} MiB`);
  assert.is(total, CI_CASES.copy + CI_CASES.choice + CI_CASES.backup);
  assert.ok(rss < 1024 * 1048576, `rss ${rss}`);
});

test.run();
