// SPEC §4.1 (issue 12, D5): exactly one line ending is removed from a passphrase file: "\r\n",
// else "\n" or a lone "\r"; nothing else. The slot below was made with the 2 bytes "pw".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVolume } from '../../src/index.js';
import { runCli } from '../helpers/cli.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const path = join(dir, 'pw.img');

test.before(async () => {
  const v = await createVolume(path, { passphrase: 'pw', sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
});

const cases: Array<[string, string, number]> = [
  ['no line ending', 'pw', 0],
  ['"\\n"', 'pw\n', 0],
  ['"\\r\\n"', 'pw\r\n', 0],
  ['a lone "\\r"', 'pw\r', 0],
  ['two "\\n" (only one removed)', 'pw\n\n', 2],
  ['"\\n\\r" (only the "\\r" removed)', 'pw\n\r', 2],
  ['a trailing space (never trimmed)', 'pw ', 2],
];

for (const [name, content, status] of cases) {
  test(`passphrase file ending with ${name}: exit ${status}`, () => {
    const file = join(dir, `p${cases.findIndex((c) => c[0] === name)}`);
    writeFileSync(file, content);
    const r = runCli(['check', path, '--read-only', '--passphrase-file', file]);
    assert.is(r.status, status, r.stderr);
  });
}

test('stdin: one line, one "\\r" before its end removed', () => {
  assert.is(runCli(['check', path, '--read-only'], 'pw\r\n').status, 0);
  assert.is(runCli(['check', path, '--read-only'], 'pw\r').status, 0);
  assert.is(runCli(['check', path, '--read-only'], 'pw\r\r\n').status, 2);
});

test.after(cleanup);
test.run();
