// `cryptainer benchmark` (issue 6): runs, prints every figure, and the figures are sane.
// --quick keeps it to about a second; the numbers themselves depend on the machine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../helpers/cli.js';

interface Report {
  xts: { sectorSize: number; engine: string; encryptMiBps: number; decryptMiBps: number }[];
  argon2id: { memoryKiB: number; timeCost: number; parallelism: number; milliseconds: number }[];
}

test('benchmark --quick --json: XTS at 512 and 4096-byte sectors, Argon2id timings', () => {
  const r = runCli(['benchmark', '--quick', '--json']);
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.equal(
    report.xts.map((f) => f.sectorSize),
    [512, 4096],
  );
  for (const f of report.xts) {
    assert.is(f.engine, 'native', 'volumes use the native XTS engine');
    // Sane: faster than 10 MiB/s (even a loaded machine), slower than memory bandwidth.
    for (const v of [f.encryptMiBps, f.decryptMiBps]) {
      assert.ok(Number.isFinite(v) && v > 10 && v < 100_000, `xts ${f.sectorSize}: ${v} MiB/s`);
    }
  }
  assert.ok(report.argon2id.length >= 2);
  for (const k of report.argon2id) {
    assert.ok(k.memoryKiB >= 8 && k.timeCost >= 1 && k.parallelism >= 1);
    assert.ok(k.milliseconds > 0 && k.milliseconds < 60_000, `argon2id ${k.milliseconds} ms`);
  }
});

test('benchmark --quick: a readable table on stdout', () => {
  const r = runCli(['benchmark', '--quick']);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.is(lines.filter((l) => /aes-xts .* (512|4096) B .*MiB\/s .*MiB\/s/.test(l)).length, 2);
  assert.ok(lines.some((l) => /^argon2id m=\s*\d+ MiB t=\d p=\d:\s+\d+ ms$/.test(l)));
  assert.is(r.stderr, '');
});

test('benchmark rejects an unknown option (usage, exit 1)', () => {
  const r = runCli(['benchmark', '--bogus']);
  assert.is(r.status, 1);
});

test.run();
