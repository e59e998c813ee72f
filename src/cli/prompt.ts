/**
 * Where secrets come from (the only importer of the prompt library). Never from argv:
 * a masked prompt when stdin is a terminal (asked twice when a new secret is set), otherwise
 * `--passphrase-file PATH|-` or stdin. Stdin is read line by line as each secret is asked, so
 * a command that needs two secrets (old and new) takes them as two lines.
 */
import { createInterface } from 'node:readline/promises';
import { isatty } from 'node:tty';
import password from '@inquirer/password';
import { wipe } from '../../crypto/bytes.js';
import { CryptainerError, UsageError } from '../../volume-format/errors.js';
import { MAX_PASSPHRASE_BYTES, readPassphraseFile, readStdinLine } from '../io/secret-input.js';

/**
 * True when we may prompt: stdin is a terminal. Asked of fd 0 itself: creating
 * `process.stdin` for a pipe would switch it to non-blocking mode (src/io/secret-input.ts).
 */
export function isInteractive(): boolean {
  return isatty(0);
}

/** Next line of stdin (without its line ending); empty once stdin is exhausted. */
async function nextStdinLine(): Promise<Uint8Array> {
  return (await readStdinLine()) ?? new Uint8Array(0);
}

/**
 * Read a passphrase file (`-` = the next stdin line); one trailing "\n" or "\r\n" is removed
 * (SPEC §4.1). Longer than {@link MAX_PASSPHRASE_BYTES}: `USAGE`.
 */
export async function readPassphraseSource(path: string): Promise<Uint8Array> {
  return path === '-' ? nextStdinLine() : readPassphraseFile(path);
}

async function promptHidden(message: string): Promise<Uint8Array> {
  try {
    const text = await password({ message, mask: '*' }, { output: process.stderr });
    // JS strings cannot be wiped; convert at once and let the string go.
    return new Uint8Array(Buffer.from(text, 'utf8'));
  } catch (err) {
    if ((err as Error).name === 'ExitPromptError') {
      throw new CryptainerError('ABORTED', 'cancelled');
    }
    throw err;
  }
}

/** How to obtain one secret. */
export interface PassphraseRequest {
  /** Prompt text, e.g. "Passphrase for v.img". */
  label: string;
  /** `--passphrase-file` value, if given. */
  file?: string;
  /** Ask twice on a terminal and require both to match (for a new secret). */
  confirm?: boolean;
  /** Allow an empty passphrase (when keyfiles are given too). */
  allowEmpty?: boolean;
}

/** Get a passphrase: from the file option, a masked prompt, or the next stdin line. */
export async function getPassphrase(req: PassphraseRequest): Promise<Uint8Array> {
  let secret: Uint8Array;
  if (req.file !== undefined) secret = await readPassphraseSource(req.file);
  else if (isInteractive()) {
    secret = await promptHidden(`${req.label}:`);
    if (req.confirm) {
      const again = await promptHidden(`Verify ${req.label.toLowerCase()}:`);
      const same = Buffer.compare(Buffer.from(secret), Buffer.from(again)) === 0;
      wipe(again);
      if (!same) {
        wipe(secret);
        throw new UsageError('USAGE', 'passphrases do not match');
      }
    }
  } else secret = await nextStdinLine();
  if (secret.length === 0 && !req.allowEmpty) {
    throw new UsageError(
      'USAGE',
      'empty passphrase: give one on the prompt, with --passphrase-file, or on stdin',
    );
  }
  return secret;
}

/**
 * Ask the user to type YES (on a terminal). Off a terminal, `assumeYes` must be set.
 * Throws `ABORTED` on any other answer.
 */
export async function confirmOrAbort(question: string, assumeYes: boolean): Promise<void> {
  if (assumeYes) return;
  if (!isInteractive()) {
    throw new UsageError('USAGE', `${question}: refusing without --yes when not interactive`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question}\nType YES to continue: `);
    if (answer.trim() !== 'YES') throw new CryptainerError('ABORTED', 'cancelled');
  } finally {
    rl.close();
  }
}

/**
 * On a terminal, ask the user to type `phrase` exactly (for one dangerous case that a general
 * YES must not cover). Throws `ABORTED` on any other answer, and `USAGE` off a terminal.
 */
export async function confirmPhrase(question: string, phrase: string): Promise<void> {
  if (!isInteractive()) {
    throw new UsageError('USAGE', `${question}: a typed confirmation needs a terminal`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question}\nType "${phrase}" to continue: `);
    if (answer.trim() !== phrase) throw new CryptainerError('ABORTED', 'cancelled');
  } finally {
    rl.close();
  }
}
