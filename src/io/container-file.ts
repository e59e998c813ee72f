/**
 * Opening a container file: the one place every command and library entry point opens a
 * container through, so that the lock (SPEC §9.2) is always taken on the file that will be
 * read and written, before the first header byte is read.
 */
import { FileStorage } from './file-storage.js';
import { type HeldLock, type LockMode, lockFile } from './lock.js';
import type { Storage } from './storage.js';

/** How to open a container. */
export interface OpenContainerOptions {
  /** Open the file read-only (`O_RDONLY`); default read-write. */
  readOnly?: boolean;
  /**
   * `exclusive` for anything that may write, `shared` for readers that must exclude writers
   * (a read-only mount), `none` for readers of the header alone (SPEC §9.2).
   */
  lock: LockMode | 'none';
  /**
   * Use this storage instead of opening the file (fault-injection tests); the lock is then
   * taken on the file at the path.
   */
  storage?: Storage;
}

/** An opened container: its storage, and its lock (null with `lock: 'none'`). */
export interface OpenedContainer {
  storage: Storage;
  lock: HeldLock | null;
}

/**
 * Open the container at `path` and lock it as asked. Throws `VOLUME_BUSY` when another
 * process (or another open of this process) holds a conflicting lock, through whatever name;
 * `NOT_FOUND` and friends when the file cannot be opened. On failure the storage, an injected
 * one too, is closed.
 */
export async function openContainer(
  path: string,
  options: OpenContainerOptions & { lock: LockMode },
): Promise<OpenedContainer & { lock: HeldLock }>;
export async function openContainer(
  path: string,
  options: OpenContainerOptions,
): Promise<OpenedContainer>;
export async function openContainer(
  path: string,
  options: OpenContainerOptions,
): Promise<OpenedContainer> {
  if (options.storage) {
    try {
      const lock = options.lock === 'none' ? null : await lockFile(path, options.lock);
      return { storage: options.storage, lock };
    } catch (err) {
      await options.storage.close();
      throw err;
    }
  }
  const storage = await FileStorage.open(path, { readOnly: options.readOnly === true });
  try {
    const lock =
      options.lock === 'none' ? null : await lockFile(path, options.lock, await storage.identity());
    return { storage, lock };
  } catch (err) {
    await storage.close();
    throw err;
  }
}

/** Close an opened container: the storage first (flushes nothing itself), then the lock. */
export async function closeContainer(opened: OpenedContainer): Promise<void> {
  try {
    await opened.storage.close();
  } finally {
    await opened.lock?.release();
  }
}
