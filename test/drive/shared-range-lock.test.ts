// The sector-range lock shared by the drive's serving threads (src/drive/shared-range-lock.ts):
// threads holding overlapping ranges exclude each other, disjoint ranges do not wait, and a
// release wakes a waiting thread.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { SharedRangeLock, createSharedRangeLockMemory } from '../../src/drive/shared-range-lock.js';

const LOCK_MODULE = new URL('../../src/drive/shared-range-lock.js', import.meta.url).href;

/**
 * A thread that, `rounds` times, takes range [first, end) and does a deliberately racy
 * read-increment-write of a shared counter (with a yield in between): only mutual exclusion
 * keeps every increment.
 */
const RACER = `
  const { workerData, parentPort } = require('node:worker_threads');
  import(workerData.module).then(({ SharedRangeLock }) => {
    const lock = new SharedRangeLock(workerData.memory, workerData.slot);
    const counter = new Int32Array(workerData.counter);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < workerData.rounds; i++) {
      lock.acquire(workerData.first, workerData.end);
      const seen = counter[0];
      if (i % 7 === 0) Atomics.wait(pause, 0, 0, 0.05); // widen the race window
      counter[0] = seen + 1;
      lock.release();
    }
    parentPort.postMessage('done');
  });
`;

function race(
  memory: SharedArrayBuffer,
  counter: SharedArrayBuffer,
  slot: number,
  first: number,
  end: number,
  rounds: number,
): Promise<void> {
  const worker = new Worker(RACER, {
    eval: true,
    workerData: { module: LOCK_MODULE, memory, counter, slot, first, end, rounds },
  });
  return new Promise((done, fail) => {
    worker.once('message', () => done());
    worker.once('error', fail);
  });
}

test('overlapping ranges exclude each other across threads', async () => {
  const memory = createSharedRangeLockMemory(3);
  const counter = new SharedArrayBuffer(4);
  const rounds = 3000;
  // [0,10), [5,12) and [9,20): every pair overlaps.
  await Promise.all([
    race(memory, counter, 0, 0, 10, rounds),
    race(memory, counter, 1, 5, 12, rounds),
    race(memory, counter, 2, 9, 20, rounds),
  ]);
  assert.is(new Int32Array(counter)[0], 3 * rounds, 'no increment was lost');
});

test('disjoint ranges are taken at once; a release wakes a waiter', async () => {
  const memory = createSharedRangeLockMemory(2);
  const mine = new SharedRangeLock(memory, 0);
  mine.acquire(100, 200);
  const other = new SharedRangeLock(memory, 1);
  other.acquire(200, 300); // adjacent, not overlapping: must not block this thread
  other.release();

  const counter = new SharedArrayBuffer(4);
  let finished = false;
  const waiting = race(memory, counter, 1, 150, 151, 1).then(() => (finished = true));
  await new Promise((r) => setTimeout(r, 200));
  assert.is(finished, false, 'the overlapping thread waits while the range is held');
  mine.release();
  await waiting;
  assert.is(new Int32Array(counter)[0], 1);
});

test('slots outside the shared memory are refused', () => {
  const memory = createSharedRangeLockMemory(2);
  assert.throws(() => new SharedRangeLock(memory, 2), /slot 2/);
  assert.throws(() => new SharedRangeLock(memory, -1), /slot -1/);
});

test.run();
