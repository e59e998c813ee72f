// Issue 11 item 9: a resize killed at any write of the tools (e2fsck, resize2fs) or of the
// process serving their drive leaves a volume that running the same `resize` again repairs:
// e2fsck -fn clean, every file intact. The volume is 48 MiB with 4 KiB blocks, so its ext4 has
// one block group and no backup superblock: a torn primary superblock would be final. Each
// point runs the CLI with CRYPTAINER_TEST_KILL_AT_WRITE (src/drive/kill-hook.ts), which
// SIGKILLs the tool or the server when the N-th write request reaches the tool drive.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openVolume } from '../../src/volume/open.js';
import { CHEAP_KDF } from '../helpers/cli.js';
import { cliOk, forceCleanup, mountTestDir, run, sh, withTimeout } from '../helpers/mount.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const PASSPHRASE = 'kill at every write';
const { dir, cleanup, runtime, pass, mnt } = mountTestDir(PASSPHRASE);
const MiB = 1024 * 1024;
const BASE = join(dir, 'base.img');
const BOTH = process.env.RESIZE_KILL_BOTH === '1';
/** Points run two at a time, each in a slot of its own (volume, plain image, runtime dir). */
const SLOTS = 2;

interface Slot {
  vol: string;
  plain: string;
  /** `CRYPTAINER_RUNTIME_DIR` of this slot's runs, so a dead drive is cleaned per slot. */
  runtime: string;
}
const slots: Slot[] = Array.from({ length: SLOTS }, (_, i) => ({
  vol: join(dir, `vol${i}.img`),
  plain: join(dir, `plain${i}.img`),
  runtime: join(dir, `run${i}`),
}));

/** Deterministic file contents, so a recovered file can be compared byte for byte. */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
const FILES: Record<string, Buffer> = {
  '/moved-1m.bin': bytes(MiB, 1),
  '/moved-300k.bin': bytes(300 * 1024, 2),
  '/small.bin': bytes(5000, 3),
  '/d/tiny.txt': Buffer.from('tiny\n'),
};
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * 48 MiB ext4 whose files sit past 36 MiB (a 30 MiB filler written first, then removed), so a
 * shrink to 24 MiB makes resize2fs move their blocks.
 */
function makeBase(): void {
  cliOk(['create', BASE, '--size', '48M', '--passphrase-file', pass, ...CHEAP_KDF]);
  cliOk(['mount', BASE, mnt, '--passphrase-file', pass]);
  try {
    writeFileSync(join(mnt, 'filler'), Buffer.alloc(30 * MiB));
    sh('sync', []);
    sh('mkdir', [join(mnt, 'd')]);
    for (const [name, data] of Object.entries(FILES)) writeFileSync(join(mnt, name), data);
    unlinkSync(join(mnt, 'filler'));
  } finally {
    cliOk(['unmount', mnt]);
  }
}

async function resize(slot: Slot, size: string, env: NodeJS.ProcessEnv = {}) {
  const args = [MAIN, 'resize', slot.vol, '--size', size, '--passphrase-file', pass];
  return run(process.execPath, args, {
    env: { ...process.env, CRYPTAINER_RUNTIME_DIR: slot.runtime, ...env },
    timeoutMs: 120_000,
  });
}

/** Write requests the tools send during a resize of the base volume to `size`. */
async function countWrites(size: string): Promise<number> {
  const slot = slots[0]!;
  copyFileSync(BASE, slot.vol);
  const file = join(dir, 'writes.txt');
  rmSync(file, { force: true });
  const r = await resize(slot, size, { CRYPTAINER_TEST_KILL_AT_WRITE: `count:${file}` });
  assert.is(r.status, 0, r.stderr);
  return readFileSync(file, 'utf8').trim().split('\n').length;
}

/**
 * What the volume holds, decrypted in this process into a plain image (no drive needed):
 * its ext4's size, `e2fsck -fn` on it, and which files differ from what was written.
 */
async function inspect(
  slot: Slot,
): Promise<{ fsBytes: number; fsck: string | null; bad: string[] }> {
  const volume = await openVolume(slot.vol, {
    passphrase: Buffer.from(PASSPHRASE),
    readOnly: true,
  });
  try {
    writeFileSync(slot.plain, await volume.read(0, volume.sizeBytes));
  } finally {
    await volume.close();
  }
  try {
    const fsck = sh('e2fsck', ['-fn', slot.plain]);
    const bad: string[] = [];
    for (const [name, data] of Object.entries(FILES)) {
      const got = spawnSync('debugfs', ['-R', `cat ${name}`, slot.plain], {
        stdio: 'pipe',
        maxBuffer: 64 * MiB,
      });
      if (got.status !== 0 || sha(got.stdout) !== sha(data)) bad.push(name);
    }
    const size = Number(
      /Block count:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', slot.plain]).stdout)?.[1],
    );
    return {
      fsBytes: size * 4096,
      fsck: fsck.status === 0 ? null : `${fsck.status}: ${fsck.stdout.slice(-400)}`,
      bad,
    };
  } finally {
    rmSync(slot.plain, { force: true });
  }
}

/**
 * Kill the resize to `size` at write `n` (the tool or the server), run the same resize again,
 * and return whether the kill landed and what went wrong (nothing: the volume is whole and
 * resized). The number of writes varies by one or two between runs (e2fsck writes the
 * superblock fields that changed, and the times it records change), so a kill past the end is
 * not an error: that run must simply succeed.
 */
async function killPoint(slot: Slot, size: string, sizeBytes: number, who: string, n: number) {
  copyFileSync(BASE, slot.vol);
  const killed = await resize(slot, size, { CRYPTAINER_TEST_KILL_AT_WRITE: `${who}:${n}` });
  // A killed server leaves its drive mounted and dead (ENOTCONN): not this test's subject.
  if (who === 'server') forceCleanup(slot.runtime, slot.runtime);
  const problems: string[] = [];
  const again = await resize(slot, size);
  if (again.status !== 0) problems.push(`rerun exit ${again.status}: ${again.stderr.trim()}`);
  const state = await inspect(slot);
  if (state.fsck !== null) problems.push(`e2fsck -fn ${state.fsck}`);
  if (state.bad.length > 0) problems.push(`files differ: ${state.bad.join(' ')}`);
  if (again.status === 0 && state.fsBytes !== sizeBytes) {
    problems.push(`filesystem is ${state.fsBytes} bytes, not ${sizeBytes}`);
  }
  return {
    landed: killed.status !== 0,
    failure: problems.length === 0 ? null : `${size} ${who}:${n}: ${problems.join('; ')}`,
  };
}

test('a resize killed at any write of a tool or of the server is repaired by running it again', async () => {
  await withTimeout(
    (async () => {
      makeBase();
      const failures: string[] = [];
      let landed = 0;
      const started = Date.now();
      const points: [string, number, string, number][] = [];
      for (const [size, sizeBytes] of [
        ['24M', 24 * MiB],
        ['64M', 64 * MiB],
      ] as const) {
        const writes = await countWrites(size);
        for (let n = 1; n <= writes + 2; n++) {
          // The tool at odd writes, the server at even ones (both at every write with
          // RESIZE_KILL_BOTH=1, twice as long).
          const sides = BOTH ? ['tool', 'server'] : [n % 2 === 1 ? 'tool' : 'server'];
          for (const who of sides) points.push([size, sizeBytes, who, n]);
        }
      }
      await Promise.all(
        slots.map(async (slot) => {
          for (let p = points.shift(); p !== undefined; p = points.shift()) {
            const point = await killPoint(slot, ...p);
            if (point.landed) landed++;
            if (point.failure) {
              failures.push(point.failure);
              console.log(`  ${point.failure}`);
            }
          }
        }),
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      console.log(`  ${landed} kills landed, ${failures.length} left damage, ${seconds} s`);
      assert.ok(landed >= 64, `${landed} kill points`);
      assert.equal(failures, [], `${failures.length} kill points left damage`);
    })(),
    900_000,
    'kill at every write',
  ).finally(() => {
    for (const slot of slots) forceCleanup(slot.runtime, slot.runtime);
    forceCleanup(dir, runtime);
    cleanup();
  });
});

test.run();
