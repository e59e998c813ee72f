/**
 * The host tools around the drive that no single filesystem owns: running tools, loop devices,
 * unmounting, /proc/self/mountinfo (each filesystem's own tools: filesystems/). Every tool runs asynchronously (never spawnSync):
 * the process that calls them is usually the one serving the drive they work on, and a
 * blocked event loop would deadlock it (FACTS.md: the server must never wait on its own mount).
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { BusyError, MountError, UsageError } from '../../volume-format/errors.js';
import { unescapeMountPath } from './host-mount.js';
import { type RunCommandOptions, runCommand } from './run-command.js';
import { config } from '../config.js';

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

// ---- loop devices and mounts -------------------------------------------------------------

/**
 * Logical block size for the loop device over the drive (SPEC §6 "Filesystem block size"):
 * the volume's sector size only if the filesystem's blocks are at least that large. A 1 KiB
 * block ext4 on a 4096-byte-sector volume does not mount on a 4096-byte loop device, while the
 * drive serves any byte range (read-modify-write), so 512 is always correct, 4096 only faster.
 */
export function loopSectorSize(volumeSectorSize: number, fsBlockSize: number | null): number {
  return volumeSectorSize === 4096 && fsBlockSize !== null && fsBlockSize >= 4096 ? 4096 : 512;
}

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
  const directIo = config.loopDirectIo() ?? (options.directIo === false ? 'off' : 'on');
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
