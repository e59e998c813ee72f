/** `cryptainer check FILE` (alias `open`): verify a passphrase; repairs a damaged header copy. */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { openVolume } from '../../volume/open.js';
import { inspectVolume } from '../../volume/open.js';
import { out, outJson } from '../output.js';
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
    await inspectVolume(file); // a damaged or missing file fails before the passphrase is asked
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
      const { winner, repaired } = volume.openedFrom;
      await volume.close();
      if (opts.json)
        outJson({ path: file, ok: true, keyslot: slot, repairedHeaderCopies: repaired });
      else {
        out(`ok: keyslot ${slot} unlocks ${file}`);
        for (const c of repaired) out(`repaired header copy ${c} from copy ${winner}`);
      }
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
