#!/usr/bin/env node
/**
 * Builds native/xts.c into dist/native/xts.node (the native XTS engine, crypto/xts-native.ts).
 *
 * A direct compiler call rather than node-gyp: one C file, no dependencies to fetch. Headers
 * come from the running Node's own include directory (Debian/NodeSource `nodejs` ships
 * node_api.h and, under openssl/, the headers of the OpenSSL that Node links statically and
 * exports), so the addon calls the exact OpenSSL the process already holds and links nothing.
 *
 * Fails (exit 1) with one line when the compiler or the headers are missing: install.sh
 * installs them, and a silent fallback would hide a 2× slower data path. Set
 * CRYPTAINER_SKIP_NATIVE=1 to build without it on purpose; xts.ts then uses its WebAssembly
 * engine.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'xts.c');
const outDir = join(root, 'dist', 'native');
const output = join(outDir, 'xts.node');

if (process.env.CRYPTAINER_SKIP_NATIVE === '1') {
  console.error(
    'build-native: skipped (CRYPTAINER_SKIP_NATIVE=1); XTS uses the WebAssembly engine',
  );
  process.exit(0);
}

const includeDir = resolve(dirname(process.execPath), '..', 'include', 'node');
for (const header of ['node_api.h', join('openssl', 'evp.h')]) {
  if (!existsSync(join(includeDir, header))) {
    console.error(`build-native: ${join(includeDir, header)} not found (Node's headers)`);
    process.exit(1);
  }
}
const compiler = process.env.CC ?? 'cc';
mkdirSync(outDir, { recursive: true });
try {
  execFileSync(
    compiler,
    [
      '-O2',
      '-std=c11',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-fPIC',
      '-shared',
      '-fvisibility=hidden',
      // OpenSSL symbols stay undefined here and resolve against the node binary at load.
      '-I',
      includeDir,
      '-o',
      output,
      source,
    ],
    { stdio: 'inherit' },
  );
} catch (err) {
  console.error(`build-native: ${compiler} failed: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
