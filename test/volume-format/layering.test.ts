// ARCHITECTURE §2: crypto/ and volume-format/ are pure. This test reads their sources and fails
// on any import of I/O, process control, FUSE or prompts, and on `process` or RNG use.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../../../', import.meta.url).pathname;
const FORBIDDEN_IMPORTS = [
  /from ['"](node:)?fs(\/promises)?['"]/,
  /from ['"](node:)?child_process['"]/,
  /from ['"](node:)?net['"]/,
  /from ['"](node:)?os['"]/,
  /from ['"]fuse-native['"]/,
  /from ['"]inquirer['"]/,
  /from ['"]@inquirer\//,
  /from ['"]\.\.\/src\//,
];
const FORBIDDEN_USES = [
  /\bprocess\./,
  /randomBytes|getRandomValues|randomFill|Math\.random/,
  /Date\.now|performance\.now/,
];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, dir, f));
}

for (const dir of ['crypto', 'volume-format']) {
  test(`${dir}/ has no I/O, process or RNG use`, () => {
    const files = sources(dir);
    assert.ok(files.length > 0, `no sources in ${dir}`);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const re of [...FORBIDDEN_IMPORTS, ...FORBIDDEN_USES]) {
        assert.not.match(text, re, `${file} matches ${re}`);
      }
    }
  });
}

test('crypto/ imports nothing of ours; volume-format/ imports only crypto/', () => {
  for (const file of sources('crypto')) {
    assert.not.match(readFileSync(file, 'utf8'), /from ['"]\.\.\//, file);
  }
  for (const file of sources('volume-format')) {
    for (const m of readFileSync(file, 'utf8').matchAll(/from ['"](\.\.\/[^'"]+)['"]/g)) {
      assert.ok(m[1]!.startsWith('../crypto/'), `${file} imports ${m[1]}`);
    }
  }
});

test('argon2 is imported only by crypto/kdf.ts, fuse-native by one adapter', () => {
  const all = [
    'crypto',
    'volume-format',
    'src',
    'src/io',
    'src/volume',
    'src/cli',
    'src/cli/commands',
    'src/drive',
  ].flatMap((d) => {
    try {
      return sources(d);
    } catch {
      return [];
    }
  });
  const argon = all.filter((f) => /from ['"]argon2['"]/.test(readFileSync(f, 'utf8')));
  assert.equal(
    argon.map((f) => f.slice(ROOT.length)),
    ['crypto/kdf.ts'],
  );
  const fuse = all.filter((f) => /from ['"]fuse-native['"]/.test(readFileSync(f, 'utf8')));
  assert.ok(fuse.length <= 1, `fuse-native imported by ${fuse.join(', ')}`);
});

test.run();
