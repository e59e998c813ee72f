/**
 * The crypto layer stays pure (ARCHITECTURE.md §2): it imports only node:crypto, @noble and
 * (kdf.ts alone) argon2, and never touches the process, a clock or a random source. Reads the
 * TypeScript sources, so a forbidden import fails here before review.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

// dist/test/crypto/purity.test.js → <repo>/crypto/
const CRYPTO_DIR = new URL('../../../crypto/', import.meta.url);

function sources(): { name: string; code: string }[] {
  return readdirSync(CRYPTO_DIR)
    .filter((f) => f.endsWith('.ts'))
    .map((name) => ({
      name,
      code: stripComments(readFileSync(new URL(name, CRYPTO_DIR), 'utf8')),
    }));
}

/** Drops block and line comments, so prose like "once per process" is not flagged. */
function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
}

function importsOf(code: string): string[] {
  const found: string[] = [];
  for (const m of code.matchAll(
    /\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'|\brequire\s*\(\s*'([^']+)'/g,
  )) {
    found.push(m[1] ?? m[2] ?? m[3]!);
  }
  return found;
}

test('the crypto sources are found', () => {
  const names = sources().map((s) => s.name);
  for (const f of ['aead.ts', 'bytes.ts', 'hkdf.ts', 'index.ts', 'kdf.ts', 'xts.ts']) {
    assert.ok(names.includes(f), f);
  }
});

test('imports: relative, node:crypto, @noble; argon2 only in kdf.ts, node:module (the addon) only in xts-native.ts', () => {
  const kdf = sources().find((s) => s.name === 'kdf.ts')!;
  assert.ok(importsOf(kdf.code).includes('argon2')); // the scanner does see imports
  for (const { name, code } of sources()) {
    for (const spec of importsOf(code)) {
      const ok =
        spec.startsWith('./') ||
        spec === 'node:crypto' ||
        /^@noble\/(hashes|ciphers)\/[a-z0-9]+\.js$/.test(spec) ||
        (spec === 'argon2' && name === 'kdf.ts') ||
        (spec === 'node:module' && name === 'xts-native.ts');
      assert.ok(ok, `${name} imports ${spec}`);
    }
  }
});

test('no process, clock or randomness', () => {
  const forbidden = [
    /\bprocess\b/,
    /\brandom(Bytes|Fill|FillSync|Int|UUID)\b/,
    /\bgetRandomValues\b/,
    /\bMath\.random\b/,
    /\bDate\b/,
    /\bperformance\b/,
    /\bhrtime\b/,
    /\bsetTimeout\b|\bsetInterval\b/,
  ];
  for (const { name, code } of sources()) {
    for (const re of forbidden) assert.not.ok(re.test(code), `${name} matches ${re}`);
  }
});

test.run();
