/**
 * `cryptainer resize FILE --size SIZE|+SIZE|-SIZE`: grow or shrink a volume and the ext4 or
 * NTFS filesystem inside it (SPEC §16). The volume must not be mounted.
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { parseSizeRequest } from '../../../volume-format/resize.js';
import { resizeVolume } from '../../drive/resize.js';
import { formatSize, note, out, outJson, progress } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';
import { parseSize } from '../sizes.js';

/** Register the command. */
export function registerResize(program: Command): void {
  const cmd = program
    .command('resize')
    .description(
      'grow or shrink a volume and the filesystem inside it (ext4: resize2fs, NTFS: ntfsresize); ' +
        'the volume must be unmounted',
    )
    .argument('<file>', 'container file')
    .requiredOption(
      '--size <size>',
      'new size of the drive (512M, 10G), or a change: +1G, -256M (write --size=-256M)',
    )
    .option('--force', 'shrink a drive without a recognised filesystem (cuts its end)')
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd);
  cmd.action(async (file: string, opts: SecretOptionValues & Record<string, unknown>) => {
    const request = parseSizeRequest(opts.size as string, (s) => parseSize(s, 'size'));
    const secret = await secretFrom(opts, `Passphrase for ${file}`);
    const bar = progress('filling new space');
    try {
      const r = await resizeVolume(file, {
        ...secret,
        request,
        ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
        force: opts.force === true,
        onProgress: bar.update,
        log: note,
      });
      bar.done();
      if (opts.json) {
        outJson({ path: file, ...r });
        return;
      }
      const fs = r.filesystem === null ? 'no filesystem recognised' : `${r.filesystem} resized`;
      if (r.direction === 'none') {
        out(
          `${file} is already ${formatSize(r.newDataSize)}` +
            (r.filesystem ? `; ${r.filesystem} fills it` : ''),
        );
      } else {
        out(
          `resized ${file}: ${formatSize(r.oldDataSize)} -> ${formatSize(r.newDataSize)} (${fs})`,
        );
      }
    } finally {
      bar.done();
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
