#!/usr/bin/env node
// The fsync audit (issue 12): every sync call site in src/ is removed in turn (a mutation of
// the compiled JavaScript in a temporary copy of dist/), the power-loss tests run against the
// mutant, and the table says, for every site, the first test that failed (or UNCAUGHT). A site
// no test catches is either unnecessary or a gap in the model.
//
// Usage: node scripts/fsync-audit.mjs [--list] [--only <file:line>]... [--tests <substr>]...
//   --list     print the sites and exit
//   --only     audit only these sites (file:line as listed, e.g. src/volume/header-store.ts:43)
//   --tests    run only test files whose path contains one of these (default: all power-loss
//              tests and the FileStorage syscall test)
// Needs a fresh `npm run build`. Exit status 1 when a site is UNCAUGHT.
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
/** Test files run against each mutant, fastest first (each stops at its first failure). */
const DEFAULT_TESTS = [
  'dist/test/io/file-storage-sync.test.js',
  'dist/test/volume/powerloss-keys.test.js',
  'dist/test/volume/powerloss-data.test.js',
  'dist/test/volume/powerloss-create.test.js',
  'dist/test/volume/powerloss-reencrypt.test.js',
  // Not power loss: an error that only fsync reports (the journal allocation of SPEC §15.6 S0).
  'dist/test/volume/sync-errors.test.js',
];
/**
 * Sites outside what the power-loss model can see, with the reason; they are listed but not
 * mutated. Keyed by file and the text of the call.
 */
const OUTSIDE_MODEL = [
  {
    file: 'src/drive/kernel-fuse-worker.ts',
    match: 'fdatasyncSync(',
    why: 'kernel FUSE worker writes the container through a raw descriptor, not a Storage',
  },
  {
    file: 'src/drive/kernel-fuse.ts',
    match: 'fdatasync(',
    why: 'background writeback kick of the kernel FUSE path (raw descriptor, performance only)',
  },
  {
    file: 'src/drive/fuse-adapter.ts',
    match: 'await fsync(',
    why: 'forwards a FUSE fsync request to the handler; needs a live mount',
  },
  {
    file: 'src/drive/tool-drive.ts',
    match: 'volume.sync()',
    why: 'flush after a tool (mkfs/resize2fs) ran on a live FUSE drive; needs a mount',
  },
];
/**
 * Sites that are there for speed, not for any crash state: the audit still removes them, and
 * expects no test to fail (UNCAUGHT is then the right answer, not a gap).
 */
const PERFORMANCE_ONLY = [
  {
    file: 'src/volume/reencrypt.ts',
    match: '.syncData().finally(',
    why: 'early writeback while a segment is still being written; SPEC §15.6 step 4 needs only the final fdatasync',
  },
];
/** A sync call: `x.sync()`, `x.syncData()`, `x.datasync()`, fs `fdatasync(`, `fsync(`. */
const CALL =
  /((?:[\w$]+(?:\(\))?\.)+)(sync|syncData|datasync)\(\)|\bfdatasync(?:Sync)?\(|\bawait fsync\(/g;
/** Lines that only define or mention a sync (comments, method definitions, imports). */
const NOT_A_CALL =
  /^\s*(\/\/|\*|\/\*)|^\s*(async\s+)?(sync|syncData|fsync|flush)\s*\(|^\s*import\b/;

function listFiles(dir, ext) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listFiles(path, ext));
    else if (name.endsWith(ext) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Sync call sites of one source text: [{ line, column, text }] in order. */
function callsIn(text) {
  const found = [];
  text.split('\n').forEach((line, i) => {
    if (NOT_A_CALL.test(line)) return;
    for (const m of line.matchAll(CALL)) {
      found.push({ line: i + 1, index: m.index, text: m[0], source: line });
    }
  });
  return found;
}

/** Every site in src/*.ts, paired with the same call in the compiled dist/src/*.js. */
function listSites() {
  const sites = [];
  for (const ts of listFiles(join(ROOT, 'src'), '.ts')) {
    const rel = relative(ROOT, ts);
    const calls = callsIn(readFileSync(ts, 'utf8'));
    if (calls.length === 0) continue;
    const jsRel = join('dist', rel.replace(/\.ts$/, '.js'));
    const jsCalls = callsIn(readFileSync(join(ROOT, jsRel), 'utf8'));
    if (jsCalls.length !== calls.length) {
      throw new Error(`${rel}: ${calls.length} sync calls, ${jsRel}: ${jsCalls.length} (rebuild?)`);
    }
    calls.forEach((c, k) => {
      const outside = OUTSIDE_MODEL.find((o) => o.file === rel && c.source.includes(o.match));
      const perf = PERFORMANCE_ONLY.find((o) => o.file === rel && c.source.includes(o.match));
      sites.push({ id: `${rel}:${c.line}`, text: c.text, jsRel, js: jsCalls[k], outside, perf });
    });
  }
  return sites;
}

/** The call replaced by a no-op that keeps the expression's shape. */
function mutate(text) {
  if (text.startsWith('fdatasyncSync(')) return 'void (';
  if (text.startsWith('fdatasync(')) return '((_fd, cb) => cb(null))(';
  if (text.startsWith('await fsync(')) return 'await (async () => undefined)(';
  return 'Promise.resolve()';
}

function runTest(distRoot, file, filterLog) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(distRoot, relative('dist', file))], {
      cwd: ROOT,
      env: { ...process.env, CRYPTAINER_POWERLOSS_BAIL: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => {
      const fail = /POWERLOSS-FAIL (.*)/.exec(out)?.[1] ?? /FAIL\s+"([^"]+)"/.exec(out)?.[1];
      filterLog(`    ${file}: ${code === 0 ? 'passed' : 'FAILED'}`);
      resolve(code === 0 ? null : (fail ?? `exit ${code}`));
    });
  });
}

const args = process.argv.slice(2);
const only = [];
const tests = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only') only.push(args[++i]);
  else if (args[i] === '--tests') tests.push(args[++i]);
}
const sites = listSites();
if (args.includes('--list')) {
  for (const s of sites) {
    const note = s.outside
      ? `  (not modelled: ${s.outside.why})`
      : s.perf
        ? '  (performance only)'
        : '';
    console.log(`${s.id}  ${s.text}${note}`);
  }
  process.exit(0);
}
const testFiles = DEFAULT_TESTS.filter(
  (f) => (tests.length === 0 || tests.some((t) => f.includes(t))) && existsSync(join(ROOT, f)),
);
if (testFiles.length === 0)
  throw new Error('no power-loss test files in dist/ (run npm run build)');
const chosen = sites.filter((s) => only.length === 0 || only.includes(s.id));
if (chosen.length === 0) throw new Error(`no site matches ${only.join(', ')}`);
const rows = [];
// The copy lives inside the repository so that node_modules resolves from it.
const tmp = mkdtempSync(join(ROOT, '.fsync-audit-'));
try {
  for (const site of chosen) {
    if (site.outside) {
      rows.push({ site, result: `NOT MODELLED: ${site.outside.why}` });
      continue;
    }
    const started = Date.now();
    console.log(`${site.id}  ${site.text}`);
    const distRoot = join(tmp, 'dist');
    rmSync(distRoot, { recursive: true, force: true });
    cpSync(join(ROOT, 'dist'), distRoot, { recursive: true });
    const jsPath = join(tmp, site.jsRel);
    const lines = readFileSync(jsPath, 'utf8').split('\n');
    const line = lines[site.js.line - 1];
    lines[site.js.line - 1] =
      line.slice(0, site.js.index) +
      mutate(site.js.text) +
      line.slice(site.js.index + site.js.text.length);
    writeFileSync(jsPath, lines.join('\n'));
    let caught = null;
    for (const file of testFiles) {
      caught = await runTest(distRoot, file, console.log);
      if (caught !== null) {
        caught = `${file.replace(/^dist\//, '').replace(/\.js$/, '.ts')}: ${caught}`;
        break;
      }
    }
    const secs = Math.round((Date.now() - started) / 1000);
    const result = caught ?? (site.perf ? `UNCAUGHT, as expected: ${site.perf.why}` : 'UNCAUGHT');
    rows.push({ site, result, secs });
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log('\nsite | removed call | first failing test');
console.log('--- | --- | ---');
for (const r of rows)
  console.log(
    `${r.site.id} | \`${r.site.text}\` | ${r.result}${r.secs !== undefined ? ` (${r.secs} s)` : ''}`,
  );
const uncaught = rows.filter((r) => r.result === 'UNCAUGHT').length;
console.log(`\n${rows.length} sites: ${uncaught} uncaught`);
process.exitCode = uncaught > 0 ? 1 : 0;
