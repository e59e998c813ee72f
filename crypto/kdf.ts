/**
 * Argon2id (RFC 9106) through the `argon2` package: the only file that imports it, so a broken
 * native build or an API change touches this file alone.
 *
 * Parameters usually come from a header on disk, which is hostile input: a forged header could
 * ask for 4 TiB of memory or a million passes and turn "open" into a denial of service. So the
 * limits in {@link KDF_LIMITS} are checked before any hashing starts (age's spec caps the scrypt
 * work factor it accepts for the same reason; LUKS2 caps Argon2 memory at 4 GiB).
 *
 * @module
 */
import argon2 from 'argon2';

/** Argon2id cost parameters (RFC 9106 §3.1: t, m, p). */
export interface Argon2idParams {
  /** Number of passes t. */
  timeCost: number;
  /** Memory size m in KiB. */
  memoryKiB: number;
  /** Degree of parallelism p (lanes). */
  parallelism: number;
}

/**
 * Bounds on Argon2id parameters that this product accepts, from a user or from disk.
 *
 * - `maxMemoryKiB` 4 GiB: LUKS2's own maximum; more than a normal machine should be asked for.
 * - `minMemoryKiB` 8: RFC 9106 §3.1 requires m ≥ 8·p; 8 is that bound for one lane (tests use
 *   it; production parameters are chosen by benchmarking, far above).
 * - `maxTimeCost` 32, `maxParallelism` 16: generous for any real setting, small enough that a
 *   forged header cannot stall an open for hours.
 * - `saltBytes` 32: the salt length new keyslots use.
 */
export const KDF_LIMITS = {
  maxMemoryKiB: 4 * 1024 * 1024,
  minMemoryKiB: 8,
  maxTimeCost: 32,
  minTimeCost: 1,
  maxParallelism: 16,
  minParallelism: 1,
  saltBytes: 32,
} as const;

/** Salt lengths accepted by {@link deriveArgon2id}. */
const MIN_SALT_BYTES = 16;
const MAX_SALT_BYTES = 64;
/** RFC 9106 §3.1: the salt is at least 8 bytes (the argon2 package enforces it too). */
const RFC_MIN_SALT_BYTES = 8;
/** RFC 9106 §3.1 allows tags of 4 bytes up; 1024 is far beyond any key we derive. */
const MIN_OUTPUT_BYTES = 4;
const MAX_OUTPUT_BYTES = 1024;
/** RFC 9106 §3.1: memory is at least 8 KiB per lane. */
const MIN_MEMORY_KIB_PER_LANE = 8;
/** RFC 9106 §3.1: version number 0x13 (Argon2 v1.3). */
const ARGON2_VERSION = 0x13;

/** Argon2 parameters outside {@link KDF_LIMITS}; `code` is always `'KDF_LIMITS'`. */
export class KdfLimitError extends RangeError {
  /** Stable error code for callers and tests. */
  readonly code = 'KDF_LIMITS' as const;
  constructor(message: string) {
    super(message);
    this.name = 'KdfLimitError';
  }
}

function checkInteger(value: unknown, what: string, unit: string, min: number, max: number) {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new KdfLimitError(`kdf ${what} must be an integer, got ${String(value)}`);
  }
  if (value > max) {
    throw new KdfLimitError(`kdf ${what} ${value}${unit} exceeds limit ${max}${unit}`);
  }
  if (value < min) {
    throw new KdfLimitError(`kdf ${what} ${value}${unit} is below minimum ${min}${unit}`);
  }
}

/**
 * Throws {@link KdfLimitError} unless every parameter is an integer within {@link KDF_LIMITS}
 * and memory is at least 8 KiB per lane (RFC 9106 §3.1). Cheap; call it on parameters read
 * from disk before anything else is done with them.
 */
export function checkArgon2idParams(p: Argon2idParams): void {
  if (typeof p !== 'object' || p === null) throw new TypeError('kdf: params must be an object');
  const L = KDF_LIMITS;
  checkInteger(p.timeCost, 'time cost', '', L.minTimeCost, L.maxTimeCost);
  checkInteger(p.parallelism, 'parallelism', '', L.minParallelism, L.maxParallelism);
  checkInteger(p.memoryKiB, 'memory', ' KiB', L.minMemoryKiB, L.maxMemoryKiB);
  const perLane = MIN_MEMORY_KIB_PER_LANE * p.parallelism;
  if (p.memoryKiB < perLane) {
    throw new KdfLimitError(
      `kdf memory ${p.memoryKiB} KiB is below ${perLane} KiB (8 KiB per lane for ${p.parallelism} lanes)`,
    );
  }
}

function checkBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`kdf: ${what} must be a Uint8Array`);
}

/** A Buffer over the same memory (no copy, so nothing extra to wipe). */
function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Argon2id with every RFC 9106 input exposed: password P, salt S, optional secret K and
 * associated data X (§3.1). {@link deriveArgon2id} uses it without K and X; tests use it to
 * run RFC 9106 §5.3's vector, which needs both.
 *
 * Parameters are checked against {@link KDF_LIMITS} first, before any hashing.
 *
 * Memory hygiene: inputs are handed over as views, not copies. The argon2 package itself
 * copies the password once (`Buffer.from(password)` in argon2.cjs 0.44.0); that copy lives
 * until garbage collection and cannot be wiped from here.
 */
export async function argon2idRaw(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2idParams,
  outputBytes: number,
  secret?: Uint8Array,
  associatedData?: Uint8Array,
): Promise<Uint8Array> {
  checkArgon2idParams(params);
  checkBytes(password, 'password');
  checkBytes(salt, 'salt');
  if (secret !== undefined) checkBytes(secret, 'secret');
  if (associatedData !== undefined) checkBytes(associatedData, 'associated data');
  if (salt.length < RFC_MIN_SALT_BYTES) throw new RangeError('kdf: salt must be at least 8 bytes');
  if (
    !Number.isInteger(outputBytes) ||
    outputBytes < MIN_OUTPUT_BYTES ||
    outputBytes > MAX_OUTPUT_BYTES
  ) {
    throw new RangeError('kdf: output length must be an integer from 4 to 1024');
  }
  const hash = await argon2.hash(view(password), {
    type: argon2.argon2id,
    version: ARGON2_VERSION,
    raw: true,
    salt: view(salt),
    memoryCost: params.memoryKiB,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
    hashLength: outputBytes,
    ...(secret !== undefined && { secret: view(secret) }),
    ...(associatedData !== undefined && { associatedData: view(associatedData) }),
  });
  return new Uint8Array(hash.buffer, hash.byteOffset, hash.length);
}

/**
 * Derives `outputBytes` (default 32) bytes from a passphrase or keyfile secret with Argon2id
 * v1.3 (RFC 9106), for unlocking a keyslot.
 *
 * Checks the parameters first: parameters read from disk that exceed {@link KDF_LIMITS} are
 * refused with {@link KdfLimitError} before any memory is allocated or time spent.
 *
 * @param secret - the passphrase bytes (UTF-8) or keyfile-derived bytes; not modified.
 * @param salt - 16 to 64 bytes, random per keyslot (new keyslots use 32).
 * @returns a fresh buffer the caller owns and should wipe when done.
 * @throws KdfLimitError, TypeError, RangeError (salt or output length).
 */
export async function deriveArgon2id(
  secret: Uint8Array,
  salt: Uint8Array,
  p: Argon2idParams,
  outputBytes = 32,
): Promise<Uint8Array> {
  checkArgon2idParams(p);
  checkBytes(salt, 'salt');
  if (salt.length < MIN_SALT_BYTES || salt.length > MAX_SALT_BYTES) {
    throw new RangeError('kdf: salt must be 16 to 64 bytes');
  }
  return argon2idRaw(secret, salt, p, outputBytes);
}
