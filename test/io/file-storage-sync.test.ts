// The power-loss model (test/helpers/power-loss-storage.ts) trusts that Storage.sync() and
// syncData() reach the disk; this checks the one real Storage: FileStorage.sync() must issue
// fsync(2) and syncData() fdatasync(2) on the container's descriptor (seen with strace), so the
// fsync audit (scripts/fsync-audit.mjs) catches the removal of either.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const hasStrace = spawnSync('strace', ['-V']).status === 0;

/** The syscalls (fsync, fdatasync) a child makes while it runs `body` on a FileStorage. */
function syncCallsOf(body: string): string[] {
  const module = new URL('../../src/io/file-storage.js', import.meta.url).href;
  const log = join(dir, `strace-${Math.random().toString(16).slice(2)}.txt`);
  const script =
    `const { FileStorage } = await import(${JSON.stringify(module)});` +
    `const s = await FileStorage.open(${JSON.stringify(join(dir, 'c.img'))}, { createExclusive: true });` +
    `await s.writeAt(0, new Uint8Array(4096).fill(1)); ${body}; await s.close();`;
  const r = spawnSync(
    'strace',
    [
      '-f',
      '-qq',
      '-e',
      'trace=fsync,fdatasync',
      '-o',
      log,
      process.execPath,
      '--input-type=module',
      '-e',
      script,
    ],
    { encoding: 'utf8' },
  );
  assert.is(r.status, 0, r.stderr);
  spawnSync('rm', ['-f', join(dir, 'c.img')]);
  return readFileSync(log, 'utf8')
    .split('\n')
    .flatMap((l) => /\b(fsync|fdatasync)\(/.exec(l)?.[1] ?? []);
}

test('FileStorage.sync() issues fsync(2), syncData() fdatasync(2)', () => {
  if (!hasStrace) {
    console.log('    skipped: strace is not installed');
    return;
  }
  assert.equal(syncCallsOf(''), [], 'no sync without a call');
  assert.equal(syncCallsOf('await s.sync()'), ['fsync']);
  assert.equal(syncCallsOf('await s.syncData()'), ['fdatasync']);
});

test.after(cleanup);
test.run();
