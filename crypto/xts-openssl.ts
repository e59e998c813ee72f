/**
 * The OpenSSL XTS engine: one node:crypto `aes-256-xts` call per sector, IV = the sector
 * number as a 128-bit little-endian integer (IEEE 1619-2007 §5.1). Each call costs
 * microseconds of setup, so xts.ts picks it only for sectors of 32 KiB and more (where that
 * is amortised) and on runtimes without WebAssembly SIMD.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { wipe } from './bytes.js';
import { BLOCK_BYTES, TWO_POW_32, type XtsSectorEngine } from './xts-engine.js';

/** Per-sector OpenSSL aes-256-xts; holds a private copy of K1 ‖ K2 until disposed. */
export class OpenSslXtsEngine implements XtsSectorEngine {
  #key: Buffer;
  #iv = Buffer.alloc(BLOCK_BYTES);

  /** @param key - K1 ‖ K2 (64 bytes, checked by the caller); copied. */
  constructor(
    key: Uint8Array,
    private readonly sectorSize: number,
  ) {
    // Buffer.alloc, not Buffer.from: a dedicated allocation, not a slice of the shared pool.
    this.#key = Buffer.alloc(key.length);
    this.#key.set(key);
  }

  crypt(encrypt: boolean, data: Uint8Array, first: number, count: number, out: Uint8Array): void {
    const key = this.#key;
    const iv = this.#iv;
    const sectorSize = this.sectorSize;
    for (let k = 0; k < count; k++) {
      const n = first + k;
      iv.writeUInt32LE(n >>> 0, 0);
      iv.writeUInt32LE(Math.floor(n / TWO_POW_32), 4); // bytes 8..15 stay zero
      const start = k * sectorSize;
      const cipher = encrypt
        ? createCipheriv('aes-256-xts', key, iv)
        : createDecipheriv('aes-256-xts', key, iv);
      const result = cipher.update(data.subarray(start, start + sectorSize));
      cipher.final();
      out.set(result, start);
      wipe(result);
    }
  }

  dispose(): void {
    wipe(this.#key, this.#iv);
  }
}
