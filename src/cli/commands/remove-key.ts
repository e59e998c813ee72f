/**
 * `cryptainer remove-key FILE [--slot N] [--force]`: remove a keyslot; its 256 bytes become
 * zeros in both header copies (SPEC §14.2).
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { activeKeyslots, removeKeyslot } from '../../volume/keyslots.js';
import { inspectVolume, openVolume } from '../../volume/open.js';
import { parseSlot } from '../key-options.js';
import { note, out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';
import { BACKUP_KEEPS_OLD_KEYS, BACKUP_KEEPS_OLD_KEYS_HELP } from './header-backup.js';

type Opts = SecretOptionValues & { slot?: number; force?: boolean; json?: boolean };

/** Register the command. */
export function registerRemoveKey(program: Command): void {
  const cmd = program
    .command('remove-key')
    .description(
      'remove the keyslot the given passphrase opens, or --slot N (then any working passphrase will do)',
    )
    .argument('<file>', 'container file')
    .option('--slot <n>', 'remove this keyslot, 0-7', parseSlot)
    .option('--force', 'allow removing the last keyslot (nothing can unlock the volume afterwards)')
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd, false);
  cmd.addHelpText(
    'after',
    '\nThe removed keyslot is overwritten with zeros in both header copies.\n' +
      BACKUP_KEEPS_OLD_KEYS_HELP,
  );
  cmd.action(async (file: string, opts: Opts) => {
    await inspectVolume(file);
    const label =
      opts.slot !== undefined
        ? `Passphrase for ${file} (any working keyslot)`
        : `Passphrase to remove from ${file}`;
    const secret = await secretFrom(opts, label);
    let volume;
    try {
      volume = await openVolume(file, secret);
    } finally {
      if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    }
    try {
      const slot = opts.slot ?? volume.unlockedSlot;
      await removeKeyslot(volume, slot, { force: opts.force === true });
      const left = activeKeyslots(volume);
      if (opts.json) outJson({ path: file, removedKeyslot: slot, activeKeyslots: left });
      else {
        out(`removed keyslot ${slot} from ${file} (zeroed in both header copies)`);
        out(`active keyslots: ${left.length > 0 ? left.join(', ') : 'none'}`);
      }
      if (left.length === 0) {
        note('WARNING: no keyslot is left: only a header backup can unlock this volume now');
      }
      note(BACKUP_KEEPS_OLD_KEYS);
    } finally {
      await volume.close();
    }
  });
}
