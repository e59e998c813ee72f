// SPEC §7: an unknown ro_compat bit makes every open read-only, so no header copy is written.
// Two bugs of issue 12: `check` printed "repaired header copy B" although it wrote nothing,
// and `info` printed the feature sets as bare hex (`80`) instead of `0x80`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { HEADER_COPY_OFFSETS } from '../../volume-format/constants.js';
import { encodeHeaderCopy } from '../../volume-format/header.js';
import { createVolume } from '../../src/index.js';
import { runCli } from '../helpers/cli.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const passFile = join(dir, 'pass');
writeFileSync(passFile, 'ro secret\n');

/** A volume whose copy A carries ro_compat bit 7 (properly MACed) and whose copy B is damaged. */
async function roCompatVolume(name: string): Promise<string> {
  const path = join(dir, name);
  const v = await createVolume(path, {
    passphrase: 'ro secret',
    sizeBytes: 1 << 20,
    kdf: TEST_KDF,
  });
  const key = v.exportMasterKey();
  const fields = { ...v.header, seqid: v.header.seqid + 1 };
  await v.close();
  fields.features = { ...fields.features, roCompat: 0x80n };
  const copyA = encodeHeaderCopy(fields, 'A', deriveHeaderMacKey(key, fields.uuid));
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, copyA, 0, copyA.length, HEADER_COPY_OFFSETS.A);
    writeSync(fd, Buffer.alloc(16, 0xee), 0, 16, HEADER_COPY_OFFSETS.B + 200); // B corrupt
  } finally {
    closeSync(fd);
  }
  return path;
}

test('check on an unknown ro_compat bit: says the damaged copy was NOT repaired, writes nothing', async () => {
  const path = await roCompatVolume('check.img');
  const before = readFileSync(path);
  const r = runCli(['check', path, '--passphrase-file', passFile]);
  assert.is(r.status, 0, r.stderr);
  assert.not.match(r.stdout, /repaired header copy B/);
  assert.match(r.stderr, /header copy B needs repair but was not written/);
  assert.ok(before.equals(readFileSync(path)), 'the container is unchanged');
  const j = JSON.parse(runCli(['check', path, '--passphrase-file', passFile, '--json']).stdout);
  assert.equal(j.repairedHeaderCopies, []);
  assert.equal(j.unrepairedHeaderCopies, ['B']);
});

test('info prints feature sets with their 0x prefix', async () => {
  const path = await roCompatVolume('info.img');
  const r = runCli(['info', path]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /features: +incompat 0x0 ro_compat 0x80 compat 0x0/);
  const j = JSON.parse(runCli(['info', path, '--json']).stdout);
  assert.equal(j.features, { incompat: '0x0', roCompat: '0x80', compat: '0x0' });
});

test.after(cleanup);
test.run();
