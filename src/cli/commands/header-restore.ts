/**
 * `cryptainer header-restore FILE BACKUP [--yes] [--force-stale]`: write both header copies back
 * from a backup (SPEC §13.4) after checking that it is intact, belongs to FILE and describes the
 * key FILE's data is under (not stale).
 */
import type { Command } from 'commander';
import { closeContainer, openContainer } from '../../io/container-file.js';
import {
  type RestoreTarget,
  planRestoreTarget,
  readHeaderBackup,
  restoreHeaderBackup,
  staleBackupError,
} from '../../volume/backup.js';
import { CryptainerError } from '../../../volume-format/errors.js';
import { confirmOrAbort, confirmPhrase, isInteractive } from '../prompt.js';
import { note, out, outJson } from '../output.js';
import {
  BACKUP_KEEPS_OLD_KEYS,
  BACKUP_KEEPS_OLD_KEYS_HELP,
  describeBackup,
  describeTarget,
} from './header-backup.js';

/** Register the command. */
export function registerHeaderRestore(program: Command): void {
  program
    .command('header-restore')
    .description('restore both header copies of a container from a header backup')
    .argument('<file>', 'container file')
    .argument('<backup>', 'header backup file (from header-backup)')
    .option('--yes', 'do not ask for confirmation')
    .option(
      '--force-stale',
      'restore even a stale backup (made before a re-encryption): the data becomes unreadable',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The backup must be intact and belong to FILE (same uuid and layout); a backup of another
volume is refused and FILE is not touched. If FILE has no valid header left, nothing can be
compared: you are warned and asked to confirm.
A stale backup (made before or during a re-encryption: another key generation) is refused with
exit 4 and FILE is not touched: restoring it would make the data unreadable. To restore it
anyway, type the phrase "${STALE_PHRASE}" when asked on a terminal, or pass --force-stale
(with --yes) off a terminal.
After a restore, exactly the keyslots in the backup unlock the volume: passphrases added or
changed since the backup stop working, removed ones work again.
${BACKUP_KEEPS_OLD_KEYS}`,
    )
    .action(async (file: string, backupPath: string, opts: Record<string, unknown>) => {
      const backup = await readHeaderBackup(backupPath);
      const info = describeBackup(backupPath, backup);
      let target: RestoreTarget;
      // Locked as the restore will be, so a mounted volume is refused (exit 5) before the
      // question; the restore itself locks again before it reads the header (SPEC §9.2).
      const opened = await openContainer(file, { readOnly: true, lock: 'exclusive' });
      try {
        target = await planRestoreTarget(opened.storage, backup); // BACKUP_MISMATCH: nothing written
      } finally {
        await closeContainer(opened);
      }
      for (const line of describeTarget(file, target)) {
        note(target.kind === 'match' ? line : `WARNING: ${line}`);
      }
      const now = target.current?.fields.keyslots.flatMap((s, i) =>
        s.state === 'active' ? [i] : [],
      );
      const slots = (info.activeKeyslots as number[]).join(', ');
      note(
        `the backup is at seqid ${backup.fields.seqid} with keyslots ${slots}` +
          (now
            ? `; ${file} is at seqid ${target.current!.fields.seqid} with keyslots ${now.join(', ')}`
            : '') +
          '. Keys added or changed since the backup stop working; removed ones work again.',
      );
      if (target.stale) await confirmStale(file, target, opts.forceStale === true);
      await confirmOrAbort(
        `Replace both header copies of ${file} with ${backupPath}?`,
        opts.yes === true,
      );
      await restoreHeaderBackup(file, backup, { allowStale: target.stale !== undefined });
      if (opts.json) outJson({ path: file, restored: true, target: target.kind, ...info });
      else
        out(
          `restored both header copies of ${file} from ${backupPath} (seqid ${backup.fields.seqid}, keyslots ${slots})`,
        );
    });
}

/** What a user types to restore a stale backup (SPEC §13.4 precondition 4). */
export const STALE_PHRASE = 'restore stale backup';

/**
 * SPEC §13.4 precondition 4: a stale backup is refused (`BACKUP_STALE`, exit 4) unless the user
 * forces it for this case: `--force-stale`, or the typed phrase on a terminal. A plain `--yes`
 * is not enough: it would let scripts written for matching backups destroy access.
 */
async function confirmStale(file: string, target: RestoreTarget, force: boolean): Promise<void> {
  const stale = target.stale!;
  note(
    `WARNING: the backup is stale: ${stale.reason}. After restoring it the volume will not ` +
      'decrypt (mount finds no filesystem) until a current header is restored.',
  );
  if (force) return;
  if (!isInteractive()) throw staleBackupError(file, stale);
  try {
    await confirmPhrase(`Restore the stale backup onto ${file}?`, STALE_PHRASE);
  } catch (err) {
    if (err instanceof CryptainerError && err.code === 'ABORTED') {
      throw staleBackupError(file, stale);
    }
    throw err;
  }
}
