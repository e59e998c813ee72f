/**
 * `cryptainer resize FILE --size SIZE|+SIZE|-SIZE`: grow or shrink a volume and the ext4 or
 * NTFS filesystem inside it (SPEC §16). The volume must not be mounted.
 *
 * Interruptions, as for `reencrypt`: the first Ctrl-C (or SIGTERM, SIGHUP) stops at the next
 * consistent point (between two steps; the filesystem tools run in a process group of their
 * own, so the terminal's Ctrl-C does not reach them and the one running is left to finish),
 * then exits 10 naming the command that finishes the resize. A second one also ends the
 * running tool; rerunning the same resize then checks and repairs the filesystem first (a
 * kill at any write of a tool is repairable that way: test/drive/resize-kill.test.ts).
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { parseSizeRequest } from '../../../volume-format/resize.js';
import { resizeVolume } from '../../drive/resize.js';
import { formatSize, note, out, outJson, progress } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';
import { parseSize } from '../sizes.js';

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

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
    const stop = new AbortController();
    const stopNow = new AbortController();
    const onSignal = (): void => {
      bar.done();
      if (!stop.signal.aborted) {
        stop.abort();
        note('stopping after the step in progress (Ctrl-C again to stop at once; both are safe)');
      } else if (!stopNow.signal.aborted) {
        stopNow.abort();
        note('stopping at once');
      }
    };
    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
    try {
      const r = await resizeVolume(file, {
        ...secret,
        request,
        ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
        force: opts.force === true,
        onProgress: bar.update,
        log: note,
        signal: stop.signal,
        stopNow: stopNow.signal,
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
      for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
      bar.done();
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
