/**
 * Choosing Argon2id cost for a new keyslot, like cryptsetup's `--iter-time`: as much memory as
 * allowed (up to a cap), then as many passes as fit the target unlock time on this machine.
 */
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type Argon2idParams, KDF_LIMITS, deriveArgon2id } from '../../crypto/kdf.js';

/** cryptsetup's default unlock time. */
export const DEFAULT_KDF_TARGET_MS = 2000;
/** cryptsetup's default memory cap for Argon2 (1 GiB). */
export const DEFAULT_KDF_MAX_MEMORY_KIB = 1024 * 1024;
/** Lowest memory the tuner picks when the machine is too slow for the target. */
const MIN_TUNED_MEMORY_KIB = 64 * 1024;

/** Inputs to {@link planKdfParams}. */
export interface KdfTuning {
  targetMs?: number;
  maxMemoryKiB?: number;
  parallelism?: number;
}

/** Lanes: 4 like cryptsetup, fewer on machines with fewer cores. */
export function defaultParallelism(): number {
  return Math.max(1, Math.min(4, cpus().length));
}

async function timeArgon2id(params: Argon2idParams): Promise<number> {
  const salt = new Uint8Array(32);
  const start = performance.now();
  await deriveArgon2id(new Uint8Array(16), salt, params, 32);
  return performance.now() - start;
}

/**
 * Measure this machine and return parameters whose unlock takes about `targetMs`
 * (default 2 s). Memory is min(cap, half the RAM); passes fill the remaining time.
 */
export async function planKdfParams(tuning: KdfTuning = {}): Promise<Argon2idParams> {
  const targetMs = tuning.targetMs ?? DEFAULT_KDF_TARGET_MS;
  const parallelism = tuning.parallelism ?? defaultParallelism();
  const halfRamKiB = Math.floor(totalmem() / 2048);
  let memoryKiB = Math.min(
    tuning.maxMemoryKiB ?? DEFAULT_KDF_MAX_MEMORY_KIB,
    halfRamKiB,
    KDF_LIMITS.maxMemoryKiB,
  );
  memoryKiB = Math.max(memoryKiB, 8 * parallelism);
  const one = await timeArgon2id({ timeCost: 1, memoryKiB, parallelism });
  if (one >= targetMs) {
    // Too slow even for one pass: scale memory down (time is roughly linear in memory).
    const scaled = Math.floor((memoryKiB * targetMs) / one);
    memoryKiB = Math.max(Math.min(MIN_TUNED_MEMORY_KIB, memoryKiB), scaled, 8 * parallelism);
    return { timeCost: 1, memoryKiB, parallelism };
  }
  const two = await timeArgon2id({ timeCost: 2, memoryKiB, parallelism });
  const perPass = Math.max(two - one, 1);
  const fixed = Math.max(one - perPass, 0);
  const passes = Math.round((targetMs - fixed) / perPass);
  return {
    timeCost: Math.min(Math.max(passes, 1), KDF_LIMITS.maxTimeCost),
    memoryKiB,
    parallelism,
  };
}
