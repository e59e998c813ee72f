/**
 * A sector-range lock shared by the threads that serve the drive (kernel-fuse-worker.ts).
 *
 * Two threads read /dev/fuse and serve requests side by side, so two requests may touch the
 * same sectors at once: a partial-sector write is a read-modify-write (SPEC §9.4) that must
 * not interleave with another write of that sector, and a read must not see a sector half
 * rewritten (it would decrypt to garbage instead of the old or the new contents). Each thread
 * therefore publishes the sector range of its request in shared memory and waits while another
 * thread's published range overlaps it. The kernel rarely sends overlapping requests (its
 * page cache serialises them), so the common path is two uncontended atomic sections.
 *
 * Memory: one SharedArrayBuffer; an Int32Array holds the mutex word and a generation counter
 * that waiters sleep on (Atomics.wait), a Float64Array the ranges, one slot per thread.
 * The ranges are plain (non-atomic) reads and writes made only while the mutex is held; the
 * mutex's atomic operations order them between threads (ECMAScript memory model).
 */

const MUTEX = 0;
const GENERATION = 1;
const INT_WORDS = 2;
/** Slot value meaning "this thread holds no range". */
const FREE = -1;

/** Shared state of a {@link SharedRangeLock}, created once and handed to every thread. */
export function createSharedRangeLockMemory(threads: number): SharedArrayBuffer {
  const memory = new SharedArrayBuffer(INT_WORDS * 4 + threads * 2 * 8);
  new Float64Array(memory, INT_WORDS * 4).fill(FREE);
  return memory;
}

/** One thread's handle on the shared lock; `slot` is that thread's index (0-based). */
export class SharedRangeLock {
  readonly #ints: Int32Array;
  readonly #ranges: Float64Array;
  readonly #slot: number;

  constructor(memory: SharedArrayBuffer, slot: number) {
    this.#ints = new Int32Array(memory, 0, INT_WORDS);
    this.#ranges = new Float64Array(memory, INT_WORDS * 4);
    if (!Number.isInteger(slot) || slot < 0 || slot * 2 >= this.#ranges.length) {
      throw new RangeError(`slot ${slot} is outside the lock's ${this.#ranges.length / 2} slots`);
    }
    this.#slot = slot;
  }

  /** Wait until no other thread holds a range overlapping sectors [first, end), then hold it. */
  acquire(first: number, end: number): void {
    for (;;) {
      this.#lock();
      const generation = Atomics.load(this.#ints, GENERATION);
      if (!this.#overlapsOther(first, end)) {
        this.#ranges[this.#slot * 2] = first;
        this.#ranges[this.#slot * 2 + 1] = end;
        this.#unlock();
        return;
      }
      this.#unlock();
      // Sleeps until a release bumps the generation (no wake-up is lost: it is re-read).
      Atomics.wait(this.#ints, GENERATION, generation);
    }
  }

  /** Give up the range held by this thread and wake the threads waiting for one. */
  release(): void {
    this.#lock();
    this.#ranges[this.#slot * 2] = FREE;
    this.#ranges[this.#slot * 2 + 1] = FREE;
    Atomics.add(this.#ints, GENERATION, 1);
    this.#unlock();
    Atomics.notify(this.#ints, GENERATION);
  }

  #overlapsOther(first: number, end: number): boolean {
    for (let s = 0; s < this.#ranges.length / 2; s++) {
      if (s === this.#slot) continue;
      const otherFirst = this.#ranges[s * 2]!;
      if (otherFirst === FREE) continue;
      if (first < this.#ranges[s * 2 + 1]! && otherFirst < end) return true;
    }
    return false;
  }

  /** The mutex is held for a few loads and stores, so contention only ever spins briefly. */
  #lock(): void {
    while (Atomics.compareExchange(this.#ints, MUTEX, 0, 1) !== 0) {
      Atomics.wait(this.#ints, MUTEX, 1, 1);
    }
  }

  #unlock(): void {
    Atomics.store(this.#ints, MUTEX, 0);
    Atomics.notify(this.#ints, MUTEX, 1);
  }
}
