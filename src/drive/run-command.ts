/**
 * Run a host program (mkfs, fsck, resize2fs, mount, losetup, ntfs-3g...) without blocking the
 * process that may be serving the drive the program works on.
 */
import { spawn } from 'node:child_process';
import { openSync, readdirSync, readlinkSync } from 'node:fs';

/** Output of a command run by {@link runCommand}. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The signal that ended the command, if one did (then `code` is 124 for SIGKILL, else 128). */
  signal?: NodeJS.Signals | null;
}

/** Options of {@link runCommand}. */
export interface RunCommandOptions {
  /**
   * The caller handles interruptions itself: the command runs in a process group of its own
   * (a Ctrl-C at the terminal reaches only the caller, which decides when to stop it), and
   * aborting this signal ends it (SIGTERM, then SIGKILL after {@link STOP_GRACE_MS}).
   */
  stop?: AbortSignal;
}

/** How long a command asked to stop (SIGTERM) may take before it is killed. */
export const STOP_GRACE_MS = 5000;

let devNull: number | null = null;

/** Our descriptors open on /dev/fuse (one per live mount of this process). */
function fuseDeviceFds(): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === '/dev/fuse') out.push(Number(name));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/**
 * Run a program asynchronously (never blocking: this process may be serving the drive the
 * program works on), with a time limit (`timeoutMs` 0 = none).
 *
 * libfuse opens /dev/fuse without O_CLOEXEC, so every child would inherit the drive's FUSE
 * connection. A long-lived child (the ntfs-3g daemon) would then keep that connection alive
 * after our death, and its own reads of the drive would wait forever for an answer instead of
 * failing with ENOTCONN (measured: ntfs-3g and everything touching its mount hung in
 * request_wait_answer). Node cannot set FD_CLOEXEC, so in each child those descriptor numbers
 * are overwritten with /dev/null through the stdio table (libuv dup2's each entry in place).
 */
export function runCommand(
  file: string,
  args: string[],
  timeoutMs: number,
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const stdio: (number | 'pipe' | 'ignore')[] = ['ignore', 'pipe', 'pipe'];
  const fds = fuseDeviceFds().filter((fd) => fd > 2);
  if (fds.length > 0) {
    devNull ??= openSync('/dev/null', 'r+');
    const max = Math.max(...fds);
    while (stdio.length <= max) stdio.push('ignore');
    for (const fd of fds) stdio[fd] = devNull;
  }
  return new Promise((done) => {
    let stdout = '';
    let stderr = '';
    let child;
    const { stop } = options;
    try {
      // detached: setsid(2), a process group (and session) of its own.
      child = spawn(file, args, { stdio, detached: stop !== undefined });
    } catch (err) {
      done({ code: 127, stdout, stderr: `${file}: ${(err as Error).message}` });
      return;
    }
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = timeoutMs > 0 ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    let grace: NodeJS.Timeout | undefined;
    const onStop = (): void => {
      child.kill('SIGTERM');
      grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    };
    if (stop?.aborted) onStop();
    else stop?.addEventListener('abort', onStop, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      stderr += err.code === 'ENOENT' ? `${file}: command not found` : err.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(grace);
      stop?.removeEventListener('abort', onStop);
      const status = code ?? (signal === 'SIGKILL' ? 124 : 128);
      done({ code: stderr.endsWith('command not found') ? 127 : status, stdout, stderr, signal });
    });
  });
}
