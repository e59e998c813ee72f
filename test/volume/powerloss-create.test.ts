// Issue 12: publishing new files under the power-loss model, data (PowerLossStorage) and names
// (DirectoryModel) together. Create (SPEC §9.1), with and without --force: at every write,
// rename, link and unlink, the target is absent (or the file --force replaces, intact) or a
// complete volume; once createVolume returned, the complete volume. Header backup (SPEC §13.2):
// the backup's name holds nothing or a complete, valid backup; once written, the backup.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { copyFileSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FileStorage } from '../../src/io/file-storage.js';
import { createVolume, openVolume } from '../../src/index.js';
import { readHeaderBackup, writeHeaderBackup } from '../../src/volume/backup.js';
import type { Volume } from '../../src/volume/volume.js';
import { isSimulatedCrash } from '../helpers/fault-storage.js';
import { DirectoryModel } from '../helpers/power-loss-dir.js';
import { BASE_SEED, type Outcome, RANDOM_STATES, plansFor } from '../helpers/power-loss.js';
import { PowerLossStorage } from '../helpers/power-loss-storage.js';
import { TEST_KDF, makeMemoryTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeMemoryTempDir();
const PASS = 'power loss passphrase';
let serial = 0;

/** Pair the data states with the name states (index by index; the shorter list repeats). */
function zip<T, U>(a: T[], b: U[]): [T, U][] {
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => [
    a[Math.min(i, a.length - 1)]!,
    b[Math.min(i, b.length - 1)]!,
  ]);
}

/** Where inode `ino` is reachable now (every pending change made), or null. */
function pathOf(ino: number, names: string[]): string | null {
  for (const n of names) {
    try {
      if (lstatSync(join(dir, n)).ino === ino) return join(dir, n);
    } catch {
      // not there
    }
  }
  return null;
}

/** Stands for the filesystem that `create` makes through the drive before the rename. */
const FILESYSTEM_MARK = Buffer.alloc(4096, 0xa5);

for (const force of [false, true]) {
  test(`create${force ? ' --force' : ''}: power loss leaves no volume (or the old file) or a complete one`, async () => {
    let points = 0;
    const counts: Record<string, number> = {};
    // Phase 'data': crash at the k-th write of the container; phase 'names': at the k-th name change.
    for (const phase of ['data', 'names'] as const) {
      for (let k = 0; ; k++) {
        const target = join(dir, `create-${serial++}.img`);
        if (force) writeFileSync(target, randomBytes(70000));
        const oldIno = force ? lstatSync(target).ino : undefined;
        const model = new DirectoryModel(
          dir,
          (n) =>
            n === basename(target) ||
            (n.includes('cryptainer-tmp') && n.includes(basename(target))),
          phase === 'names' ? k : Infinity,
        );
        let storage: PowerLossStorage | null = null;
        let volume: Volume | null = null;
        let outcome: Outcome = 'completed';
        model.install();
        try {
          volume = await createVolume(target, {
            passphrase: PASS,
            sizeBytes: 1 << 20,
            kdf: TEST_KDF,
            force,
            // What mkfs does through the drive (SPEC §9.1 step 5): this too must be durable
            // before the new name is.
            prepare: (v) => v.write(0, FILESYSTEM_MARK),
            wrapStorage: (s) =>
              (storage = new PowerLossStorage(s, phase === 'data' ? k : Infinity)),
          });
        } catch (err) {
          if (!isSimulatedCrash(err)) throw err;
          outcome = 'crashed';
        } finally {
          model.uninstall();
        }
        const pl = storage as PowerLossStorage | null;
        assert.ok(pl !== null, 'the container was written through the model');
        const dataPlans = plansFor(`create/${phase}/data`, k, pl.pendingCount);
        const namePlans = plansFor(`create/${phase}/names`, k, model.pending.length);
        for (const [dataPlan, namePlan] of zip(dataPlans, namePlans)) {
          const where = `${phase} crash point ${k} (${outcome}), states "${dataPlan.label}" / "${namePlan.label}" (CRYPTAINER_POWERLOSS_SEED=${BASE_SEED})`;
          const ino = model.persistedNames(namePlan).get(basename(target));
          let label: string;
          if (ino === undefined || ino === oldIno) {
            // No name, or the name still on the file --force replaces (never written to).
            assert.is(outcome, 'crashed', `power loss: create returned, yet no volume: ${where}`);
            label = 'old';
          } else {
            const real = pathOf(ino, readdirSync(dir));
            assert.ok(real !== null, `the new volume's inode has a name now: ${where}`);
            const state = join(dir, 'create-state.img');
            copyFileSync(real, state);
            const t = await FileStorage.open(state);
            try {
              await pl.persistTo(t, dataPlan);
            } finally {
              await t.close();
            }
            try {
              const v = await openVolume(state, { passphrase: PASS, readOnly: true });
              const first = await v.read(0, 4096);
              const rest = await v.read(4096, 4096);
              await v.close();
              assert.ok(
                Buffer.from(first).equals(FILESYSTEM_MARK),
                'a new volume holds what its filesystem step wrote',
              );
              assert.ok(
                rest.every((b) => b === 0),
                'the rest of a new volume reads as zeros',
              );
            } catch (err) {
              throw new Error(
                `power loss: create: no complete volume at the target: ${where}: ${(err as Error).message}`,
              );
            }
            label = 'new';
          }
          counts[label] = (counts[label] ?? 0) + 1;
        }
        if (volume !== null) await (volume as Volume).close();
        if (outcome === 'crashed') points++;
        else break;
      }
    }
    console.log(
      `    create${force ? ' --force' : ''}: ${points} crash points, states ${JSON.stringify(counts)}; base seed ${BASE_SEED}, ${RANDOM_STATES} random states per point`,
    );
    assert.ok(points >= 4);
  });
}

test('header backup: power loss leaves no backup or a complete one', async () => {
  const volumePath = join(dir, 'backup-source.img');
  const v = await createVolume(volumePath, { passphrase: PASS, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
  let points = 0;
  const counts: Record<string, number> = {};
  for (let k = 0; ; k++) {
    const backupPath = join(dir, `backup-${k}.hdr`);
    const model = new DirectoryModel(
      dir,
      (n) =>
        n === basename(backupPath) ||
        (n.includes('cryptainer-tmp') && n.includes(basename(backupPath))),
      k,
    );
    let outcome: Outcome = 'completed';
    model.install();
    try {
      await writeHeaderBackup(volumePath, backupPath);
    } catch (err) {
      if (!isSimulatedCrash(err)) throw err;
      outcome = 'crashed';
    } finally {
      model.uninstall();
    }
    for (const plan of plansFor('backup', k, model.pending.length + 1)) {
      const where = `crash point ${k} (${outcome}), state "${plan.label}" (CRYPTAINER_POWERLOSS_SEED=${BASE_SEED})`;
      const ino = model.persistedNames(plan).get(basename(backupPath));
      if (ino === undefined) {
        assert.is(outcome, 'crashed', `power loss: backup returned, yet no file: ${where}`);
        counts.none = (counts.none ?? 0) + 1;
        continue;
      }
      const bytes = model.persistedBytes(ino, plan);
      assert.ok(bytes !== null, 'the backup was written through the model');
      const state = join(dir, 'backup-state.hdr');
      writeFileSync(state, bytes);
      try {
        await readHeaderBackup(state);
      } catch (err) {
        throw new Error(
          `power loss: backup: a damaged backup at the name: ${where}: ${(err as Error).message}`,
        );
      }
      counts.complete = (counts.complete ?? 0) + 1;
    }
    if (outcome === 'completed') break;
    points++;
  }
  console.log(
    `    header backup: ${points} crash points, states ${JSON.stringify(counts)}; base seed ${BASE_SEED}, ${RANDOM_STATES} random states per point`,
  );
  assert.ok(points >= 2);
});

test.after(cleanup);
test.run();
