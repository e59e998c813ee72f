/**
 * Options of the commands that set a new secret (`add-key`, `change-key`): where the new
 * passphrase and keyfiles come from, and the Argon2id cost of the new keyslot.
 */
import type { Command } from 'commander';
import type { NewKeyKdf } from '../volume/keyslots.js';
import { DEFAULT_KDF_TARGET_MS } from '../volume/kdf-tuning.js';
import type { UnlockSecret } from '../volume/secret.js';
import { getPassphrase } from './prompt.js';
import { parseMemoryKiB, parsePositiveInt } from './sizes.js';

/** Parsed values of the new-secret and KDF options. */
export interface NewKeyOptionValues {
  newPassphraseFile?: string;
  newKeyFile?: string[];
  iterTime?: string;
  kdfMaxMemory?: string;
  kdfMemory?: string;
  kdfTime?: string;
  kdfParallelism?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Add `--new-passphrase-file` and `--new-key-file` (repeatable) to `cmd`. */
export function addNewSecretOptions(cmd: Command): Command {
  return cmd
    .option(
      '--new-passphrase-file <path>',
      'read the new passphrase from a file (one trailing newline removed); "-" reads stdin',
    )
    .option(
      '--new-key-file <path>',
      'protect the new keyslot with this keyfile too (repeatable; with a keyfile the new ' +
        'passphrase may be empty)',
      collect,
    );
}

/**
 * Collect the new secret: asked after the existing one (on stdin: the next line), twice on a
 * terminal. With `--new-key-file` the passphrase may be empty (a keyfile-only keyslot).
 */
export async function newSecretFrom(
  opts: NewKeyOptionValues,
  label: string,
): Promise<UnlockSecret & { passphrase: Uint8Array }> {
  const keyfiles = opts.newKeyFile ?? [];
  const passphrase = await getPassphrase({
    label,
    ...(opts.newPassphraseFile !== undefined ? { file: opts.newPassphraseFile } : {}),
    confirm: true,
    allowEmpty: keyfiles.length > 0,
  });
  return { passphrase, keyfiles };
}

/**
 * Add the Argon2id options of a new keyslot to `cmd` (as `create` has them); `defaultText`
 * says what happens when none is given.
 */
export function addKdfOptions(cmd: Command, defaultText: string): Command {
  return cmd
    .option(
      '--iter-time <ms>',
      `tune Argon2id to this unlock time in milliseconds (default ${DEFAULT_KDF_TARGET_MS}; ` +
        `without any KDF option: ${defaultText})`,
    )
    .option('--kdf-max-memory <size>', 'memory cap for the tuned KDF (default 1G)')
    .option('--kdf-memory <size>', 'explicit Argon2id memory (KiB, or with a unit: 256M)')
    .option('--kdf-time <n>', 'explicit Argon2id passes')
    .option('--kdf-parallelism <n>', 'explicit Argon2id lanes');
}

/**
 * Turn the KDF options into a {@link NewKeyKdf}: explicit parameters when `--kdf-memory` or
 * `--kdf-time` is given (unset ones default to 1 GiB, 4 passes, 4 lanes as in `create`),
 * tuning when any tuning option is given, and `undefined` when none is (the caller decides).
 */
export function kdfChoiceFrom(opts: NewKeyOptionValues): NewKeyKdf | undefined {
  const parallelism =
    opts.kdfParallelism !== undefined
      ? parsePositiveInt(opts.kdfParallelism, 'kdf parallelism')
      : undefined;
  if (opts.kdfMemory !== undefined || opts.kdfTime !== undefined) {
    return {
      kdf: {
        memoryKiB: opts.kdfMemory !== undefined ? parseMemoryKiB(opts.kdfMemory) : 1048576,
        timeCost: opts.kdfTime !== undefined ? parsePositiveInt(opts.kdfTime, 'kdf time') : 4,
        parallelism: parallelism ?? 4,
      },
    };
  }
  if (opts.iterTime === undefined && opts.kdfMaxMemory === undefined && parallelism === undefined) {
    return undefined;
  }
  return {
    kdfTuning: {
      ...(opts.iterTime !== undefined
        ? { targetMs: parsePositiveInt(opts.iterTime, 'iter time') }
        : {}),
      ...(opts.kdfMaxMemory !== undefined
        ? { maxMemoryKiB: parseMemoryKiB(opts.kdfMaxMemory) }
        : {}),
      ...(parallelism !== undefined ? { parallelism } : {}),
    },
  };
}

/** Parse `--slot N` (0–7). */
export function parseSlot(text: string): number {
  if (!/^\d+$/.test(text.trim())) return parsePositiveInt(text, 'slot'); // throws USAGE
  return Number(text);
}
