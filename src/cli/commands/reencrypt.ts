/**
 * `cryptainer reencrypt FILE` (alias `rekey`): re-encrypt every sector under a new master key
 * (SPEC §15), like `cryptsetup reencrypt`. Asks the secret of every keyslot to keep, since each
 * keyslot wraps the master key itself; running it again on an interrupted volume resumes.
 */
import { type Command, Option } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { CryptainerError, UsageError } from '../../../volume-format/errors.js';
import { isReencrypting } from '../../../volume-format/reencrypt-state.js';
import { inspectVolume } from '../../volume/open.js';
import { type ReencryptReport, resumeReencrypt, startReencrypt } from '../../volume/reencrypt.js';
import type { UnlockSecret } from '../../volume/secret.js';
import { formatSize, note, out, outJson } from '../output.js';
import { confirmOrAbort, getPassphrase, isInteractive } from '../prompt.js';
import { parsePositiveInt, parseSize } from '../sizes.js';

interface ReencryptOptionValues {
  keepSlot?: number[];
  passphraseFile?: string[];
  keyFile?: string[];
  slotKeyFile?: string[];
  keyslot?: number;
  resilience?: 'checksum' | 'journal';
  segmentSize?: string;
  yes?: boolean;
  json?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseSlot(text: string): number {
  const n = text.trim() === '0' ? 0 : parsePositiveInt(text, 'keyslot');
  if (n > 7) throw new UsageError('USAGE', `keyslot "${text}": must be 0 to 7`);
  return n;
}

/** Register the command. */
export function registerReencrypt(program: Command): void {
  const cmd = program
    .command('reencrypt')
    .alias('rekey')
    .description(
      're-encrypt every sector under a new master key (all kept passphrases keep working); ' +
        'run it again to resume an interrupted re-encryption',
    )
    .argument('<file>', 'container file')
    .addOption(
      new Option(
        '--keep-slot <n>',
        'keep only this keyslot (repeatable); every other keyslot is removed',
      ).argParser((v, prev: number[] | undefined) => [...(prev ?? []), parseSlot(v)]),
    )
    .option(
      '--passphrase-file <path>',
      'passphrase of the next kept keyslot, in slot order (repeatable; "-" reads stdin); ' +
        'when resuming, the passphrase of any kept keyslot',
      collect,
    )
    .option(
      '--key-file <path>',
      'keyfile for the only kept keyslot, or for the unlock when resuming (repeatable)',
      collect,
    )
    .option('--slot-key-file <n:path>', 'keyfile for keyslot n (repeatable)', collect)
    .addOption(
      new Option('--keyslot <n>', 'when resuming: try only this keyslot').argParser(parseSlot),
    )
    .addOption(
      new Option(
        '--resilience <mode>',
        'crash protection: checksum (default; journals 16 bytes per 512) or journal (journals ' +
          'the old ciphertext: survives any torn write, slower)',
      ).choices(['checksum', 'journal']),
    )
    .addOption(new Option('--segment-size <size>', 'bytes per segment').hideHelp())
    .option('--yes', 'remove keyslots left without a passphrase without asking')
    .option('--json', 'print the result as JSON');
  cmd.action(async (file: string, opts: ReencryptOptionValues) => {
    const choice = await inspectVolume(file);
    const fields = choice.fields;
    const resuming = isReencrypting(fields);
    const segmentBytes =
      opts.segmentSize !== undefined ? parseSize(opts.segmentSize, 'segment size') : undefined;
    const run = {
      ...(opts.resilience !== undefined ? { resilience: opts.resilience } : {}),
      ...(segmentBytes !== undefined ? { segmentBytes } : {}),
    };
    const secrets: UnlockSecret[] = [];
    const controller = new AbortController();
    const bar = progressBar(`re-encrypting ${file}`);
    const onSigint = () => {
      if (controller.signal.aborted) {
        // A second Ctrl-C: stop now. Every point is crash-safe (SPEC §15.6), so this is too.
        process.off('SIGINT', onSigint);
        bar.done();
        note(`interrupted: run \`cryptainer reencrypt ${file}\` to resume`);
        process.kill(process.pid, 'SIGINT');
        return;
      }
      controller.abort();
      bar.done();
      note('stopping after the segment in flight (Ctrl-C again to stop at once; both are safe)');
    };
    const started = Date.now();
    try {
      let report: ReencryptReport;
      if (resuming) {
        if (opts.keepSlot !== undefined) {
          throw new UsageError(
            'USAGE',
            'the keyslots to keep were chosen when the re-encryption started: resume without --keep-slot',
          );
        }
        const passphrase = await getPassphrase({
          label: `Passphrase for ${file} (resuming the re-encryption)`,
          ...(opts.passphraseFile?.[0] !== undefined ? { file: opts.passphraseFile[0] } : {}),
          allowEmpty: (opts.keyFile ?? []).length > 0,
        });
        const secret = { passphrase, keyfiles: opts.keyFile ?? [] };
        secrets.push(secret);
        note(`resuming the re-encryption of ${file}`);
        process.on('SIGINT', onSigint);
        report = await resumeReencrypt(file, {
          ...secret,
          ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
          ...run,
          signal: controller.signal,
          onProgress: bar.update,
        });
      } else {
        const keep = await collectSlotSecrets(file, fields.keyslots, opts, secrets);
        process.on('SIGINT', onSigint);
        report = await startReencrypt(file, {
          keep,
          ...run,
          signal: controller.signal,
          onProgress: bar.update,
        });
      }
      bar.done();
      printReport(file, report, (Date.now() - started) / 1000, opts.json === true);
    } finally {
      process.off('SIGINT', onSigint);
      bar.done();
      for (const s of secrets) if (s.passphrase instanceof Uint8Array) wipe(s.passphrase);
    }
  });
}

/**
 * The secret of every keyslot to keep: `--keep-slot` chooses them (default: every active
 * slot); `--passphrase-file` options are taken in slot order, then a prompt per slot on a
 * terminal (an empty answer removes the slot, after confirmation), or one stdin line per slot.
 */
async function collectSlotSecrets(
  file: string,
  keyslots: { state: string }[],
  opts: ReencryptOptionValues,
  secrets: UnlockSecret[],
): Promise<Map<number, UnlockSecret>> {
  const active = keyslots.flatMap((s, i) => (s.state === 'active' ? [i] : []));
  const explicit = opts.keepSlot !== undefined;
  const candidates = explicit ? [...new Set(opts.keepSlot)].sort((a, b) => a - b) : active;
  for (const i of candidates) {
    if (!active.includes(i)) {
      throw new UsageError(
        'NO_KEYSLOT',
        `keyslot ${i} is not in use (active: ${active.join(', ')})`,
      );
    }
  }
  if ((opts.keyFile ?? []).length > 0 && candidates.length > 1) {
    throw new UsageError(
      'USAGE',
      `--key-file is ambiguous with ${candidates.length} keyslots to keep: use --slot-key-file N:PATH`,
    );
  }
  const slotKeyFiles = new Map<number, string[]>();
  for (const spec of opts.slotKeyFile ?? []) {
    const m = /^(\d):(.+)$/.exec(spec);
    if (!m) throw new UsageError('USAGE', `--slot-key-file "${spec}": expected N:PATH`);
    const slot = parseSlot(m[1]!);
    slotKeyFiles.set(slot, [...(slotKeyFiles.get(slot) ?? []), m[2]!]);
  }
  const files = opts.passphraseFile ?? [];
  const interactive = isInteractive();
  const keep = new Map<number, UnlockSecret>();
  const unanswered: number[] = [];
  let next = 0;
  for (const i of candidates) {
    const keyfiles = [
      ...(slotKeyFiles.get(i) ?? []),
      ...(candidates.length === 1 ? (opts.keyFile ?? []) : []),
    ];
    const fromFile = files[next++];
    const mayRemove = !explicit && interactive && fromFile === undefined;
    const passphrase = await getPassphrase({
      label: `Passphrase for keyslot ${i} of ${file}${mayRemove ? ' (empty: remove this keyslot)' : ''}`,
      ...(fromFile !== undefined ? { file: fromFile } : {}),
      allowEmpty: true,
    });
    if (passphrase.length === 0 && keyfiles.length === 0) {
      if (mayRemove) {
        unanswered.push(i);
        continue;
      }
      throw new UsageError(
        'USAGE',
        `keyslot ${i}: no passphrase given` +
          (explicit
            ? ' (it was chosen with --keep-slot)'
            : `: give one per active keyslot in slot order (${active.join(', ')}), ` +
              'or choose the keyslots to keep with --keep-slot'),
      );
    }
    const secret = { passphrase, keyfiles };
    secrets.push(secret);
    keep.set(i, secret);
  }
  if (keep.size === 0) {
    throw new UsageError('NO_KEYSLOT', 'no keyslot would remain: give at least one passphrase');
  }
  if (unanswered.length > 0) {
    await confirmOrAbort(
      `Keyslot(s) ${unanswered.join(', ')} will be removed: their passphrases will stop working.`,
      opts.yes === true,
    );
  }
  const dropped = active.filter((i) => !keep.has(i));
  if (dropped.length > 0) note(`keyslot(s) ${dropped.join(', ')} will be removed`);
  return keep;
}

function printReport(file: string, r: ReencryptReport, seconds: number, json: boolean): void {
  const bytes = (r.sectorsDone - r.startedAtSector) * r.sectorSize;
  // The rate of the data work alone: unlocking and rewrapping keyslots take seconds on purpose.
  const rate = r.dataSeconds > 0 ? bytes / r.dataSeconds : 0;
  const pct = Math.floor((100 * r.sectorsDone) / r.sectorCount);
  if (json) {
    outJson({
      path: file,
      finished: r.finished,
      sectorsDone: r.sectorsDone,
      sectorCount: r.sectorCount,
      resilience: r.resilience,
      keptSlots: r.keptSlots,
      removedSlots: r.removedSlots,
      recovered: r.recovered,
      seconds,
      dataSeconds: r.dataSeconds,
      bytesPerSecond: Math.round(rate),
    });
  } else {
    if (r.recovered) {
      const s = r.recovered;
      note(
        `recovered the interrupted segment (sectors ${s.firstSector}..` +
          `${s.firstSector + s.sectorCount - 1}, ${s.resilience})`,
      );
    }
    if (r.finished) {
      out(
        `re-encrypted ${file} under a new master key: ${formatSize(bytes)} in ` +
          `${seconds.toFixed(1)} s (data ${r.dataSeconds.toFixed(1)} s, ` +
          `${formatSize(Math.round(rate))}/s)` +
          (r.keptSlots.length > 0 ? `; keyslots kept: ${r.keptSlots.join(', ')}` : '') +
          (r.removedSlots.length > 0 ? `; removed: ${r.removedSlots.join(', ')}` : ''),
      );
    }
  }
  if (!r.finished) {
    throw new CryptainerError(
      'ABORTED',
      `re-encryption of ${file} stopped at ${pct}% (the volume is consistent): ` +
        `run \`cryptainer reencrypt ${file}\` to resume`,
    );
  }
}

/** A progress line on stderr (terminal only): percentage, bytes, rate of this run, ETA. */
function progressBar(label: string): {
  update: (done: number, total: number) => void;
  done: () => void;
} {
  const tty = process.stderr.isTTY === true;
  let start = 0; // set at the first update: prompts and Argon2 come before
  let first: number | null = null;
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      if (!tty) return;
      const now = Date.now();
      if (first === null) {
        first = done;
        start = now;
      }
      if (now - last < 200 && done < total) return;
      last = now;
      const secs = Math.max((now - start) / 1000, 0.001);
      const rate = (done - first) / secs;
      const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0;
      const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
      shown = true;
      process.stderr.write(
        `\r\x1b[K${label}: ${pct}% ${formatSize(done)} of ${formatSize(total)}, ` +
          `${formatSize(Math.round(rate))}/s, ETA ${eta} s`,
      );
    },
    done() {
      if (tty && shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}
