/**
 * `cryptainer benchmark`: this machine's speed for the choices `create` offers, like
 * `cryptsetup benchmark`. In memory only (no disk I/O):
 * - XTS-AES-256 encryption and decryption at 512 and 4096-byte sectors, as volumes use it
 *   (1 MiB batches, one thread: what a mounted volume gets per request stream);
 * - Argon2id at a few parameter sets: what one unlock costs at each.
 */
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { deriveArgon2id, type Argon2idParams } from '../../../crypto/kdf.js';
import { XtsCipher, type XtsEngine } from '../../../crypto/xts.js';
import { nativeXtsProblem } from '../../../crypto/xts-native.js';
import { out, outJson } from '../output.js';

const MIB = 1024 * 1024;

/** One XTS figure. */
export interface XtsFigure {
  sectorSize: number;
  /** The implementation volumes use at this sector size (crypto/xts.ts). */
  engine: XtsEngine;
  /** MiB/s (2^20 bytes per second), as cryptsetup prints. */
  encryptMiBps: number;
  decryptMiBps: number;
}

/** One Argon2id figure. */
export interface KdfFigure extends Argon2idParams {
  milliseconds: number;
}

/** Argon2id parameter sets timed by default (memory, passes, lanes), then by `--quick`. */
const KDF_SETS: Argon2idParams[] = [
  { memoryKiB: 64 * 1024, timeCost: 3, parallelism: 4 },
  { memoryKiB: 256 * 1024, timeCost: 4, parallelism: 4 },
  { memoryKiB: 1024 * 1024, timeCost: 4, parallelism: 4 },
];
const KDF_SETS_QUICK: Argon2idParams[] = [
  { memoryKiB: 8 * 1024, timeCost: 1, parallelism: 1 },
  { memoryKiB: 16 * 1024, timeCost: 2, parallelism: 2 },
];

/**
 * MiB/s of `fn`, which processes `bytes` per call: a short warm-up, then the best of three
 * equal rounds within `seconds` (interference on a shared machine only slows a round down).
 */
function rate(fn: () => void, bytes: number, seconds: number): number {
  const warm = performance.now() + 150; // JIT and the WebAssembly kernel warm up
  while (performance.now() < warm) fn();
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    let calls = 0;
    let elapsed = 0;
    do {
      fn();
      calls++;
      elapsed = (performance.now() - start) / 1000;
    } while (elapsed < seconds / 3);
    best = Math.max(best, (calls * bytes) / elapsed / MIB);
  }
  return best;
}

/** XTS throughput at each sector size, `seconds` per direction. */
export function benchmarkXts(sectorSizes: number[], seconds: number): XtsFigure[] {
  const data = randomBytes(MIB);
  const outBuf = Buffer.alloc(MIB);
  return sectorSizes.map((sectorSize) => {
    const key = randomBytes(64);
    const cipher = new XtsCipher(key, sectorSize);
    key.fill(0);
    try {
      // Sector numbers deep into a large volume: the cost does not depend on them.
      const first = 1_000_000;
      return {
        sectorSize,
        engine: cipher.engine,
        encryptMiBps: rate(() => cipher.encryptSectors(data, first, outBuf), MIB, seconds),
        decryptMiBps: rate(() => cipher.decryptSectors(data, first, outBuf), MIB, seconds),
      };
    } finally {
      cipher.dispose();
    }
  });
}

/** Time one Argon2id derivation per parameter set. */
export async function benchmarkKdf(sets: Argon2idParams[]): Promise<KdfFigure[]> {
  const figures: KdfFigure[] = [];
  const tiny = { memoryKiB: 64, timeCost: 1, parallelism: 1 };
  (await deriveArgon2id(new Uint8Array(1), new Uint8Array(16), tiny)).fill(0); // loads the addon
  for (const params of sets) {
    const start = performance.now();
    const key = await deriveArgon2id(
      new TextEncoder().encode('benchmark'),
      new Uint8Array(32).fill(7),
      params,
    );
    const milliseconds = performance.now() - start;
    key.fill(0);
    figures.push({ ...params, milliseconds });
  }
  return figures;
}

/** Register the command. */
export function registerBenchmark(program: Command): void {
  program
    .command('benchmark')
    .description('measure XTS-AES-256 and Argon2id speed on this machine (in memory, no disk)')
    .option('--quick', 'short runs and small Argon2id sets (rough figures, for a smoke test)')
    .option('--json', 'print as JSON')
    .action(async (opts: { quick?: boolean; json?: boolean }) => {
      const quick = opts.quick === true;
      const xts = benchmarkXts([512, 4096], quick ? 0.15 : 1);
      const kdf = await benchmarkKdf(quick ? KDF_SETS_QUICK : KDF_SETS);
      if (opts.json) {
        outJson({ xts, argon2id: kdf });
        return;
      }
      out('# In memory only, one thread, 1 MiB batches (no disk I/O).');
      if (nativeXtsProblem !== null) out(`# ${nativeXtsProblem}: slower fallback in use`);
      out('# Algorithm |  Key |  Sector |   Encryption |   Decryption | Engine');
      for (const f of xts) {
        out(
          `  aes-xts   | 512b | ${String(f.sectorSize).padStart(5)} B | ` +
            `${f.encryptMiBps.toFixed(1).padStart(7)} MiB/s | ${f.decryptMiBps.toFixed(1).padStart(7)} MiB/s | ${f.engine}`,
        );
      }
      out('# Argon2id, one derivation (what one unlock attempt costs)');
      for (const f of kdf) {
        out(
          `argon2id m=${String(f.memoryKiB / 1024).padStart(4)} MiB t=${f.timeCost} p=${f.parallelism}: ` +
            `${f.milliseconds.toFixed(0).padStart(6)} ms`,
        );
      }
    });
}
