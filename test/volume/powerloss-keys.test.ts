// Issue 12: every key and header operation (add, remove, change key, header restore, repair)
// under the power-loss model (test/helpers/power-loss-storage.ts): at every write, unsynced
// writes are lost, kept or torn at 512-byte granularity in several combinations, and the
// volume must open with exactly the old or the new key set, its data intact; after the
// operation returned, only the new key set.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inspectVolume } from '../../src/volume/open.js';
import { keyScenarios } from '../helpers/key-scenarios.js';
import { describeStats, exploreCrashPoints } from '../helpers/power-loss.js';
import { makeMemoryTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeMemoryTempDir();
const { KEYS, keySet, withVolume, scenarios } = keyScenarios(dir);

for (const sc of scenarios) {
  test(`${sc.name}: power loss at any write leaves the old or the new key set`, async () => {
    const base = await sc.base();
    assert.equal(await keySet(base), sc.before, 'base state');
    const stats = await exploreCrashPoints({
      name: sc.name,
      base,
      dir,
      run: sc.run,
      check: async (path, outcome) => {
        const keys = JSON.stringify(await keySet(path));
        const isNew = keys === JSON.stringify(sc.after);
        const isOld = keys === JSON.stringify(sc.before);
        if (outcome === 'completed') assert.ok(isNew, `returned, yet keys ${keys}`);
        else assert.ok(isOld || isNew, `keys ${keys}`);
        // Whatever the power cut left, the next read-write open repairs it.
        const first = JSON.parse(keys) as string[];
        if (first.length > 0) {
          await withVolume(path, KEYS[first[0]!]!, async () => undefined);
          assert.equal((await inspectVolume(path)).repair, [], 'the next open repairs');
        }
        return isNew ? 'new' : 'old';
      },
    });
    console.log(describeStats(sc.name, stats));
    assert.ok(stats.points >= 1, 'at least one crash point');
  });
}

test.after(cleanup);
test.run();
