// SPEC §15.5 and §10 row 35 (issue 12, D8): every journal_size of §3, 0 included, is a valid
// volume; re-encryption needs one slot (journal_size / 2) to hold the record of one sector, and
// is refused up front, with nothing written, when the chosen resilience does not fit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { JOURNAL_OFFSET } from '../../volume-format/constants.js';
import type { Resilience } from '../../volume-format/reencrypt-state.js';
import { createVolume, openVolume } from '../../src/index.js';
import { startReencrypt } from '../../src/volume/reencrypt.js';
import { writeBothCopies } from '../helpers/headers.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const SECRET = { passphrase: 'journal' };
let n = 0;

/** A valid volume with `journalSize` bytes of journal (re-headered with its own master key). */
async function withJournal(journalSize: number, sectorSize: number): Promise<string> {
  const path = join(dir, `j${n++}.img`);
  const v = await createVolume(path, {
    ...SECRET,
    sizeBytes: 256 * 1024,
    sectorSize,
    kdf: TEST_KDF,
  });
  const key = v.exportMasterKey();
  const fields = {
    ...v.header,
    seqid: v.header.seqid + 1,
    journalSize,
    dataOffset: JOURNAL_OFFSET + journalSize,
  };
  await v.close();
  writeBothCopies(path, fields, key);
  truncateSync(path, fields.dataOffset + fields.dataSize);
  return path;
}

async function reencryptCode(path: string, resilience: Resilience): Promise<string> {
  try {
    await startReencrypt(path, { keep: new Map([[0, SECRET]]), resilience });
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const cases: Array<[number, number, Resilience, string]> = [
  [0, 4096, 'checksum', 'UNSUPPORTED_FEATURE'],
  [0, 512, 'journal', 'UNSUPPORTED_FEATURE'],
  [4096, 4096, 'checksum', 'ok'],
  [4096, 512, 'journal', 'ok'],
  [4096, 4096, 'journal', 'UNSUPPORTED_FEATURE'],
  [8192, 4096, 'journal', 'ok'],
];

for (const [journalSize, sectorSize, resilience, expect] of cases) {
  test(`journal_size ${journalSize}, ${sectorSize}-byte sectors, ${resilience} mode: ${expect}`, async () => {
    const path = await withJournal(journalSize, sectorSize);
    const v = await openVolume(path, SECRET); // a valid volume either way
    await v.write(0, Buffer.from('journal size'));
    await v.close();
    const before = readFileSync(path);
    assert.is(await reencryptCode(path, resilience), expect);
    if (expect !== 'ok') assert.ok(before.equals(readFileSync(path)), 'nothing written');
    const r = await openVolume(path, { ...SECRET, readOnly: true });
    try {
      assert.is(Buffer.from(await r.read(0, 12)).toString(), 'journal size');
    } finally {
      await r.close();
    }
  });
}

test.after(cleanup);
test.run();
