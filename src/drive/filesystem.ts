/**
 * The system tools around the drive: mkfs.ext4/mkntfs, losetup, mount/umount, ntfs-3g,
 * e2fsck/ntfsfix, and /proc/self/mountinfo. Every tool runs asynchronously (never spawnSync):
 * the process that calls them is usually the one serving the drive they work on, and a
 * blocked event loop would deadlock it (FACTS.md: the server must never wait on its own mount).
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { BusyError, MountError, UsageError } from '../../volume-format/errors.js';
import { unescapeMountPath } from './host-mount.js';
import { type RunCommandOptions, runCommand } from './run-command.js';

/** Filesystems cryptainer puts inside a volume. `none` = the raw drive only. */
export type FilesystemKind = 'ext4' | 'ntfs' | 'none';

/** Output of one tool run. */
export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The signal that ended the tool, if one did. */
  signal?: NodeJS.Signals | null;
}

/**
 * Run a tool; never throws for a non-zero status (see {@link runStep}). 0 = no time limit.
 * `options.stop`: see {@link RunCommandOptions}.
 */
export function runTool(
  file: string,
  args: string[],
  timeoutMs = 120_000,
  options: RunCommandOptions = {},
): Promise<ToolResult> {
  return runCommand(file, args, timeoutMs, options);
}

/** Run a tool as mount step `step`; a non-zero status throws `MOUNT_FAILED` naming the step. */
export async function runStep(
  step: string,
  file: string,
  args: string[],
  timeoutMs?: number,
  options: RunCommandOptions = {},
): Promise<ToolResult> {
  const r = await runTool(file, args, timeoutMs, options);
  if (r.code !== 0) throw new MountError('MOUNT_FAILED', `${step}: ${toolFailure(r)}`);
  return r;
}

/** Why a tool failed, in a few words: its last lines, or the signal that ended it. */
export function toolFailure(r: ToolResult): string {
  if (r.signal) return `it was ended by ${r.signal}`;
  return lastLines(r.stderr || r.stdout) || `exit status ${r.code}`;
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join('; ');
}

// ---- detecting and making filesystems ----------------------------------------------------

/** Bytes of the drive that {@link detectFilesystem} needs (the ext superblock ends at 2048). */
export const DETECT_BYTES = 4096;

/**
 * Which filesystem the first bytes of a drive hold: ext2/3/4 (superblock magic 0xEF53 at
 * offset 1024+56) or NTFS (OEM id "NTFS    " at offset 3 of the boot sector); else null.
 */
export function detectFilesystem(head: Uint8Array): 'ext4' | 'ntfs' | null {
  if (head.length >= 1082 && head[1080] === 0x53 && head[1081] === 0xef) return 'ext4';
  if (head.length >= 11 && Buffer.from(head.subarray(3, 11)).toString('latin1') === 'NTFS    ') {
    return 'ntfs';
  }
  return null;
}

/**
 * Block size of the ext2/3/4 filesystem whose first bytes are `head` (superblock at drive
 * offset 1024: `s_log_block_size` at +24, block size = 1024 << it), or null if `head` holds
 * no ext superblock or an impossible value.
 */
export function ext4BlockSize(head: Uint8Array): number | null {
  if (detectFilesystem(head) !== 'ext4' || head.length < 1052) return null;
  const log = Buffer.from(head.buffer, head.byteOffset, head.length).readUInt32LE(1024 + 24);
  return log <= 6 ? 1024 << log : null; // ext4 allows 1 KiB to 64 KiB blocks
}

/**
 * Logical block size for the loop device over the drive (SPEC §6 "Filesystem block size"):
 * the volume's sector size only if the filesystem's blocks are at least that large. A 1 KiB
 * block ext4 on a 4096-byte-sector volume does not mount on a 4096-byte loop device, while the
 * drive serves any byte range (read-modify-write), so 512 is always correct, 4096 only faster.
 */
export function loopSectorSize(volumeSectorSize: number, fsBlockSize: number | null): number {
  return volumeSectorSize === 4096 && fsBlockSize !== null && fsBlockSize >= 4096 ? 4096 : 512;
}

/** Smallest drive each filesystem is made on (measured: mkfs.ext4 needs 256 KiB, mkntfs 1 MiB+). */
export const MIN_FILESYSTEM_BYTES = { ext4: 1024 * 1024, ntfs: 2 * 1024 * 1024 } as const;

/** Refuse (`USAGE`) a drive too small for `kind`, before any costly work. */
export function checkFilesystemSize(kind: FilesystemKind, sizeBytes: number): void {
  if (kind === 'none') return;
  const min = MIN_FILESYSTEM_BYTES[kind];
  if (sizeBytes < min) {
    throw new UsageError(
      'USAGE',
      `size ${sizeBytes}: ${kind} needs at least ${min / 1024 / 1024} MiB (or use --filesystem none)`,
    );
  }
}

/** Format `drivePath` (the decrypted drive file) with `kind`. */
export async function makeFilesystem(
  drivePath: string,
  kind: 'ext4' | 'ntfs',
  options: { label?: string; sectorSize?: number } = {},
): Promise<void> {
  if (kind === 'ext4') {
    const args = [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      // The drive already reads as zeros (SPEC §6 fill at creation): skip zeroing the inode
      // tables and journal now and in the background after the first mount; no discard, which
      // the drive does not support and which would reveal unused sectors anyway.
      '-E',
      'nodiscard,assume_storage_prezeroed=1',
    ];
    if (options.label) args.push('-L', options.label);
    await runStep('making the ext4 filesystem (mkfs.ext4)', 'mkfs.ext4', [...args, drivePath], 0);
  } else {
    // -f: quick (no zeroing: the drive reads as zeros); -F: a file, not a block device.
    const args = ['-q', '-f', '-F', '-s', String(options.sectorSize === 4096 ? 4096 : 512)];
    args.push('-p', '0', '-H', '0', '-S', '0');
    if (options.label) args.push('-L', options.label);
    await runStep('making the NTFS filesystem (mkntfs)', 'mkntfs', [...args, drivePath], 0);
  }
}

/** Result of a filesystem check. */
export interface CheckResult {
  /** True when the checker reported no problem (or fixed all it found, with `repair`). */
  clean: boolean;
  output: string;
  code: number;
}

/**
 * Check (never modify, unless `repair`) the filesystem in `drivePath`: `e2fsck -fn` / `-fy`,
 * `ntfsfix -n` / `ntfsfix -d`.
 */
export async function checkFilesystem(
  drivePath: string,
  kind: 'ext4' | 'ntfs',
  repair = false,
): Promise<CheckResult> {
  if (kind === 'ext4') {
    const r = await runTool('e2fsck', [repair ? '-fy' : '-fn', drivePath], 0);
    // e2fsck: 0 clean, 1 errors corrected, 2 corrected + reboot, 4 left uncorrected, 8+ failure
    const clean = repair ? r.code <= 2 : r.code === 0;
    return { clean, output: r.stdout + r.stderr, code: r.code };
  }
  const r = await runTool('ntfsfix', [repair ? '-d' : '-n', drivePath], 0);
  return { clean: r.code === 0, output: r.stdout + r.stderr, code: r.code };
}

// ---- loop devices and mounts -------------------------------------------------------------

/**
 * Attach `file` to a free loop device; returns its path. `directIo` (default true) makes the
 * loop driver bypass the page cache of `file`: right for a drive whose every request is a
 * round trip anyway (fuse-native), while a drive with a kernel writeback cache
 * (`FuseMount.pageCached`) is attached buffered so the loop driver is served from that cache.
 * `CRYPTAINER_LOOP_DIO=on|off` (read by the serving process) overrides it, for measurements.
 */
export async function attachLoop(
  file: string,
  options: { readOnly?: boolean; sectorSize?: number; directIo?: boolean } = {},
): Promise<string> {
  const directIo = process.env.CRYPTAINER_LOOP_DIO ?? (options.directIo === false ? 'off' : 'on');
  const args = ['--find', '--show', `--direct-io=${directIo}`];
  if (options.sectorSize === 4096) args.push('--sector-size', '4096');
  if (options.readOnly) args.push('--read-only');
  const r = await runStep('attaching a loop device (losetup)', 'losetup', [...args, file]);
  const dev = r.stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) {
    throw new MountError('MOUNT_FAILED', `attaching a loop device: unexpected output "${dev}"`);
  }
  return dev;
}

/** Detach a loop device (retrying briefly while the kernel still holds it). */
export async function detachLoop(device: string): Promise<void> {
  let last: ToolResult | null = null;
  for (let attempt = 0; attempt < 20; attempt++) {
    last = await runTool('losetup', ['-d', device]);
    if (last.code === 0) return;
    if (/no such device|No such device or address|not a block device/i.test(last.stderr)) return;
    await sleep(100);
  }
  throw new MountError('MOUNT_FAILED', `detaching ${device}: ${lastLines(last?.stderr ?? '')}`);
}

/**
 * The file a loop device is attached to, from sysfs (never touches that file, which may sit on
 * a dead FUSE mount), or null if the device is not attached.
 */
export async function loopBackingFile(device: string): Promise<string | null> {
  const name = /^\/dev\/(loop\d+)$/.exec(device)?.[1];
  if (!name) return null;
  try {
    return (await fsp.readFile(`/sys/block/${name}/loop/backing_file`, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Security defaults for a volume that may come from someone else: no setuid, no devices. */
const SAFE_MOUNT_OPTIONS = 'nosuid,nodev';

/** Mount the ext4 filesystem on `device` at `mountpoint` with the kernel driver. */
export async function mountExt4(
  device: string,
  mountpoint: string,
  options: { readOnly?: boolean } = {},
): Promise<void> {
  const opts = SAFE_MOUNT_OPTIONS + (options.readOnly ? ',ro' : '');
  await runStep('mounting ext4 (mount)', 'mount', ['-t', 'ext4', '-o', opts, device, mountpoint]);
}

/**
 * Mount the NTFS filesystem in `drivePath` at `mountpoint` with ntfs-3g. Files belong to
 * `uid`/`gid` with umask 077: the cleartext is for the user who mounted it, no one else.
 */
export async function mountNtfs(
  drivePath: string,
  mountpoint: string,
  options: { readOnly?: boolean; uid: number; gid: number },
): Promise<void> {
  const opts = [
    SAFE_MOUNT_OPTIONS,
    `uid=${options.uid}`,
    `gid=${options.gid}`,
    'umask=077',
    'big_writes',
  ];
  if (options.readOnly) opts.push('ro');
  await runStep('mounting NTFS (ntfs-3g)', 'ntfs-3g', [
    '-o',
    opts.join(','),
    drivePath,
    mountpoint,
  ]);
}

/**
 * Unmount the filesystem at `mountpoint`, never lazily. Busy → `VOLUME_BUSY` naming the
 * processes that use it. `fuse` selects `fusermount -u`, which a normal user needs for a
 * FUSE mount (ntfs-3g, or the raw drive).
 */
export async function unmountFilesystem(
  mountpoint: string,
  options: { fuse?: boolean } = {},
): Promise<void> {
  if (!(await findMount(mountpoint))) return;
  const asRoot = process.getuid?.() === 0;
  const r =
    options.fuse && !asRoot
      ? await runTool('fusermount', ['-u', mountpoint], 120_000)
      : await runTool('umount', [mountpoint], 120_000);
  if (r.code === 0 || !(await findMount(mountpoint))) return;
  if (/busy/i.test(r.stderr)) {
    const holders = await describeHolders(mountpoint);
    throw new BusyError(
      'VOLUME_BUSY',
      `unmounting ${mountpoint}: target is busy${holders ? `, in use by ${holders}` : ''}` +
        ' (close those files or leave that directory, then try again)',
    );
  }
  throw new MountError('MOUNT_FAILED', `unmounting ${mountpoint}: ${lastLines(r.stderr)}`);
}

/** "pid 123 (bash), pid 456 (vim)": the processes using the filesystem at `mountpoint`. */
export async function describeHolders(mountpoint: string): Promise<string> {
  const r = await runTool('fuser', ['-m', mountpoint], 10_000);
  const pids = [...r.stdout.matchAll(/(\d+)[a-zA-Z]*/g)].map((m) => Number(m[1]));
  const parts: string[] = [];
  for (const pid of [...new Set(pids)].slice(0, 10)) {
    const comm = await fsp.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?');
    parts.push(`pid ${pid} (${comm.trim()})`);
  }
  return parts.join(', ');
}

// ---- mountinfo ---------------------------------------------------------------------------

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

/** Parse /proc/self/mountinfo (see proc(5)). */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3) continue;
    out.push({
      mountpoint: unescapeMountPath(fields[4]!),
      options: fields[5]!,
      fstype: fields[dash + 1]!,
      source: unescapeMountPath(fields[dash + 2]!),
    });
  }
  return out;
}

/** The topmost mount at exactly `path`, if any. */
export async function findMount(path: string): Promise<MountEntry | undefined> {
  const abs = resolve(path);
  const all = await readMounts();
  for (let i = all.length - 1; i >= 0; i--) if (all[i]!.mountpoint === abs) return all[i];
  return undefined;
}

/**
 * A mountpoint must be an existing, empty directory that nothing is mounted on. FACTS.md: if
 * mounting failed unnoticed, files written into the directory would land on disk in cleartext;
 * refusing a non-empty one also keeps us from hiding the user's files.
 */
export async function checkMountpoint(path: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      throw new BusyError('VOLUME_BUSY', `mountpoint ${path}: a dead mount is there (unmount it)`);
    }
    throw new UsageError(
      'USAGE',
      `mountpoint ${path}: ${code === 'ENOENT' ? 'no such directory' : code}`,
    );
  }
  if (!st.isDirectory()) throw new UsageError('USAGE', `mountpoint ${path}: not a directory`);
  if (await findMount(path)) {
    throw new BusyError('VOLUME_BUSY', `mountpoint ${path}: something is already mounted there`);
  }
  const entries = await fsp.readdir(path);
  if (entries.length > 0) {
    throw new UsageError('USAGE', `mountpoint ${path}: not empty (use an empty directory)`);
  }
  try {
    await fsp.access(path, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    throw new UsageError('USAGE', `mountpoint ${path}: not writable by this user`);
  }
}

/** True when this process may use FUSE at all (/dev/fuse readable and writable). */
export async function fuseUsable(): Promise<boolean> {
  try {
    await fsp.access('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when /etc/fuse.conf has `user_allow_other` (needed for allow_root as a normal user). */
export async function userAllowOther(): Promise<boolean> {
  const text = await fsp.readFile('/etc/fuse.conf', 'utf8').catch(() => '');
  return text.split('\n').some((l) => l.trim() === 'user_allow_other');
}

/** Sleep helper. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Unmount a short-lived drive that a tool (mkfs, resize2fs) has just finished with. The tool
 * has exited, but a brief reader (blkid from udev) may still hold the file: retry for up to
 * ~5 s before giving up with the unmount's own error.
 */
export async function unmountAfterTool(drive: { unmount(): Promise<void> }): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await drive.unmount();
      return;
    } catch (err) {
      if (attempt >= 50) throw err;
      await sleep(100);
    }
  }
}
