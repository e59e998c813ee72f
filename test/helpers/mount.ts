/**
 * Helpers for the real-mount tests (test/drive): the per-file setup, time limits (uvu has
 * none), a file tree with canaries, hashing, a canary scan of the container, and a last-resort
 * cleanup that undoes every mount and loop device under a test directory.
 */
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { runCli } from './cli.js';
import { makeTempDir } from './tmp.js';

/** What a real-mount test file works in (see {@link mountTestDir}). */
export interface MountTestDir {
  dir: string;
  cleanup: () => void;
  /** The mount registry (`CRYPTAINER_RUNTIME_DIR`), inside `dir`. */
  runtime: string;
  /** A passphrase file. */
  pass: string;
  /** An empty mount point. */
  mnt: string;
}

/**
 * A temporary directory with a passphrase file (`passphrase` and a newline) and a mount
 * point, and the mount registry moved into it: this process's environment is what `runCli`
 * passes on, so every CLI run of the file uses it, and {@link forceCleanup} finds its servers.
 */
export function mountTestDir(passphrase: string): MountTestDir {
  const { dir, cleanup } = makeTempDir();
  const runtime = join(dir, 'run');
  process.env.CRYPTAINER_RUNTIME_DIR = runtime;
  const pass = join(dir, 'pass');
  writeFileSync(pass, `${passphrase}\n`);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  return { dir, cleanup, runtime, pass, mnt };
}

/** Run the CLI, assert it exited 0 (naming the command and its stderr), return its stdout. */
export function cliOk(args: string[], input = '', timeoutMs = 180_000): string {
  const r = runCli(args, input, timeoutMs);
  assert.is(r.status, 0, `cryptainer ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** This process's view of the mount table. */
export const mountInfo = (): string => readFileSync('/proc/self/mountinfo', 'utf8');

/** Wait `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Mount `vol` at `mnt` as a raw drive (`--filesystem none`), run `check` on the drive file,
 * and unmount, even when `check` throws.
 */
export async function withRawDrive(
  vol: string,
  mnt: string,
  pass: string,
  check: (drive: string) => void | Promise<void>,
): Promise<void> {
  cliOk(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none']);
  try {
    await check(join(mnt, 'volume'));
  } finally {
    cliOk(['unmount', mnt]);
  }
}

/** Reject if `promise` does not settle within `ms` (so a hung mount fails the test, not CI). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Result of an asynchronous command. */
export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a command without blocking the event loop, with a hard time limit (SIGKILL after
 * `timeoutMs`). Needed whenever this process itself serves a FUSE mount the command uses.
 */
export function run(
  cmd: string,
  args: string[],
  options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      done({ status, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Synchronous helper for root-only system commands in setup/cleanup. */
export function sh(cmd: string, args: string[], timeoutMs = 60_000): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** sha256 of a file, hex. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Canary strings written into the tree; none may appear in the container. */
export const CANARIES = [
  'CANARY-7f3a9c-the-quick-brown-fox',
  'CANARY-b41d02-cleartext-must-not-leak',
  'CANARY-e5c8f1-filename-and-content',
];

/** Deterministic pseudo-random bytes (seeded) with a canary every 64 KiB. */
function content(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[i] = x >>> 24;
  }
  for (let off = 0; off + 64 < size; off += 65536) {
    buf.write(CANARIES[(off / 65536 + seed) % CANARIES.length]!, off + 17, 'latin1');
  }
  return buf;
}

/** Sizes of the tree's files: empty, around sector and page edges, up to 8 MiB. */
export const TREE_SIZES = [0, 1, 511, 512, 4095, 4096, 4097, 65537, 1048576 + 3, 8 * 1048576];

/**
 * Write the test tree under `root`: files of {@link TREE_SIZES}, a nested directory, then
 * unaligned overwrites, truncations (shrink and grow), renames, a symlink and (if
 * `hardLinks`) a hard link. Every file carries canaries, and so does one file name.
 */
export function writeTree(root: string, options: { hardLinks?: boolean } = {}): void {
  const dir = join(root, 'tree');
  mkdirSync(join(dir, 'nested', 'deeper'), { recursive: true });
  TREE_SIZES.forEach((size, i) => {
    writeFileSync(join(dir, `f${i}-${size}.bin`), content(size, i + 1));
  });
  writeFileSync(join(dir, 'nested', 'deeper', `${CANARIES[2]}.txt`), `${CANARIES[0]}\n`);
  // Unaligned overwrites inside existing files (not at 512/4096 boundaries).
  const big = join(dir, `f9-${8 * 1048576}.bin`);
  const fd = openSync(big, 'r+');
  try {
    for (const [pos, len] of [
      [1, 3],
      [4093, 10],
      [65535, 70000],
      [8 * 1048576 - 5, 5],
    ] as const) {
      writeSync(fd, content(len, pos % 97), 0, len, pos);
    }
  } finally {
    closeSync(fd);
  }
  truncateSync(join(dir, `f7-65537.bin`), 30001); // shrink to an unaligned size
  truncateSync(join(dir, `f6-4097.bin`), 200000); // grow: the tail must read as zeros
  renameSync(join(dir, `f8-${1048576 + 3}.bin`), join(dir, 'nested', 'moved.bin'));
  renameSync(join(dir, 'nested', 'deeper'), join(dir, 'renamed-dir'));
  symlinkSync('../f5-4096.bin', join(dir, 'nested', 'link-to-f5'));
  if (options.hardLinks) linkSync(join(dir, `f4-4095.bin`), join(dir, 'hard-f4'));
}

/** What a tree looks like: file hashes, symlink targets, hard-link counts. */
export type TreeSnapshot = Record<string, string>;

/** Snapshot everything under `root` (sorted, relative paths). */
export function snapshotTree(root: string): TreeSnapshot {
  const out: TreeSnapshot = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name === 'lost+found' || name === '.Trash-0') continue;
      const path = join(dir, name);
      const rel = relative(root, path);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) out[rel] = `symlink -> ${readlinkSync(path)}`;
      else if (st.isDirectory()) {
        out[rel] = 'dir';
        walk(path);
      } else out[rel] = `file ${st.size} ${sha256File(path)} links ${st.nlink}`;
    }
  };
  walk(root);
  return out;
}

/** Which of `needles` occur anywhere in `file` (read in chunks with overlap). */
export function findInFile(file: string, needles: string[]): string[] {
  const pats = needles.map((n) => Buffer.from(n, 'latin1'));
  const overlap = Math.max(...pats.map((p) => p.length));
  const found = new Set<string>();
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(4 * 1048576 + overlap);
    let carry = 0;
    for (;;) {
      const n = readSync(fd, chunk, carry, chunk.length - carry, null);
      const have = carry + n;
      const view = chunk.subarray(0, have);
      pats.forEach((p, i) => {
        if (view.indexOf(p) >= 0) found.add(needles[i]!);
      });
      if (n === 0) break;
      carry = Math.min(overlap, have);
      chunk.copy(chunk, 0, have - carry, have);
    }
  } finally {
    closeSync(fd);
  }
  return [...found];
}

/** Loop devices whose backing file lies under `dir` (read from sysfs, which never blocks). */
export function loopsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    try {
      const back = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      if (back.startsWith(dir)) out.push(`/dev/${name}`);
    } catch {
      // not attached
    }
  }
  return out;
}

/** Our mounts under `dir`, deepest (latest) first, with their FUSE connection numbers. */
function mountsUnder(dir: string): { path: string; conn: string | null; fstype: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] !== undefined && f[4].startsWith(dir))
    .map((f) => {
      const fstype = f[f.indexOf('-') + 1] ?? '';
      return {
        path: f[4]!,
        fstype,
        conn: fstype.startsWith('fuse') ? (f[2]!.split(':')[1] ?? null) : null,
      };
    })
    .reverse();
}

/**
 * Last resort after a test: kill the servers recorded under `runtimeDir`, abort their FUSE
 * connections (so nothing can hang in uninterruptible sleep, FACTS.md), then undo every mount
 * and loop device under `dir`: filesystems, loop devices, drives, lazily only if nothing else
 * works.
 */
export function forceCleanup(dir: string, runtimeDir: string): void {
  const mounts = join(runtimeDir, 'mounts');
  if (existsSync(mounts)) {
    for (const id of readdirSync(mounts)) {
      try {
        const rec = JSON.parse(readFileSync(join(mounts, id, 'info.json'), 'utf8')) as {
          pid: number;
        };
        process.kill(rec.pid, 'SIGKILL');
      } catch {
        // no record or no such process
      }
    }
  }
  const ours = mountsUnder(dir);
  if (ours.some((m) => m.conn) && readdirSync('/sys/fs/fuse/connections').length === 0) {
    sh('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections']);
  }
  for (const m of ours) {
    if (m.conn) sh('sh', ['-c', `echo 1 > /sys/fs/fuse/connections/${m.conn}/abort`]);
  }
  for (const m of ours) sh('umount', [m.path]);
  for (const dev of loopsUnder(dir)) sh('losetup', ['-d', dev]);
  for (const m of mountsUnder(dir)) {
    if (sh('umount', [m.path]).status !== 0) sh('umount', ['-l', m.path]);
  }
}
