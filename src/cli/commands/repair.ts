/**
 * `cryptainer repair FILE`: rebuild a damaged or stale header copy from the good one
 * (SPEC §8 "Repair"). The new copy needs a MAC keyed from the master key, so a passphrase
 * is asked, but only when there is something to repair.
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { CryptainerError, FormatError } from '../../../volume-format/errors.js';
import { inspectVolume } from '../../volume/open.js';
import { repairVolume } from '../../volume/repair.js';
import { out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';

/** Register the command. */
export function registerRepair(program: Command): void {
  const cmd = program
    .command('repair')
    .description('rebuild a damaged or stale header copy from the good one (asks a passphrase)')
    .argument('<file>', 'container file')
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd);
  cmd.addHelpText(
    'after',
    '\nWhen both header copies are damaged nothing is left to repair from: restore a header ' +
      'backup with "cryptainer header-restore FILE BACKUP".',
  );
  cmd.action(async (file: string, opts: SecretOptionValues & { json?: boolean }) => {
    let before;
    try {
      before = await inspectVolume(file);
    } catch (err) {
      if (err instanceof CryptainerError && err.code === 'NO_VALID_HEADER') {
        throw new FormatError(
          'NO_VALID_HEADER',
          `${err.message}; nothing to repair from: restore a header backup (header-restore)`,
          { cause: err },
        );
      }
      throw err;
    }
    if (before.repair.length === 0) {
      if (opts.json) outJson({ path: file, repaired: [], seqid: before.fields.seqid });
      else
        out(
          `nothing to repair: header copies A and B of ${file} are ok (seqid ${before.fields.seqid})`,
        );
      return;
    }
    const secret = await secretFrom(opts, `Passphrase for ${file}`);
    try {
      const report = await repairVolume(file, {
        ...secret,
        ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
      });
      if (opts.json) {
        outJson({ path: file, ...report });
        return;
      }
      for (const r of report.repaired) {
        const why = r.reason ? ` (${r.reason.code}: ${r.reason.message})` : '';
        out(
          `header copy ${r.copy} was ${r.was}${why}: rewritten from copy ${report.winner} (seqid ${report.seqid})`,
        );
      }
      if (report.repaired.length === 0)
        out(`nothing to repair: both header copies of ${file} are ok`);
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
