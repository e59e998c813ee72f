/**
 * The XTS tweak kernel: a tiny WebAssembly SIMD function that XORs a window of 16-byte blocks
 * with their XTS tweaks, T_j = T_0 · α^j (IEEE 1619-2007 §5.1, §5.2), sector by sector.
 *
 * Why WebAssembly: everything else in our XTS is two AES-256-ECB calls in OpenSSL, and the
 * tweak expansion plus the XORs are the part left to us. In plain JavaScript they ran at
 * ≈ 2.8 GB/s (expansion + XOR) and ≈ 9 GB/s (XOR) and held the whole mode near 1.1 GB/s; this
 * kernel does the same work at ≈ 23 GB/s (measured on the project machine, see bench/xts.ts).
 *
 * Why it is assembled here, from named opcodes, instead of shipping a .wasm file: it is ~60
 * instructions, and a reader can check each one against the WebAssembly 2.0 spec (§5.4
 * instruction encodings) without a toolchain. It has no imports, so it can touch nothing but
 * its own fixed-size memory.
 *
 * @module
 */

/** Bytes per data window the kernel works on (one OpenSSL ECB call each, see xts.ts). */
export const KERNEL_WINDOW_BYTES = 65536;
/** Byte offset of the encrypted tweaks T_0 of the current sectors (up to 4096 of them). */
export const KERNEL_TWEAK_OFFSET = 65536;
/** Byte offset of the plaintext tweak blocks (sector numbers) fed to AES under K2. */
export const KERNEL_SECTOR_NUMBER_OFFSET = 131072;
/** Sectors whose tweaks fit in the tweak area at once (64 KiB / 16 bytes). */
export const KERNEL_TWEAK_CAPACITY = 4096;
/** Fixed memory size in 64 KiB pages: data window, tweaks, sector numbers. Never grows. */
const MEMORY_PAGES = 3;

/** The instantiated kernel: its memory and the one exported function. */
export interface XtsKernel {
  /** The kernel's whole linear memory (192 KiB, fixed, never detached). */
  readonly memory: Uint8Array;
  /**
   * XORs `sectorCount` consecutive sectors of `sectorBytes` bytes starting at memory offset
   * `dataOffset` with their tweak sequences, sector i starting from the 16-byte T_0 at
   * `tweakOffset + 16 i`. Applying it twice is the identity.
   */
  xorTweaks(
    dataOffset: number,
    tweakOffset: number,
    sectorCount: number,
    sectorBytes: number,
  ): void;
}

// --- a minimal WebAssembly binary writer (WebAssembly 2.0 spec, §5) ---------------------------

/** Unsigned LEB128 (spec §5.2.2), used for sizes, counts, indices and SIMD sub-opcodes. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
/** A vector: its length, then its items (spec §5.1.3). */
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** A section: id, byte size, contents (spec §5.5.2). */
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

const I32 = 0x7f;
const V128 = 0x7b;
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const localGet = (i: number): number[] => [0x20, i];
const localSet = (i: number): number[] => [0x21, i];
const localTee = (i: number): number[] => [0x22, i];
/** Signed LEB128 (spec §5.2.2), the immediate of i32.const. */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const i32Const = (n: number): number[] => [0x41, ...sleb(n)];
const I32_ADD = [0x6a];
const I32_SUB = [0x6b];
const I32_EQZ = [0x45];
const I32_LT_S = [0x48];
const I32_SHR_U = [0x76];
const BLOCK = [0x02, 0x40]; // block with empty result type
const LOOP = [0x03, 0x40];
const END = [0x0b];
const br = (depth: number): number[] => [0x0c, depth];
const brIf = (depth: number): number[] => [0x0d, depth];
/** v128.load / v128.store with alignment 2^4 and a constant offset. */
const v128Load = (offset: number): number[] => [...simd(0x00), 4, ...uleb(offset)];
const v128Store = (offset: number): number[] => [...simd(0x0b), 4, ...uleb(offset)];
const V128_AND = simd(0x4e);
const V128_XOR = simd(0x51);
const I32X4_SHR_S = simd(0xac);
const I64X2_SHL = simd(0xcb);

// Parameters and locals of xorTweaks, by index.
const P_DATA = 0; // i32: address of the current block of the current sector group
const P_TWEAK = 1; // i32: address of T_0 of the current sector
const P_COUNT = 2; // i32: sectors left
const P_SECTOR = 3; // i32: sector size in bytes
const L_BLOCKS = 4; // i32: blocks left in the current sector
const L_BPS = 5; // i32: blocks per sector
const L_SECTOR2 = 6; // i32: 2 × sector size
const L_SECTOR3 = 7; // i32: 3 × sector size
const L_T = [8, 9, 10, 11]; // v128: the running tweaks of up to four sectors
const L_TMP = 12; // v128: scratch

/**
 * t ← t · α in GF(2^128) with IEEE 1619 §5.2's little-endian convention: shift the 128-bit
 * little-endian integer left by one; if bit 127 fell out, XOR 0x87 into byte 0.
 *
 * With lanes [lo, hi] (i64x2): lo' = (lo << 1) ^ (hi >> 63 ? 0x87 : 0) and
 * hi' = (hi << 1) ^ (lo >> 63 ? 1 : 0). The sign masks come from i32x4.shr_s by 31 (lane 3 is
 * the top of hi, lane 1 the top of lo), moved into place by one shuffle and cut down to 0x87
 * and 1 by an AND. i64x2.shr_s would be shorter but has no x86 instruction before AVX-512 and
 * ran 1.6× slower.
 */
function double(t: number): number[] {
  // prettier-ignore
  return [
    ...localGet(t), ...i32Const(1), ...I64X2_SHL,
    ...localGet(t), ...i32Const(31), ...I32X4_SHR_S, ...localTee(L_TMP), ...localGet(L_TMP),
    ...simd(0x0d), 12, 13, 14, 15, 12, 13, 14, 15, 4, 5, 6, 7, 4, 5, 6, 7, // i8x16.shuffle
    ...simd(0x0c), 0x87, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // v128.const
    ...V128_AND, ...V128_XOR, ...localSet(t),
  ];
}

/** Address of the current block in sector k (0..3) of the group: P_DATA + k × sector size. */
function blockAddress(k: number): number[] {
  if (k === 0) return localGet(P_DATA);
  const stride = k === 1 ? P_SECTOR : k === 2 ? L_SECTOR2 : L_SECTOR3;
  return [...localGet(P_DATA), ...localGet(stride), ...I32_ADD];
}

/** memory[addr] ^= t_k for the current block of sector k. */
function xorBlock(k: number): number[] {
  const addr = blockAddress(k);
  return [...addr, ...addr, ...v128Load(0), ...localGet(L_T[k]!), ...V128_XOR, ...v128Store(0)];
}

// prettier-ignore
const advance = (local: number, by: number[]): number[] => [
  ...localGet(local), ...by, ...I32_ADD, ...localSet(local),
];

/**
 * One pass over `ways` sectors at a time. Four independent tweak chains per iteration keep the
 * CPU busy while each doubling waits on the previous one (a single chain is latency-bound and
 * ran 3.3× slower).
 */
function sectorLoop(ways: 1 | 4): number[] {
  // prettier-ignore
  const loadTweaks = L_T.slice(0, ways).flatMap((t, k) => [
    ...localGet(P_TWEAK), ...v128Load(16 * k), ...localSet(t),
  ]);
  // prettier-ignore
  const blockBody = [
    ...L_T.slice(0, ways).flatMap((_, k) => xorBlock(k)),
    ...L_T.slice(0, ways).flatMap((t) => double(t)),
    ...advance(P_DATA, i32Const(16)),
    ...localGet(L_BLOCKS), ...i32Const(1), ...I32_SUB, ...localTee(L_BLOCKS), ...brIf(0),
  ];
  // The block loop moved P_DATA past one sector; skip the other ways − 1 sectors of the group.
  const skipRest = ways === 4 ? advance(P_DATA, localGet(L_SECTOR3)) : [];
  // prettier-ignore
  return [
    ...BLOCK, ...LOOP,
    // Leave when fewer than `ways` sectors remain.
    ...localGet(P_COUNT), ...(ways === 4 ? [...i32Const(4), ...I32_LT_S] : I32_EQZ), ...brIf(1),
    ...loadTweaks,
    ...localGet(L_BPS), ...localSet(L_BLOCKS),
    ...LOOP, ...blockBody, ...END,
    ...skipRest,
    ...advance(P_TWEAK, i32Const(16 * ways)),
    ...localGet(P_COUNT), ...i32Const(ways), ...I32_SUB, ...localSet(P_COUNT),
    ...br(0),
    ...END, ...END,
  ];
}

function buildModule(): Uint8Array {
  // prettier-ignore
  const body = [
    ...vec([[4, I32], [5, V128]]), // locals 4..7 (i32), 8..12 (v128)
    ...localGet(P_SECTOR), ...i32Const(4), ...I32_SHR_U, ...localSet(L_BPS), // bytes / 16
    ...localGet(P_SECTOR), ...localGet(P_SECTOR), ...I32_ADD, ...localSet(L_SECTOR2),
    ...localGet(L_SECTOR2), ...localGet(P_SECTOR), ...I32_ADD, ...localSet(L_SECTOR3),
    ...sectorLoop(4),
    ...sectorLoop(1),
    ...END,
  ];
  // prettier-ignore
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32]]), 0x00]])), // type (i32×4) → ()
    ...section(3, vec([[0]])), // function 0 has type 0
    ...section(5, vec([[0x01, MEMORY_PAGES, MEMORY_PAGES]])), // memory: min = max, cannot grow
    ...section(7, vec([[...name('xorTweaks'), 0x00, 0], [...name('memory'), 0x02, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  return new Uint8Array(bytes);
}

/** The parts of the WebAssembly JS API we use (lib "dom" is not in this project's tsconfig). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

let compiled: object | null | undefined;

/**
 * Instantiates a fresh kernel with its own memory, or returns null when this runtime cannot
 * run it (no WebAssembly, e.g. `--jitless`, or no SIMD support); callers then fall back to
 * OpenSSL's own per-sector XTS. The module is compiled once per process; each instance owns
 * its memory so that disposing one cipher can wipe it without touching another's.
 */
export function createXtsKernel(): XtsKernel | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined) return null;
  if (compiled === undefined) {
    try {
      compiled = new wasm.Module(buildModule());
    } catch {
      compiled = null; // CompileError: no SIMD in this runtime; do not retry for every cipher
    }
  }
  if (compiled === null) return null;
  // Not caught: failing to allocate 192 KiB is not a reason to fall back silently.
  const { exports } = new wasm.Instance(compiled, {});
  const mem = exports['memory'] as { buffer: ArrayBuffer };
  const fn = exports['xorTweaks'] as (a: number, b: number, c: number, d: number) => void;
  return { memory: new Uint8Array(mem.buffer), xorTweaks: fn };
}
