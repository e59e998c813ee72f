/**
 * The drive served over /dev/fuse directly, without libfuse or fuse-native, for root mounts
 * (the ext4 path): the kernel's FUSE protocol is spoken by a worker thread that reads a
 * request, serves it synchronously and answers (src/drive/kernel-fuse-worker.ts).
 *
 * Why: with fuse-native every request crosses three threads (libfuse's reader, the event loop,
 * libfuse again), and on this 2-core VM those hand-offs, not our crypto or I/O, were most of
 * the time: a no-op request costs about a third of that here (bench/fuse-floor.ts,
 * bench/PERFORMANCE.md, "Figures behind code comments").
 *
 * Only root can mount this way (mount(2) with `fd=N`); a normal user needs fusermount, which
 * passes the descriptor over a Unix socket (SCM_RIGHTS) that Node cannot receive, so the NTFS
 * and raw-drive paths keep fuse-native (fuse-adapter.ts).
 *
 * Since the drive file is the only way to its data, the kernel may cache its pages (FUSE
 * writeback cache): reads of cached pages and writes never wait for us, and FSYNC still ends
 * in fdatasync of the container. Requests are up to 1 MiB (FUSE_MAX_PAGES), and two threads
 * serve them so one can decrypt while the other waits (bench/PERFORMANCE.md has the numbers).
 *
 * Guarantees kept from fuse-adapter.ts: every request is answered exactly once; unmounting is
 * never lazy and a busy mount is refused with VOLUME_BUSY; and if a serving thread dies, the
 * connection is aborted (users get ENOTCONN instead of hanging forever).
 */
import { spawn } from 'node:child_process';
import { closeSync, fdatasync, openSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { wipe } from '../../crypto/bytes.js';
import { BusyError, MountError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME } from './drive-ops.js';
import type { FuseMount } from './fuse-types.js';
import { cleanStaleFuseMount, isMountpoint, mountDevice, unmountStrict } from './host-mount.js';
import type { KernelFuseWorkerData } from './kernel-fuse-worker.js';
import { createSharedRangeLockMemory } from './shared-range-lock.js';
import { config } from '../config.js';

/**
 * Largest read or write request, negotiated with FUSE_MAX_PAGES (the kernel's default without
 * it is 128 KiB). Larger requests mean fewer round trips per MiB and XTS over larger batches;
 * `CRYPTAINER_DRIVE_MAX_REQUEST` overrides it for measurements (bench/PERFORMANCE.md).
 */
const MAX_REQUEST_BYTES = requestLimit(config.driveMaxRequest());

/**
 * Whether the kernel may cache the drive's pages and write them back later (FUSE writeback
 * cache). On by default; `CRYPTAINER_DRIVE_WRITEBACK=0` turns it off for measurements.
 */
const WRITEBACK_CACHE = config.driveWriteback();

/**
 * Threads reading /dev/fuse. Two let one decrypt while the other waits for the disk or the
 * kernel; each costs a V8 isolate and a malloc arena (≈ 10–20 MiB of RSS).
 * `CRYPTAINER_DRIVE_THREADS` (1–4) overrides it for measurements.
 */
/**
 * Bytes written between background flushes of the container (kernel-fuse-worker.ts,
 * countWritten). `CRYPTAINER_DRIVE_FLUSH_KICK_MIB=0` turns them off, for measurements.
 */
const FLUSH_KICK_BYTES = config.driveFlushKickMiB() * 1024 * 1024;

const SERVING_THREADS = config.driveThreads();

function requestLimit(text: string | undefined): number {
  const n = Number(text ?? 1024 * 1024);
  // A power of two from 4 KiB to 1 MiB: whole pages, within FUSE_MAX_MAX_PAGES (256).
  return Number.isInteger(Math.log2(n)) && n >= 4096 && n <= 1024 * 1024 ? n : 1024 * 1024;
}

/** The connection's name under /sys/fs/fuse/connections: the kernel's dev_t (MKDEV). */
function fuseConnection(device: string): number {
  const [major, minor] = device.split(':').map(Number) as [number, number];
  return major * 2 ** 20 + minor;
}

/**
 * The drive's read-ahead window: eight requests, so that while the serving threads decrypt two
 * of them the kernel has already asked for the next ones (with one request's worth, each
 * thread served one 1 MiB read at a time and waited for the next; bench/PERFORMANCE.md,
 * "Round 5"). The kernel's default is 128 KiB.
 */
const READAHEAD_BYTES = 8 * MAX_REQUEST_BYTES;

/**
 * Set the drive's read-ahead through the mount's backing device info in sysfs (INIT's
 * max_readahead can only lower what the kernel offers). Best effort: without it, reads are
 * only smaller.
 */
function raiseReadahead(device: string, log: (line: string) => void): void {
  try {
    writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, `${READAHEAD_BYTES / 1024}\n`);
  } catch (err) {
    log(`drive readahead left at the kernel default: ${(err as Error).message}`);
  }
}

/** Options of {@link mountKernelFuse}. */
export interface KernelFuseOptions {
  /** Source shown in mountinfo (letters, digits, `-_.`). */
  fsname: string;
  uid: number;
  gid: number;
  readOnly: boolean;
  /** Lines for the server log (worker failures). */
  log: (line: string) => void;
  /** A request failed on the container (counted by server-health.ts). */
  onIoError?: (kind: 'read' | 'write', message: string) => void;
}

/** True when this process can use {@link mountKernelFuse} (root). */
export function kernelFuseUsable(): boolean {
  return process.getuid?.() === 0 && !config.forceFuseNative();
}

function runMount(args: string[], fuseFd: number): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    // The child gets the /dev/fuse descriptor as its fd 3 (mount(2) reads `fd=3` in its context).
    const child = spawn('mount', args, { stdio: ['ignore', 'ignore', 'pipe', fuseFd] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => done({ code: 127, stderr: err.message }));
    child.on('close', (code) => done({ code: code ?? 1, stderr }));
  });
}

/**
 * Mount the drive of `volume` at `mountpoint` (an empty directory) as the single file
 * `volume`, served by worker threads. Throws `MOUNT_FAILED`, or `VOLUME_BUSY` if something is
 * mounted there.
 */
export async function mountKernelFuse(
  mountpoint: string,
  volume: Volume,
  options: KernelFuseOptions,
): Promise<FuseMount> {
  const abs = resolve(mountpoint);
  if (!/^[A-Za-z0-9._-]+$/.test(options.fsname)) {
    throw new RangeError(`fsname "${options.fsname}": use letters, digits, ".", "_" and "-"`);
  }
  await cleanStaleFuseMount(abs);
  if (await isMountpoint(abs)) {
    throw new BusyError('VOLUME_BUSY', `mounting the drive at ${abs}: something is mounted there`);
  }
  const fuseFd = openSync('/dev/fuse', 'r+');
  // A descriptor of its own on the container: the worker reads and writes the data area with
  // positional I/O (same file, same page cache as the volume's; the volume's lock covers both).
  let containerFd: number;
  try {
    containerFd = openSync(volume.path, options.readOnly ? 'r' : 'r+');
  } catch (err) {
    closeSync(fuseFd);
    throw new MountError('MOUNT_FAILED', `opening ${volume.path}: ${(err as Error).message}`);
  }
  const closeFds = (): void => {
    for (const fd of [fuseFd, containerFd]) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  };
  const opts = [
    'fd=3',
    'rootmode=40000',
    `user_id=${options.uid}`,
    `group_id=${options.gid}`,
    `max_read=${MAX_REQUEST_BYTES}`,
    'nosuid',
    'nodev',
  ];
  if (options.readOnly) opts.push('ro');
  // -i: no /sbin/mount.fuse helper; the options go to mount(2) as they are.
  const r = await runMount(['-i', '-t', 'fuse', '-o', opts.join(','), options.fsname, abs], fuseFd);
  if (r.code !== 0) {
    closeFds();
    throw new MountError(
      'MOUNT_FAILED',
      `mounting the drive at ${abs}: ${r.stderr.trim() || `mount exited ${r.code}`}`,
    );
  }

  const device = await mountDevice(abs);
  if (device === null || !/^\d+:\d+$/.test(device)) {
    closeFds();
    await unmountStrict(abs).catch(() => undefined);
    throw new MountError('MOUNT_FAILED', `mounting the drive at ${abs}: not in mountinfo`);
  }
  const connection = fuseConnection(device);
  const lockMemory = createSharedRangeLockMemory(SERVING_THREADS);
  let unmounting = false;
  let aborted = false;
  /**
   * A serving thread gone while mounted would leave requests unanswered, and the other threads
   * keep the /dev/fuse descriptor busy in read(2): abort the connection (users get ENOTCONN
   * instead of hanging; the threads' reads end with ENODEV).
   */
  const abortConnection = (why: string): void => {
    if (aborted) return;
    aborted = true;
    options.log(`${why}; connection aborted`);
    try {
      writeFileSync(`/sys/fs/fuse/connections/${connection}/abort`, '1\n');
    } catch (err) {
      options.log(`aborting FUSE connection ${connection}: ${(err as Error).message}`);
    }
  };
  // One background fdatasync at a time, started when a thread has written enough; the
  // descriptors are closed only after it returns.
  let flushing: Promise<void> | null = null;
  const startFlush = (): void => {
    if (flushing !== null || unmounting) return;
    flushing = new Promise<void>((done) =>
      fdatasync(containerFd, (err) => {
        if (err) {
          // The kernel reports a failed writeback once per descriptor: this may be the only
          // place that ever sees it.
          options.log(`background flush of the container: ${err.message}`);
          options.onIoError?.('write', `background flush: ${err.message}`);
        }
        flushing = null;
        done();
      }),
    );
  };
  const exits: Promise<void>[] = [];
  const readies: Promise<void>[] = [];
  for (let thread = 0; thread < SERVING_THREADS; thread++) {
    const data: KernelFuseWorkerData = {
      fuseFd,
      containerFd,
      dataOffset: volume.header.dataOffset,
      sectorSize: volume.sectorSize,
      sizeBytes: volume.sizeBytes,
      readOnly: options.readOnly,
      uid: options.uid,
      gid: options.gid,
      maxRequestBytes: MAX_REQUEST_BYTES,
      writebackCache: WRITEBACK_CACHE,
      fileName: DRIVE_FILE_NAME,
      flushKickBytes: options.readOnly ? 0 : FLUSH_KICK_BYTES,
      thread,
      rangeLock: lockMemory,
    };
    const worker = new Worker(new URL('./kernel-fuse-worker.js', import.meta.url), {
      workerData: data,
    });
    const exited = new Promise<void>((done) => {
      worker.on('exit', () => {
        if (!unmounting) abortConnection(`drive thread ${thread} ended while mounted`);
        done();
      });
    });
    exits.push(exited);
    worker.on('error', (err) => options.log(`drive thread ${thread}: ${err.message}`));
    readies.push(
      new Promise<void>((done, fail) => {
        type Msg = {
          ready?: true;
          log?: string;
          flush?: true;
          ioError?: 'read' | 'write' | null;
          message?: string;
        };
        worker.on('message', (msg: Msg) => {
          if (msg.flush) startFlush();
          if (msg.ioError) options.onIoError?.(msg.ioError, msg.message ?? 'unknown error');
          if (msg.ready) done();
          if (msg.log) options.log(msg.log);
        });
        void exited.then(() => fail(new MountError('MOUNT_FAILED', 'a drive thread ended early')));
      }),
    );
    // The key goes over in shared memory that the thread zeroes once its cipher holds it.
    const key = volume.exportMasterKey();
    const shared = new SharedArrayBuffer(key.length);
    new Uint8Array(shared).set(key);
    wipe(key);
    worker.postMessage({ key: shared });
  }
  // The descriptors are closed once every thread is gone (the last close of /dev/fuse also
  // ends the connection, should the abort above have failed).
  const allExited = Promise.all(exits)
    .then(() => flushing)
    .then(closeFds);
  try {
    await Promise.all(readies);
  } catch (err) {
    await unmountStrict(abs).catch(() => undefined);
    abortConnection('mounting failed');
    await allExited;
    throw err;
  }
  raiseReadahead(device, options.log);

  return {
    mountpoint: abs,
    pageCached: WRITEBACK_CACHE,
    async unmount() {
      if (unmounting) return;
      unmounting = true;
      try {
        await unmountStrict(abs); // throws VOLUME_BUSY and leaves the mount served
      } catch (err) {
        unmounting = false;
        throw err;
      }
      await allExited; // ENODEV ends every thread's loop
    },
  };
}
