/**
 * Fault injection for the crash and interruption tests of tool runs
 * (test/drive/resize-kill.test.ts, resize-interrupt.test.ts): with
 * `CRYPTAINER_TEST_KILL_AT_WRITE` in the environment, the tool drive (tool-drive.ts) counts
 * the write requests the tools send it, and acts at the N-th one, before serving it:
 *
 * - `server:N` kills this process (the one serving the drive and running the resize) with
 *   SIGKILL, as a crash at that moment would;
 * - `tool:N` kills the tool that is running (our child processes: e2fsck, resize2fs, …) with
 *   SIGKILL, and fails that write;
 * - `interrupt:N[,M…]` sends SIGINT to this process's process group at each of these writes,
 *   as a Ctrl-C at the terminal would, and serves the write;
 * - `count:PATH` appends one line per write to the file PATH: its drive offset and length (the
 *   tests count the lines, and show them when a point fails).
 *
 * Unset (always, outside tests), {@link toolWriteHook} returns null and costs nothing.
 */
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import { config } from '../config.js';

/** Called at every write request of the tool drive; returns true if that write must fail. */
export type ToolWriteHook = (position: number, length: number) => boolean;

/** The hook `CRYPTAINER_TEST_KILL_AT_WRITE` asks for, or null. */
export function toolWriteHook(): ToolWriteHook | null {
  const spec = config.testKillAtWrite();
  if (spec === undefined || spec === '') return null;
  const colon = spec.indexOf(':');
  const mode = spec.slice(0, colon);
  const arg = spec.slice(colon + 1);
  if (mode === 'count') {
    return (position, length) => {
      appendFileSync(arg, `${position} ${length}\n`);
      return false;
    };
  }
  const at = arg.split(',').map(Number);
  if (
    !['server', 'tool', 'interrupt'].includes(mode) ||
    at.some((n) => !Number.isInteger(n) || n < 1)
  ) {
    throw new RangeError(
      `CRYPTAINER_TEST_KILL_AT_WRITE=${spec}: use server:N, tool:N, interrupt:N[,M…] or count:PATH`,
    );
  }
  let writes = 0;
  return () => {
    writes++;
    if (!at.includes(writes)) return false;
    if (mode === 'interrupt') {
      process.kill(0, 'SIGINT'); // 0: every process of our group, as the terminal does
      return false;
    }
    if (mode === 'server') process.kill(process.pid, 'SIGKILL');
    for (const pid of childPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return true;
  };
}

/** Our child processes, from /proc (every thread's `children` list). */
function childPids(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const text = readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      if (text !== '') out.push(...text.split(/\s+/).map(Number));
    } catch {
      // thread ended meanwhile
    }
  }
  return out;
}
