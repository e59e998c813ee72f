/**
 * `npm run fuzz`: the behind-the-MAC fuzzer of test/fuzz/ at scale (issue 12). Runs decode-level
 * cases (one copy, a pair of copies, a backup file) and container-level cases (open, read-only
 * open, repair, re-encryption resume of a whole volume in memory) in batches, prints progress, and ends with one
 * count line. Exit status 1 on the first failing batch, whose report names the seed and path
 * that replay it.
 *
 * Usage: node dist/scripts/fuzz.js [--cases N] [--seed S] [--container-share F] [--jobs J]
 *   --cases            total cases (default 1,000,000)
 *   --seed             base seed (default: from the clock; printed first)
 *   --container-share  share of cases run at container level (default 0.01)
 *   --jobs             processes sharing the cases (default 2; job j uses seed S + j·104729)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arbContainerCase, preparePool, runContainerCase } from '../test/fuzz/container-cases.js';
import { arbResumeCase, runResumeCase } from '../test/fuzz/resume-cases.js';
import { tally } from '../test/fuzz/format-cases.js';
import {
  type FormatKind,
  type FuzzResult,
  describe,
  runAsyncFuzz,
  runFormatFuzz,
} from '../test/fuzz/run.js';

/** Cases per batch: small enough for steady progress, large enough that fast-check's setup is noise. */
const BATCH = 10_000;
/** Mix of decode-level kinds (the rest of each batch after the container share). */
const MIX: Record<FormatKind, number> = { copy: 0.5, choice: 0.25, backup: 0.25 };

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`fuzz: --${name} needs a non-negative number`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<number> {
  const total = Math.floor(option('cases', 1_000_000));
  const seed = Math.floor(option('seed', Date.now() % 2 ** 31));
  const containerShare = option('container-share', 0.01);
  console.log(`fuzz: ${total} cases, seed ${seed}, container share ${containerShare}`);
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-fuzz-'));
  const started = performance.now();
  const done: Record<string, number> = {};
  let cases = 0;
  let maxCaseMs = 0;
  try {
    await preparePool();
    for (let batch = 0; cases < total; batch++) {
      const n = Math.min(BATCH, total - cases);
      const batchSeed = (seed + batch * 7919) % 2 ** 31;
      const container = Math.round(n * containerShare);
      const results: FuzzResult[] = [];
      let left = n - container;
      const kinds = Object.keys(MIX) as FormatKind[];
      for (const [i, kind] of kinds.entries()) {
        const k = i === kinds.length - 1 ? left : Math.round((n - container) * MIX[kind]);
        left -= k;
        if (k > 0) results.push(runFormatFuzz(kind, k, batchSeed));
      }
      if (container > 0) {
        const path = join(dir, 'fuzz.img');
        // Container-level share: three quarters open/repair, one quarter re-encryption resume.
        const resume = Math.floor(container / 4);
        results.push(
          await runAsyncFuzz(
            'resume',
            arbResumeCase,
            (c) => runResumeCase(c, path),
            resume,
            batchSeed,
          ),
        );
        results.push(
          await runAsyncFuzz(
            'container',
            arbContainerCase,
            (c) => runContainerCase(c, path),
            container - resume,
            batchSeed,
          ),
        );
      }
      for (const r of results) {
        cases += r.cases;
        done[r.kind] = (done[r.kind] ?? 0) + r.cases;
        maxCaseMs = Math.max(maxCaseMs, r.maxCaseMs);
        if (r.failure) {
          console.log(`fuzz: batch ${batch} (seed ${batchSeed}) ${describe(r)}\n${r.failure}`);
          console.log(
            `fuzz: FAILED after ${cases} cases; replay: node dist/scripts/fuzz.js --cases ${n} --seed ${batchSeed}`,
          );
          return 1;
        }
      }
      const s = (performance.now() - started) / 1000;
      const rss = Math.round(process.memoryUsage().rss / 1048576);
      console.log(`fuzz: ${cases}/${total} cases, ${s.toFixed(0)} s, rss ${rss} MiB`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const s = (performance.now() - started) / 1000;
  const verdicts = [...tally].sort().map(([k, v]) => `  ${k}: ${v}`);
  console.log(`fuzz: verdicts\n${verdicts.join('\n')}`);
  const kinds = Object.entries(done)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `fuzz: ${cases} cases, 0 failures, seed ${seed}, ${s.toFixed(0)} s, slowest case ${maxCaseMs.toFixed(1)} ms (${kinds})`,
  );
  return 0;
}

/** Split the cases over `jobs` child processes (one per core), relay their output, sum. */
async function parallel(jobs: number): Promise<number> {
  const total = Math.floor(option('cases', 1_000_000));
  const seed = Math.floor(option('seed', Date.now() % 2 ** 31));
  const share = option('container-share', 0.01);
  console.log(`fuzz: ${total} cases in ${jobs} jobs, seed ${seed}`);
  const started = performance.now();
  const runs = Array.from({ length: jobs }, (_, j) => {
    const cases = Math.floor(total / jobs) + (j < total % jobs ? 1 : 0);
    const args = [process.argv[1]!, '--jobs', '1', '--cases', `${cases}`];
    args.push('--seed', `${(seed + j * 104729) % 2 ** 31}`, '--container-share', `${share}`);
    return new Promise<{ code: number; cases: number }>((resolve) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let done = 0;
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          console.log(`[job ${j}] ${line}`);
          const m = /^fuzz: (\d+) cases, 0 failures/.exec(line);
          if (m) done = Number(m[1]);
        }
      });
      child.on('close', (code) => resolve({ code: code ?? 1, cases: done }));
    });
  });
  const results = await Promise.all(runs);
  const cases = results.reduce((n, r) => n + r.cases, 0);
  const failed = results.filter((r) => r.code !== 0).length;
  const s = ((performance.now() - started) / 1000).toFixed(0);
  if (failed > 0) {
    console.log(`fuzz: FAILED in ${failed} of ${jobs} jobs (see above); ${cases} cases passed`);
    return 1;
  }
  console.log(`fuzz: ${cases} cases, 0 failures, seed ${seed}, ${jobs} jobs, ${s} s`);
  return 0;
}

const jobs = Math.max(1, Math.floor(option('jobs', 2)));
process.exitCode = jobs > 1 ? await parallel(jobs) : await main();
