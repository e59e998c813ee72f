// ARCHITECTURE.md §6: crash create and a header update at every write index (whole and torn
// writes) and show the volume then opens in the old or the new state, never neither.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { deriveArgon2id } from '../../crypto/kdf.js';
import { wrapMasterKey } from '../../volume-format/keyslot.js';
import { FileStorage } from '../../src/io/file-storage.js';
import { createVolume, openVolume } from '../../src/index.js';
import { FaultStorage, SimulatedCrash } from '../helpers/fault-storage.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const OLD = 'old-passphrase';
const NEW = 'new-passphrase';

async function opens(path: string, passphrase: string): Promise<boolean> {
  try {
    const v = await openVolume(path, { passphrase });
    const text = Buffer.from(await v.read(0, 5)).toString();
    await v.close();
    assert.is(text, 'hello', 'data survives');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'WRONG_PASSPHRASE') return false;
    throw err;
  }
}

test('create: a crash at any write leaves no volume or a complete one', async () => {
  let points = 0;
  for (const torn of [false, true]) {
    for (let crashAt = 0; ; crashAt++) {
      const path = join(dir, `create-${torn}-${crashAt}.img`);
      let fault: FaultStorage | null = null;
      let crashed = false;
      try {
        const v = await createVolume(path, {
          passphrase: OLD,
          sizeBytes: 3 << 20,
          kdf: TEST_KDF,
          wrapStorage: (s) => (fault = new FaultStorage(s, crashAt, torn)),
        });
        await v.close();
      } catch (err) {
        assert.instance(err, SimulatedCrash);
        crashed = true;
      }
      if (!crashed) {
        assert.ok(fault !== null && (fault as FaultStorage).writes === crashAt);
        const v = await openVolume(path, { passphrase: OLD });
        await v.close();
        break;
      }
      points++;
      assert.not.ok(existsSync(path), 'no volume at the target after a crash');
    }
  }
  assert.not.ok(
    readdirSync(dir).some((f) => f.includes('cryptainer-tmp')),
    'temporary files removed',
  );
  console.log(`    create: ${points} crash points exercised`);
  assert.ok(points >= 8);
});

test('header update: a crash at any write opens with the old or the new key set', async () => {
  const base = join(dir, 'base.img');
  const v = await createVolume(base, { passphrase: OLD, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.write(0, Buffer.from('hello'));
  await v.close();
  let points = 0;
  let sawOld = 0;
  let sawNew = 0;
  for (const torn of [false, true]) {
    for (let crashAt = 0; ; crashAt++) {
      const path = join(dir, `update-${torn}-${crashAt}.img`);
      copyFileSync(base, path);
      const fault = new FaultStorage(await FileStorage.open(path), crashAt, torn);
      const vol = await openVolume(path, { passphrase: OLD, storage: fault });
      const salt = new Uint8Array(32).fill(7);
      const kek = await deriveArgon2id(new TextEncoder().encode(NEW), salt, TEST_KDF);
      const mk = vol.exportMasterKey();
      let crashed = false;
      try {
        await vol.updateHeader((h) => {
          h.keyslots[1] = wrapMasterKey(kek, mk, h.uuid, 1, {
            kdf: TEST_KDF,
            kdfSalt: salt,
            wrapNonce: new Uint8Array(24).fill(9),
          });
          return h;
        });
      } catch (err) {
        assert.instance(err, SimulatedCrash);
        crashed = true;
      }
      await vol.close().catch(() => undefined);
      assert.ok(await opens(path, OLD), 'the old passphrase always works');
      const hasNew = await opens(path, NEW);
      if (!crashed) {
        assert.ok(hasNew);
        break;
      }
      points++;
      if (hasNew) sawNew++;
      else sawOld++;
    }
  }
  console.log(
    `    header update: ${points} crash points (${sawOld} old state, ${sawNew} new state)`,
  );
  assert.ok(points >= 4);
  assert.ok(sawOld > 0 && sawNew > 0);
});

test.after(cleanup);
test.run();
