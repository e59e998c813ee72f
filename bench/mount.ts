/**
 * The mounted volume against this machine's own ceiling, measured in the same run: an
 * unencrypted ext4 image on the kernel loop driver (issue 6 acceptance), and gocryptfs when it
 * is installed (issue 17). Workloads, on each (bench/mount-targets.ts sets the targets up):
 * - sequential write of a 512 MiB file: `dd bs=1M conv=fdatasync`;
 * - sequential read of it after `echo 3 > /proc/sys/vm/drop_caches`: `dd bs=1M`;
 * - sequential read of a 4 GiB file, written once before the repetitions, caches dropped: the
 *   512 MiB plain image fits in the host's cache, which flatters the reference; 4 GiB does less;
 * - 4 KiB random read and random write at queue depth 1: `fio` (psync, direct=1, so each I/O
 *   reaches the device under the filesystem instead of the page cache), on a 256 MiB file.
 *
 * The targets are set up once, then measured in interleaved repetitions: the order rotates
 * (plain, cryptainer, gocryptfs; then cryptainer, gocryptfs, plain; ...) so drift on a shared
 * machine hits all alike, and each workload waits for the previous one's writeback to drain
 * (settle()). Each figure is the median of the repetitions, printed with its min–max spread;
 * a ratio is the ratio of the medians. Also the peak RSS (VmHWM) of the serving process.
 *
 * Needs root (loop devices, drop_caches), fio and about 3 × 5 GiB free in the temp directory
 * (the plain image is sparse). Run alone with
 * `node dist/bench/mount.js [--reps N] [--fio-seconds S] [--seq-mib M] [--big-mib M] [--no-gocryptfs]`,
 * or through `npm run bench` (bench/run.ts). The serving process inherits the environment, so
 * `CRYPTAINER_TRACE=1` adds its per-request trace to the server log, printed at the end when set.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type TargetName, gocryptfsInstalled, setUpTargets } from './mount-targets.js';

const execFileAsync = promisify(execFile);
const MIB = 1024 * 1024;

/** One target's figures (MB/s = 10^6 B/s; IOPS). */
export interface MountBenchFigures {
  seqWriteMBps: number;
  seqReadMBps: number;
  /** Cold read of the large file (NaN when that workload is off). */
  bigReadMBps: number;
  randReadIops: number;
  randWriteIops: number;
}

const KEYS: (keyof MountBenchFigures)[] = [
  'seqWriteMBps',
  'seqReadMBps',
  'bigReadMBps',
  'randReadIops',
  'randWriteIops',
];

/** Median and spread of one figure over the repetitions. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** One target's repetitions and their summary. */
export interface TargetResult {
  runs: MountBenchFigures[];
  stats: Record<keyof MountBenchFigures, Spread>;
}

/** What {@link benchMount} measured. */
export interface MountBenchResult {
  reps: number;
  seqBytes: number;
  bigBytes: number;
  /** Per target, in the order set up; gocryptfs only when it was measured. */
  targets: Partial<Record<TargetName, TargetResult>>;
  /** cryptainer / plain for each median. */
  ratio: MountBenchFigures;
  /** cryptainer / gocryptfs for each median (NaN without gocryptfs). */
  vsGocryptfs: MountBenchFigures;
  /** Peak resident set size (VmHWM) of the serving process during the workloads, in MiB. */
  serverPeakRssMiB: number;
  /** The same over its whole life, unlocking and mounting included, in MiB. */
  serverLifePeakRssMiB: number;
  /** The server log (with the trace, when CRYPTAINER_TRACE was set). */
  serverLog: string;
}

/** Options for {@link benchMount}. */
export interface MountBenchOptions {
  /**
   * Repetitions per target (default 6: with three targets rotating, each takes every position
   * twice).
   */
  reps?: number;
  /** Size of the sequential file (default 512 MiB). */
  seqBytes?: number;
  /** Size of the large file read cold (default 4 GiB; 0 turns that workload off). */
  bigBytes?: number;
  /** fio file size (default 256 MiB) and run time per job (default 8 s). */
  fioBytes?: number;
  fioSeconds?: number;
  /** Measure gocryptfs too (default: when it is installed). */
  gocryptfs?: boolean;
  /** Print progress lines (default true). */
  verbose?: boolean;
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
  let bigReadMBps = NaN;
  if (o.bigBytes > 0) {
    dropCaches();
    bigReadMBps = await dd([`if=${join(dir, BIG_FILE)}`, 'of=/dev/null', 'bs=1M']);
  }
  // fio lays out its file first (not timed), then runs.
  await settle();
  const randReadIops = await fio(join(dir, 'fio.dat'), 'randread', o.fioBytes, o.fioSeconds);
  await settle();
  const randWriteIops = await fio(join(dir, 'fio.dat'), 'randwrite', o.fioBytes, o.fioSeconds);
  rmSync(join(dir, 'fio.dat'));
  return { seqWriteMBps, seqReadMBps, bigReadMBps, randReadIops, randWriteIops };
}

/** The large file's name in each target (written once, read cold in every repetition). */
const BIG_FILE = 'big.dat';

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

function summarize(runs: MountBenchFigures[]): TargetResult {
  const stats = {} as Record<keyof MountBenchFigures, Spread>;
  for (const k of KEYS) {
    const v = runs.map((r) => r[k]);
    stats[k] = { median: median(v), min: Math.min(...v), max: Math.max(...v) };
  }
  return { runs, stats };
}

function ratioOf(a: TargetResult | undefined, b: TargetResult | undefined): MountBenchFigures {
  const out = {} as MountBenchFigures;
  for (const k of KEYS) out[k] = a && b ? a.stats[k].median / b.stats[k].median : NaN;
  return out;
}

/**
 * Run the whole comparison. Everything it sets up (mounts, loop devices, files) is undone
 * before it returns or throws.
 */
export async function benchMount(options: MountBenchOptions = {}): Promise<MountBenchResult> {
  const o: Required<MountBenchOptions> = {
    reps: options.reps ?? 6,
    seqBytes: options.seqBytes ?? 512 * MIB,
    bigBytes: options.bigBytes ?? 4096 * MIB,
    fioBytes: options.fioBytes ?? 256 * MIB,
    fioSeconds: options.fioSeconds ?? 8,
    gocryptfs: options.gocryptfs ?? gocryptfsInstalled(),
    verbose: options.verbose ?? true,
  };
  const say = (s: string): void => {
    if (o.verbose) console.log(s);
  };
  // Room for every file at once, plus ext4's own overhead (journal, inode tables).
  const volumeBytes = o.seqBytes + o.fioBytes + o.bigBytes + 512 * MIB;
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-bench-'));
  try {
    const set = setUpTargets(dir, volumeBytes, o.gocryptfs);
    try {
      const { targets } = set;
      const server = targets.find((t) => t.name === 'cryptainer')!;
      const pid = server.pid!;
      say(
        `${targets.map((t) => t.name).join(', ')}; cryptainer served by pid ${pid}; ` +
          `${o.reps} repetitions`,
      );
      if (o.bigBytes > 0) {
        for (const t of targets) {
          await settle();
          const rate = await dd([
            'if=/dev/zero',
            `of=${join(t.dir, BIG_FILE)}`,
            'bs=1M',
            `count=${o.bigBytes / MIB}`,
            'conv=fdatasync',
          ]);
          say(`  ${t.name}: wrote the ${o.bigBytes / MIB} MiB file at ${rate.toFixed(0)} MB/s`);
        }
      }
      const serverLifePeakBeforeMiB = peakRssMiB(pid);
      // proc(5) clear_refs: writing 5 resets the peak RSS, so VmHWM covers the workloads only.
      writeFileSync(`/proc/${pid}/clear_refs`, '5\n');

      const runs = new Map<TargetName, MountBenchFigures[]>(targets.map((t) => [t.name, []]));
      for (let rep = 0; rep < o.reps; rep++) {
        // Rotate the order, so each target takes each position equally often.
        const order = targets.map((_, i) => targets[(i + rep) % targets.length]!);
        for (const t of order) {
          const f = await measure(t.dir, o);
          runs.get(t.name)!.push(f);
          say(
            `  rep ${rep + 1} ${t.name.padEnd(10)} seq write ${f.seqWriteMBps.toFixed(0)} MB/s, ` +
              `seq read ${f.seqReadMBps.toFixed(0)} MB/s, big read ${f.bigReadMBps.toFixed(0)} MB/s, ` +
              `rand read ${f.randReadIops.toFixed(0)} IOPS, rand write ${f.randWriteIops.toFixed(0)} IOPS`,
          );
        }
      }
      const serverPeakRssMiB = peakRssMiB(pid);
      const serverLifePeakRssMiB = Math.max(serverLifePeakBeforeMiB, serverPeakRssMiB);
      const serverLog = set.serverLog(); // before unmount, which removes the entry
      set.unmountCryptainer();

      const results: Partial<Record<TargetName, TargetResult>> = {};
      for (const [name, r] of runs) results[name] = summarize(r);
      return {
        reps: o.reps,
        seqBytes: o.seqBytes,
        bigBytes: o.bigBytes,
        targets: results,
        ratio: ratioOf(results.cryptainer, results.plain),
        vsGocryptfs: ratioOf(results.cryptainer, results.gocryptfs),
        serverPeakRssMiB,
        serverLifePeakRssMiB,
        serverLog,
      };
    } finally {
      set.teardown();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Acceptance targets (ratios to the unencrypted image; RSS in MiB): issue 6, and issue 17 for
 * the sequential reads.
 */
export const MOUNT_TARGETS: MountBenchFigures & { rssMiB: number } = {
  seqWriteMBps: 0.75,
  seqReadMBps: 0.9,
  bigReadMBps: 0.9,
  randReadIops: 0.9,
  randWriteIops: 0.6,
  rssMiB: 100,
};

/** Our sequential reads against gocryptfs's (issue 17). */
export const GOCRYPTFS_SEQ_READ_TARGET = 1.5;

function spreadText(s: Spread | undefined): string {
  if (!s) return '';
  return `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`;
}

/** Print a result as a table. */
export function printMountBench(r: MountBenchResult): void {
  const goc = r.targets.gocryptfs;
  const row = (name: string, unit: string, key: keyof MountBenchFigures) => {
    const ratio = r.ratio[key];
    const target = MOUNT_TARGETS[key];
    let line =
      `${name.padEnd(24)} ${unit.padEnd(5)} ${spreadText(r.targets.plain?.stats[key]).padStart(20)} ` +
      `${spreadText(r.targets.cryptainer?.stats[key]).padStart(20)} ` +
      `${ratio.toFixed(2).padStart(6)} >= ${target}${ratio < target ? ' BELOW' : ''}`;
    if (goc) {
      const vs = r.vsGocryptfs[key];
      const readTarget = key === 'seqReadMBps' || key === 'bigReadMBps';
      line +=
        `   ${spreadText(goc.stats[key]).padStart(20)} ${vs.toFixed(2).padStart(6)}` +
        (readTarget
          ? ` >= ${GOCRYPTFS_SEQ_READ_TARGET}${vs < GOCRYPTFS_SEQ_READ_TARGET ? ' BELOW' : ''}`
          : '');
    }
    console.log(line);
  };
  console.log(
    `\nmedians of ${r.reps} interleaved repetitions, (min–max); ratio = cryptainer / plain` +
      (goc ? ', vs goc = cryptainer / gocryptfs' : ''),
  );
  console.log(
    `${'workload'.padEnd(24)} ${'unit'.padEnd(5)} ${'plain'.padStart(20)} ${'cryptainer'.padStart(20)} ` +
      `${'ratio'.padStart(6)} target` +
      (goc ? `        ${'gocryptfs'.padStart(20)} vs goc` : ''),
  );
  const mib = (n: number) => (n >= 1024 * MIB ? `${n / (1024 * MIB)}G` : `${n / MIB}M`);
  row(`seq write ${mib(r.seqBytes)} (dd)`, 'MB/s', 'seqWriteMBps');
  row(`seq read ${mib(r.seqBytes)} (dd)`, 'MB/s', 'seqReadMBps');
  if (r.bigBytes > 0) row(`seq read ${mib(r.bigBytes)} (dd)`, 'MB/s', 'bigReadMBps');
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

/**
 * Options from command-line flags (`--reps N --fio-seconds S --seq-mib M --big-mib M
 * --no-gocryptfs`).
 */
export function mountBenchOptionsFrom(argv: string[]): MountBenchOptions {
  const o: MountBenchOptions = {};
  const reps = numberArg(argv, '--reps');
  const fioSeconds = numberArg(argv, '--fio-seconds');
  const seqMiB = numberArg(argv, '--seq-mib');
  const bigMiB = numberArg(argv, '--big-mib');
  if (reps !== undefined) o.reps = reps;
  if (fioSeconds !== undefined) o.fioSeconds = fioSeconds;
  if (seqMiB !== undefined) o.seqBytes = seqMiB * MIB;
  if (bigMiB !== undefined) o.bigBytes = bigMiB * MIB;
  if (argv.includes('--no-gocryptfs')) o.gocryptfs = false;
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await benchMount(mountBenchOptionsFrom(process.argv.slice(2)));
  printMountBench(r);
  if (process.env.CRYPTAINER_TRACE && r.serverLog) console.log('\nserver log:\n' + r.serverLog);
}
