/**
 * Which process is which: a PID alone is recycled by the kernel, a PID together with its start
 * time (field 22 of /proc/PID/stat, clock ticks since boot) names one process for the whole
 * boot. Used to tell whether the owner of a file named after its process still runs.
 */
import { readFileSync } from 'node:fs';

/**
 * Start time of a running process (field 22 of /proc/PID/stat, as a decimal string), or null
 * if there is no such process, or it has exited and is only waiting to be reaped (a zombie
 * holds no file open and writes nothing more).
 */
export function liveProcessStartTime(pid: number): string | null {
  const st = readProcStat(pid);
  return st === null || st.state === 'Z' || st.state === 'X' ? null : st.start;
}

/**
 * State (field 3: R, S, D, Z, ...) and start time (field 22) of process `pid` from
 * /proc/PID/stat, zombies included, or null if there is no such process.
 */
export function readProcStat(pid: number): { state: string; start: string } | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    const start = fields[19]; // field 22 overall = index 19 after pid and comm
    return state !== undefined && start !== undefined ? { state, start } : null;
  } catch {
    return null;
  }
}

/** True while the process `pid` that started at `start` (from {@link liveProcessStartTime}) runs. */
export function processRuns(pid: number, start: string): boolean {
  return liveProcessStartTime(pid) === start;
}
