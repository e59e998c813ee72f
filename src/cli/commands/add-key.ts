/** `cryptainer add-key FILE`: add a passphrase and/or keyfiles that unlock the volume (SPEC §14.1). */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { addKeyslot } from '../../volume/keyslots.js';
import { inspectVolume, openVolume } from '../../volume/open.js';
import {
  type NewKeyOptionValues,
  addKdfOptions,
  addNewSecretOptions,
  kdfChoiceFrom,
  newSecretFrom,
  parseSlot,
} from '../key-options.js';
import { note, out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';
import { kdfSummary } from './info.js';

/** Help text shared by the commands that take an existing and a new secret. */
export const TWO_SECRETS_HELP = `
Secrets: on a terminal you are prompted (the new passphrase twice). Otherwise they come from
--passphrase-file / --new-passphrase-file, or from stdin, one line each, the existing
passphrase first:  printf 'old\\nnew\\n' | cryptainer <command> FILE
A keyfile-only keyslot: --new-key-file PATH with an empty new passphrase.`;

type Opts = SecretOptionValues & NewKeyOptionValues & { slot?: number; json?: boolean };

/** Register the command. */
export function registerAddKey(program: Command): void {
  const cmd = program
    .command('add-key')
    .description(
      'add a passphrase and/or keyfiles that unlock the volume (asks an existing one first)',
    )
    .argument('<file>', 'container file')
    .option('--slot <n>', 'keyslot to fill, 0-7 (default: the first free one)', parseSlot)
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd, false);
  addNewSecretOptions(cmd);
  addKdfOptions(cmd, 'tuned like create');
  cmd.addHelpText('after', TWO_SECRETS_HELP);
  cmd.action(async (file: string, opts: Opts) => {
    await inspectVolume(file); // a damaged file fails here (exit 4), before any prompt
    const secret = await secretFrom(opts, `Existing passphrase for ${file}`);
    let volume;
    try {
      volume = await openVolume(file, secret);
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
    try {
      const kdf = kdfChoiceFrom(opts) ?? { kdfTuning: {} };
      const fresh = await newSecretFrom(opts, `New passphrase for ${file}`);
      try {
        if (kdf.kdfTuning) note('measuring this machine to tune Argon2id...');
        const slot = await addKeyslot(volume, fresh, {
          ...kdf,
          ...(opts.slot !== undefined ? { slot: opts.slot } : {}),
        });
        const ks = volume.header.keyslots[slot]!;
        if (opts.json) {
          outJson({ path: file, keyslot: slot, kdf: ks.state === 'active' ? ks.kdf : null });
        } else out(`added keyslot ${slot} to ${file} (${kdfSummary(ks)})`);
      } finally {
        wipe(fresh.passphrase);
      }
    } finally {
      await volume.close();
    }
  });
}
