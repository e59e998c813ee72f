// scripts/fsync-audit.mjs on one site: it lists the header store's fsync, and removing that
// fsync makes the power-loss key tests fail, which the audit reports as caught.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = 'scripts/fsync-audit.mjs';

function audit(...args: string[]) {
  return spawnSync(process.execPath, [SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8' });
}

test('the audit lists the sync sites and catches the removal of the header fsync', () => {
  const list = audit('--list');
  assert.is(list.status, 0, list.stderr);
  const site = /^(src\/volume\/header-store\.ts:\d+)\s/m.exec(list.stdout)?.[1];
  assert.ok(site, 'the header store fsync is listed');
  assert.match(list.stdout, /src\/volume\/volume\.ts:\d+/);
  const run = audit('--only', site!, '--tests', 'powerloss-keys');
  assert.is(run.status, 0, run.stdout + run.stderr);
  assert.match(
    run.stdout,
    new RegExp(`${site} \\| .* \\| test/volume/powerloss-keys\\.test\\.ts: `),
  );
  assert.match(run.stdout, /1 sites: 0 uncaught/);
});

test.run();
