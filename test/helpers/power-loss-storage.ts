/**
 * A Storage wrapper that models a power cut with a volatile write cache (the SQLite crash VFS
 * idea). Every write and truncate passes through to the file at once, so the running operation
 * reads its own writes as it would from the page cache, but is also logged as *pending* until
 * a later sync()/syncData() (both are fdatasync or stronger, and cover the file size: Linux
 * fdatasync(2) flushes a size change). The durable bytes that a pending write covers are kept
 * aside (per 512-byte block, read before the write reaches the file).
 *
 * At the crash point (the N-th write or truncate, counted from 0) the storage dies: that
 * operation is issued and every later call throws {@link SimulatedCrash}. {@link persistTo}
 * then writes one *persisted state* into a copy of the file: the durable image plus any subset
 * of the pending operations, each write lost whole, kept whole, or torn into its 512-byte
 * blocks, each landing or not, in any order (a later write to the same bytes may land while an
 * earlier one is lost; when both land, the later wins).
 *
 * What it does not model: byte-level tears inside a 512-byte block (FaultStorage covers
 * process death with arbitrary tears), bit rot, and a shrinking truncate followed by a growing
 * one in the same unsynced window (the regrown bytes come back as they were, not as zeros; no
 * operation of ours does that). Syncs are modelled only: the real file is never fsynced.
 */
import type { Storage } from '../../src/io/storage.js';
import { SimulatedCrash } from './fault-storage.js';

/** Tearing granularity: a 512-byte block of a write lands whole or not at all. */
export const BLOCK_BYTES = 512;

/** A write or truncate not yet made durable by a sync. */
type Pending =
  | { kind: 'write'; offset: number; data: Uint8Array; done: boolean }
  | { kind: 'truncate'; length: number; done: boolean };

/**
 * Which pending operations land: `write(i, units)` returns, for pending operation `i` (a write
 * of `units` blocks), one flag per block; `truncate(i)` whether a pending truncate lands.
 */
export interface PersistPlan {
  label: string;
  write(index: number, units: number): boolean[];
  truncate(index: number): boolean;
}

/** Storage that loses, keeps or tears unsynced writes at a crash point. */
export class PowerLossStorage implements Storage {
  /** Writes and truncates started (including the crashing one): the crash points. */
  events = 0;
  /** Syncs that completed. */
  syncs = 0;
  crashed = false;
  private pending: Pending[] = [];
  /** Durable content of every block a pending operation touches (zero-filled past the end). */
  private durable = new Map<number, Uint8Array>();
  private durableSize: number | null = null;

  constructor(
    private readonly inner: Storage,
    private readonly crashAt: number = Infinity,
  ) {}

  /** Pending (unsynced) writes and truncates right now. */
  get pendingCount(): number {
    return this.pending.length;
  }

  private alive(): void {
    if (this.crashed) throw new SimulatedCrash();
  }

  /** Start an event; true when it is the crashing one (it is issued, then the power goes). */
  private begin(): boolean {
    this.alive();
    return this.events++ === this.crashAt;
  }

  private async baseSize(): Promise<number> {
    this.durableSize ??= await this.inner.size();
    return this.durableSize;
  }

  /** Keep the durable bytes of blocks [first, end) that are not kept yet (one read per run). */
  private async capture(first: number, end: number): Promise<void> {
    for (let b = first; b < end;) {
      if (this.durable.has(b)) {
        b++;
        continue;
      }
      let runEnd = b + 1;
      while (runEnd < end && !this.durable.has(runEnd)) runEnd++;
      const got = await this.inner.readAt(b * BLOCK_BYTES, (runEnd - b) * BLOCK_BYTES);
      const run = new Uint8Array((runEnd - b) * BLOCK_BYTES);
      run.set(got);
      for (let i = b; i < runEnd; i++) {
        // First capture wins: a concurrent capture may have read after a write landed.
        if (!this.durable.has(i)) {
          this.durable.set(i, run.subarray((i - b) * BLOCK_BYTES, (i - b + 1) * BLOCK_BYTES));
        }
      }
      b = runEnd;
    }
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    this.alive();
    return this.inner.readAt(offset, length);
  }

  async readInto(offset: number, buffer: Uint8Array): Promise<number> {
    this.alive();
    if (this.inner.readInto) return this.inner.readInto(offset, buffer);
    const data = await this.inner.readAt(offset, buffer.length);
    buffer.set(data);
    return data.length;
  }

  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    const crash = this.begin();
    // Logged before anything awaits, so a concurrent sync never forgets its captured blocks.
    const op: Pending = { kind: 'write', offset, data: data.slice(), done: false };
    this.pending.push(op);
    await this.baseSize();
    if (data.length > 0) {
      await this.capture(
        Math.floor(offset / BLOCK_BYTES),
        Math.ceil((offset + data.length) / BLOCK_BYTES),
      );
    }
    await this.inner.writeAt(offset, data);
    op.done = true;
    if (crash) this.die();
  }

  async truncate(length: number): Promise<void> {
    const crash = this.begin();
    const op: Pending = { kind: 'truncate', length, done: false };
    this.pending.push(op);
    await this.baseSize();
    const now = await this.inner.size();
    // A shrink that may be lost must be able to bring the cut bytes back.
    if (length < now) {
      await this.capture(Math.floor(length / BLOCK_BYTES), Math.ceil(now / BLOCK_BYTES));
    }
    await this.inner.truncate(length);
    op.done = true;
    if (crash) this.die();
  }

  private die(): never {
    this.crashed = true;
    throw new SimulatedCrash();
  }

  async sync(): Promise<void> {
    await this.flush();
  }

  async syncData(): Promise<void> {
    await this.flush();
  }

  /**
   * fsync covers the operations completed when it is called (not those still in flight); it
   * takes effect when it returns, and a crash before then makes nothing durable.
   */
  private async flush(): Promise<void> {
    this.alive();
    const covered = this.pending.filter((p) => p.done);
    let size = await this.baseSize();
    await Promise.resolve();
    this.alive();
    for (const p of covered) {
      if (p.kind === 'truncate') size = p.length;
      else {
        forEachUnit(p.offset, p.data.length, (block, from, to, at) => {
          blockOf(this.durable, block).set(p.data.subarray(at, at + (to - from)), from);
        });
        size = Math.max(size, p.offset + p.data.length);
      }
    }
    this.durableSize = size;
    this.pending = this.pending.filter((p) => !covered.includes(p));
    if (this.pending.length === 0) this.durable.clear();
    this.syncs++;
  }

  async size(): Promise<number> {
    this.alive();
    return this.inner.size();
  }

  async close(): Promise<void> {
    // Dirty pages outlive the descriptor: pending writes stay pending.
    await this.inner.close();
  }

  /**
   * Write the persisted state `plan` chooses into `target`, a storage over a copy of this
   * storage's file as it is now (every pending operation landed).
   */
  async persistTo(target: Storage, plan: PersistPlan): Promise<void> {
    let size = this.durableSize ?? (await target.size());
    const blocks = new Map<number, Uint8Array>();
    for (const [b, bytes] of this.durable) blocks.set(b, bytes.slice());
    this.pending.forEach((p, i) => {
      if (p.kind === 'truncate') {
        if (plan.truncate(i)) size = p.length;
        return;
      }
      const units = unitCount(p.offset, p.data.length);
      const lands = plan.write(i, units);
      let u = 0;
      forEachUnit(p.offset, p.data.length, (block, from, to, at) => {
        if (!lands[u++]) return;
        blockOf(blocks, block).set(p.data.subarray(at, at + (to - from)), from);
        size = Math.max(size, block * BLOCK_BYTES + to);
      });
    });
    await target.truncate(size);
    // One write per run of contiguous blocks.
    const order = [...blocks.keys()].filter((b) => b * BLOCK_BYTES < size).sort((a, b) => a - b);
    for (let i = 0; i < order.length;) {
      let j = i + 1;
      while (j < order.length && order[j] === order[j - 1]! + 1) j++;
      const run = new Uint8Array((j - i) * BLOCK_BYTES);
      for (let k = i; k < j; k++) run.set(blocks.get(order[k]!)!, (k - i) * BLOCK_BYTES);
      const at = order[i]! * BLOCK_BYTES;
      await target.writeAt(at, run.subarray(0, Math.min(run.length, size - at)));
      i = j;
    }
  }
}

function blockOf(map: Map<number, Uint8Array>, block: number): Uint8Array {
  const bytes = map.get(block);
  if (bytes === undefined) throw new Error(`power-loss model: block ${block} was never captured`);
  return bytes;
}

/** Number of 512-byte blocks a write of `length` bytes at `offset` touches. */
function unitCount(offset: number, length: number): number {
  if (length === 0) return 0;
  return Math.ceil((offset + length) / BLOCK_BYTES) - Math.floor(offset / BLOCK_BYTES);
}

/** Call `fn(block, from, to, at)` for each block a write touches: bytes [from, to) of the
 * block take the write's bytes from `at`. */
function forEachUnit(
  offset: number,
  length: number,
  fn: (block: number, from: number, to: number, at: number) => void,
): void {
  let pos = offset;
  const end = offset + length;
  while (pos < end) {
    const block = Math.floor(pos / BLOCK_BYTES);
    const to = Math.min(end, (block + 1) * BLOCK_BYTES) - block * BLOCK_BYTES;
    const from = pos - block * BLOCK_BYTES;
    fn(block, from, to, pos - offset);
    pos = block * BLOCK_BYTES + to;
  }
}
