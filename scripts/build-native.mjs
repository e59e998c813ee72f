#!/usr/bin/env node
/**
 * Builds every native/<name>.c into dist/native/<name>.node: the native XTS engine
 * (native/xts.c, crypto/xts-native.ts), the secure-memory calls of the mount server
 * (native/secure-memory.c, src/secure-memory.ts), flock(2) for the container lock
 * (native/file-lock.c, src/io/flock.ts), and any addon added the same way.
 *
 * A direct compiler call rather than node-gyp: small C files, no dependencies to fetch. Headers
 * come from the running Node's own include directory (Debian/NodeSource `nodejs` ships
 * node_api.h and, under openssl/, the headers of the OpenSSL that Node links statically and
 * exports), so an addon calls the exact OpenSSL the process already holds and links nothing.
 *
 * Fails (exit 1) with one line when the compiler or the headers are missing: install.sh
 * installs them, and a silent fallback would hide a 2× slower data path and unprotected
 * secrets. Set CRYPTAINER_SKIP_NATIVE=1 to build without them on purpose: xts.ts then uses its
 * WebAssembly engine, the mount server runs without PR_SET_DUMPABLE, mlock and
 * MADV_DONTDUMP (README, "Security notes"), and locks are taken by util-linux's flock(1).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'native');
const outDir = join(root, 'dist', 'native');

if (process.env.CRYPTAINER_SKIP_NATIVE === '1') {
  console.error(
    'build-native: skipped (CRYPTAINER_SKIP_NATIVE=1); XTS uses the WebAssembly engine and ' +
      'the mount server runs without secure memory; locks use flock(1)',
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
const sources = readdirSync(sourceDir)
  .filter((name) => name.endsWith('.c'))
  .sort();
for (const name of sources) {
  const output = join(outDir, `${basename(name, '.c')}.node`);
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
        join(sourceDir, name),
      ],
      { stdio: 'inherit' },
    );
  } catch (err) {
    console.error(
      `build-native: ${compiler} failed on ${name}: ${err instanceof Error ? err.message : err}`,
    );
    process.exit(1);
  }
}
