#!/usr/bin/env node
// Runs every compiled uvu test file in its own Node process (an unhandled rejection in one
// file must not take the others down: FACTS.md, uvu 0.5.6), sums the real uvu totals and ends
// with the `N passed, N failed, N skipped` line that CI reads. Afterwards it fails the run if a
// test left a FUSE mount, a filesystem mount or a loop device behind.
//
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one)
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const TEST_DIR = join(ROOT, 'dist', 'test');
/** Per-file wall-clock limit: uvu has no per-test timeout, so a hung mount test is cut here. */
const FILE_TIMEOUT_MS = 15 * 60 * 1000;
/** Test volumes and mountpoints are created under directories whose name contains this. */
const TEST_MARK = 'cryptainer-test-';

function listTestFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listTestFiles(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk) => process.stderr.write(chunk));
    const timer = setTimeout(() => {
      process.stdout.write(`\n  timeout: ${relative(ROOT, file)} ran over ${FILE_TIMEOUT_MS} ms\n`);
      child.kill('SIGKILL');
    }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

function parseTotals(stdout) {
  const total = /Total:\s+(\d+)/.exec(stdout);
  const passed = /Passed:\s+(\d+)/.exec(stdout);
  const skipped = /Skipped:\s+(\d+)/.exec(stdout);
  if (!total || !passed || !skipped) return null;
  return { total: +total[1], passed: +passed[1], skipped: +skipped[1] };
}

/** Mounts and loop devices that tests made (their paths carry TEST_MARK) and did not undo. */
function leftovers() {
  const found = [];
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    if (line.includes(TEST_MARK)) found.push(`mount: ${line}`);
  }
  try {
    const loops = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
    for (const line of loops.split('\n')) if (line.includes(TEST_MARK)) found.push(`loop: ${line}`);
  } catch {
    // losetup missing or no loop support: nothing of ours can be attached either.
  }
  return found;
}

const filters = process.argv.slice(2);
const files = listTestFiles(TEST_DIR).filter(
  (f) => filters.length === 0 || filters.some((s) => f.includes(s)),
);
let passed = 0;
let failed = 0;
let skipped = 0;
const failedFiles = [];
for (const file of files) {
  const name = relative(ROOT, file);
  process.stdout.write(`\n# ${name}\n`);
  const result = await runFile(file);
  const totals = parseTotals(result.stdout);
  if (!totals) {
    // The file crashed before uvu printed its summary: count it as one failure.
    failed += 1;
    failedFiles.push(`${name} (no summary; exit ${result.code ?? result.signal})`);
    continue;
  }
  const fileFailed = totals.total - totals.passed - totals.skipped;
  passed += totals.passed;
  skipped += totals.skipped;
  failed += fileFailed;
  if (fileFailed > 0 || result.code !== 0) {
    if (fileFailed === 0) failed += 1; // non-zero exit with all tests passed: still a failure
    failedFiles.push(name);
  }
}
const left = leftovers();
if (left.length > 0) {
  failed += 1;
  failedFiles.push('mounts left behind by tests:\n    ' + left.join('\n    '));
}
if (files.length === 0) {
  failed += 1;
  failedFiles.push('no test files found under dist/test (did the build run?)');
}
if (failedFiles.length > 0) process.stdout.write(`\nfailed:\n  ${failedFiles.join('\n  ')}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed > 0 ? 1 : 0;
