/**
 * A Storage wrapper that simulates a crash: the N-th write (0-based) fails, optionally after
 * writing only its first half (a torn write), and every operation after that fails too, as if
 * the process had died. Counting mode (crashAt = Infinity) reports how many writes happen.
 */
import type { Storage } from '../../src/io/storage.js';

/** Thrown by FaultStorage at the crash point. */
export class SimulatedCrash extends Error {
  constructor() {
    super('simulated crash');
  }
}

/**
 * True for a {@link SimulatedCrash}, also when the product wrapped it in one of its own errors
 * (`ioErrorFrom` keeps the original as `cause`): a crash seen through any layer is a crash.
 */
export function isSimulatedCrash(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof SimulatedCrash) return true;
  }
  return false;
}

/** Storage that crashes at a chosen write. */
export class FaultStorage implements Storage {
  /** Writes that were started (including the crashing one). */
  writes = 0;
  crashed = false;

  constructor(
    private readonly inner: Storage,
    private readonly crashAt: number = Infinity,
    /**
     * `true`: the crashing write lands its first half (a torn write). A number: that many of
     * its bytes land (clamped to the write's length minus one), to tear at chosen places.
     * A function: it gets the write's length and returns how many bytes land (same clamp).
     */
    private readonly torn: boolean | number | ((length: number) => number) = false,
  ) {}

  private alive(): void {
    if (this.crashed) throw new SimulatedCrash();
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
    this.alive();
    const index = this.writes++;
    if (index === this.crashAt) {
      this.crashed = true;
      const keep =
        this.torn === true
          ? Math.floor(data.length / 2)
          : typeof this.torn === 'number'
            ? Math.min(this.torn, data.length - 1)
            : typeof this.torn === 'function'
              ? Math.min(this.torn(data.length), data.length - 1)
              : 0;
      if (keep > 0) await this.inner.writeAt(offset, data.subarray(0, keep));
      throw new SimulatedCrash();
    }
    await this.inner.writeAt(offset, data);
  }

  async sync(): Promise<void> {
    this.alive();
    await this.inner.sync();
  }

  async syncData(): Promise<void> {
    this.alive();
    await this.inner.syncData();
  }

  async size(): Promise<number> {
    this.alive();
    return this.inner.size();
  }

  async truncate(length: number): Promise<void> {
    this.alive();
    await this.inner.truncate(length);
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}
