/**
 * Resizing the data area of an open volume (SPEC §16): the volume-level steps only. Growing or
 * shrinking the filesystem inside needs the drive, and is orchestrated one level up
 * (src/drive/resize.ts), since src/volume never imports src/drive (ARCHITECTURE.md §3).
 */
import { wipe } from '../../crypto/bytes.js';
import { CryptainerError, UsageError } from '../../volume-format/errors.js';
import type { ResizePlan } from '../../volume-format/resize.js';
import { fillEncryptedZeros } from './create.js';
import type { Volume } from './volume.js';

/**
 * SPEC §16.2 steps 1–3: extend the container, fill the new sectors with encrypted zeros (so
 * they look like every other sector, SPEC §6), then one header update with the new
 * `data_size`. A crash before the header update leaves only trailing bytes, which readers
 * ignore (SPEC §2); on an error (disk full), or when `signal` is aborted during the fill
 * (`ABORTED`, checked after each chunk), the file is cut back to its old length: nothing
 * changed.
 */
export async function growVolumeData(
  volume: Volume,
  plan: ResizePlan,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (plan.direction !== 'grow' || volume.header.dataSize !== plan.oldDataSize) {
    throw new UsageError('USAGE', 'growing: the plan does not match the volume');
  }
  const storage = volume.rawStorage();
  const fields = volume.header;
  const oldLength = await storage.size();
  if (oldLength < plan.newContainerSize) await storage.truncate(plan.newContainerSize); // step 1
  const key = volume.exportMasterKey();
  try {
    // Step 2 (fdatasync included).
    await fillEncryptedZeros(
      storage,
      fields,
      key,
      plan.oldSectorCount,
      plan.newSectorCount,
      (done, total) => {
        onProgress?.(done, total);
        if (signal?.aborted) throw new CryptainerError('ABORTED', 'growing: interrupted');
      },
    );
  } catch (err) {
    // Nothing refers to the new bytes yet: give the space back, best effort.
    await storage.truncate(oldLength).catch(() => undefined);
    throw err;
  } finally {
    wipe(key);
  }
  await volume.updateHeader((h) => ({ ...h, dataSize: plan.newDataSize })); // step 3
}

/**
 * SPEC §16.3 steps 2–3, after the filesystem inside has been shrunk to fit: one header update
 * with the new `data_size`, then truncate the container. A crash between the two, or one that
 * loses the truncation, leaves trailing bytes, which readers ignore (SPEC §2). So no fsync
 * follows the truncation: the fsync audit (scripts/fsync-audit.mjs) showed no crash state
 * needs it, and the volume's close (fdatasync, which covers a size change) makes the shorter
 * length durable anyway.
 */
export async function shrinkVolumeData(volume: Volume, plan: ResizePlan): Promise<void> {
  if (plan.direction !== 'shrink' || volume.header.dataSize !== plan.oldDataSize) {
    throw new UsageError('USAGE', 'shrinking: the plan does not match the volume');
  }
  await volume.updateHeader((h) => ({ ...h, dataSize: plan.newDataSize })); // step 2
  const storage = volume.rawStorage();
  await storage.truncate(plan.newContainerSize); // step 3
}
