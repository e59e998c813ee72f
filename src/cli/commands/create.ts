/** `cryptainer create FILE --size SIZE`: make a new encrypted container (SPEC §9.1). */
import { type Command, Option } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { formatUuid } from '../../../volume-format/header.js';
import { formatVolume } from '../../drive/format.js';
import {
  FILESYSTEM_NAMES,
  type FilesystemKind,
  checkFilesystemSize,
} from '../../drive/filesystems/index.js';
import { createVolume } from '../../volume/create.js';
import type { Volume } from '../../volume/volume.js';
import { type NewKeyOptionValues, addKdfOptions, kdfChoiceFrom } from '../key-options.js';
import { note, out, outJson, progress } from '../output.js';
import { addSecretOptions, secretFrom } from '../secret-options.js';
import { parseSize } from '../sizes.js';
import { kdfSummary } from './info.js';

/**
 * Make the filesystem inside the new volume (through the encrypted drive, see
 * src/drive/format.ts) while it still has its temporary name: createVolume moves it to the
 * target only afterwards, so a failed or interrupted mkfs leaves the target as it was.
 */
function filesystemStep(
  filesystem: FilesystemKind,
): ((volume: Volume) => Promise<void>) | undefined {
  if (filesystem === 'none') return undefined;
  return async (volume) => {
    if (filesystem === 'ext4' && process.getuid?.() !== 0) {
      note('note: mounting ext4 later needs root (NTFS volumes mount as a normal user)');
    }
    await formatVolume(volume, filesystem, { log: note });
  };
}

/** Signals that stop a create: the unfinished temporary file is removed (SPEC §9.1). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

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
        .choices([...FILESYSTEM_NAMES, 'none'])
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
      const filesystem = opts.filesystem as FilesystemKind;
      const controller = new AbortController();
      const onSignal = (sig: NodeJS.Signals): void => {
        if (controller.signal.aborted) return; // already stopping (within a moment)
        controller.abort(sig);
        bar.done();
        note(`${sig}: stopping, removing the unfinished volume`);
      };
      for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
      if (kdfChoice.kdfTuning !== undefined) note('measuring this machine to tune Argon2id...');
      try {
        const prepare = filesystemStep(filesystem);
        const volume = await createVolume(file, {
          ...secret,
          sizeBytes,
          sectorSize: Number(opts.sectorSize),
          ...kdfChoice,
          force: opts.force === true,
          onProgress: bar.update,
          signal: controller.signal,
          onStaleTemp: (t) =>
            note(
              t.error === null
                ? `removed ${t.path}, an unfinished volume from an earlier create (${t.why})`
                : `cannot remove ${t.path}, an unfinished volume from an earlier create ` +
                    `(${t.why}): ${t.error}`,
            ),
          ...(prepare
            ? {
                prepare: async (v: Volume) => {
                  bar.done(); // the fill is over: mkfs's messages start on a clean line
                  await prepare(v);
                },
              }
            : {}),
        });
        bar.done();
        const header = volume.header;
        await volume.close();
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
        for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
        bar.done();
        if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
      }
    },
  );
}
