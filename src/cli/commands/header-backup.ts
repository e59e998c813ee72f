/**
 * `cryptainer header-backup FILE BACKUP` writes a header backup (SPEC §13);
 * `cryptainer header-backup --verify BACKUP [FILE]` checks one without restoring it.
 */
import type { Command } from 'commander';
import { UsageError } from '../../../volume-format/errors.js';
import type { HeaderBackup } from '../../../volume-format/backup.js';
import { formatUuid, keyGenerationOf } from '../../../volume-format/header.js';
import { closeContainer, openContainer } from '../../io/container-file.js';
import {
  type RestoreTarget,
  planRestoreTarget,
  readHeaderBackup,
  staleBackupError,
  writeHeaderBackup,
} from '../../volume/backup.js';
import { note, out, outJson } from '../output.js';

/** The security fact README and --help state about backups and old secrets. */
export const BACKUP_KEEPS_OLD_KEYS =
  'note: a header backup keeps every keyslot it holds: passphrases and keyfiles that were ' +
  'valid when it was made still unlock the volume after restoring it, even if they were ' +
  'changed or removed since. Destroy old backups after changing keys.';

/** {@link BACKUP_KEEPS_OLD_KEYS} wrapped for --help output. */
export const BACKUP_KEEPS_OLD_KEYS_HELP = wrapText(BACKUP_KEEPS_OLD_KEYS, 92);

/** Break `text` into lines of at most `width` characters at spaces. */
function wrapText(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** Summary of a backup for text and JSON output. */
export function describeBackup(path: string, backup: HeaderBackup): Record<string, unknown> {
  const f = backup.fields;
  return {
    backup: path,
    uuid: formatUuid(f.uuid),
    seqid: f.seqid,
    keyGeneration: keyGenerationOf(f),
    sectorSize: f.sectorSize,
    dataOffset: f.dataOffset,
    dataSize: f.dataSize,
    activeKeyslots: f.keyslots.flatMap((s, i) => (s.state === 'active' ? [i] : [])),
  };
}

/** Text description of how a backup relates to a container. */
export function describeTarget(file: string, target: RestoreTarget): string[] {
  if (target.kind === 'match') {
    const f = target.current!.fields;
    const lines = [
      `matches ${file}: same uuid and layout (the volume's header is at seqid ${f.seqid}, ` +
        `key generation ${keyGenerationOf(f)})`,
    ];
    if (target.stale) lines.push(`the backup is STALE: ${target.stale.reason}`);
    return lines;
  }
  const lines = [
    `${file} has no valid header (${target.headerError?.message ?? 'unknown'}), ` +
      'so the backup cannot be matched to it by uuid, nor checked against its key generation; ' +
      'its size fits the backup',
  ];
  for (const u of target.otherUuids) {
    lines.push(`a damaged header copy in ${file} names another volume: uuid ${formatUuid(u)}`);
  }
  return lines;
}

/** Register the command. */
export function registerHeaderBackup(program: Command): void {
  program
    .command('header-backup')
    .description('save both header copies to a backup file (mode 0600, never overwritten)')
    .argument('<file>', 'container file (with --verify: the backup file)')
    .argument('[backup]', 'backup file to create (with --verify: optional container to match)')
    .option('--verify', 'check a backup file (and that it belongs to FILE) without restoring')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
  cryptainer header-backup FILE BACKUP       write a backup of FILE's header
  cryptainer header-backup --verify BACKUP [FILE]

${BACKUP_KEEPS_OLD_KEYS_HELP}
Keep backups as safe as the data: the backup plus any passphrase it knows decrypts the volume.`,
    )
    .action(async (first: string, second: string | undefined, opts: Record<string, unknown>) => {
      if (opts.verify) {
        await verify(first, second, opts.json === true);
        return;
      }
      if (second === undefined) {
        throw new UsageError('USAGE', 'header-backup: missing BACKUP argument (the file to write)');
      }
      const backup = await writeHeaderBackup(first, second);
      const info = describeBackup(second, backup);
      if (opts.json) outJson({ path: first, ...info });
      else {
        out(
          `wrote header backup of ${first} to ${second} (uuid ${info.uuid as string}, ` +
            `seqid ${backup.fields.seqid}, keyslots ${(info.activeKeyslots as number[]).join(', ')})`,
        );
      }
      note(BACKUP_KEEPS_OLD_KEYS);
    });
}

async function verify(backupPath: string, file: string | undefined, json: boolean): Promise<void> {
  const backup = await readHeaderBackup(backupPath);
  const info = describeBackup(backupPath, backup);
  let target: RestoreTarget | undefined;
  if (file !== undefined) {
    // Reads only the header: no lock, so it works on a mounted volume (SPEC §9.2).
    const opened = await openContainer(file, { readOnly: true, lock: 'none' });
    try {
      target = await planRestoreTarget(opened.storage, backup); // BACKUP_MISMATCH: another volume
    } finally {
      await closeContainer(opened);
    }
  }
  if (json) {
    outJson({
      ...info,
      intact: true,
      ...(file !== undefined
        ? {
            path: file,
            matches: target!.kind === 'match' ? true : 'unknown',
            stale: target!.stale
              ? target!.stale.reason
              : target!.kind === 'match'
                ? false
                : 'unknown',
          }
        : {}),
    });
  } else {
    out(
      `${backupPath}: intact header backup of volume ${info.uuid as string} ` +
        `(seqid ${backup.fields.seqid}, key generation ${info.keyGeneration as number}, ` +
        `keyslots ${(info.activeKeyslots as number[]).join(', ')})`,
    );
    if (file !== undefined) for (const line of describeTarget(file, target!)) out(line);
  }
  // SPEC §13.4: a stale backup would be refused by header-restore; say so with its exit code.
  if (target?.stale) throw staleBackupError(file!, target.stale);
}
