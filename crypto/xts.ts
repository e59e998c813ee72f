/**
 * XTS-AES-256 (IEEE 1619-2007) for whole sectors, many per call: the data path of every
 * volume.
 *
 * Definition (IEEE 1619-2007 §5.3.1, data units that are a multiple of 16 bytes, so no
 * ciphertext stealing): for data unit (sector) number i and its 16-byte blocks P_0..P_{m-1},
 *
 *     T_0 = AES-enc(K2, i as a 128-bit little-endian integer)     (§5.1: tweak value)
 *     T_j = T_{j-1} · α   in GF(2^128), little-endian (§5.2)
 *     C_j = AES-enc(K1, P_j ⊕ T_j) ⊕ T_j
 *
 * with key = K1 (data) ‖ K2 (tweak). Sector i uses i itself as the tweak value, as Linux
 * dm-crypt's "plain64" IV and OpenSSL's aes-256-xts IV do.
 *
 * How it is computed, and why (measured with bench/xts.ts; OpenSSL's own aes-256-xts is the
 * reference the tests compare against byte for byte):
 * - By default, the native engine (xts-native.ts): OpenSSL's aes-256-xts called from our
 *   addon on a context keyed once, in place: ≈ 5.7 GB/s at 4096-byte sectors, 3.1 GB/s at
 *   512. What follows is the fallback when the addon is not built, and still tested.
 * - One `createCipheriv('aes-256-xts')` per sector costs microseconds of setup each: about
 *   70–100 MB/s at 512-byte sectors and 500–600 MB/s at 4096 on the project machine.
 * - So instead, per group of up to 4096 sectors ONE AES-256-ECB call under K2 turns all the
 *   sector numbers into T_0s, and per 64 KiB window ONE AES-256-ECB call under K1 does every
 *   data block. The tweak chain and the two XORs run in a WebAssembly SIMD kernel
 *   (xts-kernel.ts), driven by xts-wasm.ts; the per-sector OpenSSL engine is xts-openssl.ts.
 * - Windows are 64 KiB because Node allocates a fresh output buffer per `update()`: with
 *   1 MiB per call ECB fell from 4.2 GB/s to 0.67 GB/s (most likely glibc's mmap threshold:
 *   a new mapping, page-faulted, on every call), while 64 KiB was the fastest size measured.
 * - The ECB cipher objects are created once and reused: ECB carries no state from one
 *   `update()` to the next when every call is whole blocks with padding off (tests check the
 *   output against fresh per-sector XTS across many calls).
 * - Sectors of 32 KiB and more, and runtimes without WebAssembly SIMD, use OpenSSL's
 *   aes-256-xts per sector: there the per-call setup is amortised and it is the faster path.
 *
 * Result of the WebAssembly engine on the project machine (2 cores, AMD EPYC with VAES):
 * ≈ 2.0–2.5 GB/s for 1 MiB and 128 KiB batches at 4096 and 512-byte sectors, ≈ 0.5 GB/s for
 * a lone 4 KiB sector (two `update()` calls of fixed cost dominate), against 6.4 GB/s for
 * `openssl speed` at 16 KiB: a ratio of ≈ 0.35–0.39 (the native engine: ≈ 0.9).
 *
 * @module
 */
import { constantTimeEqual } from './bytes.js';
import { BLOCK_BYTES, type XtsSectorEngine } from './xts-engine.js';
import { createXtsKernel } from './xts-kernel.js';
import { NativeXtsEngine, nativeXts } from './xts-native.js';
import { OpenSslXtsEngine } from './xts-openssl.js';
import { WasmXtsEngine } from './xts-wasm.js';

/** Key length of XTS-AES-256: K1 (data key, 32 bytes) ‖ K2 (tweak key, 32 bytes). */
export const XTS_KEY_BYTES = 64;

const HALF_KEY_BYTES = 32;
const MIN_SECTOR_BYTES = 16;
const MAX_SECTOR_BYTES = 65536;
/** From this sector size up, OpenSSL's per-sector aes-256-xts beats the kernel (measured). */
const OPENSSL_MIN_SECTOR_BYTES = 32768;

/**
 * Which implementation a cipher uses: `'native'` (our addon: OpenSSL aes-256-xts in place,
 * xts-native.ts), `'wasm'` (ECB + SIMD kernel) or `'openssl'` (one node:crypto aes-256-xts
 * call per sector). All give identical bytes.
 */
export type XtsEngine = 'native' | 'wasm' | 'openssl';

/** True when the native engine is available in this process (the addon was built). */
export const NATIVE_XTS_AVAILABLE: boolean = nativeXts !== null;

/** Options for {@link XtsCipher}; only tests and benchmarks need them. */
export interface XtsOptions {
  /** Force an engine instead of picking the fastest for the sector size. */
  engine?: XtsEngine;
}

/**
 * XTS-AES-256 over fixed-size sectors. Holds OpenSSL cipher contexts keyed with K1 and K2;
 * call {@link XtsCipher.dispose} when the volume closes.
 *
 * Not safe for concurrent use from several threads (it is not shareable anyway), and calls
 * are synchronous: a 1 MiB batch takes well under a millisecond.
 */
export class XtsCipher {
  /** Sector (data unit) size in bytes. */
  readonly sectorSize: number;
  /** The implementation chosen for this sector size and runtime. */
  readonly engine: XtsEngine;
  #disposed = false;
  /** The engine doing the work; null once disposed. */
  #impl: XtsSectorEngine | null;
  /** The same engine when it is the native one (for {@link XtsCipher.recryptSectors}). */
  #native: NativeXtsEngine | null = null;

  /**
   * @param key - 64 bytes: K1 (data) ‖ K2 (tweak). The cipher keeps no reference to it.
   * @param sectorSize - bytes per sector: a multiple of 16 from 16 to 65536 (512 and 4096 in
   *   practice).
   * @param options - engine override, for tests and benchmarks only.
   * @throws TypeError if `key` is not a Uint8Array; RangeError('xts: key must be 64 bytes');
   *   RangeError('xts: key halves must differ'): the tweak key must be independent of the
   *   data key (FIPS 140 Implementation Guidance A.9 requires Key1 ≠ Key2 for XTS-AES);
   *   OpenSSL refuses equal halves only when encrypting, we refuse always, so a bad key is
   *   caught at creation whatever the first operation is. RangeError for a bad sector size.
   */
  constructor(key: Uint8Array, sectorSize: number, options: XtsOptions = {}) {
    if (!(key instanceof Uint8Array)) throw new TypeError('xts: key must be a Uint8Array');
    if (key.length !== XTS_KEY_BYTES) throw new RangeError('xts: key must be 64 bytes');
    if (
      !Number.isInteger(sectorSize) ||
      sectorSize < MIN_SECTOR_BYTES ||
      sectorSize > MAX_SECTOR_BYTES ||
      sectorSize % BLOCK_BYTES !== 0
    ) {
      throw new RangeError('xts: sector size must be a multiple of 16 from 16 to 65536');
    }
    const k1 = key.subarray(0, HALF_KEY_BYTES);
    const k2 = key.subarray(HALF_KEY_BYTES);
    if (constantTimeEqual(k1, k2)) throw new RangeError('xts: key halves must differ');
    this.sectorSize = sectorSize;

    const fallback = sectorSize >= OPENSSL_MIN_SECTOR_BYTES ? 'openssl' : 'wasm';
    const wanted = options.engine ?? (nativeXts !== null ? 'native' : fallback);
    if (wanted === 'native') {
      if (nativeXts === null) throw new RangeError('xts: the native engine is not available');
      this.engine = 'native';
      this.#impl = this.#native = new NativeXtsEngine(nativeXts, key, sectorSize);
      return;
    }
    const kernel = wanted === 'wasm' ? createXtsKernel() : null;
    this.engine = kernel === null ? 'openssl' : 'wasm';
    this.#impl =
      kernel === null
        ? new OpenSslXtsEngine(key, sectorSize)
        : new WasmXtsEngine(k1, k2, kernel, sectorSize);
  }

  /**
   * Encrypts whole sectors. Sector k of `data` is sector number `firstSectorIndex + k`.
   *
   * @param data - plaintext, a multiple of `sectorSize` bytes (may be empty).
   * @param firstSectorIndex - sector number of the first sector: a safe non-negative integer,
   *   and the last sector number must be one too.
   * @param out - where to write the ciphertext: `data` itself (in place) or a buffer of the
   *   same length that does not overlap it. Allocated when omitted.
   * @returns `out`.
   */
  encryptSectors(data: Uint8Array, firstSectorIndex: number, out?: Uint8Array): Uint8Array {
    return this.#run(true, data, firstSectorIndex, out);
  }

  /** Decrypts whole sectors; the inverse of {@link XtsCipher.encryptSectors}, same rules. */
  decryptSectors(data: Uint8Array, firstSectorIndex: number, out?: Uint8Array): Uint8Array {
    return this.#run(false, data, firstSectorIndex, out);
  }

  /**
   * Re-encryption in place: decrypts `data` (sector `firstSectorIndex` onward) under this
   * cipher's key and encrypts it under `next`'s, same rules as {@link encryptSectors}. With the
   * native engine on both sides each sector goes through both ciphers while it is in the L1
   * cache, and its plaintext exists for one sector's worth of work.
   */
  recryptSectors(next: XtsCipher, data: Uint8Array, firstSectorIndex: number): void {
    if (this.#native !== null && next.#native !== null && this.sectorSize === next.sectorSize) {
      this.#check(data, firstSectorIndex);
      next.#check(data, firstSectorIndex);
      this.#native.recrypt(next.#native, data, firstSectorIndex);
      return;
    }
    this.decryptSectors(data, firstSectorIndex, data);
    next.encryptSectors(data, firstSectorIndex, data);
  }

  /**
   * Wipes what this object owns (its key copy, the kernel memory with its tweaks and last
   * window of data) and frees the OpenSSL contexts, which cleanse their key schedules. Any
   * later call throws. Calling it twice is harmless.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#impl?.dispose();
    this.#impl = this.#native = null;
  }

  /** Checks a call's data and first sector number; returns the sector count. */
  #check(data: Uint8Array, first: number): number {
    if (this.#disposed) throw new TypeError('xts: cipher is disposed');
    if (!(data instanceof Uint8Array)) throw new TypeError('xts: data must be a Uint8Array');
    if (data.length % this.sectorSize !== 0) {
      throw new RangeError('xts: data length must be a multiple of the sector size');
    }
    const sectorCount = data.length / this.sectorSize;
    if (!Number.isSafeInteger(first) || first < 0) {
      throw new RangeError('xts: first sector index must be a non-negative safe integer');
    }
    // Written as a subtraction: first + count - 1 would round back into range near 2^53.
    if (sectorCount > 0 && sectorCount - 1 > Number.MAX_SAFE_INTEGER - first) {
      throw new RangeError('xts: sector index exceeds 2^53-1');
    }
    return sectorCount;
  }

  #run(encrypt: boolean, data: Uint8Array, first: number, out?: Uint8Array): Uint8Array {
    const sectorCount = this.#check(data, first);
    if (out === undefined) {
      out = new Uint8Array(data.length);
    } else {
      if (!(out instanceof Uint8Array)) throw new TypeError('xts: out must be a Uint8Array');
      if (out.length !== data.length) {
        throw new RangeError('xts: out length must equal data length');
      }
      if (overlapsPartly(data, out)) {
        throw new RangeError('xts: out must be data itself or must not overlap it');
      }
    }
    this.#impl!.crypt(encrypt, data, first, sectorCount, out);
    return out;
  }
}

/** True when `a` and `b` share bytes without being exactly the same range. */
function overlapsPartly(a: Uint8Array, b: Uint8Array): boolean {
  if (a.buffer !== b.buffer) return false;
  if (a.byteOffset === b.byteOffset && a.length === b.length) return false;
  return a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}
