/** `cryptainer list [--json]`: the volumes this user has mounted. */
import type { Command } from 'commander';
import { readRecords } from '../../drive/registry.js';
import { recordState } from '../../drive/unmount.js';
import { note, out, outJson } from '../output.js';

/** Register the command. */
export function registerList(program: Command): void {
  program
    .command('list')
    .description('list mounted volumes')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = [];
      for (const r of await readRecords()) {
        rows.push({
          container: r.container,
          mountpoint: r.mountpoint,
          filesystem: r.filesystem,
          readOnly: r.readOnly,
          pid: r.pid,
          loopDevice: r.loopDevice,
          startedAt: r.startedAt,
          // stale: its server died (clean up with `cryptainer unmount`)
          state: await recordState(r),
        });
      }
      if (opts.json) {
        outJson(rows);
        return;
      }
      if (rows.length === 0) {
        note('no mounted volumes');
        return;
      }
      for (const r of rows) {
        const mode = r.readOnly ? 'ro' : 'rw';
        out(`${r.mountpoint}\t${r.container}\t${r.filesystem}\t${mode}\tpid ${r.pid}\t${r.state}`);
      }
    });
}
