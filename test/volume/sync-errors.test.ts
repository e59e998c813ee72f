// A write error can surface only at fsync (delayed allocation, thin provisioning, NFS): the
// host accepts the writes, then fdatasync reports ENOSPC. Re-encryption allocates the journal
// area and flushes it before the header update that sets its flag (SPEC §15.6 step S0), so
// such an error stops it with the volume as it was, not marked as re-encrypting.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVolume, openVolume } from '../../src/index.js';
import { FileStorage } from '../../src/io/file-storage.js';
import type { Storage } from '../../src/io/storage.js';
import { startReencrypt } from '../../src/volume/reencrypt.js';
import { CryptainerError, IoError } from '../../volume-format/errors.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

/** Writes succeed; the first sync (fsync or fdatasync) fails with ENOSPC, later ones work. */
class SyncFailsOnce implements Storage {
  syncs = 0;
  constructor(private readonly inner: Storage) {}
  readAt(offset: number, length: number) {
    return this.inner.readAt(offset, length);
  }
  writeAt(offset: number, data: Uint8Array) {
    return this.inner.writeAt(offset, data);
  }
  private async fail(): Promise<void> {
    if (this.syncs++ === 0) {
      throw new IoError('NO_SPACE', 'flushing: ENOSPC (reported at writeback)');
    }
  }
  async sync() {
    await this.fail();
    await this.inner.sync();
  }
  async syncData() {
    await this.fail();
    await this.inner.syncData();
  }
  size() {
    return this.inner.size();
  }
  truncate(length: number) {
    return this.inner.truncate(length);
  }
  close() {
    return this.inner.close();
  }
}

test('reencrypt: ENOSPC reported by the first flush leaves the volume unchanged', async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const path = join(dir, 'v.img');
    const secret = { passphrase: 'sync errors' };
    const v = await createVolume(path, { ...secret, sizeBytes: 256 * 1024, kdf: TEST_KDF });
    const { journalOffset, dataOffset } = v.header;
    await v.close();
    const before = readFileSync(path);
    const storage = new SyncFailsOnce(await FileStorage.open(path));
    let code = 'ok';
    try {
      await startReencrypt(path, { keep: new Map([[0, secret]]), storage });
    } catch (err) {
      code = err instanceof CryptainerError ? err.code : `escaped ${String(err)}`;
    }
    assert.is(code, 'NO_SPACE');
    const after = readFileSync(path);
    assert.ok(
      after.subarray(0, journalOffset).equals(before.subarray(0, journalOffset)),
      'both header copies are as they were (no re-encryption flag)',
    );
    assert.ok(after.subarray(dataOffset).equals(before.subarray(dataOffset)), 'data untouched');
    const reopened = await openVolume(path, secret); // not REENCRYPT_IN_PROGRESS
    await reopened.close();
  } finally {
    cleanup();
  }
});

test.run();
