/**
 * `cryptainer mount FILE MOUNTPOINT`: unlock a volume and mount the filesystem inside it. A
 * server process (our own CLI in `__serve` mode, registered here too) unlocks and serves it;
 * by default it is detached and the command returns once the mount is verified, with
 * `--foreground` the command stays until the volume is unmounted or interrupted.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { wipe } from '../../../crypto/bytes.js';
import { MountError, UsageError } from '../../../volume-format/errors.js';
import { checkMountpoint } from '../../drive/filesystem.js';
import { FILESYSTEM_NAMES } from '../../drive/filesystems/index.js';
import { SERVE_COMMAND, runServeChild, startServer } from '../../drive/launch.js';
import type { MountRequest } from '../../drive/mount.js';
import { type MountRecord, createEntryDir, removeEntry } from '../../drive/registry.js';
import { checkNotMounted, unmountRecord } from '../../drive/unmount.js';
import { ioErrorFrom } from '../../io/file-storage.js';
import { probeLock } from '../../io/lock.js';
import { inspectVolume } from '../../volume/open.js';
import { note, out, outJson } from '../output.js';
import { type SecretOptionValues, addSecretOptions, secretFrom } from '../secret-options.js';

interface MountOptions extends SecretOptionValues {
  readOnly?: boolean;
  foreground?: boolean;
  filesystem: MountRequest['filesystem'];
  json?: boolean;
}

function realPath(path: string, what: string): string {
  try {
    return realpathSync(path);
  } catch (err) {
    if (what === 'mountpoint') {
      throw new UsageError('USAGE', `mountpoint ${path}: no such directory`);
    }
    throw ioErrorFrom(err, `opening ${path}`);
  }
}

function describe(record: MountRecord): string {
  const mode = record.readOnly ? 'read-only' : 'read-write';
  const what = record.filesystem === 'none' ? 'raw drive' : record.filesystem;
  return `mounted ${record.container} at ${record.mountpoint} (${what}, ${mode})`;
}

/** Register `mount` and the hidden `__serve`. */
export function registerMount(program: Command): void {
  const cmd = program
    .command('mount')
    .description('unlock a volume and mount its filesystem (ext4 needs root; NTFS does not)')
    .argument('<file>', 'container file')
    .argument('<mountpoint>', 'an existing empty directory')
    .option('--read-only', 'mount read-only end to end (volume, drive and filesystem)')
    .option('--foreground', 'stay attached, serving until unmounted or interrupted (Ctrl-C)')
    .addOption(
      new Option('--filesystem <kind>', 'what to mount: detect it, or only the raw drive')
        .choices(['auto', ...FILESYSTEM_NAMES, 'none'])
        .default('auto'),
    )
    .option('--json', 'print the mount as JSON');
  addSecretOptions(cmd);
  cmd.action(async (file: string, mountpoint: string, opts: MountOptions) => {
    const container = realPath(file, 'container');
    const target = realPath(mountpoint, 'mountpoint');
    await inspectVolume(container); // a damaged header fails before any passphrase is asked
    for (const n of await checkNotMounted(container)) note(`cryptainer: ${n}`);
    await checkMountpoint(target);
    // Busy (open in another command, through any name) fails before the passphrase is asked;
    // the serving process takes the lock it keeps (SPEC §9.2).
    await probeLock(container, opts.readOnly ? 'shared' : 'exclusive');
    const secret = await secretFrom(opts, `Passphrase for ${file}`);
    const passphrase =
      secret.passphrase instanceof Uint8Array ? secret.passphrase : new Uint8Array(0);
    const { id } = await createEntryDir();
    const req: MountRequest = {
      id,
      container,
      mountpoint: target,
      filesystem: opts.filesystem,
      readOnly: opts.readOnly === true,
      keyfiles: (secret.keyfiles ?? []).map((k) => resolve(k)),
      ...(opts.keyslot !== undefined ? { keyslot: opts.keyslot } : {}),
    };
    const report = (record: MountRecord): void => {
      if (opts.json) outJson(record);
      else out(describe(record));
    };
    let started;
    try {
      started = await startServer(req, passphrase, { foreground: opts.foreground === true });
    } catch (err) {
      await removeEntry(id);
      throw err;
    } finally {
      wipe(passphrase);
    }
    report(started.record);
    if (started.finished) {
      note('serving in the foreground; Ctrl-C or `cryptainer unmount` unmounts');
      const status = await started.finished;
      if (status !== 0) {
        // A server that counted lost writes, or failed its final flush, left its record and
        // last word for `unmount`: conclude here the same way (IO_ERROR naming what was lost).
        await unmountRecord(started.record);
        throw new MountError('MOUNT_FAILED', `the server exited with status ${status}`);
      }
      note(`unmounted ${started.record.mountpoint}`);
    }
  });

  program
    .command(SERVE_COMMAND, { hidden: true })
    .description('serve a mount (started by `mount`; reads its request from stdin)')
    .argument('[file]', 'container (informational)')
    .argument('[mountpoint]', 'mountpoint (informational)')
    .action(async () => {
      await runServeChild();
    });
}
