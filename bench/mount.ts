/**
 * The mounted volume against this machine's own ceiling, measured in the same run: an
 * unencrypted ext4 image on the kernel loop driver (issue 6 acceptance). Workloads, on each:
 * - sequential write of a 512 MiB file: `dd bs=1M conv=fdatasync`;
 * - sequential read of it after `echo 3 > /proc/sys/vm/drop_caches`: `dd bs=1M`;
 * - 4 KiB random read and random write at queue depth 1: `fio` (psync, direct=1, so each I/O
 *   reaches the device under the filesystem instead of the page cache), on a 256 MiB file.
 *
 * Both filesystems are set up once, then measured in interleaved repetitions (plain,
 * encrypted, encrypted, plain, ...; each workload waits for the previous one's writeback to
 * drain: see settle()): the order alternates so drift on a shared machine hits
 * both alike); each figure is the median of the repetitions, and the ratio is the ratio of the
 * medians. Also the peak RSS (VmHWM) of the serving process over the whole run.
 *
 * Needs root (loop devices, drop_caches), fio and about 2.5 GiB free in the temp directory.
 * Run alone with `node dist/bench/mount.js [--reps N] [--fio-seconds S]`, or through
 * `npm run bench` (bench/run.ts). The serving process inherits the environment, so
 * `CRYPTAINER_TRACE=1` adds its per-request trace to the server log, which is printed at the
 * end when set.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const MIB = 1024 * 1024;
const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;

/** One target's figures (MB/s = 10^6 B/s; IOPS). */
export interface MountBenchFigures {
  seqWriteMBps: number;
  seqReadMBps: number;
  randReadIops: number;
  randWriteIops: number;
}

const KEYS: (keyof MountBenchFigures)[] = [
  'seqWriteMBps',
  'seqReadMBps',
  'randReadIops',
  'randWriteIops',
];

/** What {@link benchMount} measured. */
export interface MountBenchResult {
  /** Every repetition, in the order measured. */
  plainRuns: MountBenchFigures[];
  encryptedRuns: MountBenchFigures[];
  /** Medians of the repetitions. */
  plain: MountBenchFigures;
  encrypted: MountBenchFigures;
  /** encrypted / plain for each median. */
  ratio: MountBenchFigures;
  /** Peak resident set size (VmHWM) of the serving process during the workloads, in MiB. */
  serverPeakRssMiB: number;
  /** The same over its whole life, unlocking and mounting included, in MiB. */
  serverLifePeakRssMiB: number;
  /** The server log (with the trace, when CRYPTAINER_TRACE was set). */
  serverLog: string;
}

/** Options for {@link benchMount}. */
export interface MountBenchOptions {
  /** Repetitions per target (default 4: an even count gives both targets each position twice). */
  reps?: number;
  /** Size of the sequential file (default 512 MiB). */
  seqBytes?: number;
  /** fio file size (default 256 MiB) and run time per job (default 8 s). */
  fioBytes?: number;
  fioSeconds?: number;
  /** Print progress lines (default true). */
  verbose?: boolean;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

function dropCaches(): void {
  spawnSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/**
 * Wait until the previous workload's writes have left the page cache and the disk has had a
 * moment: without it, whichever target runs second inherits the first one's writeback (seen
 * as 30–40 % slower sequential writes for the second target of a repetition).
 */
async function settle(): Promise<void> {
  spawnSync('sync');
  for (let waited = 0; waited < 10_000; waited += 250) {
    const info = readFileSync('/proc/meminfo', 'utf8');
    const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(info)?.[1] ?? 0);
    if (kib('Dirty') + kib('Writeback') < 4096) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 2000));
}

/** dd prints "N bytes ... copied, S s, R MB/s": recompute from bytes and seconds. */
function ddRate(stderr: string): number {
  const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(stderr);
  if (!m) throw new Error(`dd: cannot parse: ${stderr}`);
  return Number(m[1]) / Number(m[2]) / 1e6;
}

async function dd(args: string[]): Promise<number> {
  const { stderr } = await execFileAsync('dd', args, { maxBuffer: 1 << 20 });
  return ddRate(stderr);
}

/**
 * 4 KiB random I/O at queue depth 1 on `file` (`bytes` long; laid out first, not timed) for
 * `seconds` after `rampSeconds` of warm-up; returns the IOPS. Also used by fuse-floor.ts.
 */
export async function fio(
  file: string,
  rw: 'randread' | 'randwrite',
  bytes: number,
  seconds: number,
  rampSeconds = 1,
): Promise<number> {
  const { stdout } = await execFileAsync(
    'fio',
    [
      `--name=${rw}`,
      `--filename=${file}`,
      `--size=${bytes}`,
      `--rw=${rw}`,
      '--bs=4k',
      '--iodepth=1',
      '--ioengine=psync',
      '--direct=1',
      '--time_based',
      `--runtime=${seconds}`,
      `--ramp_time=${rampSeconds}`,
      '--output-format=json',
    ],
    { maxBuffer: 16 << 20 },
  );
  const job = (JSON.parse(stdout) as { jobs: Record<string, { iops: number }>[] }).jobs[0]!;
  return (rw === 'randread' ? job.read : job.write)!.iops;
}

async function measure(dir: string, o: Required<MountBenchOptions>): Promise<MountBenchFigures> {
  const file = join(dir, 'seq.dat');
  const count = String(o.seqBytes / MIB);
  await settle();
  dropCaches();
  const seqWriteMBps = await dd([
    'if=/dev/zero',
    `of=${file}`,
    'bs=1M',
    `count=${count}`,
    'conv=fdatasync',
  ]);
  dropCaches();
  const seqReadMBps = await dd([`if=${file}`, 'of=/dev/null', 'bs=1M']);
  rmSync(file);
  // fio lays out its file first (not timed), then runs.
  await settle();
  const randReadIops = await fio(join(dir, 'fio.dat'), 'randread', o.fioBytes, o.fioSeconds);
  await settle();
  const randWriteIops = await fio(join(dir, 'fio.dat'), 'randwrite', o.fioBytes, o.fioSeconds);
  rmSync(join(dir, 'fio.dat'));
  return { seqWriteMBps, seqReadMBps, randReadIops, randWriteIops };
}

/** Peak resident set size (VmHWM) of a process, in MiB. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medians(runs: MountBenchFigures[]): MountBenchFigures {
  const out = {} as MountBenchFigures;
  for (const k of KEYS) out[k] = median(runs.map((r) => r[k]));
  return out;
}

/**
 * Run the whole comparison. Everything it sets up (mounts, loop devices, files) is undone
 * before it returns or throws.
 */
export async function benchMount(options: MountBenchOptions = {}): Promise<MountBenchResult> {
  const o: Required<MountBenchOptions> = {
    reps: options.reps ?? 4,
    seqBytes: options.seqBytes ?? 512 * MIB,
    fioBytes: options.fioBytes ?? 256 * MIB,
    fioSeconds: options.fioSeconds ?? 8,
    verbose: options.verbose ?? true,
  };
  const say = (s: string): void => {
    if (o.verbose) console.log(s);
  };
  const volumeBytes = o.seqBytes + o.fioBytes + 256 * MIB;
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-bench-'));
  const runDir = join(dir, 'run');
  const env = { ...process.env, CRYPTAINER_RUNTIME_DIR: runDir };
  const plainMnt = join(dir, 'plain');
  const encMnt = join(dir, 'enc');
  mkdirSync(plainMnt);
  mkdirSync(encMnt);
  let loop: string | null = null;
  let encMounted = false;
  const run = (args: string[]): string => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`cryptainer ${args[0]}: ${r.stderr}`);
    return r.stdout;
  };
  try {
    // Unencrypted ceiling: an ext4 image on the kernel loop driver (losetup's defaults).
    const img = join(dir, 'plain.img');
    sh('truncate', ['-s', String(volumeBytes), img]);
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img]);
    loop = sh('losetup', ['--find', '--show', img]).trim();
    sh('mount', [loop, plainMnt]);

    // The same through cryptainer: create (ext4 through the drive), mount in the background.
    const vol = join(dir, 'enc.img');
    const pass = join(dir, 'pass');
    writeFileSync(pass, 'bench passphrase\n', { mode: 0o600 });
    const cheap = ['--kdf-memory', '64', '--kdf-time', '1', '--kdf-parallelism', '1'];
    run(['create', vol, '--size', String(volumeBytes), '--passphrase-file', pass, ...cheap]);
    run(['mount', vol, encMnt, '--passphrase-file', pass]);
    encMounted = true;
    const listed = JSON.parse(run(['list', '--json'])) as { pid: number }[];
    const pid = listed[0]!.pid;
    say(`plain ext4 on ${loop}; cryptainer ext4 served by pid ${pid}; ${o.reps} repetitions`);
    const serverLifePeakBeforeMiB = peakRssMiB(pid);
    // proc(5) clear_refs: writing 5 resets the peak RSS, so VmHWM covers the workloads only.
    writeFileSync(`/proc/${pid}/clear_refs`, '5\n');

    const plainRuns: MountBenchFigures[] = [];
    const encryptedRuns: MountBenchFigures[] = [];
    for (let rep = 0; rep < o.reps; rep++) {
      const order = rep % 2 === 0 ? ['plain', 'enc'] : ['enc', 'plain'];
      for (const which of order) {
        const f = await measure(which === 'plain' ? plainMnt : encMnt, o);
        (which === 'plain' ? plainRuns : encryptedRuns).push(f);
        say(
          `  rep ${rep + 1} ${which.padEnd(5)} seq write ${f.seqWriteMBps.toFixed(0)} MB/s, ` +
            `seq read ${f.seqReadMBps.toFixed(0)} MB/s, rand read ${f.randReadIops.toFixed(0)} IOPS, ` +
            `rand write ${f.randWriteIops.toFixed(0)} IOPS`,
        );
      }
    }
    const serverPeakRssMiB = peakRssMiB(pid);
    const serverLifePeakRssMiB = Math.max(serverLifePeakBeforeMiB, serverPeakRssMiB);
    const serverLog = readServerLogs(runDir); // before unmount, which removes the entry
    run(['unmount', encMnt]);
    encMounted = false;

    const plain = medians(plainRuns);
    const encrypted = medians(encryptedRuns);
    const ratio = {} as MountBenchFigures;
    for (const k of KEYS) ratio[k] = encrypted[k] / plain[k];
    return {
      plainRuns,
      encryptedRuns,
      plain,
      encrypted,
      ratio,
      serverPeakRssMiB,
      serverLifePeakRssMiB,
      serverLog,
    };
  } finally {
    if (encMounted) spawnSync(process.execPath, [CLI, 'unmount', encMnt], { env });
    spawnSync('umount', [plainMnt]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
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

/** Acceptance targets of issue 6 (ratios to the unencrypted image; RSS in MiB). */
export const MOUNT_TARGETS: MountBenchFigures & { rssMiB: number } = {
  seqWriteMBps: 0.75,
  seqReadMBps: 0.9,
  randReadIops: 0.9,
  randWriteIops: 0.6,
  rssMiB: 100,
};

/** Print a result as a table. */
export function printMountBench(r: MountBenchResult): void {
  const row = (name: string, unit: string, key: keyof MountBenchFigures) => {
    const ratio = r.ratio[key];
    const target = MOUNT_TARGETS[key];
    console.log(
      `${name.padEnd(24)} ${r.plain[key].toFixed(0).padStart(8)} ${r.encrypted[key].toFixed(0).padStart(10)} ` +
        `${unit.padEnd(5)} ${ratio.toFixed(2).padStart(6)}  >= ${target}${ratio < target ? '  BELOW TARGET' : ''}`,
    );
  };
  console.log(`\nmedians of ${r.plainRuns.length} interleaved repetitions`);
  console.log(
    `${'workload'.padEnd(24)} ${'plain'.padStart(8)} ${'cryptainer'.padStart(10)}       ratio  target`,
  );
  row('seq write 512M (dd)', 'MB/s', 'seqWriteMBps');
  row('seq read 512M (dd)', 'MB/s', 'seqReadMBps');
  row('4k rand read QD1 (fio)', 'IOPS', 'randReadIops');
  row('4k rand write QD1 (fio)', 'IOPS', 'randWriteIops');
  const rss = r.serverPeakRssMiB;
  console.log(
    `serving process peak RSS (VmHWM) during the workloads: ${rss.toFixed(0)} MiB, ` +
      `target <= ${MOUNT_TARGETS.rssMiB}${rss > MOUNT_TARGETS.rssMiB ? '  ABOVE TARGET' : ''}` +
      ` (whole life, unlock included: ${r.serverLifePeakRssMiB.toFixed(0)} MiB)`,
  );
}

/** `--name value` from argv, as a number. */
function numberArg(argv: string[], name: string): number | undefined {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : undefined;
}

/** Options from command-line flags (`--reps N --fio-seconds S --seq-mib M`). */
export function mountBenchOptionsFrom(argv: string[]): MountBenchOptions {
  const o: MountBenchOptions = {};
  const reps = numberArg(argv, '--reps');
  const fioSeconds = numberArg(argv, '--fio-seconds');
  const seqMiB = numberArg(argv, '--seq-mib');
  if (reps !== undefined) o.reps = reps;
  if (fioSeconds !== undefined) o.fioSeconds = fioSeconds;
  if (seqMiB !== undefined) o.seqBytes = seqMiB * MIB;
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchMount(mountBenchOptionsFrom(process.argv.slice(2)));
  printMountBench(r);
  if (process.env.CRYPTAINER_TRACE && r.serverLog) console.log('\nserver log:\n' + r.serverLog);
}
