/**
 * Temporary directories for tests, named with the `cryptainer-test-` mark that the test runner
 * scans for leftover mounts and loop devices.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Create a fresh temporary directory; returns its path and a cleanup function. */
export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Like {@link makeTempDir}, on a memory file system when there is one (/dev/shm): for tests
 * that copy whole containers hundreds of times and never need a real fsync.
 */
export function makeMemoryTempDir(): { dir: string; cleanup: () => void } {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'cryptainer-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Cheap Argon2id parameters: the explicit test-only setting (production code is the same). */
export const TEST_KDF = { timeCost: 1, memoryKiB: 64, parallelism: 1 } as const;
