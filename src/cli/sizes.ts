/**
 * Parsing user-given sizes ("64M", "10G", "512K", "1048576"). Binary units, as truncate(1) and
 * cryptsetup use. We do not use the `bytes` package: it parses "512M" as 512 (FACTS.md).
 */
import { UsageError } from '../../volume-format/errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/** Parse a size with an optional binary unit suffix into bytes. Throws `USAGE`. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError('USAGE', `${what} "${text}": expected a number with K, M, G or T`);
  }
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError('USAGE', `${what} "${text}": must be positive and below 8 PiB`);
  }
  return value;
}

/** Parse a positive integer option. Throws `USAGE`. */
export function parsePositiveInt(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError('USAGE', `${what} "${text}": not a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError('USAGE', `${what} "${text}": must be a positive integer`);
  }
  return n;
}

/**
 * Parse an Argon2 memory option: a plain number is KiB (as cryptsetup's --pbkdf-memory), a
 * number with a unit is converted to KiB.
 */
export function parseMemoryKiB(text: string): number {
  if (/^\s*\d+\s*$/.test(text)) return parsePositiveInt(text, 'kdf memory');
  const bytes = parseSize(text, 'kdf memory');
  if (bytes % 1024 !== 0) throw new UsageError('USAGE', `kdf memory "${text}": not whole KiB`);
  return bytes / 1024;
}
