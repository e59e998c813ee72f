/**
 * Resize planning (SPEC §16): from a volume's layout and what the user asked for (an absolute
 * size, or a size to add or remove), the new data size and the direction. Pure: the effects
 * are in src/volume/resize.ts (volume level) and src/drive/resize.ts (the filesystem inside).
 */
import { UsageError } from './errors.js';
import { type Layout, checkLayout, containerSizeOf } from './layout.js';

/** What the user asked for: `--size 512M`, `--size +1G`, `--size -256M`. */
export type SizeRequest =
  | { kind: 'absolute'; bytes: number }
  | { kind: 'grow'; bytes: number }
  | { kind: 'shrink'; bytes: number };

/** The outcome of {@link planResize}. */
export interface ResizePlan {
  direction: 'grow' | 'shrink' | 'none';
  oldDataSize: number;
  newDataSize: number;
  /** First sector that grow must fill (SPEC §16.2 step 2) = old sector count. */
  oldSectorCount: number;
  newSectorCount: number;
  /** Container length after the resize: `data_offset + new data_size` (SPEC §16). */
  newContainerSize: number;
}

/**
 * Plan a resize (SPEC §16.1). Throws `USAGE` when the new size is not a positive multiple of
 * the sector size or the data area would end beyond 2^53 − 1.
 */
export function planResize(layout: Layout, request: SizeRequest): ResizePlan {
  if (!Number.isSafeInteger(request.bytes) || request.bytes < 0) {
    throw new UsageError('USAGE', `resize: size ${request.bytes} is not a valid byte count`);
  }
  const old = layout.dataSize;
  const wanted =
    request.kind === 'absolute'
      ? request.bytes
      : request.kind === 'grow'
        ? old + request.bytes
        : old - request.bytes;
  const ss = layout.sectorSize;
  if (!Number.isSafeInteger(wanted) || wanted < ss) {
    throw new UsageError(
      'USAGE',
      `resize: the new size must be at least one sector (${ss} bytes); asked for ${wanted}`,
    );
  }
  if (wanted % ss !== 0) {
    throw new UsageError(
      'USAGE',
      `resize: the new size ${wanted} is not a multiple of the sector size ${ss}`,
    );
  }
  const next: Layout = { ...layout, dataSize: wanted };
  try {
    checkLayout(next);
  } catch (err) {
    throw new UsageError('USAGE', `resize: ${(err as Error).message}`, { cause: err });
  }
  return {
    direction: wanted > old ? 'grow' : wanted < old ? 'shrink' : 'none',
    oldDataSize: old,
    newDataSize: wanted,
    oldSectorCount: old / ss,
    newSectorCount: wanted / ss,
    newContainerSize: containerSizeOf(next),
  };
}

/** Parse `512M`, `+1G`, `-256M` given a parser for the unsigned part (binary units). */
export function parseSizeRequest(text: string, parseBytes: (s: string) => number): SizeRequest {
  const t = text.trim();
  if (t.startsWith('+')) return { kind: 'grow', bytes: parseBytes(t.slice(1)) };
  if (t.startsWith('-')) return { kind: 'shrink', bytes: parseBytes(t.slice(1)) };
  return { kind: 'absolute', bytes: parseBytes(t) };
}
