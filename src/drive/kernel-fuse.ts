/**
 * The drive served over /dev/fuse directly, without libfuse or fuse-native, for root mounts
 * (the ext4 path): the kernel's FUSE protocol is spoken by a worker thread that reads a
 * request, serves it synchronously and answers (src/drive/kernel-fuse-worker.ts).
 *
 * Why: with fuse-native every request crosses three threads (libfuse's reader, the event loop,
 * libfuse again), and on this 2-core VM those hand-offs, not our crypto or I/O, were most of
 * the time: a no-op 4 KiB request took ≈ 80–120 µs there against ≈ 25–45 µs here
 * (bench/fuse-floor.ts, bench/PERFORMANCE.md).
 *
 * Only root can mount this way (mount(2) with `fd=N`); a normal user needs fusermount, which
 * passes the descriptor over a Unix socket (SCM_RIGHTS) that Node cannot receive, so the NTFS
 * and raw-drive paths keep fuse-native (fuse-adapter.ts).
 *
 * Guarantees kept from fuse-adapter.ts: every request is answered (in order, by one thread);
 * unmounting is never lazy and a busy mount is refused with VOLUME_BUSY; and if the worker
 * dies, the /dev/fuse descriptor is closed, which aborts the connection (users get ENOTCONN
 * instead of hanging forever).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { wipe } from '../../crypto/bytes.js';
import { BusyError, MountError } from '../../volume-format/errors.js';
import type { Volume } from '../volume/volume.js';
import { DRIVE_FILE_NAME } from './drive-ops.js';
import {
  type FuseMount,
  cleanStaleFuseMount,
  isMountpoint,
  unmountStrict,
} from './fuse-adapter.js';
import type { KernelFuseWorkerData } from './kernel-fuse-worker.js';

/** Largest request; the kernel's default for a FUSE mount without max_pages (128 KiB). */
const MAX_REQUEST_BYTES = 131072;

/** Options of {@link mountKernelFuse}. */
export interface KernelFuseOptions {
  /** Source shown in mountinfo (letters, digits, `-_.`). */
  fsname: string;
  uid: number;
  gid: number;
  readOnly: boolean;
  /** Lines for the server log (worker failures). */
  log: (line: string) => void;
}

/** True when this process can use {@link mountKernelFuse} (root). */
export function kernelFuseUsable(): boolean {
  return process.getuid?.() === 0 && process.env.CRYPTAINER_DRIVE !== 'fuse-native';
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
 * `volume`, served by a worker thread. Throws `MOUNT_FAILED`, or `VOLUME_BUSY` if something is
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

  const data: KernelFuseWorkerData = {
    fuseFd,
    containerFd,
    dataOffset: volume.header.dataOffset,
    sectorSize: volume.sectorSize,
    sizeBytes: volume.sizeBytes,
    readOnly: options.readOnly,
    uid: options.uid,
    gid: options.gid,
    maxWriteBytes: MAX_REQUEST_BYTES,
    fileName: DRIVE_FILE_NAME,
  };
  const worker = new Worker(new URL('./kernel-fuse-worker.js', import.meta.url), {
    workerData: data,
  });
  let unmounting = false;
  const exited = new Promise<void>((done) => {
    worker.on('exit', () => {
      // A worker gone while mounted would leave requests unanswered: closing the last
      // /dev/fuse descriptor aborts the connection instead.
      if (!unmounting) options.log('drive worker ended while mounted; connection aborted');
      closeFds();
      done();
    });
  });
  worker.on('error', (err) => options.log(`drive worker: ${err.message}`));
  const ready = new Promise<void>((done, fail) => {
    worker.on('message', (msg: { ready?: true; log?: string }) => {
      if (msg.ready) done();
      if (msg.log) options.log(msg.log);
    });
    void exited.then(() => fail(new MountError('MOUNT_FAILED', 'the drive worker ended early')));
  });
  // The key goes over in shared memory that the worker zeroes once its cipher holds it.
  const key = volume.exportMasterKey();
  const shared = new SharedArrayBuffer(key.length);
  new Uint8Array(shared).set(key);
  wipe(key);
  worker.postMessage({ key: shared });
  try {
    await ready;
  } catch (err) {
    await unmountStrict(abs).catch(() => undefined);
    throw err;
  }

  return {
    mountpoint: abs,
    async unmount() {
      if (unmounting) return;
      unmounting = true;
      try {
        await unmountStrict(abs); // throws VOLUME_BUSY and leaves the mount served
      } catch (err) {
        unmounting = false;
        throw err;
      }
      await exited; // ENODEV ends the worker's loop
    },
  };
}
