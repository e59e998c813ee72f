/**
 * A Storage held in memory, for tests that build many small containers (the header fuzzer):
 * no file per case, and every byte the code under test wrote can be compared afterwards.
 */
import type { Storage } from '../../src/io/storage.js';

/** In-memory Storage; `bytes` is the current content, `writes` counts writes and truncations. */
export class MemoryStorage implements Storage {
  writes = 0;
  closed = false;

  constructor(public bytes: Uint8Array) {}

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.slice(offset, Math.min(this.bytes.length, offset + length));
  }

  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    this.writes++;
    if (offset + data.length > this.bytes.length) {
      const grown = new Uint8Array(offset + data.length);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes.set(data, offset);
  }

  async sync(): Promise<void> {}

  async syncData(): Promise<void> {}

  async size(): Promise<number> {
    return this.bytes.length;
  }

  async truncate(length: number): Promise<void> {
    this.writes++;
    const next = new Uint8Array(length);
    next.set(this.bytes.subarray(0, Math.min(length, this.bytes.length)));
    this.bytes = next;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
