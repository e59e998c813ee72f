/** `cryptainer create FILE --size SIZE`: make a new encrypted container (SPEC §9.1). */
import { type Command, Option } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { formatUuid } from '../../../volume-format/header.js';
import { createVolume } from '../../volume/create.js';
import { DEFAULT_KDF_TARGET_MS } from '../../volume/kdf-tuning.js';
import { note, out, outJson, progress } from '../output.js';
import { addSecretOptions, secretFrom } from '../secret-options.js';
import { parseMemoryKiB, parsePositiveInt, parseSize } from '../sizes.js';
import { kdfSummary } from './info.js';

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
    .option(
      '--iter-time <ms>',
      `target unlock time in milliseconds for the tuned KDF (default ${DEFAULT_KDF_TARGET_MS})`,
    )
    .option('--kdf-max-memory <size>', 'memory cap for the tuned KDF (default 1G)')
    .option('--kdf-memory <size>', 'explicit Argon2id memory (KiB, or with a unit: 256M)')
    .option('--kdf-time <n>', 'explicit Argon2id passes')
    .option('--kdf-parallelism <n>', 'explicit Argon2id lanes')
    .option('--force', 'replace an existing file (only once the new volume is complete)')
    .option('--json', 'print the result as JSON');
  addSecretOptions(cmd, false);
  cmd.action(
    async (file: string, opts: Record<string, string | boolean | string[] | undefined>) => {
      const sizeBytes = parseSize(opts.size as string, 'size');
      const explicit = opts.kdfMemory !== undefined || opts.kdfTime !== undefined;
      const parallelism =
        opts.kdfParallelism !== undefined
          ? parsePositiveInt(opts.kdfParallelism as string, 'kdf parallelism')
          : undefined;
      const secret = await secretFrom(
        opts as { passphraseFile?: string; keyFile?: string[] },
        `New passphrase for ${file}`,
        true,
      );
      const bar = progress('filling');
      if (!explicit) note('measuring this machine to tune Argon2id...');
      try {
        const volume = await createVolume(file, {
          ...secret,
          sizeBytes,
          sectorSize: Number(opts.sectorSize),
          ...(explicit
            ? {
                kdf: {
                  memoryKiB:
                    opts.kdfMemory !== undefined
                      ? parseMemoryKiB(opts.kdfMemory as string)
                      : 1048576,
                  timeCost:
                    opts.kdfTime !== undefined
                      ? parsePositiveInt(opts.kdfTime as string, 'kdf time')
                      : 4,
                  parallelism: parallelism ?? 4,
                },
              }
            : {
                kdfTuning: {
                  ...(opts.iterTime !== undefined
                    ? { targetMs: parsePositiveInt(opts.iterTime as string, 'iter time') }
                    : {}),
                  ...(opts.kdfMaxMemory !== undefined
                    ? { maxMemoryKiB: parseMemoryKiB(opts.kdfMaxMemory as string) }
                    : {}),
                  ...(parallelism !== undefined ? { parallelism } : {}),
                },
              }),
          force: opts.force === true,
          onProgress: bar.update,
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
        };
        if (opts.json) outJson(result);
        else out(`created ${file}: uuid ${result.uuid}, keyslot 0 (${kdfSummary(slot)})`);
      } finally {
        bar.done();
        if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
      }
    },
  );
}
