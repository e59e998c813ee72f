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
      await volume.close();
      const repaired = opts.readOnly ? [] : before.repair;
      if (opts.json)
        outJson({ path: file, ok: true, keyslot: slot, repairedHeaderCopies: repaired });
      else {
        out(`ok: keyslot ${slot} unlocks ${file}`);
        for (const c of repaired) out(`repaired header copy ${c} from copy ${before.winner}`);
      }
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
  });
}
