/**
 * Temporary directories for tests, named with the `cryptainer-test-` mark that the test runner
 * scans for leftover mounts and loop devices.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Create a fresh temporary directory; returns its path and a cleanup function. */
export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Cheap Argon2id parameters: the explicit test-only setting (production code is the same). */
export const TEST_KDF = { timeCost: 1, memoryKiB: 64, parallelism: 1 } as const;
