/**
 * Host mount helpers: read /proc/self/mountinfo and unmount strictly (never lazily). Used by
 * both FUSE servers and by unmount; kept free of fuse-native (ARCHITECTURE.md §2).
 */
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { BusyError, MountError } from '../../volume-format/errors.js';
import { runCommand } from './run-command.js';

/** True when `path` is a mountpoint listed in /proc/self/mountinfo. */
export async function isMountpoint(path: string): Promise<boolean> {
  const abs = resolve(path);
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined && unescapeMountPath(field) === abs) return true;
  }
  return false;
}

/**
 * The device number ("major:minor") of the topmost mount at `path`, from mountinfo: unlike
 * stat(2), reading it sends no request to the file system (a FUSE mount not yet serving would
 * block the caller).
 */
export async function mountDevice(path: string): Promise<string | null> {
  const abs = resolve(path);
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  let device: string | null = null;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined && unescapeMountPath(fields[4]) === abs) device = fields[2] ?? null;
  }
  return device;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
export function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Unmount a FUSE mount, never lazily. Root uses umount(8) (libfuse mounted it with mount(2)
 * directly); a normal user needs the setuid fusermount. Busy → `VOLUME_BUSY`.
 */
export async function unmountStrict(mountpoint: string): Promise<void> {
  const abs = resolve(mountpoint);
  if (!(await isMountpoint(abs))) return;
  const asRoot = process.getuid?.() === 0;
  const r = asRoot
    ? await runCommand('umount', [abs], 60_000)
    : await runCommand('fusermount', ['-u', abs], 60_000);
  if (r.code === 0) return;
  if (!(await isMountpoint(abs))) return; // someone else unmounted it meanwhile
  if (/busy/i.test(r.stderr)) {
    throw new BusyError('VOLUME_BUSY', `unmounting ${abs}: target is busy`);
  }
  throw new MountError('FUSE_ERROR', `unmounting ${abs}: ${r.stderr.trim() || `status ${r.code}`}`);
}

/**
 * If `mountpoint` holds a FUSE mount whose server is gone (every access fails with ENOTCONN),
 * unmount it. Returns true if one was cleaned. A dead mount that is still in use (a loop device
 * or an open file on it) cannot be removed strictly; it is then detached lazily, which is safe
 * because no request can reach a dead server anyway.
 */
export async function cleanStaleFuseMount(mountpoint: string): Promise<boolean> {
  const abs = resolve(mountpoint);
  if (!(await isMountpoint(abs))) return false;
  try {
    await fsp.stat(abs);
    return false; // it answers: alive, not ours to clean
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTCONN') return false;
  }
  try {
    await unmountStrict(abs);
  } catch {
    const asRoot = process.getuid?.() === 0;
    await (asRoot
      ? runCommand('umount', ['-l', abs], 60_000)
      : runCommand('fusermount', ['-u', '-z', abs], 60_000));
  }
  return !(await isMountpoint(abs));
}
