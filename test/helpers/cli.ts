/** Run the built `cryptainer` binary as a user would, capturing stdout, stderr and the status. */
import { spawnSync } from 'node:child_process';

/** Path of the built CLI entry point (for tests that run it through a shell). */
export const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;

/** Result of one CLI run. */
export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run `cryptainer ...args` with optional stdin text (stdin is a pipe, never a TTY). */
export function runCli(args: string[], input = '', timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    input,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Cheap KDF flags for tests (explicit parameters; production uses the same code path). */
export const CHEAP_KDF = ['--kdf-memory', '64', '--kdf-time', '1', '--kdf-parallelism', '1'];
