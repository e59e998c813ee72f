/** `cryptainer check FILE` (alias `open`): verify a passphrase; repairs a damaged header copy. */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { openVolume } from '../../volume/open.js';
import { inspectVolume } from '../../volume/open.js';
import { note, out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';

/** Register the command. */
export function registerCheck(program: Command): void {
  const cmd = program
    .command('check')
    .alias('open')
    .description('verify that a passphrase (and keyfiles) unlock the volume')
    .argument('<file>', 'container file')
    .option('--read-only', 'do not repair a damaged header copy')
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd);
  cmd.action(async (file: string, opts: SecretOptionValues & Record<string, unknown>) => {
    // A damaged or missing file fails before the passphrase is asked.
    const before = await inspectVolume(file);
    const secret = await secretFrom(opts, `Passphrase for ${file}`);
    try {
      const volume = await openVolume(file, {
        ...secret,
        readOnly: opts.readOnly === true,
        // --read-only checks only the header: no lock, so it works on a mounted volume.
        lock: 'none',
        ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
      });
      const slot = volume.unlockedSlot;
      // openedFrom.repaired is empty when the volume is read-only, also when --read-only was not
      // given: an unknown ro_compat feature (SPEC §7) forbids writing any header copy.
      const { winner, repaired } = volume.openedFrom;
      const unrepaired = volume.readOnly ? before.repair : [];
      await volume.close();
      if (opts.json)
        outJson({
          path: file,
          ok: true,
          keyslot: slot,
          repairedHeaderCopies: repaired,
          unrepairedHeaderCopies: unrepaired,
        });
      else {
        out(`ok: keyslot ${slot} unlocks ${file}`);
        for (const c of repaired) out(`repaired header copy ${c} from copy ${winner}`);
        for (const c of unrepaired) {
          note(
            `header copy ${c} needs repair but was not written: ` +
              (opts.readOnly
                ? 'opened with --read-only'
                : 'the volume has read-only-compatible features this version does not know'),
          );
        }
      }
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
