/**
 * Data-path tracing for performance work (issue 6): with `CRYPTAINER_TRACE=1` in the serving
 * process's environment, every drive read and write records how long it spent waiting for its
 * range lock, in file I/O, in XTS and in copies, its size, and how many requests were in flight
 * when it arrived. A summary goes to the server log every `CRYPTAINER_TRACE_INTERVAL` seconds
 * (default 5) while requests arrive, and once more when the drive is unmounted.
 *
 * Off (the default), every hook is one branch on a constant: the product pays nothing
 * measurable. Nothing recorded here is secret (sizes and timings only, no offsets or data).
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { config } from './config.js';

/** Phases a request's time is split into. `other` = total minus the named phases. */
export type TracePhase = 'lock' | 'io' | 'crypto' | 'copy';

const PHASES: TracePhase[] = ['lock', 'io', 'crypto', 'copy'];

/** True when `CRYPTAINER_TRACE` is set to something other than `0` or the empty string. */
export const TRACE_ENABLED = config.trace();

/** Request size classes of the summary (bytes, upper bounds inclusive). */
const SIZE_CLASSES = [4096, 16384, 65536, 131072, Infinity];
const SIZE_NAMES = ['<=4K', '<=16K', '<=64K', '<=128K', '>128K'];

interface OpStats {
  count: number;
  bytes: number;
  totalMs: number;
  maxMs: number;
  phaseMs: Record<TracePhase, number>;
  sizes: number[];
  /** Requests in flight when one arrived (itself included): index = depth, capped at 16. */
  depth: number[];
  /** Requests that needed a read-modify-write of a partial sector. */
  partial: number;
}

function emptyOp(): OpStats {
  return {
    count: 0,
    bytes: 0,
    totalMs: 0,
    maxMs: 0,
    phaseMs: { lock: 0, io: 0, crypto: 0, copy: 0 },
    sizes: SIZE_CLASSES.map(() => 0),
    depth: new Array<number>(17).fill(0),
    partial: 0,
  };
}

/** One request being traced: add phase times to it, then end it. */
export interface TraceSpan {
  readonly start: number;
  phase(name: TracePhase, startedAt: number): void;
  markPartial(): void;
  end(): void;
}

let ops: Record<string, OpStats> = {};
let inFlight = 0;
let windowStart = performance.now();
let eluStart = performance.eventLoopUtilization();
let timer: NodeJS.Timeout | null = null;
let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');

/** Where summaries go (the server log by default: stderr). */
export function setTraceSink(write: (line: string) => void): void {
  sink = write;
}

/** The current time in milliseconds (fractional), for {@link TraceSpan.phase}. */
export const now = (): number => performance.now();

/**
 * Start tracing a request of kind `op` ('read', 'write', 'fsync', ...) and `bytes` bytes.
 * Returns null when tracing is off, so call sites read `span?.phase(...)`.
 */
export function traceStart(op: string, bytes: number): TraceSpan | null {
  if (!TRACE_ENABLED) return null;
  if (timer === null) startTimer();
  inFlight++;
  const stats = (ops[op] ??= emptyOp());
  stats.depth[Math.min(inFlight, 16)]!++;
  const start = performance.now();
  const phases: Record<TracePhase, number> = { lock: 0, io: 0, crypto: 0, copy: 0 };
  let partial = false;
  let ended = false;
  return {
    start,
    phase(name, startedAt) {
      phases[name] += performance.now() - startedAt;
    },
    markPartial() {
      partial = true;
    },
    end() {
      if (ended) return;
      ended = true;
      inFlight--;
      const ms = performance.now() - start;
      stats.count++;
      stats.bytes += bytes;
      stats.totalMs += ms;
      if (ms > stats.maxMs) stats.maxMs = ms;
      for (const p of PHASES) stats.phaseMs[p] += phases[p];
      let c = 0;
      while (bytes > SIZE_CLASSES[c]!) c++;
      stats.sizes[c]!++;
      if (partial) stats.partial++;
    },
  };
}

const intervalMs = (): number => config.traceIntervalMs();

function startTimer(): void {
  timer = setInterval(() => flushTrace(), intervalMs());
  timer.unref();
}

/**
 * For a thread whose event loop never runs (the /dev/fuse worker blocks in read(2)): call
 * after each request; prints the summary once the interval has passed.
 */
export function flushTraceIfDue(): void {
  if (TRACE_ENABLED && performance.now() - windowStart >= intervalMs()) flushTrace();
}

const us = (ms: number): string => (ms * 1000).toFixed(1);

/**
 * Print the summary of the requests since the last one (if any) and start a new window.
 * Columns per op: count, MB/s over the window, mean size, mean µs per request in total and
 * per phase, max µs, size classes, in-flight depth at arrival; then the main thread's busy
 * fraction (event-loop utilisation) over the window.
 */
export function flushTrace(): void {
  if (!TRACE_ENABLED) return;
  const t = performance.now();
  const seconds = (t - windowStart) / 1000;
  const elu = performance.eventLoopUtilization(eluStart);
  const names = Object.keys(ops).filter((k) => ops[k]!.count > 0);
  if (names.length > 0) {
    sink(`trace: ${seconds.toFixed(1)} s, event loop busy ${(elu.utilization * 100).toFixed(0)}%`);
    for (const name of names) {
      const s = ops[name]!;
      const per = (ms: number) => us(ms / s.count);
      const other = s.totalMs - PHASES.reduce((a, p) => a + s.phaseMs[p], 0);
      const sizes = SIZE_NAMES.map((n, i) => (s.sizes[i] ? `${n}:${s.sizes[i]}` : ''))
        .filter(Boolean)
        .join(' ');
      const depth = s.depth
        .map((n, d) => (n ? `${d}:${n}` : ''))
        .filter(Boolean)
        .join(' ');
      sink(
        `trace: ${name.padEnd(6)} n=${s.count} ${(s.bytes / seconds / 1e6).toFixed(0)} MB/s ` +
          `avg ${(s.bytes / s.count / 1024).toFixed(1)} KiB | µs/req total ${per(s.totalMs)} ` +
          `lock ${per(s.phaseMs.lock)} io ${per(s.phaseMs.io)} crypto ${per(s.phaseMs.crypto)} ` +
          `copy ${per(s.phaseMs.copy)} other ${per(other)} max ${us(s.maxMs)} | ` +
          `partial ${s.partial} | sizes ${sizes} | depth ${depth}`,
      );
    }
  }
  ops = {};
  windowStart = t;
  eluStart = performance.eventLoopUtilization();
}

/** Print the last summary and stop the timer (at unmount). */
export function stopTrace(): void {
  if (!TRACE_ENABLED) return;
  flushTrace();
  if (timer !== null) clearInterval(timer);
  timer = null;
}
