/** `cryptainer create FILE --size SIZE`: make a new encrypted container (SPEC §9.1). */
import { type Command, Option } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { formatUuid } from '../../../volume-format/header.js';
import { rm } from 'node:fs/promises';
import { formatVolume } from '../../drive/format.js';
import { type FilesystemKind, checkFilesystemSize } from '../../drive/filesystem.js';
import { createVolume } from '../../volume/create.js';
import type { Volume } from '../../volume/volume.js';
import { type NewKeyOptionValues, addKdfOptions, kdfChoiceFrom } from '../key-options.js';
import { note, out, outJson, progress } from '../output.js';
import { addSecretOptions, secretFrom } from '../secret-options.js';
import { parseSize } from '../sizes.js';
import { kdfSummary } from './info.js';

/**
 * Make the filesystem inside a just-created volume (through the encrypted drive, see
 * src/drive/format.ts), then close it. If formatting fails the new container is removed:
 * an unformatted volume is not what was asked for, and it holds no data yet.
 */
async function formatNewVolume(
  volume: Volume,
  file: string,
  filesystem: 'ext4' | 'ntfs' | 'none',
): Promise<void> {
  if (filesystem === 'none') {
    await volume.close();
    return;
  }
  try {
    if (filesystem === 'ext4' && process.getuid?.() !== 0) {
      note('note: mounting ext4 later needs root (NTFS volumes mount as a normal user)');
    }
    await formatVolume(volume, filesystem, { log: note });
  } catch (err) {
    await volume.close().catch(() => undefined);
    await rm(file, { force: true });
    throw err;
  }
  await volume.close();
}

/** Register the command. */
export function registerCreate(program: Command): void {
  const cmd = program
    .command('create')
    .description('create a new encrypted container file')
    .argument('<file>', 'container file to create (mode 0600)')
    .requiredOption('--size <size>', 'size of the encrypted drive, e.g. 64M, 10G')
    .addOption(
      new Option('--sector-size <bytes>', 'encryption sector size')
        .choices(['512', '4096'])
        .default('4096'),
    )
    .addOption(
      new Option('--filesystem <kind>', 'filesystem to make inside (through the encrypted drive)')
        .choices(['ext4', 'ntfs', 'none'])
        .default('ext4'),
    )
    .option('--force', 'replace an existing file (only once the new volume is complete)')
    .option('--json', 'print the result as JSON');
  addKdfOptions(cmd, 'tuned to this machine');
  addSecretOptions(cmd, false);
  cmd.action(
    async (file: string, opts: Record<string, string | boolean | string[] | undefined>) => {
      const sizeBytes = parseSize(opts.size as string, 'size');
      checkFilesystemSize(opts.filesystem as FilesystemKind, sizeBytes);
      // Parsed before asking for the passphrase, so a bad option fails at once.
      const kdfChoice = kdfChoiceFrom(opts as NewKeyOptionValues) ?? { kdfTuning: {} };
      const secret = await secretFrom(
        opts as { passphraseFile?: string; keyFile?: string[] },
        `New passphrase for ${file}`,
        true,
      );
      const bar = progress('filling');
      if (kdfChoice.kdfTuning !== undefined) note('measuring this machine to tune Argon2id...');
      try {
        const volume = await createVolume(file, {
          ...secret,
          sizeBytes,
          sectorSize: Number(opts.sectorSize),
          ...kdfChoice,
          force: opts.force === true,
          onProgress: bar.update,
        });
        bar.done();
        const header = volume.header;
        const filesystem = opts.filesystem as 'ext4' | 'ntfs' | 'none';
        await formatNewVolume(volume, file, filesystem);
        const slot = header.keyslots[0]!;
        const result = {
          path: file,
          uuid: formatUuid(header.uuid),
          sizeBytes: header.dataSize,
          sectorSize: header.sectorSize,
          keyslot: 0,
          kdf: slot.state === 'active' ? slot.kdf : null,
          filesystem,
        };
        if (opts.json) outJson(result);
        else {
          const fs = filesystem === 'none' ? 'no filesystem' : filesystem;
          out(`created ${file}: uuid ${result.uuid}, ${fs}, keyslot 0 (${kdfSummary(slot)})`);
        }
      } finally {
        bar.done();
        if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
      }
    },
  );
}
