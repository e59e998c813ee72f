/**
 * `cryptainer list [--json]`: the volumes this user has mounted, with the I/O errors their
 * servers counted (`degraded: 3 write errors`). Entries left by interrupted commands are
 * removed, and a note says so.
 */
import type { Command } from 'commander';
import { readRecords } from '../../drive/registry.js';
import { cleanOrphanEntries, recordState } from '../../drive/unmount.js';
import { note, out, outJson } from '../output.js';

/** Register the command. */
export function registerList(program: Command): void {
  program
    .command('list')
    .description('list mounted volumes')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      for (const n of await cleanOrphanEntries()) note(`cryptainer: ${n}`);
      const rows = [];
      for (const r of await readRecords()) {
        const s = await recordState(r);
        rows.push({
          container: r.container,
          mountpoint: r.mountpoint,
          filesystem: r.filesystem,
          readOnly: r.readOnly,
          pid: r.pid,
          loopDevice: r.loopDevice,
          startedAt: r.startedAt,
          // stale: its server died (clean up with `cryptainer unmount`); degraded: I/O failed
          state: s.state,
          writeErrors: s.writeErrors,
          readErrors: s.readErrors,
          lastError: s.lastError,
          stateText: s.text,
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
        out(
          `${r.mountpoint}\t${r.container}\t${r.filesystem}\t${mode}\tpid ${r.pid}\t${r.stateText}`,
        );
      }
      if (rows.some((r) => r.state === 'stale' || r.state === 'degraded')) {
        note(
          'cryptainer: data written to a stale or degraded volume may be lost; ' +
            '`cryptainer unmount MOUNTPOINT` cleans up and says what failed',
        );
      }
    });
}
