/**
 * The server's count of failed container I/O, kept where `list` and `unmount` can read it
 * (status.json in the mount's registry entry, registry.ts).
 *
 * Why: when the host refuses a write of the container (ENOSPC, EIO), the drive can only answer
 * the request with EIO; the filesystem above then aborts its journal or drops the page, and
 * the user's data is gone. Before this count existed only server.log said so, while `list`
 * said "mounted" and `unmount` said "unmounted". Now every failed request is counted by
 * both serving paths (kernel-fuse.ts and drive-ops.ts), `list` shows `degraded: N write
 * errors`, and the final status tells `unmount` whether anything was lost.
 */
import { liveProcessStartTime } from '../io/process-start.js';
import { type ServerStatus, writeServerStatus } from './registry.js';

/** Longest delay between an error and its appearance in status.json. */
const WRITE_DELAY_MS = 200;

/** Which kind of request failed. */
export type IoErrorKind = 'read' | 'write';

/** Counts failed I/O of one mount's server and publishes it in status.json. */
export class ServerHealth {
  private writeErrors = 0;
  private readErrors = 0;
  private lastError: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private finished = false;
  private readonly pidStart = liveProcessStartTime(process.pid) ?? '';

  constructor(
    /** Registry entry of the mount. */
    private readonly id: string,
    /** Server log, for a status file that cannot be written. */
    private readonly log: (line: string) => void,
  ) {}

  /** Failed writes so far (including failed flushes of the container). */
  get writeErrorCount(): number {
    return this.writeErrors;
  }

  /** Failed reads so far. */
  get readErrorCount(): number {
    return this.readErrors;
  }

  /** Count one failed request; `message` is what the host said. */
  count(kind: IoErrorKind, message: string): void {
    if (kind === 'write') this.writeErrors++;
    else this.readErrors++;
    this.lastError = message;
    if (this.timer === null && !this.finished) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.publish();
      }, WRITE_DELAY_MS);
    }
  }

  /** Write the current counts now (at start, so the entry names its server from the outset). */
  publish(): Promise<void> {
    return this.write({ phase: 'serving' });
  }

  /**
   * The server's last word, written after its final fdatasync just before it exits: the
   * counts, whether that flush worked and whether every layer was undone.
   */
  async finish(result: { flushed: boolean; tornDown: boolean }): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.finished = true;
    await this.write({ phase: 'finished', ...result });
  }

  /** True when nothing failed (the clean end needs no status file left behind). */
  get clean(): boolean {
    return this.writeErrors === 0 && this.readErrors === 0;
  }

  private write(extra: Partial<ServerStatus> & Pick<ServerStatus, 'phase'>): Promise<void> {
    const status: ServerStatus = {
      pid: process.pid,
      pidStart: this.pidStart,
      writeErrors: this.writeErrors,
      readErrors: this.readErrors,
      lastError: this.lastError,
      updatedAt: new Date().toISOString(),
      ...extra,
    };
    // One write at a time, in order: a late "serving" must never replace "finished".
    this.writing = this.writing.then(() =>
      writeServerStatus(this.id, status).catch((err: Error) =>
        this.log(`writing status.json: ${err.message}`),
      ),
    );
    return this.writing;
  }
}

/** "3 write errors, 1 read error" (only the kinds that occurred); "" if none. */
export function describeErrors(status: { writeErrors: number; readErrors: number }): string {
  const parts: string[] = [];
  const n = (count: number, what: string): string => `${count} ${what}${count === 1 ? '' : 's'}`;
  if (status.writeErrors > 0) parts.push(n(status.writeErrors, 'write error'));
  if (status.readErrors > 0) parts.push(n(status.readErrors, 'read error'));
  return parts.join(', ');
}
