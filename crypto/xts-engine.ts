/**
 * What every XTS engine (xts-native.ts, xts-wasm.ts, xts-openssl.ts) implements for
 * {@link XtsCipher} in xts.ts, which validates every argument first and picks the engine.
 *
 * @module
 */

/** AES block size; XTS works on 16-byte blocks. */
export const BLOCK_BYTES = 16;
/** Splits a sector number (< 2^53) into two little-endian 32-bit words. */
export const TWO_POW_32 = 0x1_0000_0000;

/** One engine keyed with K1 ‖ K2 for one sector size. */
export interface XtsSectorEngine {
  /**
   * XTS over `count` whole sectors of `data` into `out` (`data` itself or a same-length buffer
   * that does not overlap it); sector k is sector number `first + k`. Arguments are checked.
   */
  crypt(encrypt: boolean, data: Uint8Array, first: number, count: number, out: Uint8Array): void;
  /** Wipe the key material this engine owns; it is not called again afterwards. */
  dispose(): void;
}
