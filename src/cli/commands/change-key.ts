/**
 * `cryptainer change-key FILE`: a new secret for the keyslot the old one opens (SPEC §14.3).
 * The master key and the data are untouched.
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { changeKeyslot } from '../../volume/keyslots.js';
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
import { TWO_SECRETS_HELP } from './add-key.js';
import { kdfSummary } from './info.js';
import { BACKUP_KEEPS_OLD_KEYS, BACKUP_KEEPS_OLD_KEYS_HELP } from './header-backup.js';

type Opts = SecretOptionValues & NewKeyOptionValues & { slot?: number; json?: boolean };

/** Register the command. */
export function registerChangeKey(program: Command): void {
  const cmd = program
    .command('change-key')
    .description(
      'replace the passphrase/keyfiles of the keyslot the old ones open (same master key, data untouched)',
    )
    .argument('<file>', 'container file')
    .option(
      '--slot <n>',
      'change only this keyslot, 0-7 (the old passphrase must open it)',
      parseSlot,
    )
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd, false);
  addNewSecretOptions(cmd);
  addKdfOptions(cmd, 'the keyslot keeps its current cost');
  cmd.addHelpText('after', TWO_SECRETS_HELP + '\n' + BACKUP_KEEPS_OLD_KEYS_HELP);
  cmd.action(async (file: string, opts: Opts) => {
    await inspectVolume(file);
    const secret = await secretFrom(opts, `Old passphrase for ${file}`);
    let volume;
    try {
      volume = await openVolume(file, {
        ...secret,
        ...(opts.slot !== undefined ? { keyslot: opts.slot } : {}),
      });
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
    try {
      const slot = volume.unlockedSlot;
      const kdf = kdfChoiceFrom(opts) ?? {};
      const fresh = await newSecretFrom(opts, `New passphrase for ${file}`);
      try {
        if (kdf.kdfTuning) note('measuring this machine to tune Argon2id...');
        await changeKeyslot(volume, slot, fresh, kdf);
        const ks = volume.header.keyslots[slot]!;
        if (opts.json) {
          outJson({ path: file, keyslot: slot, kdf: ks.state === 'active' ? ks.kdf : null });
        } else out(`changed keyslot ${slot} of ${file} (${kdfSummary(ks)})`);
        note(BACKUP_KEEPS_OLD_KEYS);
      } finally {
        wipe(fresh.passphrase);
      }
    } finally {
      await volume.close();
    }
  });
}
