/**
 * The byte store a volume lives on. `src/volume/` talks only to this interface, so tests can
 * put a fault-injecting store underneath (crash at the N-th write, tear the last write).
 */
export interface Storage {
  /** Read up to `length` bytes at `offset`; shorter only at end of file. */
  readAt(offset: number, length: number): Promise<Uint8Array>;
  /** Write all of `data` at `offset`. */
  writeAt(offset: number, data: Uint8Array): Promise<void>;
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
