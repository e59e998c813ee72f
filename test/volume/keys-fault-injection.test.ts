// ARCHITECTURE.md §6 and issue 4: crash every key and header operation (add, remove, change key,
// header restore, repair) at every write index, with the write lost or torn at several places,
// and show that the volume then opens with exactly the old or the new set of keys, never
// neither, with its data intact. Prints the number of crash points exercised per operation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '../../src/io/file-storage.js';
import { inspectVolume } from '../../src/volume/open.js';
import { FaultStorage, SimulatedCrash } from '../helpers/fault-storage.js';
import { keyScenarios } from '../helpers/key-scenarios.js';
import { makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const { KEYS, keySet, withVolume, scenarios } = keyScenarios(dir);

/**
 * How the crashing write ends: not at all, its first half, or its first N bytes: only the
 * magic (8: the copy still reads as the old one), into seqid (20), all but the checksum
 * (4064), all but one byte (4095).
 */
const TEARS: Array<boolean | number> = [false, true, 8, 20, 4064, 4095];

for (const sc of scenarios) {
  test(`${sc.name}: a crash at any write leaves the old or the new key set`, async () => {
    const base = await sc.base();
    assert.equal(await keySet(base), sc.before, 'base state');
    let points = 0;
    let sawOld = 0;
    let sawNew = 0;
    for (const torn of TEARS) {
      for (let crashAt = 0; crashAt < 100; crashAt++) {
        const path = join(dir, `${sc.name.replace(/\W+/g, '_')}-${String(torn)}-${crashAt}.img`);
        copyFileSync(base, path);
        const fault = new FaultStorage(await FileStorage.open(path), crashAt, torn);
        let crashed = false;
        try {
          await sc.run(path, fault);
        } catch (err) {
          if (!(err instanceof SimulatedCrash)) throw err;
          crashed = true;
        }
        const keys = await keySet(path);
        if (!crashed) {
          assert.equal(keys, sc.after, 'completed operation gives the new key set');
          assert.is(fault.writes, crashAt, 'every write was a crash point');
          if (sc.after.length > 0) {
            const choice = await inspectVolume(path);
            assert.equal(choice.repair, [], 'both copies ok after the operation');
          }
          break;
        }
        points++;
        const isOld = JSON.stringify(keys) === JSON.stringify(sc.before);
        const isNew = JSON.stringify(keys) === JSON.stringify(sc.after);
        assert.ok(
          isOld || isNew,
          `crash at write ${crashAt} (torn: ${String(torn)}): keys ${keys}`,
        );
        if (isNew) sawNew++;
        else sawOld++;
        // Whatever the crash left, a read-write open (or a rerun of the operation) finishes it.
        if (keys.length > 0) {
          await withVolume(path, KEYS[keys[0]!]!, async () => undefined);
          assert.equal((await inspectVolume(path)).repair, [], 'the next open repairs');
        }
      }
    }
    console.log(
      `    ${sc.name}: ${points} crash points (${sawOld} old state, ${sawNew} new state)`,
    );
    assert.ok(points >= 2);
  });
}

test.after(cleanup);
test.run();
