/** `cryptainer unmount MOUNTPOINT|FILE` and `unmount --all`: unmount, flush, wipe keys. */
import type { Command } from 'commander';
import { UsageError } from '../../../volume-format/errors.js';
import { findRecord, unmountAll, unmountRecord } from '../../drive/unmount.js';
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
        const failures = await unmountAll();
        for (const f of failures) note(`cryptainer: ${f.record.mountpoint}: ${f.error.message}`);
        if (failures.length > 0) throw failures[0]!.error;
        out('unmounted all volumes');
        return;
      }
      if (target === undefined)
        throw new UsageError('USAGE', 'unmount: give a mountpoint, a file or --all');
      const record = await findRecord(target);
      await unmountRecord(record);
      out(`unmounted ${record.mountpoint} (${record.container})`);
    });
}
