/**
 * KDF tuning check: tune Argon2id for the default target (as `create` does), then time an
 * unlock with the chosen parameters, three times, and print how close it lands.
 */
import { performance } from 'node:perf_hooks';
import { deriveArgon2id } from '../crypto/kdf.js';
import { DEFAULT_KDF_TARGET_MS, planKdfParams } from '../src/volume/kdf-tuning.js';

/** Result of {@link benchKdf}. */
export interface KdfBenchResult {
  targetMs: number;
  params: { timeCost: number; memoryKiB: number; parallelism: number };
  unlockMs: number[];
  medianRatio: number;
}

/** Tune for `targetMs` and measure unlocks with the result. */
export async function benchKdf(targetMs = DEFAULT_KDF_TARGET_MS): Promise<KdfBenchResult> {
  const params = await planKdfParams({ targetMs });
  const unlockMs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    await deriveArgon2id(
      new TextEncoder().encode('benchmark'),
      new Uint8Array(32).fill(i + 1),
      params,
    );
    unlockMs.push(performance.now() - start);
  }
  const sorted = [...unlockMs].sort((a, b) => a - b);
  const result = { targetMs, params, unlockMs, medianRatio: sorted[1]! / targetMs };
  console.log(
    `argon2id tuned for ${targetMs} ms: t=${params.timeCost} m=${params.memoryKiB} KiB p=${params.parallelism}; ` +
      `unlock ${unlockMs.map((m) => m.toFixed(0)).join(' / ')} ms, median ${(result.medianRatio * 100).toFixed(0)}% of target`,
  );
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) await benchKdf();
