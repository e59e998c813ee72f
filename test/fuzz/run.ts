/**
 * Running fuzz cases with fast-check, for the CI test files and for `npm run fuzz`: a kind of
 * case, a number of runs and a seed in, a count, the slowest case and the failure (with the
 * seed and path fast-check needs to replay it) out.
 */
import fc from 'fast-check';
import {
  arbBackupCase,
  arbChoiceCase,
  arbCopyCase,
  runBackupCase,
  runChoiceCase,
  runCopyCase,
} from './format-cases.js';

/** What one batch of cases did. */
export interface FuzzResult {
  kind: string;
  /** Cases run to completion (shrinking runs not counted). */
  cases: number;
  ms: number;
  /** The slowest single case, in milliseconds. */
  maxCaseMs: number;
  /** fast-check's report (seed, path, counterexample) when a case failed. */
  failure?: string;
}

/** The decode-level kinds of case: one copy, a pair of copies, a backup file. */
export const FORMAT_KINDS = {
  copy: { arb: arbCopyCase, run: runCopyCase },
  choice: { arb: arbChoiceCase, run: runChoiceCase },
  backup: { arb: arbBackupCase, run: runBackupCase },
} as const;

/** The name of a decode-level kind of case. */
export type FormatKind = keyof typeof FORMAT_KINDS;

/** Run `numRuns` cases of `kind` from `seed` (synchronous: decode-level cases do no I/O). */
export function runFormatFuzz(kind: FormatKind, numRuns: number, seed: number): FuzzResult {
  const { arb, run } = FORMAT_KINDS[kind] as {
    arb: fc.Arbitrary<unknown>;
    run: (c: unknown) => void;
  };
  let maxCaseMs = 0;
  const started = performance.now();
  const details = fc.check(
    fc.property(arb, (c) => {
      const t = performance.now();
      run(c);
      maxCaseMs = Math.max(maxCaseMs, performance.now() - t);
    }),
    { numRuns, seed },
  );
  return finish(kind, details, started, maxCaseMs);
}

/** Run `numRuns` asynchronous cases (container level) from `seed`. */
export async function runAsyncFuzz<T>(
  kind: string,
  arb: fc.Arbitrary<T>,
  run: (c: T) => Promise<void>,
  numRuns: number,
  seed: number,
): Promise<FuzzResult> {
  let maxCaseMs = 0;
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(arb, async (c) => {
      const t = performance.now();
      await run(c);
      maxCaseMs = Math.max(maxCaseMs, performance.now() - t);
    }),
    { numRuns, seed },
  );
  return finish(kind, details, started, maxCaseMs);
}

function finish<T>(
  kind: string,
  details: fc.RunDetails<T>,
  started: number,
  maxCaseMs: number,
): FuzzResult {
  const result: FuzzResult = {
    kind,
    cases: details.numRuns,
    ms: performance.now() - started,
    maxCaseMs,
  };
  if (details.failed) {
    const err = details.errorInstance;
    const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    result.failure = `${why}\n${fc.defaultReportMessage(details) ?? ''}`;
  }
  return result;
}

/** One line for logs: `copy: 6000 cases in 812 ms (slowest 3.1 ms)`. */
export function describe(r: FuzzResult): string {
  return (
    `${r.kind}: ${r.cases} cases in ${Math.round(r.ms)} ms ` +
    `(slowest ${r.maxCaseMs.toFixed(1)} ms)${r.failure ? ' FAILED' : ''}`
  );
}
