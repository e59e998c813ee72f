/**
 * The options every unlocking command shares (`--passphrase-file`, `--key-file`, `--keyslot`)
 * and their conversion to an {@link UnlockSecret}.
 */
import { type Command, Option } from 'commander';
import type { UnlockSecret } from '../volume/secret.js';
import { getPassphrase } from './prompt.js';
import { parsePositiveInt } from './sizes.js';

/** Parsed values of the shared secret options. */
export interface SecretOptionValues {
  passphraseFile?: string;
  keyFile?: string[];
  keyslot?: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Add `--passphrase-file`, `--key-file` (repeatable) and optionally `--keyslot` to `cmd`. */
export function addSecretOptions(cmd: Command, withKeyslot = true): Command {
  cmd
    .option(
      '--passphrase-file <path>',
      'read the passphrase from a file (one trailing newline removed); "-" reads stdin',
    )
    .option(
      '--key-file <path>',
      'use a keyfile as well (repeatable; order does not matter)',
      collect,
    );
  if (withKeyslot) {
    cmd.addOption(
      new Option('--keyslot <n>', 'try only this keyslot (0-7)').argParser((v) =>
        parsePositiveIntOrZero(v),
      ),
    );
  }
  return cmd;
}

function parsePositiveIntOrZero(v: string): number {
  return v.trim() === '0' ? 0 : parsePositiveInt(v, 'keyslot');
}

/**
 * Collect the secret for an unlock (or, with `confirm`, for a new keyslot). With keyfiles the
 * passphrase may be empty.
 */
export async function secretFrom(
  opts: SecretOptionValues,
  label: string,
  confirm = false,
): Promise<UnlockSecret> {
  const keyfiles = opts.keyFile ?? [];
  const passphrase = await getPassphrase({
    label,
    ...(opts.passphraseFile !== undefined ? { file: opts.passphraseFile } : {}),
    confirm,
    allowEmpty: keyfiles.length > 0,
  });
  return { passphrase, keyfiles };
}
