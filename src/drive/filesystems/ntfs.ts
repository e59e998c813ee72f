/**
 * NTFS inside a volume: made with mkntfs, mounted by ntfs-3g straight on the drive file (so a
 * normal user can mount it), resized with ntfsresize.
 */
import { MountError } from '../../../volume-format/errors.js';
import { runStep, runTool, toolFailure, unmountFilesystem, userAllowOther } from '../filesystem.js';
import { SAFE_MOUNT_OPTIONS } from './ext4.js';
import type { FilesystemDriver } from './types.js';

/** The NTFS driver. */
export const ntfs: FilesystemDriver = {
  name: 'ntfs',
  label: 'NTFS',
  // measured: mkntfs needs 1 MiB and more
  minBytes: 2 * 1024 * 1024,
  tools: ['mkntfs', 'ntfs-3g', 'ntfsresize', 'fusermount'],

  /** OEM id "NTFS    " at offset 3 of the boot sector. */
  detect: (head) =>
    head.length >= 11 && Buffer.from(head.subarray(3, 11)).toString('latin1') === 'NTFS    ',

  blockSize: () => null,

  async make(drivePath, options) {
    // -f: quick (no zeroing: the drive reads as zeros); -F: a file, not a block device.
    const args = ['-q', '-f', '-F', '-s', String(options.sectorSize === 4096 ? 4096 : 512)];
    args.push('-p', '0', '-H', '0', '-S', '0');
    if (options.label) args.push('-L', options.label);
    await runStep('making the NTFS filesystem (mkntfs)', 'mkntfs', [...args, drivePath], 0);
  },

  async checkMountAllowed(asRoot) {
    if (asRoot || (await userAllowOther())) return;
    throw new MountError(
      'MOUNT_FAILED',
      'NTFS as a normal user needs the line "user_allow_other" in /etc/fuse.conf: ntfs-3g ' +
        'runs setuid root and may only open your drive if it is mounted with allow_root',
    );
  },

  driveNeedsAllowRoot: (asRoot) => !asRoot,

  /**
   * ntfs-3g on the drive file. Files belong to `uid`/`gid` with umask 077: the cleartext is
   * for the user who mounted it, no one else.
   */
  async mount(ctx) {
    const opts = [
      SAFE_MOUNT_OPTIONS,
      `uid=${ctx.uid}`,
      `gid=${ctx.gid}`,
      'umask=077',
      'big_writes',
    ];
    if (ctx.readOnly) opts.push('ro');
    await runStep('mounting NTFS (ntfs-3g)', 'ntfs-3g', [
      '-o',
      opts.join(','),
      ctx.drivePath,
      ctx.mountpoint,
    ]);
    ctx.undo('unmounting NTFS', () => unmountFilesystem(ctx.mountpoint, { fuse: true }));
    return { loopDevice: null };
  },

  isOurMount: (m, ctx) => m.fstype.startsWith('fuse') && m.source === ctx.drivePath,

  isClean: async () => true,
  repair: async () => undefined,

  async minimumSize(drive, tools) {
    const r = await runStep(
      'measuring the NTFS filesystem (ntfsresize --info)',
      'ntfsresize',
      ['--info', '--force', '--no-progress-bar', drive],
      undefined,
      tools,
    );
    const m = /You might resize at (\d+) bytes/.exec(r.stdout);
    if (!m) {
      throw new MountError('MOUNT_FAILED', `ntfsresize --info: unexpected output: ${r.stdout}`);
    }
    return Number(m[1]);
  },

  async shrink(drive, bytes, tools) {
    await runStep(
      'shrinking the NTFS filesystem (ntfsresize)',
      'ntfsresize',
      ['--force', '--no-progress-bar', '--size', String(bytes), drive],
      0,
      tools,
    );
  },

  async grow(drive, tools) {
    const r = await runTool('ntfsresize', ['--force', '--no-progress-bar', drive], 0, tools);
    if (r.signal) {
      throw new MountError('MOUNT_FAILED', `growing the NTFS filesystem: ${toolFailure(r)}`);
    }
    if (r.code !== 0 && !/Nothing to do/.test(r.stdout + r.stderr)) {
      throw new MountError(
        'MOUNT_FAILED',
        `growing the NTFS filesystem (ntfsresize): ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join('; ')}`,
      );
    }
  },
};
