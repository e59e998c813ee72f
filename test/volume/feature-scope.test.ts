// SPEC §7 "Scope" and §8 step 3 (issue 12, D1/D2): a copy that passes its checksum but carries
// an unknown incompat bit or KDF parameters beyond §11 fails the whole volume, whichever copy
// it is. Before revision 1.1 the product opened the other (older) copy, and a read-write open
// then rewrote the newer writer's copy: a rollback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../../crypto/hkdf.js';
import { HEADER_COPY_OFFSETS, HEADER_FIELD_OFFSETS as H } from '../../volume-format/constants.js';
import { createVolume, inspectVolume, openVolume } from '../../src/index.js';
import { repairVolume } from '../../src/volume/repair.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const SECRET = { passphrase: 'scope' };
let n = 0;

/** A fresh volume whose copy `copy` was edited by `edit` and resealed (checksum only). */
async function edited(
  copy: 'A' | 'B',
  edit: (view: DataView) => void,
  seqidBump = 1,
): Promise<string> {
  const path = join(dir, `s${n++}.img`);
  const v = await createVolume(path, { ...SECRET, sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.close();
  const at = HEADER_COPY_OFFSETS[copy];
  const bytes = Uint8Array.from(readFileSync(path).subarray(at, at + 4096));
  const view = new DataView(bytes.buffer);
  // As a newer writer would: a higher seqid (it wrote this copy first, then crashed).
  view.setBigUint64(H.seqid, view.getBigUint64(H.seqid, true) + BigInt(seqidBump), true);
  edit(view);
  bytes.set(sha256(bytes.subarray(0, H.checksum)), H.checksum);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    closeSync(fd);
  }
  return path;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    if (v && typeof (v as { close?: unknown }).close === 'function') {
      await (v as { close: () => Promise<void> }).close();
    }
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const cases: Array<[string, 'A' | 'B', (v: DataView) => void, string]> = [
  [
    'copy A (newer) has an unknown incompat bit',
    'A',
    (v) => v.setBigUint64(H.featureIncompat, 1n << 5n, true),
    'UNSUPPORTED_FEATURE',
  ],
  [
    'copy B (newer) has an unknown incompat bit',
    'B',
    (v) => v.setBigUint64(H.featureIncompat, 1n << 5n, true),
    'UNSUPPORTED_FEATURE',
  ],
  [
    'copy A keyslot 0 demands 8 GiB of Argon2 memory',
    'A',
    (v) => v.setUint32(H.keyslots + 8, 8 * 1024 * 1024, true),
    'KDF_LIMITS',
  ],
];

for (const [name, copy, edit, code] of cases) {
  test(`${name}: the volume is refused (${code}) and no open rewrites that copy`, async () => {
    const path = await edited(copy, edit);
    const before = readFileSync(path);
    assert.is(await codeOf(inspectVolume(path)), code);
    assert.is(await codeOf(openVolume(path, { ...SECRET, readOnly: true })), code);
    assert.is(await codeOf(openVolume(path, SECRET)), code);
    assert.is(await codeOf(repairVolume(path, SECRET)), code);
    assert.ok(before.equals(readFileSync(path)), 'the container is byte for byte unchanged');
  });
}

test('a copy fault (bad cipher behind a valid checksum) is still repaired from the other copy', async () => {
  const path = await edited('A', (v) => v.setUint32(H.cipher, 9, true));
  const report = await repairVolume(path, SECRET);
  assert.is(report.winner, 'B');
  assert.equal(
    report.repaired.map((r) => r.copy),
    ['A'],
  );
  assert.is((await inspectVolume(path)).copies.A.status, 'ok');
});

test.after(cleanup);
test.run();
