// Issue 14 item 2, SPEC §9.2: every entry point takes the volume's lock before it reads the
// first header byte. A key change that races an open must either wait its turn (VOLUME_BUSY)
// or be seen by the open; it must never land between the open's header read and its lock,
// which would let the open unlock with a key the file no longer accepts (and a later header
// repair write the stale keyslots back). A probe storage runs the racing key change right
// after the open's first header read returns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { FileStorage } from '../../src/io/file-storage.js';
import type { Storage } from '../../src/io/storage.js';
import { createVolume, openVolume } from '../../src/index.js';
import {
  restoreHeaderBackup,
  writeHeaderBackup,
  readHeaderBackup,
} from '../../src/volume/backup.js';
import { changeKeyslot } from '../../src/volume/keyslots.js';
import { repairVolume } from '../../src/volume/repair.js';
import { startReencrypt } from '../../src/volume/reencrypt.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const OLD = { passphrase: 'old-pass' };
const NEW = { passphrase: 'new-pass' };

/** Storage that calls `race` once, after its first read has returned the bytes. */
class RaceAfterFirstRead implements Storage {
  private raced = false;
  constructor(
    private readonly inner: Storage,
    private readonly race: () => Promise<void>,
  ) {}
  private async after(): Promise<void> {
    if (this.raced) return;
    this.raced = true;
    await this.race();
  }
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const data = await this.inner.readAt(offset, length);
    await this.after();
    return data;
  }
  async readInto(offset: number, buffer: Uint8Array): Promise<number> {
    const data = await this.inner.readAt(offset, buffer.length);
    buffer.set(data);
    await this.after();
    return data.length;
  }
  writeAt(offset: number, data: Uint8Array): Promise<void> {
    return this.inner.writeAt(offset, data);
  }
  sync(): Promise<void> {
    return this.inner.sync();
  }
  syncData(): Promise<void> {
    return this.inner.syncData();
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

let n = 0;
async function fresh(): Promise<string> {
  const path = join(dir, `v${n++}.img`);
  const v = await createVolume(path, { ...OLD, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
  return path;
}

/** Change OLD to NEW in `path`; returns 'changed' or the error code. */
async function changeKey(path: string): Promise<string> {
  try {
    const v = await openVolume(path, OLD);
    try {
      await changeKeyslot(v, v.unlockedSlot, NEW, { kdf: TEST_KDF });
    } finally {
      await v.close();
    }
    return 'changed';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const r = await p;
    await (r as { close?: () => Promise<void> } | null)?.close?.();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** Run `entry` with a storage that races a key change after its first header read. */
async function race(entry: (path: string, storage: Storage) => Promise<unknown>): Promise<void> {
  const path = await fresh();
  let raced = '';
  const storage = new RaceAfterFirstRead(await FileStorage.open(path), async () => {
    raced = await changeKey(path);
  });
  const result = await outcome(entry(path, storage));
  assert.is(raced, 'VOLUME_BUSY', 'the key change waits for the lock the entry point holds');
  assert.is(result, 'ok', 'the entry point itself succeeds with the key it read');
  // Nothing lost: the file still opens with exactly the old key.
  assert.is(await outcome(openVolume(path, { ...OLD, readOnly: true })), 'ok');
  assert.is(await outcome(openVolume(path, { ...NEW, readOnly: true })), 'WRONG_PASSPHRASE');
}

test('open: a key change cannot land between the header read and the lock', async () => {
  await race((path, storage) => openVolume(path, { ...OLD, storage }));
});

test('read-only open (shared lock): the key change still waits', async () => {
  await race((path, storage) => openVolume(path, { ...OLD, readOnly: true, storage }));
});

test('repair: a key change cannot land between the header read and the lock', async () => {
  await race((path, storage) => repairVolume(path, { ...OLD, storage }));
});

test('reencrypt: a key change cannot land between the header read and the lock', async () => {
  await race((path, storage) => startReencrypt(path, { keep: new Map([[0, OLD]]), storage }));
});

test('header restore: a key change cannot land between the target check and the lock', async () => {
  const backupPath = join(dir, `backup-${n}`);
  await race(async (path, storage) => {
    await writeHeaderBackup(path, backupPath);
    const backup = await readHeaderBackup(backupPath);
    return restoreHeaderBackup(path, backup, { storage });
  });
});

test.after(cleanup);
test.run();
