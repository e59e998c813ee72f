/**
 * The mounted volume against this machine's own ceiling, measured in the same run: an
 * unencrypted ext4 image on the kernel loop driver (issue 3 acceptance). Workloads, on each:
 * - sequential write of a 512 MiB file: `dd bs=1M conv=fdatasync`;
 * - sequential read of it after `echo 3 > /proc/sys/vm/drop_caches`: `dd bs=1M`;
 * - 4 KiB random read and random write at queue depth 1: `fio` (psync, direct=1, so each I/O
 *   reaches the device under the filesystem instead of the page cache), on a 256 MiB file.
 * Also the peak RSS (VmHWM) of the serving process.
 *
 * Needs root (loop devices, drop_caches), fio and about 2.5 GiB free in the temp directory.
 * Run alone with `node dist/bench/mount.js`, or through `npm run bench` (bench/run.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** What {@link benchMount} measured. */
export interface MountBenchResult {
  plain: MountBenchFigures;
  encrypted: MountBenchFigures;
  /** encrypted / plain for each figure. */
  ratio: MountBenchFigures;
  /** Peak resident set size of the serving process, in MiB. */
  serverPeakRssMiB: number;
}

/** Options for {@link benchMount}. */
export interface MountBenchOptions {
  /** Size of the sequential file (default 512 MiB). */
  seqBytes?: number;
  /** fio file size (default 256 MiB) and run time per job (default 10 s). */
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

async function fio(dir: string, rw: 'randread' | 'randwrite', bytes: number, seconds: number) {
  const { stdout } = await execFileAsync(
    'fio',
    [
      `--name=${rw}`,
      `--directory=${dir}`,
      '--filename=fio.dat',
      `--size=${bytes}`,
      `--rw=${rw}`,
      '--bs=4k',
      '--iodepth=1',
      '--ioengine=psync',
      '--direct=1',
      '--time_based',
      `--runtime=${seconds}`,
      '--ramp_time=1',
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
  const randReadIops = await fio(dir, 'randread', o.fioBytes, o.fioSeconds);
  const randWriteIops = await fio(dir, 'randwrite', o.fioBytes, o.fioSeconds);
  rmSync(join(dir, 'fio.dat'));
  return { seqWriteMBps, seqReadMBps, randReadIops, randWriteIops };
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Run the whole comparison. Everything it sets up (mounts, loop devices, files) is undone
 * before it returns or throws.
 */
export async function benchMount(options: MountBenchOptions = {}): Promise<MountBenchResult> {
  const o: Required<MountBenchOptions> = {
    seqBytes: options.seqBytes ?? 512 * MIB,
    fioBytes: options.fioBytes ?? 256 * MIB,
    fioSeconds: options.fioSeconds ?? 10,
    verbose: options.verbose ?? true,
  };
  const say = (s: string): void => {
    if (o.verbose) console.log(s);
  };
  const volumeBytes = o.seqBytes + o.fioBytes + 256 * MIB;
  const dir = mkdtempSync(join(tmpdir(), 'cryptainer-bench-'));
  const env = { ...process.env, CRYPTAINER_RUNTIME_DIR: join(dir, 'run') };
  const plainMnt = join(dir, 'plain');
  const encMnt = join(dir, 'enc');
  mkdirSync(plainMnt);
  mkdirSync(encMnt);
  let loop: string | null = null;
  let encMounted = false;
  try {
    // Unencrypted ceiling: an ext4 image on the kernel loop driver.
    const img = join(dir, 'plain.img');
    sh('truncate', ['-s', String(volumeBytes), img]);
    sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img]);
    loop = sh('losetup', ['--find', '--show', img]).trim();
    sh('mount', [loop, plainMnt]);
    say(`plain ext4 on ${loop}: measuring...`);
    const plain = await measure(plainMnt, o);
    sh('umount', [plainMnt]);
    sh('losetup', ['-d', loop]);
    loop = null;
    rmSync(img);

    // The same through cryptainer: create (ext4 through the drive), mount in the background.
    const vol = join(dir, 'enc.img');
    const pass = join(dir, 'pass');
    writeFileSync(pass, 'bench passphrase\n', { mode: 0o600 });
    const cheap = ['--kdf-memory', '64', '--kdf-time', '1', '--kdf-parallelism', '1'];
    const run = (args: string[]): string => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
      if (r.status !== 0) throw new Error(`cryptainer ${args[0]}: ${r.stderr}`);
      return r.stdout;
    };
    run(['create', vol, '--size', String(volumeBytes), '--passphrase-file', pass, ...cheap]);
    run(['mount', vol, encMnt, '--passphrase-file', pass]);
    encMounted = true;
    const listed = JSON.parse(run(['list', '--json'])) as { pid: number }[];
    const pid = listed[0]!.pid;
    say(`cryptainer ext4 (server pid ${pid}): measuring...`);
    const encrypted = await measure(encMnt, o);
    const serverPeakRssMiB = peakRssMiB(pid);
    run(['unmount', encMnt]);
    encMounted = false;

    const ratio: MountBenchFigures = {
      seqWriteMBps: encrypted.seqWriteMBps / plain.seqWriteMBps,
      seqReadMBps: encrypted.seqReadMBps / plain.seqReadMBps,
      randReadIops: encrypted.randReadIops / plain.randReadIops,
      randWriteIops: encrypted.randWriteIops / plain.randWriteIops,
    };
    return { plain, encrypted, ratio, serverPeakRssMiB };
  } finally {
    if (encMounted) spawnSync(process.execPath, [CLI, 'unmount', encMnt], { env });
    spawnSync('umount', [plainMnt]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Print a result as a table. */
export function printMountBench(r: MountBenchResult): void {
  const row = (name: string, unit: string, key: keyof MountBenchFigures, target: string) => {
    const p = r.plain[key];
    const e = r.encrypted[key];
    console.log(
      `${name.padEnd(24)} ${p.toFixed(0).padStart(8)} ${e.toFixed(0).padStart(10)} ${unit.padEnd(5)} ` +
        `${r.ratio[key].toFixed(2).padStart(6)}  ${target}`,
    );
  };
  console.log(
    `${'workload'.padEnd(24)} ${'plain'.padStart(8)} ${'cryptainer'.padStart(10)}       ratio  target`,
  );
  row('seq write 512M (dd)', 'MB/s', 'seqWriteMBps', '>= 0.5');
  row('seq read 512M (dd)', 'MB/s', 'seqReadMBps', '>= 0.5');
  row('4k rand read QD1 (fio)', 'IOPS', 'randReadIops', '>= 0.5');
  row('4k rand write QD1 (fio)', 'IOPS', 'randWriteIops', '');
  console.log(`serving process peak RSS: ${r.serverPeakRssMiB.toFixed(0)} MiB (target < 200)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printMountBench(await benchMount());
}
