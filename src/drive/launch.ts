/**
 * Running the server: the `mount` command starts a child of our own CLI (`cryptainer __serve`),
 * detached unless `--foreground`, which unlocks and serves the volume; the parent returns once
 * the child reports the filesystem mounted and the parent has verified that in mountinfo.
 *
 * Channels (secrets never in argv or the environment, which other users can read in /proc):
 * - child stdin (a pipe): one line of JSON (the {@link MountRequest}), then the passphrase
 *   bytes up to EOF. The parent wipes its copy after writing; the child wipes after unlock.
 * - child fd 3 (a pipe): one line of JSON, `{"ok":true,"record":…}` or
 *   `{"ok":false,"code":…,"message":…}`; then the child closes it.
 * - child stderr: `<entry>/server.log` in the background (it must not hold the parent's
 *   stdout/stderr: a caller waiting for their EOF would wait until unmount), ours in the
 *   foreground; stdout: /dev/null.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { wipe } from '../../crypto/bytes.js';
import {
  CryptainerError,
  type ErrorCode,
  MountError,
  UsageError,
} from '../../volume-format/errors.js';
import { MAX_PASSPHRASE_BYTES, readStdinToEnd } from '../io/secret-input.js';
import { makeUndumpable, secureCopy, secureMemoryProblem } from '../secure-memory.js';
import { sleep } from './filesystem.js';
import { type MountRequest, serveMount, verifyMounted } from './mount.js';
import {
  CLI_MAIN,
  type MountRecord,
  SERVE_COMMAND,
  entryDir,
  removeEntry,
  writeServerPid,
} from './registry.js';

export { SERVE_COMMAND };

/** Longest wait for the child to report (unlocking with a costly KDF is the slow part). */
const READY_TIMEOUT_MS = 10 * 60 * 1000;

/** The request line (paths, options) plus a passphrase of at most the usual cap. */
const MAX_SERVE_INPUT_BYTES = 1024 * 1024 + MAX_PASSPHRASE_BYTES;

/** A started server: its record, and (for `--foreground`) a promise of its end. */
export interface StartedServer {
  record: MountRecord;
  /** Resolves with the server's exit status once it has unmounted (foreground only). */
  finished: Promise<number> | null;
}

/**
 * Start the server for `req` and return once the filesystem is mounted and verified.
 * `passphrase` is wiped here. Errors of the child keep their code (a wrong passphrase exits
 * 2, a busy volume 5, ...).
 *
 * In the background (default) the server is detached: its own session, so the terminal's
 * Ctrl-C or hangup does not reach it, and its stderr goes to the entry's server.log. With
 * `foreground` it stays our child, logs to our stderr, gets our SIGTERM/SIGHUP forwarded
 * (a terminal's Ctrl-C reaches both of us anyway), and `finished` tells when it is done.
 * The server is a separate process in both cases so that it always runs with the same
 * environment (see {@link serverEnv}).
 */
export async function startServer(
  req: MountRequest,
  passphrase: Uint8Array,
  options: { foreground?: boolean } = {},
): Promise<StartedServer> {
  const foreground = options.foreground === true;
  const logPath = join(entryDir(req.id), 'server.log');
  const logFd = foreground ? null : openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CLI_MAIN, SERVE_COMMAND, req.container, req.mountpoint], {
      detached: !foreground,
      stdio: ['pipe', 'ignore', logFd ?? 'inherit', 'pipe'],
      cwd: '/',
      env: serverEnv(),
    });
  } finally {
    if (logFd !== null) closeSync(logFd);
  }
  if (child.pid !== undefined) await writeServerPid(req.id, child.pid).catch(() => undefined);
  const exit = new Promise<number>((done) => {
    child.on('exit', (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
  const frame = Buffer.concat([Buffer.from(JSON.stringify(req) + '\n', 'utf8'), passphrase]);
  wipe(passphrase);
  child.stdin!.on('error', () => undefined); // the child may die before reading
  child.stdin!.end(frame, () => wipe(frame));

  const result = await readReport(child, exit, foreground ? 'its messages above' : logPath);
  if (result.ok !== true) {
    await Promise.race([exit, sleep(10_000)]);
    await removeEntry(req.id).catch(() => undefined);
    const code = (result.code as ErrorCode | undefined) ?? 'MOUNT_FAILED';
    throw new CryptainerError(code, String(result.message ?? 'mount failed'));
  }
  const record = result.record as MountRecord;
  try {
    await verifyMounted(record); // our own check, not the child's word
  } catch (err) {
    child.kill('SIGTERM');
    throw err;
  }
  if (!foreground) {
    child.unref();
    return { record, finished: null };
  }
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];
  for (const sig of signals) process.on(sig, forward);
  const finished = exit.finally(() => {
    for (const sig of signals) process.off(sig, forward);
  });
  return { record, finished };
}

/** Wait for the child's one-line report on fd 3 (or its exit, or the timeout). */
function readReport(
  child: ChildProcess,
  exit: Promise<number>,
  where: string,
): Promise<Record<string, unknown>> {
  const report = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  return new Promise<Record<string, unknown>>((done, fail) => {
    let text = '';
    let settled = false;
    const timer = setTimeout(() => {
      settle(() => fail(new MountError('MOUNT_FAILED', 'starting the server: no answer in time')));
    }, READY_TIMEOUT_MS);
    const settle = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      report.destroy();
      f();
    };
    const tryLine = (): boolean => {
      const nl = text.indexOf('\n');
      if (nl < 0) return false;
      try {
        const msg = JSON.parse(text.slice(0, nl)) as Record<string, unknown>;
        settle(() => done(msg));
        return true;
      } catch {
        return false; // a broken line is the same as no answer
      }
    };
    report.setEncoding('utf8');
    report.on('data', (chunk: string) => {
      text += chunk;
      tryLine();
    });
    report.on('error', () => undefined);
    void exit.then((status) => {
      // Give a last answer still in the pipe a moment to arrive.
      setTimeout(() => {
        if (tryLine()) return;
        settle(() =>
          fail(
            new MountError(
              'MOUNT_FAILED',
              `starting the server: it exited (status ${status}) without an answer; see ${where}`,
            ),
          ),
        );
      }, 50);
    });
  });
}

/**
 * The server's environment: ours, plus glibc malloc tunables. Node allocates a fresh buffer
 * per request; glibc serves allocations of 128 KiB and more (a full FUSE request) with a new
 * mmap each time, page-faulted in and unmapped again (bench/PERFORMANCE.md, "Figures behind
 * code comments": half the time of a 128 KiB read).
 */
function serverEnv(): NodeJS.ProcessEnv {
  const tunables = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728';
  const prior = process.env.GLIBC_TUNABLES;
  return { ...process.env, GLIBC_TUNABLES: prior ? `${prior}:${tunables}` : tunables };
}

/**
 * The child side (`cryptainer __serve`): read the request and the passphrase from stdin, serve,
 * report on fd 3. Resolves when the volume was unmounted.
 */
export async function runServeChild(): Promise<void> {
  // Before any secret arrives: no core dump, and no ptrace or /proc/PID/mem for other
  // processes of this user (README, "Security notes"). Without the addon, the log says so.
  const undumpable = makeUndumpable();
  const input = await readStdinToEnd(MAX_SERVE_INPUT_BYTES);
  const req = parseRequest(input);
  // Off the JavaScript heap (whose collector moves small arrays, leaving stale copies behind).
  const passphrase = secureCopy(input.subarray(input.indexOf(0x0a) + 1));
  wipe(input);
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} cryptainer[${process.pid}]: ${line}\n`);
  };
  if (!undumpable)
    log(`${secureMemoryProblem ?? 'secure memory unavailable'}: serving unprotected`);
  let reported = false;
  /** Tell the parent; false if it is gone (EPIPE: Node ignores SIGPIPE). */
  const report = (msg: Record<string, unknown>): boolean => {
    if (reported) return false;
    reported = true;
    try {
      writeSync(3, JSON.stringify(msg) + '\n');
      closeSync(3);
      return true;
    } catch {
      return false; // the log has it
    }
  };
  try {
    await serveMount(
      req,
      { passphrase, keyfiles: req.keyfiles },
      {
        onReady: (record) => {
          wipe(passphrase);
          // If `mount` was interrupted meanwhile, nobody knows of this mount: undo it.
          return report({ ok: true, record });
        },
        log,
      },
    );
  } catch (err) {
    wipe(passphrase);
    const message = (err as Error)?.message ?? String(err);
    // After a mount was reported, the entry is the record `unmount` reads (with the server's
    // final status): it stays, and the error becomes this process's exit status.
    if (reported) throw err;
    const code = err instanceof CryptainerError ? err.code : 'MOUNT_FAILED';
    log(`mount failed: ${message}`);
    report({ ok: false, code, message });
    await removeEntry(req.id).catch(() => undefined); // the parent may be gone
    if (!(err instanceof CryptainerError)) throw err;
  }
}

/**
 * The request line of the server's stdin. Anything else (empty input: a `mount` killed before
 * it wrote, or `__serve` run by hand) is a one-line usage error, not a stack trace.
 */
function parseRequest(input: Buffer): MountRequest {
  const nl = input.indexOf(0x0a);
  let req: Partial<MountRequest> | null = null;
  try {
    if (nl > 0) req = JSON.parse(input.subarray(0, nl).toString('utf8')) as Partial<MountRequest>;
  } catch {
    req = null;
  }
  if (
    req === null ||
    typeof req !== 'object' ||
    typeof req.id !== 'string' ||
    !/^[0-9a-f]{12}$/.test(req.id) ||
    typeof req.container !== 'string' ||
    typeof req.mountpoint !== 'string' ||
    !Array.isArray(req.keyfiles)
  ) {
    wipe(input);
    throw new UsageError(
      'USAGE',
      `${SERVE_COMMAND}: no mount request on stdin (this command is run by \`cryptainer mount\`)`,
    );
  }
  return req as MountRequest;
}
