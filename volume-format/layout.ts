/**
 * Volume layout (SPEC §2): where the journal and data area sit for a given data size, and the
 * pure checks a reader applies to the layout fields of a header (SPEC §10 rows 9–11).
 */
import {
  DEFAULT_JOURNAL_SIZE,
  JOURNAL_ALIGNMENT,
  JOURNAL_OFFSET,
  MAX_JOURNAL_SIZE,
  MAX_SAFE_U64,
  SECTOR_SIZES,
} from './constants.js';
import { FormatError, UsageError } from './errors.js';

/** Byte positions of a volume's areas, as stored in its header. */
export interface Layout {
  sectorSize: number;
  journalOffset: number;
  journalSize: number;
  dataOffset: number;
  dataSize: number;
}

/** True for a sector size format v1 allows (512 or 4096). */
export function isValidSectorSize(n: number): boolean {
  return (SECTOR_SIZES as readonly number[]).includes(n);
}

/**
 * Plan the layout a v1 writer uses for `dataSize` bytes of data (SPEC §2).
 * Throws `USAGE` when the size is not a positive multiple of the sector size.
 */
export function planLayout(dataSize: number, sectorSize: number): Layout {
  if (!isValidSectorSize(sectorSize)) {
    throw new UsageError('USAGE', `sector size ${sectorSize}: must be 512 or 4096`);
  }
  if (!Number.isSafeInteger(dataSize) || dataSize < sectorSize || dataSize % sectorSize !== 0) {
    throw new UsageError(
      'USAGE',
      `data size ${dataSize}: must be a positive multiple of the sector size ${sectorSize}`,
    );
  }
  const layout: Layout = {
    sectorSize,
    journalOffset: JOURNAL_OFFSET,
    journalSize: DEFAULT_JOURNAL_SIZE,
    dataOffset: JOURNAL_OFFSET + DEFAULT_JOURNAL_SIZE,
    dataSize,
  };
  checkLayout(layout);
  return layout;
}

/** Total container length a layout needs: header area, journal and data (SPEC §2). */
export function containerSizeOf(layout: Layout): number {
  return layout.dataOffset + layout.dataSize;
}

/** Number of data sectors. */
export function sectorCountOf(layout: Layout): number {
  return layout.dataSize / layout.sectorSize;
}

/** SPEC §10 rows 9–11: reject a layout read from disk that breaks a rule. */
export function checkLayout(layout: Layout): void {
  const fail = (why: string): never => {
    throw new FormatError('HEADER_FIELD', `header layout: ${why}`);
  };
  if (!isValidSectorSize(layout.sectorSize)) fail(`sector size ${layout.sectorSize} not allowed`);
  if (layout.journalOffset !== JOURNAL_OFFSET) fail(`journal offset ${layout.journalOffset}`);
  if (
    layout.journalSize % JOURNAL_ALIGNMENT !== 0 ||
    layout.journalSize > MAX_JOURNAL_SIZE ||
    layout.journalSize < 0
  ) {
    fail(`journal size ${layout.journalSize}`);
  }
  if (layout.dataOffset !== layout.journalOffset + layout.journalSize) {
    fail(`data offset ${layout.dataOffset} does not follow the journal`);
  }
  if (layout.dataSize < layout.sectorSize || layout.dataSize % layout.sectorSize !== 0) {
    fail(`data size ${layout.dataSize} is not a positive multiple of the sector size`);
  }
  if (layout.dataOffset + layout.dataSize > MAX_SAFE_U64) fail('data area ends beyond 2^53-1');
}
