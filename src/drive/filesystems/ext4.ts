/**
 * ext4 inside a volume: made with mkfs.ext4, mounted by the kernel through a loop device over
 * the drive file (so root only), resized with resize2fs after an e2fsck preen.
 */
import { MountError, UsageError } from '../../../volume-format/errors.js';
import {
  attachLoop,
  detachLoop,
  loopSectorSize,
  runStep,
  runTool,
  toolFailure,
  unmountFilesystem,
} from '../filesystem.js';
import type { RunCommandOptions } from '../run-command.js';
import type { FilesystemDriver } from './types.js';

/** Security defaults for a volume that may come from someone else: no setuid, no devices. */
export const SAFE_MOUNT_OPTIONS = 'nosuid,nodev';

/** The superblock's block size and whether its state is plain `clean` (dumpe2fs -h). */
async function ext4State(
  drive: string,
  tools: RunCommandOptions,
): Promise<{ blockSize: number; clean: boolean }> {
  const step = 'reading the ext4 superblock (dumpe2fs -h)';
  const r = await runStep(step, 'dumpe2fs', ['-h', drive], undefined, tools);
  const m = /^Block size:\s*(\d+)/m.exec(r.stdout);
  if (!m) throw new MountError('MOUNT_FAILED', 'dumpe2fs -h: no block size in its output');
  const state = /^Filesystem state:\s*(.*?)\s*$/m.exec(r.stdout)?.[1];
  return { blockSize: Number(m[1]), clean: state === 'clean' };
}

/** ext2/3/4: superblock magic 0xEF53 at drive offset 1024+56. */
function detect(head: Uint8Array): boolean {
  return head.length >= 1082 && head[1080] === 0x53 && head[1081] === 0xef;
}

/** The ext4 driver. */
export const ext4: FilesystemDriver = {
  name: 'ext4',
  label: 'ext4',
  // measured: mkfs.ext4 needs 256 KiB
  minBytes: 1024 * 1024,
  tools: ['mkfs.ext4', 'e2fsck', 'dumpe2fs', 'resize2fs', 'losetup', 'mount', 'umount'],
  detect,

  /**
   * `s_log_block_size` at superblock +24, block size = 1024 << it; null for an impossible
   * value (ext4 allows 1 KiB to 64 KiB blocks).
   */
  blockSize(head) {
    if (!detect(head) || head.length < 1052) return null;
    const log = Buffer.from(head.buffer, head.byteOffset, head.length).readUInt32LE(1024 + 24);
    return log <= 6 ? 1024 << log : null;
  },

  async make(drivePath, options) {
    const args = [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      // The drive already reads as zeros (SPEC §6 fill at creation): skip zeroing the inode
      // tables and journal now and in the background after the first mount; no discard, which
      // the drive does not support and which would reveal unused sectors anyway.
      '-E',
      'nodiscard,assume_storage_prezeroed=1',
    ];
    if (options.label) args.push('-L', options.label);
    await runStep('making the ext4 filesystem (mkfs.ext4)', 'mkfs.ext4', [...args, drivePath], 0);
  },

  async checkMountAllowed(asRoot) {
    if (asRoot) return;
    throw new UsageError(
      'USAGE',
      'mounting ext4 needs root: the kernel mounts it through a loop device. Run it as root ' +
        '(sudo cryptainer mount ...), mount the raw drive with --filesystem none, or use a ' +
        'volume created with --filesystem ntfs, which mounts as a normal user',
    );
  },

  driveNeedsAllowRoot: () => false,

  async mount(ctx) {
    const dev = await attachLoop(ctx.drivePath, {
      readOnly: ctx.readOnly,
      sectorSize: loopSectorSize(ctx.volumeSectorSize, ctx.blockSize),
      directIo: !ctx.pageCached,
    });
    ctx.undo(`detaching ${dev}`, () => detachLoop(dev));
    const opts = SAFE_MOUNT_OPTIONS + (ctx.readOnly ? ',ro' : '');
    await runStep('mounting ext4 (mount)', 'mount', [
      '-t',
      'ext4',
      '-o',
      opts,
      dev,
      ctx.mountpoint,
    ]);
    ctx.undo('unmounting ext4', () => unmountFilesystem(ctx.mountpoint));
    return { loopDevice: dev };
  },

  isOurMount: (m, ctx) => m.fstype === 'ext4' && m.source === ctx.loopDevice,

  // resize2fs -P refuses to measure what an interrupted resize2fs left (not clean).
  isClean: async (drive, tools) => (await ext4State(drive, tools)).clean,

  /**
   * resize2fs refuses an unmounted filesystem that was not checked since its last mount; a
   * preen (`e2fsck -f -p`) fixes only what is safe to fix automatically and fails otherwise.
   */
  async repair(drive, tools) {
    const r = await runTool('e2fsck', ['-f', '-p', drive], 0, tools);
    if (r.signal) {
      throw new MountError(
        'MOUNT_FAILED',
        `checking the ext4 filesystem (e2fsck): ${toolFailure(r)}`,
      );
    }
    if (r.code >= 4) {
      throw new MountError(
        'MOUNT_FAILED',
        `checking the ext4 filesystem (e2fsck -f -p): it has errors that need a manual ` +
          `e2fsck (exit ${r.code}): ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join('; ')}`,
      );
    }
  },

  async minimumSize(drive, tools) {
    const { blockSize } = await ext4State(drive, tools);
    const step = 'measuring the ext4 filesystem (resize2fs -P)';
    const r = await runStep(step, 'resize2fs', ['-P', drive], undefined, tools);
    const m = /minimum size of the filesystem:\s*(\d+)/i.exec(r.stdout + r.stderr);
    if (!m) throw new MountError('MOUNT_FAILED', `resize2fs -P: unexpected output: ${r.stdout}`);
    return Number(m[1]) * blockSize;
  },

  async shrink(drive, bytes, tools) {
    // In KiB: resize2fs rounds down to whole filesystem blocks.
    await runStep(
      'shrinking the ext4 filesystem (resize2fs)',
      'resize2fs',
      [drive, `${Math.floor(bytes / 1024)}K`],
      0,
      tools,
    );
  },

  async grow(drive, tools) {
    await runStep('growing the ext4 filesystem (resize2fs)', 'resize2fs', [drive], 0, tools);
  },
};
