/**
 * The interface every filesystem cryptainer puts inside a volume implements. A driver knows
 * its own tools; the callers (create/format.ts, mount.ts, resize.ts) only sequence the steps.
 * Adding a filesystem = one new file here plus one line in index.ts (ARCHITECTURE.md §12).
 */
import type { MountEntry } from '../filesystem.js';
import type { RunCommandOptions } from '../run-command.js';

/** What a driver needs to mount the filesystem of a served drive. */
export interface MountContext {
  /** The decrypted drive file inside the FUSE mount. */
  drivePath: string;
  mountpoint: string;
  readOnly: boolean;
  /** Owner of the cleartext files (filesystems without Unix owners). */
  uid: number;
  gid: number;
  /** Sector size of the volume (SPEC §6) and the filesystem's block size read from its head. */
  volumeSectorSize: number;
  blockSize: number | null;
  /** The drive is page-cached by the kernel (FuseMount.pageCached). */
  pageCached: boolean;
  /** Register the reverse of a step that succeeded (run in reverse order on failure). */
  undo(what: string, run: () => Promise<void>): void;
}

/** A filesystem the volume can hold. */
export interface FilesystemDriver {
  /** Registry key and CLI value, e.g. `ext4`. */
  readonly name: string;
  /** How messages name it, e.g. `NTFS`. */
  readonly label: string;
  /** Smallest drive it is made on. */
  readonly minBytes: number;
  /** Host programs it runs (install.sh and error hints). */
  readonly tools: readonly string[];
  /** True when its first bytes (at least DETECT_BYTES) hold this filesystem. */
  detect(head: Uint8Array): boolean;
  /** Its block size read from `head`, if it has one that matters for the loop device. */
  blockSize(head: Uint8Array): number | null;
  /** Format the drive file. */
  make(drivePath: string, options: { label?: string; sectorSize?: number }): Promise<void>;
  /**
   * Refuse, before anything is set up, a mount this caller cannot do (root needed, host
   * configuration missing). Throws with the reason and what to do instead.
   */
  checkMountAllowed(asRoot: boolean): Promise<void>;
  /** The FUSE drive must let root open it (a setuid helper reads it for a normal user). */
  driveNeedsAllowRoot(asRoot: boolean): boolean;
  /** Mount it at `ctx.mountpoint`; returns the loop device used, if any. */
  mount(ctx: MountContext): Promise<{ loopDevice: string | null }>;
  /** True when mountinfo's entry at the mountpoint is this mount. */
  isOurMount(entry: MountEntry, ctx: { drivePath: string; loopDevice: string | null }): boolean;
  /** True when the filesystem can be measured and resized as it is (no check needed first). */
  isClean(drivePath: string, tools: RunCommandOptions): Promise<boolean>;
  /** Fix what is safe to fix automatically before a resize; throws if a human is needed. */
  repair(drivePath: string, tools: RunCommandOptions): Promise<void>;
  /** Smallest size in bytes it can be shrunk to (read-only tools). */
  minimumSize(drivePath: string, tools: RunCommandOptions): Promise<number>;
  /** Shrink it so it ends at or before byte `bytes` of the drive. */
  shrink(drivePath: string, bytes: number, tools: RunCommandOptions): Promise<void>;
  /** Grow it to the whole drive (a no-op when it already fills it). */
  grow(drivePath: string, tools: RunCommandOptions): Promise<void>;
}
