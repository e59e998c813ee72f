/**
 * The filesystems bench/mount.ts compares, each set up in one temporary directory and torn down
 * again whatever happens: the unencrypted ceiling (an ext4 image on the kernel loop driver with
 * losetup's defaults), the cryptainer volume (ext4 through our drive, mounted by the CLI) and,
 * when installed, gocryptfs (the nearest peer: FUSE, encryption per file).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;

/** Which filesystem a figure belongs to. */
export type TargetName = 'plain' | 'cryptainer' | 'gocryptfs';

/** One mounted filesystem under test. */
export interface BenchTarget {
  name: TargetName;
  /** Where the workloads write their files. */
  dir: string;
  /** The serving process, when there is one we measure (cryptainer). */
  pid?: number;
}

/** The targets of one run, and how to undo them. */
export interface BenchTargets {
  targets: BenchTarget[];
  /** The cryptainer server's log (with the trace, when CRYPTAINER_TRACE was set). */
  serverLog(): string;
  /** Unmount the cryptainer volume (before teardown, so its errors are seen). */
  unmountCryptainer(): void;
  /** Undo everything that is still set up; never throws. */
  teardown(): void;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

/** True when `gocryptfs` runs here. */
export function gocryptfsInstalled(): boolean {
  return spawnSync('gocryptfs', ['-version']).status === 0;
}

/**
 * Set up the targets in `dir` (which exists and is empty), each with room for `volumeBytes`.
 * On failure everything already set up is undone before the error is thrown.
 */
export function setUpTargets(dir: string, volumeBytes: number, gocryptfs: boolean): BenchTargets {
  const runDir = join(dir, 'run');
  const env = { ...process.env, CRYPTAINER_RUNTIME_DIR: runDir };
  const plainMnt = join(dir, 'plain');
  const encMnt = join(dir, 'enc');
  const gocMnt = join(dir, 'goc');
  let loop: string | null = null;
  let plainMounted = false;
  let encMounted = false;
  let gocMounted = false;
  const cli = (args: string[]): string => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`cryptainer ${args[0]}: ${r.stderr}`);
    return r.stdout;
  };
  const unmountCryptainer = (): void => {
    if (!encMounted) return;
    cli(['unmount', encMnt]);
    encMounted = false;
  };
  const teardown = (): void => {
    if (encMounted) spawnSync(process.execPath, [CLI, 'unmount', encMnt], { env });
    if (gocMounted) spawnSync('umount', [gocMnt]);
    if (plainMounted) spawnSync('umount', [plainMnt]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    encMounted = gocMounted = plainMounted = false;
    loop = null;
  };
  try {
    const targets: BenchTarget[] = [];
    // Unencrypted ceiling: an ext4 image on the kernel loop driver (losetup's defaults).
    mkdirSync(plainMnt);
    const img = join(dir, 'plain.img');
    sh('truncate', ['-s', String(volumeBytes), img]);
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img]);
    loop = sh('losetup', ['--find', '--show', img]).trim();
    sh('mount', [loop, plainMnt]);
    plainMounted = true;
    targets.push({ name: 'plain', dir: plainMnt });

    // The same through cryptainer: create (ext4 through the drive), mount in the background.
    mkdirSync(encMnt);
    const vol = join(dir, 'enc.img');
    const pass = join(dir, 'pass');
    writeFileSync(pass, 'bench passphrase\n', { mode: 0o600 });
    const cheap = ['--kdf-memory', '64', '--kdf-time', '1', '--kdf-parallelism', '1'];
    cli(['create', vol, '--size', String(volumeBytes), '--passphrase-file', pass, ...cheap]);
    cli(['mount', vol, encMnt, '--passphrase-file', pass]);
    encMounted = true;
    const listed = JSON.parse(cli(['list', '--json'])) as { pid: number }[];
    targets.push({ name: 'cryptainer', dir: encMnt, pid: listed[0]!.pid });

    if (gocryptfs) {
      // A cipher directory on the same disk; the cheapest scrypt cost (the KDF is not measured).
      const cipher = join(dir, 'goc.cipher');
      mkdirSync(cipher);
      mkdirSync(gocMnt);
      const extpass = ['-extpass', `cat ${pass}`];
      sh('gocryptfs', ['-init', '-q', '-scryptn', '10', ...extpass, cipher]);
      sh('gocryptfs', ['-q', ...extpass, cipher, gocMnt]);
      gocMounted = true;
      targets.push({ name: 'gocryptfs', dir: gocMnt });
    }
    return { targets, serverLog: () => readServerLogs(runDir), unmountCryptainer, teardown };
  } catch (err) {
    teardown();
    throw err;
  }
}

/** The server.log files under a runtime directory (the entry is removed at unmount: best effort). */
function readServerLogs(runDir: string): string {
  const texts: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (n === 'server.log') texts.push(readFileSync(p, 'utf8'));
      else walk(p);
    }
  };
  walk(runDir);
  return texts.join('\n');
}
