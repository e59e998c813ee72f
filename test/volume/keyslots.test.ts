// SPEC §14: adding, removing and changing keyslots through the library, with keyfiles
// (SPEC §4.1), and the refusals (no free slot, last slot, read-only, KDF limits).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KEYSLOT_SIZE } from '../../volume-format/constants.js';
import { keyslotOffset } from '../../volume-format/header.js';
import { type UnlockSecret, createVolume, openVolume } from '../../src/index.js';
import {
  activeKeyslots,
  addKeyslot,
  changeKeyslot,
  removeKeyslot,
} from '../../src/volume/keyslots.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const A = { passphrase: 'alpha' };
const B = { passphrase: 'bravo' };
const C = { passphrase: 'charlie' };
const kf1 = join(dir, 'kf1');
const kf2 = join(dir, 'kf2');
writeFileSync(kf1, randomBytes(1000));
writeFileSync(kf2, randomBytes(33));
let n = 0;

async function fresh(): Promise<string> {
  const path = join(dir, `v${n++}.img`);
  const v = await createVolume(path, { ...A, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.write(4000, Buffer.from('payload'));
  await v.close();
  return path;
}

/** The slot `secret` opens, or the error code. */
async function opens(path: string, secret: UnlockSecret): Promise<number | string> {
  try {
    const v = await openVolume(path, { ...secret, readOnly: true });
    const slot = v.unlockedSlot;
    assert.is(Buffer.from(await v.read(4000, 7)).toString(), 'payload');
    await v.close();
    return slot;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function edit<T>(
  path: string,
  secret: UnlockSecret,
  fn: (v: Awaited<ReturnType<typeof openVolume>>) => Promise<T>,
): Promise<T> {
  const v = await openVolume(path, secret);
  try {
    return await fn(v);
  } finally {
    await v.close();
  }
}

test('add-key fills the first free slot or the one asked for; the master key is the same', async () => {
  const path = await fresh();
  assert.is(await edit(path, A, (v) => addKeyslot(v, B, { kdf: TEST_KDF })), 1);
  assert.is(await edit(path, B, (v) => addKeyslot(v, C, { kdf: TEST_KDF, slot: 5 })), 5);
  assert.is(await opens(path, A), 0);
  assert.is(await opens(path, B), 1);
  assert.is(await opens(path, C), 5);
  assert.is(
    await codeOf(edit(path, A, (v) => addKeyslot(v, C, { kdf: TEST_KDF, slot: 1 }))),
    'NO_KEYSLOT',
    'slot in use',
  );
  assert.is(
    await codeOf(edit(path, A, (v) => addKeyslot(v, C, { kdf: TEST_KDF, slot: 8 }))),
    'USAGE',
  );
  const seqid = await edit(path, A, async (v) => v.header.seqid);
  assert.is(seqid, 3, 'one header update per operation');
});

test('all eight slots in use: NO_KEYSLOT', async () => {
  const path = await fresh();
  await edit(path, A, async (v) => {
    for (let i = 1; i < 8; i++) await addKeyslot(v, { passphrase: `p${i}` }, { kdf: TEST_KDF });
    assert.is(await codeOf(addKeyslot(v, B, { kdf: TEST_KDF })), 'NO_KEYSLOT');
    assert.equal(activeKeyslots(v), [0, 1, 2, 3, 4, 5, 6, 7]);
  });
  assert.is(await opens(path, { passphrase: 'p7' }), 7);
});

test('keyfiles: alone, with a passphrase, order-independent, all of them required', async () => {
  const path = await fresh();
  await edit(path, A, (v) => addKeyslot(v, { passphrase: '', keyfiles: [kf1] }, { kdf: TEST_KDF }));
  await edit(path, A, (v) =>
    addKeyslot(v, { passphrase: 'with-files', keyfiles: [kf1, kf2] }, { kdf: TEST_KDF }),
  );
  assert.is(await opens(path, { keyfiles: [kf1] }), 1);
  assert.is(await opens(path, { passphrase: '', keyfiles: [kf1] }), 1);
  assert.is(await opens(path, { passphrase: 'with-files', keyfiles: [kf2, kf1] }), 2);
  assert.is(await opens(path, { passphrase: 'with-files', keyfiles: [kf1] }), 'WRONG_PASSPHRASE');
  assert.is(await opens(path, { passphrase: 'with-files' }), 'WRONG_PASSPHRASE');
  assert.is(await opens(path, { keyfiles: [kf2] }), 'WRONG_PASSPHRASE');
  const kfCopy = join(dir, 'kf1-copy');
  writeFileSync(kfCopy, readFileSync(kf1));
  assert.is(
    await opens(path, { keyfiles: [kfCopy] }),
    1,
    'a keyfile is its contents, not its name',
  );
  const changed = Buffer.from(readFileSync(kf1));
  changed[0] = changed[0]! ^ 1;
  writeFileSync(kfCopy, changed);
  assert.is(await opens(path, { keyfiles: [kfCopy] }), 'WRONG_PASSPHRASE');
  assert.is(await opens(path, { keyfiles: [join(dir, 'missing')] }), 'NOT_FOUND');
});

test('remove-key zeroes the slot in both copies; the old wrap is gone from the file', async () => {
  const path = await fresh();
  await edit(path, A, (v) => addKeyslot(v, B, { kdf: TEST_KDF }));
  const before = readFileSync(path);
  const wrapB = before.subarray(keyslotOffset(1), keyslotOffset(1) + KEYSLOT_SIZE);
  assert.ok(wrapB.some((b) => b !== 0));
  await edit(path, A, (v) => removeKeyslot(v, 1));
  const after = readFileSync(path);
  for (const base of [0, 32768]) {
    const slot = after.subarray(base + keyslotOffset(1), base + keyslotOffset(1) + KEYSLOT_SIZE);
    assert.ok(
      slot.every((b) => b === 0),
      `slot 1 zero in the copy at ${base}`,
    );
  }
  // Salt, nonce and wrapped key of the removed slot appear nowhere in the container.
  for (const [from, to] of [
    [16, 48],
    [56, 80],
    [80, 160],
  ] as const) {
    assert.is(after.indexOf(Buffer.from(wrapB.subarray(from, to))), -1);
  }
  assert.is(await opens(path, B), 'WRONG_PASSPHRASE');
  assert.is(await opens(path, A), 0);
});

test('remove-key refuses the last slot without force, and inactive slots', async () => {
  const path = await fresh();
  assert.is(await codeOf(edit(path, A, (v) => removeKeyslot(v, 0))), 'LAST_KEYSLOT');
  assert.is(await codeOf(edit(path, A, (v) => removeKeyslot(v, 3))), 'NO_KEYSLOT');
  assert.is(await opens(path, A), 0, 'nothing changed');
  await edit(path, A, (v) => addKeyslot(v, B, { kdf: TEST_KDF }));
  await edit(path, B, (v) => removeKeyslot(v, 1)); // removing the slot that unlocked it is fine
  assert.is(await opens(path, B), 'WRONG_PASSPHRASE');
  await edit(path, A, (v) => removeKeyslot(v, 0, { force: true }));
  assert.is(await opens(path, A), 'WRONG_PASSPHRASE', 'nothing unlocks any more');
});

test('change-key rewraps the same slot with a fresh salt and nonce, keeping its KDF cost', async () => {
  const path = await fresh();
  const kdf = { timeCost: 2, memoryKiB: 128, parallelism: 2 };
  await edit(path, A, (v) => addKeyslot(v, B, { kdf }));
  const old = await edit(path, B, async (v) => v.header.keyslots[1]!);
  await edit(path, B, (v) => changeKeyslot(v, v.unlockedSlot, C));
  const now = await edit(path, C, async (v) => {
    assert.is(v.unlockedSlot, 1);
    return v.header.keyslots[1]!;
  });
  assert.ok(old.state === 'active' && now.state === 'active');
  if (old.state !== 'active' || now.state !== 'active') return;
  assert.equal(now.kdf, kdf, 'KDF cost kept');
  assert.not.equal(now.kdfSalt, old.kdfSalt, 'fresh salt');
  assert.not.equal(now.wrapNonce, old.wrapNonce, 'fresh nonce');
  assert.is(await opens(path, B), 'WRONG_PASSPHRASE');
  assert.is(await opens(path, A), 0);
  // Explicit parameters replace the old cost; a keyfile-only secret works too.
  await edit(path, C, (v) => changeKeyslot(v, 1, { keyfiles: [kf2] }, { kdf: TEST_KDF }));
  assert.is(await opens(path, { keyfiles: [kf2] }), 1);
  assert.is(await codeOf(edit(path, A, (v) => changeKeyslot(v, 4, C))), 'NO_KEYSLOT');
});

test('refusals: read-only volume, KDF parameters beyond the limits', async () => {
  const path = await fresh();
  const ro = await openVolume(path, { ...A, readOnly: true });
  assert.is(await codeOf(addKeyslot(ro, B, { kdf: TEST_KDF })), 'READ_ONLY');
  await ro.close();
  const big = { timeCost: 1, memoryKiB: 8 * 1024 * 1024, parallelism: 1 };
  assert.is(await codeOf(edit(path, A, (v) => addKeyslot(v, B, { kdf: big }))), 'KDF_LIMITS');
  assert.is(await codeOf(edit(path, A, (v) => changeKeyslot(v, 0, B, { kdf: big }))), 'KDF_LIMITS');
  assert.is(await opens(path, A), 0);
});

test.after(cleanup);
test.run();
