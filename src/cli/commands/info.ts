/**
 * `cryptainer info FILE [--json] [--dump-master-key]`: header health of both copies, layout and
 * keyslots, without any secret; with `--dump-master-key`, the master key after a passphrase
 * and a confirmation (as `cryptsetup luksDump --dump-volume-key`).
 */
import type { Command } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { formatUuid, keyGenerationOf } from '../../../volume-format/header.js';
import type { FeatureFlags } from '../../../volume-format/features.js';
import { reencryptProgress } from '../../../volume-format/reencrypt-state.js';
import type { HeaderChoice } from '../../../volume-format/header-copies.js';
import type { Keyslot } from '../../../volume-format/keyslot.js';
import { inspectVolume, openVolume } from '../../volume/open.js';
import { confirmOrAbort } from '../prompt.js';
import { formatSize, note, out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';

/** One-line description of a keyslot's KDF cost. */
export function kdfSummary(slot: Keyslot): string {
  if (slot.state !== 'active') return 'inactive';
  const { timeCost, memoryKiB, parallelism } = slot.kdf;
  return `argon2id t=${timeCost} m=${formatSize(memoryKiB * 1024)} p=${parallelism}`;
}

/** A feature set as `info` prints it: hexadecimal with its `0x` prefix (SPEC §7 writes `0x2`). */
export function formatFeatureBits(bits: bigint): string {
  return `0x${bits.toString(16)}`;
}

/** The three feature sets in the form of {@link formatFeatureBits}. */
function featureStrings(features: FeatureFlags): Record<keyof FeatureFlags, string> {
  return {
    incompat: formatFeatureBits(features.incompat),
    roCompat: formatFeatureBits(features.roCompat),
    compat: formatFeatureBits(features.compat),
  };
}

/** The JSON shape of `info --json` (no secrets). */
export function describeVolume(path: string, choice: HeaderChoice): Record<string, unknown> {
  const f = choice.fields;
  return {
    path,
    format: 'cryptainer',
    formatVersion: 1,
    uuid: formatUuid(f.uuid),
    cipher: 'aes-xts-plain64',
    keyBits: 512,
    sectorSize: f.sectorSize,
    dataOffset: f.dataOffset,
    dataSize: f.dataSize,
    journalOffset: f.journalOffset,
    journalSize: f.journalSize,
    seqid: f.seqid,
    keyGeneration: keyGenerationOf(f),
    features: featureStrings(f.features),
    reencryption: reencryptProgress(f),
    headerCopies: Object.fromEntries(
      (['A', 'B'] as const).map((c) => [
        c,
        {
          status: choice.copies[c].status,
          seqid: choice.copies[c].seqid ?? null,
          error: choice.copies[c].error
            ? { code: choice.copies[c].error!.code, message: choice.copies[c].error!.message }
            : null,
        },
      ]),
    ),
    activeHeader: choice.winner,
    keyslots: f.keyslots.map((slot, index) =>
      slot.state === 'active'
        ? { index, state: 'active', kdf: { algorithm: 'argon2id', ...slot.kdf } }
        : { index, state: 'inactive' },
    ),
  };
}

/** Register the command. */
export function registerInfo(program: Command): void {
  const cmd = program
    .command('info')
    .description('show header health, layout and keyslots (no secret needed)')
    .argument('<file>', 'container file')
    .option('--json', 'print as JSON')
    .option('--dump-master-key', 'print the master key (asks the passphrase; keep it secret)')
    .option('--yes', 'do not ask for confirmation');
  addSecretOptions(cmd);
  cmd.action(async (file: string, opts: SecretOptionValues & Record<string, unknown>) => {
    const choice = await inspectVolume(file);
    const info = describeVolume(file, choice);
    if (opts.dumpMasterKey) {
      await dumpMasterKey(file, opts, info);
      return;
    }
    if (opts.json) outJson(info);
    else printInfo(file, choice);
  });
}

async function dumpMasterKey(
  file: string,
  opts: SecretOptionValues & Record<string, unknown>,
  info: Record<string, unknown>,
): Promise<void> {
  note(
    'WARNING: the master key decrypts this volume without any passphrase, ' +
      'and changing passphrases does not change it. Store it like the data itself.',
  );
  await confirmOrAbort('Print the master key of ' + file + '?', opts.yes === true);
  const secret = await secretFrom(opts, `Passphrase for ${file}`);
  const volume = await openVolume(file, {
    ...secret,
    readOnly: true,
    lock: 'none', // reads only the header: works on a mounted volume (SPEC §9.2)
    ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
  });
  const key = volume.exportMasterKey();
  try {
    const hex = Buffer.from(key).toString('hex');
    if (opts.json) outJson({ ...info, masterKey: hex, unlockedKeyslot: volume.unlockedSlot });
    else {
      out(`uuid:        ${info.uuid as string}`);
      out(`keyslot:     ${volume.unlockedSlot}`);
      out(`master key:  ${hex}`);
    }
  } finally {
    wipe(key);
    if (secret.passphrase instanceof Uint8Array) wipe(secret.passphrase);
    await volume.close();
  }
}

function printInfo(file: string, choice: HeaderChoice): void {
  const f = choice.fields;
  out(`path:          ${file}`);
  out(`format:        cryptainer v1`);
  out(`uuid:          ${formatUuid(f.uuid)}`);
  out(`cipher:        aes-xts-plain64, 512-bit key, ${f.sectorSize}-byte sectors`);
  out(`data area:     offset ${f.dataOffset}, size ${f.dataSize} (${formatSize(f.dataSize)})`);
  out(`seqid:         ${f.seqid}`);
  out(`key generation: ${keyGenerationOf(f)}`);
  for (const c of ['A', 'B'] as const) {
    const r = choice.copies[c];
    const detail =
      r.status === 'corrupt' ? `${r.error?.code}: ${r.error?.message}` : `seqid ${r.seqid}`;
    out(`header ${c}:      ${r.status} (${detail})${choice.winner === c ? ' [active]' : ''}`);
  }
  const feats = f.features;
  const none = feats.incompat === 0n && feats.roCompat === 0n && feats.compat === 0n;
  const s = featureStrings(feats);
  out(
    `features:      ${none ? 'none' : `incompat ${s.incompat} ro_compat ${s.roCompat} compat ${s.compat}`}`,
  );
  const re = reencryptProgress(f);
  if (re) {
    out(
      `reencryption:  unfinished, ${re.percent}% (${re.sectorsDone} of ${re.sectorCount} sectors, ` +
        `${re.resilience}); resume: cryptainer reencrypt ${file}`,
    );
  }
  out('keyslots:');
  f.keyslots.forEach((slot, i) => out(`  ${i}: ${kdfSummary(slot)}`));
}
