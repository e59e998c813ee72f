/**
 * Crash-point exploration under the power-loss model (power-loss-storage.ts): run an
 * operation once per crash point, then check several persisted states of each (all lost, all
 * kept, only the newest write landed, and seeded random mixes of lost, kept and torn writes).
 * A failure names the operation, the crash point, the state and its seed.
 *
 * Environment: `CRYPTAINER_POWERLOSS_SEEDS=N` checks N random states per crash point (default
 * 2); `CRYPTAINER_POWERLOSS_SEED=S` changes the base seed (default 1) that every state's seed
 * is derived from, so a failure is replayed by running the same test with the same base seed.
 * `CRYPTAINER_POWERLOSS_BAIL=1` (scripts/fsync-audit.mjs) prints the first failure on one
 * line starting with `POWERLOSS-FAIL` and ends the process.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '../../src/io/file-storage.js';
import { isSimulatedCrash } from './fault-storage.js';
import { type PersistPlan, PowerLossStorage } from './power-loss-storage.js';

/** Random persisted states checked per crash point. */
export const RANDOM_STATES = envInt('CRYPTAINER_POWERLOSS_SEEDS', 2);
/** Base seed of every random state. */
export const BASE_SEED = envInt('CRYPTAINER_POWERLOSS_SEED', 1);

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number`);
  return n;
}

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed from a base seed and the parts that name a state (FNV-1a). */
export function seedOf(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('/')) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** The persisted states checked at one crash point with `pending` unsynced operations. */
export function plansFor(name: string, point: number, pending: number): PersistPlan[] {
  if (pending === 0) return [{ label: 'durable', write: () => [], truncate: () => false }];
  const plans: PersistPlan[] = [
    { label: 'all lost', write: (_, n) => Array(n).fill(false), truncate: () => false },
    { label: 'all kept', write: (_, n) => Array(n).fill(true), truncate: () => true },
    {
      // Only the newest operation landed: the sharpest reordering.
      label: 'newest only',
      write: (i, n) => Array(n).fill(i === pending - 1),
      truncate: (i) => i === pending - 1,
    },
  ];
  for (let k = 0; k < RANDOM_STATES; k++) {
    const seed = seedOf(BASE_SEED, name, point, k);
    const rand = prng(seed);
    // Decisions are drawn in operation order, each operation once.
    const decided = new Map<number, boolean[] | boolean>();
    plans.push({
      label: `random seed ${seed}`,
      write: (i, n) => {
        if (!decided.has(i)) {
          const r = rand();
          const torn = r >= 2 / 3;
          decided.set(
            i,
            Array.from({ length: n }, () => (torn ? rand() < 0.5 : r < 1 / 3)),
          );
        }
        return decided.get(i) as boolean[];
      },
      truncate: (i) => {
        if (!decided.has(i)) decided.set(i, rand() < 0.5);
        return decided.get(i) as boolean;
      },
    });
  }
  return plans;
}

/** Whether the operation had crashed or returned when the power went. */
export type Outcome = 'crashed' | 'completed';

/** What {@link exploreCrashPoints} needs. */
export interface CrashExploration {
  /** Names the operation in messages and seeds. */
  name: string;
  /** The container before the operation (taken as durable). */
  base: string;
  /** Scratch directory for the working copies. */
  dir: string;
  /** Run the operation on `path` through `storage`; it throws SimulatedCrash at the crash. */
  run: (path: string, storage: PowerLossStorage) => Promise<void>;
  /**
   * Check one persisted state at `path`: throw unless it is the old or the new state (only
   * the new one when the operation had `completed`); return a label to count ('old', 'new').
   */
  check: (path: string, outcome: Outcome) => Promise<string>;
}

/** Counts of one exploration. */
export interface CrashStats {
  points: number;
  states: number;
  labels: Record<string, number>;
}

/**
 * Crash `run` at every write and truncate (crash points 0, 1, ... until it completes), and
 * check every persisted state {@link plansFor} lists, including after completion, when any
 * still unsynced write may be lost (a returned operation must be durable).
 */
export async function exploreCrashPoints(e: CrashExploration): Promise<CrashStats> {
  const stats: CrashStats = { points: 0, states: 0, labels: {} };
  const slug = e.name.replace(/\W+/g, '_');
  const work = join(e.dir, `${slug}-work.img`);
  const state = join(e.dir, `${slug}-state.img`);
  for (let point = 0; ; point++) {
    copyFileSync(e.base, work);
    const storage = new PowerLossStorage(await FileStorage.open(work), point);
    let outcome: Outcome = 'completed';
    try {
      await e.run(work, storage);
    } catch (err) {
      if (!isSimulatedCrash(err)) throw err;
      outcome = 'crashed';
    } finally {
      await storage.close();
    }
    if (outcome === 'crashed') stats.points++;
    for (const plan of plansFor(e.name, point, storage.pendingCount)) {
      copyFileSync(work, state);
      const target = await FileStorage.open(state);
      try {
        await storage.persistTo(target, plan);
      } finally {
        await target.close();
      }
      let label: string;
      try {
        label = await e.check(state, outcome);
      } catch (err) {
        const where =
          outcome === 'crashed' ? `crash at write ${point}` : `power cut after it returned`;
        const message =
          `power loss: ${e.name}: ${where}, persisted state "${plan.label}" ` +
          `(CRYPTAINER_POWERLOSS_SEED=${BASE_SEED}): ${(err as Error).message}`;
        if (process.env.CRYPTAINER_POWERLOSS_BAIL) {
          // scripts/fsync-audit.mjs: the first failure is the answer; skip the rest.
          process.stdout.write(`\nPOWERLOSS-FAIL ${message}\n`);
          rmSync(e.dir, { recursive: true, force: true }); // test.after will not run
          process.exit(1);
        }
        throw new Error(message, { cause: err });
      }
      stats.states++;
      stats.labels[label] = (stats.labels[label] ?? 0) + 1;
    }
    if (outcome === 'completed') return stats;
  }
}

/** One line for the test output: crash points, states checked and the seeds used. */
export function describeStats(name: string, s: CrashStats): string {
  const labels = Object.entries(s.labels)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  return (
    `    ${name}: ${s.points} crash points, ${s.states} persisted states (${labels}); ` +
    `base seed ${BASE_SEED}, ${RANDOM_STATES} random states per point`
  );
}
