/**
 * The WebAssembly XTS engine (the fallback when the native addon is not built): per group of
 * up to 4096 sectors ONE AES-256-ECB call under K2 turns all the sector numbers into T_0s, and
 * per 64 KiB window ONE AES-256-ECB call under K1 does every data block; the tweak chain and
 * the two XORs run in the SIMD kernel of xts-kernel.ts. Why these sizes: see xts.ts.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';
import { wipe } from './bytes.js';
import { BLOCK_BYTES, TWO_POW_32, type XtsSectorEngine } from './xts-engine.js';
import {
  KERNEL_SECTOR_NUMBER_OFFSET,
  KERNEL_TWEAK_CAPACITY,
  KERNEL_TWEAK_OFFSET,
  KERNEL_WINDOW_BYTES,
  type XtsKernel,
} from './xts-kernel.js';

/** ECB under K1/K2 plus the WebAssembly tweak kernel. */
export class WasmXtsEngine implements XtsSectorEngine {
  #tweakEcb: Cipher;
  #encryptEcb: Cipher;
  #decryptEcb: Decipher;
  #kernel: XtsKernel;
  #memory: Buffer;
  #view: DataView;

  /**
   * @param k1 - data key (32 bytes); @param k2 - tweak key (32 bytes). OpenSSL copies both.
   * @param kernel - a fresh kernel instance from `createXtsKernel()`, owned from here on.
   */
  constructor(
    k1: Uint8Array,
    k2: Uint8Array,
    kernel: XtsKernel,
    private readonly sectorSize: number,
  ) {
    this.#kernel = kernel;
    this.#memory = Buffer.from(
      kernel.memory.buffer,
      kernel.memory.byteOffset,
      kernel.memory.length,
    );
    this.#view = new DataView(kernel.memory.buffer);
    // createCipheriv copies the key into OpenSSL's context; null IV because ECB has none.
    // ECB carries no state from one update() to the next when every call is whole blocks
    // with padding off, so these objects are created once and reused.
    this.#tweakEcb = createCipheriv('aes-256-ecb', k2, null).setAutoPadding(false);
    this.#encryptEcb = createCipheriv('aes-256-ecb', k1, null).setAutoPadding(false);
    this.#decryptEcb = createDecipheriv('aes-256-ecb', k1, null).setAutoPadding(false);
  }

  crypt(encrypt: boolean, data: Uint8Array, first: number, count: number, out: Uint8Array): void {
    const kernel = this.#kernel;
    const memory = this.#memory;
    const view = this.#view;
    const dataEcb = encrypt ? this.#encryptEcb : this.#decryptEcb;
    const sectorSize = this.sectorSize;
    const sectorsPerWindow = Math.floor(KERNEL_WINDOW_BYTES / sectorSize);

    for (let group = 0; group < count; group += KERNEL_TWEAK_CAPACITY) {
      const groupCount = Math.min(KERNEL_TWEAK_CAPACITY, count - group);
      // IEEE 1619 §5.1: the tweak value is the sector number as a 128-bit little-endian
      // integer. Bytes 8..15 of each block stay zero: nothing else writes this area and a
      // sector number is below 2^53.
      for (let k = 0; k < groupCount; k++) {
        const n = first + group + k;
        const at = KERNEL_SECTOR_NUMBER_OFFSET + k * BLOCK_BYTES;
        view.setUint32(at, n >>> 0, true);
        view.setUint32(at + 4, Math.floor(n / TWO_POW_32), true);
      }
      const numbers = memory.subarray(
        KERNEL_SECTOR_NUMBER_OFFSET,
        KERNEL_SECTOR_NUMBER_OFFSET + groupCount * BLOCK_BYTES,
      );
      const tweaks = this.#tweakEcb.update(numbers); // T_0 = AES-enc(K2, i) for each sector
      memory.set(tweaks, KERNEL_TWEAK_OFFSET);
      wipe(tweaks);

      for (let k = 0; k < groupCount; k += sectorsPerWindow) {
        const n = Math.min(sectorsPerWindow, groupCount - k);
        const len = n * sectorSize;
        const start = (group + k) * sectorSize;
        const tweakAt = KERNEL_TWEAK_OFFSET + k * BLOCK_BYTES;
        memory.set(data.subarray(start, start + len), 0);
        kernel.xorTweaks(0, tweakAt, n, sectorSize); // P_j ⊕ T_j
        const mid = dataEcb.update(memory.subarray(0, len)); // AES under K1, every block
        memory.set(mid, 0);
        wipe(mid); // on decryption it is plaintext ⊕ tweak: do not leave it on the heap
        kernel.xorTweaks(0, tweakAt, n, sectorSize); // ... ⊕ T_j
        out.set(memory.subarray(0, len), start);
      }
    }
  }

  /** Wipes the kernel memory (tweaks, last window) and ends the OpenSSL contexts. */
  dispose(): void {
    wipe(this.#memory);
    // final() on a context with no pending data ends it: Node frees it, and OpenSSL's
    // EVP_CIPHER_CTX cleanup cleanses the expanded keys.
    this.#tweakEcb.final();
    this.#encryptEcb.final();
    this.#decryptEcb.final();
  }
}
