/**
 * The byte store a volume lives on. `src/volume/` talks only to this interface, so tests can
 * put a fault-injecting store underneath (crash at the N-th write, tear the last write).
 */
export interface Storage {
  /** Read up to `length` bytes at `offset`; shorter only at end of file. */
  readAt(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: read up to `buffer.length` bytes at `offset` into `buffer` and return the count
   * (shorter only at end of file). Bulk readers use it to reuse buffers: a fresh buffer per
   * read costs page faults and GC (bench/PERFORMANCE.md, "Figures behind code comments"). Callers fall
   * back to {@link readAt} when a Storage lacks it.
   */
  readInto?(offset: number, buffer: Uint8Array): Promise<number>;
  /** Write all of `data` at `offset`. */
  writeAt(offset: number, data: Uint8Array): Promise<void>;
  /**
   * Optional synchronous {@link readInto}, for the mounted drive's small requests: a page-cache
   * hit avoids the thread pool's round trip (bench/PERFORMANCE.md, "Figures behind code comments").
   * It blocks the calling thread for as long as the disk takes.
   */
  readIntoSync?(offset: number, buffer: Uint8Array): number;
  /** Optional synchronous {@link writeAt}; same trade-off as {@link readIntoSync}. */
  writeAtSync?(offset: number, data: Uint8Array): void;
  /** Make every completed write durable (fsync). */
  sync(): Promise<void>;
  /** Make written data durable without forcing metadata that is not needed (fdatasync). */
  syncData(): Promise<void>;
  /** Current length in bytes. */
  size(): Promise<number>;
  /** Set the length (grow with zeros or cut). */
  truncate(length: number): Promise<void>;
  /** Release the underlying handle. Idempotent. */
  close(): Promise<void>;
}
