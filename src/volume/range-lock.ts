/**
 * Shared/exclusive locks over sector ranges. A read-modify-write of a partial sector must not
 * interleave with another write (or a read) of the same sector, while I/O on other sectors
 * proceeds in parallel, as FUSE issues requests concurrently.
 */

interface Range {
  first: number;
  end: number;
  exclusive: boolean;
}

interface Waiter extends Range {
  grant: (release: () => void) => void;
}

function clash(a: Range, b: Range): boolean {
  return (a.exclusive || b.exclusive) && a.first < b.end && b.first < a.end;
}

/** Range locks over half-open sector intervals [first, end), granted in FIFO order. */
export class RangeLock {
  private readonly held = new Set<Range>();
  private waiters: Waiter[] = [];

  /** Wait until [first, end) can be held in the given mode; resolves to the release function. */
  acquire(first: number, end: number, exclusive: boolean): Promise<() => void> {
    const want: Range = { first, end, exclusive };
    if (!this.blocked(want, this.waiters)) return Promise.resolve(this.take(want));
    return new Promise((grant) => this.waiters.push({ ...want, grant }));
  }

  /**
   * Take [first, end) now if nothing held or queued clashes with it, else return null (the
   * caller then waits with {@link acquire}). Lets a request that does all its work
   * synchronously skip the promise round trip.
   */
  tryAcquire(first: number, end: number, exclusive: boolean): (() => void) | null {
    const want: Range = { first, end, exclusive };
    return this.blocked(want, this.waiters) ? null : this.take(want);
  }

  private blocked(want: Range, queued: Waiter[]): boolean {
    for (const h of this.held) if (clash(h, want)) return true;
    for (const w of queued) if (clash(w, want)) return true;
    return false;
  }

  /** Number of ranges held now (for tests and leak checks). */
  get heldCount(): number {
    return this.held.size;
  }

  private take(range: Range): () => void {
    this.held.add(range);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held.delete(range);
      this.grantWaiters();
    };
  }

  private grantWaiters(): void {
    const queue = this.waiters;
    this.waiters = [];
    for (const w of queue) {
      // A waiter stays queued if a held range or an earlier, still-waiting one clashes with it.
      if (this.blocked(w, this.waiters)) this.waiters.push(w);
      else w.grant(this.take({ first: w.first, end: w.end, exclusive: w.exclusive }));
    }
  }
}
