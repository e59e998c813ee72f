// The layering rules of ARCHITECTURE.md §2, checked on the import graph of the sources.
// Every way a file can pull in a module counts: static `import`/`export … from`, side-effect
// `import 'x'`, dynamic `import('x')`, `require('x')` and calls of a function made by
// `createRequire` (fuse-native is loaded that way). crypto/ and volume-format/ are also pure:
// no I/O, process or RNG use.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = new URL('../../../', import.meta.url).pathname;

/** Every .ts file under `dir` (recursive), as paths relative to the repo root. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/**
 * The module specifiers `text` imports, by any of the ways listed at the top. Comments are
 * removed first so a mention in prose is not an import.
 */
export function importsOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  // `const load = createRequire(import.meta.url)` makes `load('x')` an import too.
  for (const m of code.matchAll(/\b(\w+)\s*=\s*createRequire\s*\(/g)) {
    patterns.push(new RegExp(`\\b${m[1]}\\s*\\(\\s*['"]([^'"]+)['"]\\s*\\)`, 'g'));
  }
  for (const re of patterns) for (const m of code.matchAll(re)) found.push(m[1]!);
  return found;
}

/** Repo-relative target of a relative specifier (`.js` → `.ts`), or the bare package name. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts');
}

const LAYERS = ['crypto', 'volume-format', 'src', 'bench', 'scripts'];
const FILES = LAYERS.flatMap(sources);
const GRAPH = new Map(FILES.map((f) => [f, importsOf(readFileSync(join(ROOT, f), 'utf8'))]));

/** Each rule: files it applies to, and a test of each import target that says why it is wrong. */
const RULES: { name: string; applies: (f: string) => boolean; bad: (t: string) => boolean }[] = [
  {
    name: 'crypto/ imports nothing of ours',
    applies: (f) => f.startsWith('crypto/'),
    bad: (t) => /^(src|volume-format|bench|scripts|test)\//.test(t),
  },
  {
    name: 'volume-format/ imports only crypto/',
    applies: (f) => f.startsWith('volume-format/'),
    bad: (t) => /^(src|bench|scripts|test)\//.test(t),
  },
  {
    name: 'src/volume/ never imports src/drive/ or src/cli/',
    applies: (f) => f.startsWith('src/volume/'),
    bad: (t) => /^src\/(drive|cli)\//.test(t),
  },
  {
    name: 'src/ does not import bench/, scripts/ or test/',
    applies: (f) => f.startsWith('src/'),
    bad: (t) => /^(bench|scripts|test)\//.test(t),
  },
  {
    name: 'only src/drive/fuse-adapter.ts imports fuse-native',
    applies: (f) => f !== 'src/drive/fuse-adapter.ts',
    bad: (t) => t === 'fuse-native' || t.startsWith('fuse-native/'),
  },
  {
    name: 'only crypto/kdf.ts imports argon2',
    applies: (f) => f !== 'crypto/kdf.ts',
    bad: (t) => t === 'argon2',
  },
];

for (const rule of RULES) {
  test(rule.name, () => {
    const broken: string[] = [];
    for (const [file, specs] of GRAPH) {
      if (!rule.applies(file)) continue;
      for (const spec of specs) if (rule.bad(target(file, spec))) broken.push(`${file} → ${spec}`);
    }
    assert.equal(broken, [], broken.join('\n'));
  });
}

test('the import scanner sees every form (so the rules above can fail)', () => {
  const sample = [
    "import { a } from '../src/x.js';",
    "export * from './y.js';",
    "import 'side-effect';",
    "const m = await import('fuse-native');",
    "const r = require('argon2');",
    'const load = createRequire(import.meta.url);',
    "const f = load('fuse-native');",
    "// import { no } from 'comment-only';",
  ].join('\n');
  assert.equal(importsOf(sample).sort(), [
    '../src/x.js',
    './y.js',
    'argon2',
    'fuse-native',
    'fuse-native',
    'side-effect',
  ]);
  assert.ok(GRAPH.get('src/drive/fuse-adapter.ts')!.includes('fuse-native'));
});

const FORBIDDEN_IN_PURE = [
  /^(node:)?(fs|fs\/promises|child_process|net|os|worker_threads)$/,
  /^(fuse-native|inquirer|@inquirer\/.*)$/,
];
const FORBIDDEN_USES = [
  /\bprocess\./,
  /randomBytes|getRandomValues|randomFill|Math\.random/,
  /Date\.now|performance\.now/,
];

for (const dir of ['crypto', 'volume-format']) {
  test(`${dir}/ has no I/O, process or RNG use`, () => {
    const files = FILES.filter((f) => f.startsWith(`${dir}/`));
    assert.ok(files.length > 0, `no sources in ${dir}`);
    for (const file of files) {
      for (const spec of GRAPH.get(file)!) {
        for (const re of FORBIDDEN_IN_PURE) assert.not.match(spec, re, `${file} imports ${spec}`);
      }
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const re of FORBIDDEN_USES) assert.not.match(text, re, `${file} matches ${re}`);
    }
  });
}

test.run();
