/**
 * `cryptainer unmount MOUNTPOINT|FILE` and `unmount --all`: unmount, flush, wipe keys. Exits 6
 * (`IO_ERROR`), after unmounting, when data may have been lost: the server counted I/O errors,
 * its final flush failed, or it died before finishing (src/drive/unmount.ts).
 */
import type { Command } from 'commander';
import { UsageError } from '../../../volume-format/errors.js';
import { cleanOrphanEntries, findRecord, unmountAll, unmountRecord } from '../../drive/unmount.js';
import { note, out } from '../output.js';

/** Register the command. */
export function registerUnmount(program: Command): void {
  program
    .command('unmount')
    .alias('umount')
    .description('unmount a mounted volume (by mountpoint or container file), or all of them')
    .argument('[target]', 'mountpoint or container file')
    .option('--all', 'unmount every volume this user mounted')
    .action(async (target: string | undefined, opts: { all?: boolean }) => {
      if (opts.all) {
        if (target !== undefined) throw new UsageError('USAGE', 'give a target or --all, not both');
        const { failures, notes } = await unmountAll();
        for (const n of notes) note(`cryptainer: ${n}`);
        // Every failure but the last is printed here; the last one is main's error line.
        for (const f of failures.slice(0, -1)) note(`cryptainer: ${f.error.message}`);
        if (failures.length > 0) throw failures[failures.length - 1]!.error;
        out('unmounted all volumes');
        return;
      }
      if (target === undefined)
        throw new UsageError('USAGE', 'unmount: give a mountpoint, a file or --all');
      for (const n of await cleanOrphanEntries()) note(`cryptainer: ${n}`);
      const record = await findRecord(target);
      await unmountRecord(record);
      out(`unmounted ${record.mountpoint} (${record.container})`);
    });
}
