// Format vectors (SPEC §12): the files in test/vectors/ match what the generator produces
// (no drift), and each one decodes to its `expect:` outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeHeaderBackup } from '../../volume-format/backup.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { decodeHeaderCopy, verifyHeaderMac } from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { unwrapMasterKey } from '../../volume-format/keyslot.js';
import { deriveArgon2id } from '../../crypto/kdf.js';
import { deriveHeaderMacKey } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import { generateVectors, parseVector, vectorDir } from '../../scripts/generate-vectors.js';

const dir = vectorDir();
const onDisk = readdirSync(dir)
  .filter((f) => f.endsWith('.vector'))
  .sort();
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

test('vector files match the generator byte for byte (run `npm run vectors` after a deliberate change)', async () => {
  const generated = await generateVectors();
  assert.equal(onDisk, [...generated.keys()].sort(), 'same set of files');
  for (const [name, text] of generated) {
    assert.is(readFileSync(join(dir, name), 'utf8'), text, `${name} drifted`);
  }
});

test('valid-minimal: every step of SPEC §4.2, §5.3 and §6 reproduces from the file alone', async () => {
  const v = parseVector(readFileSync(join(dir, 'valid-minimal.vector'), 'utf8'));
  const headerA = bytes(v.get('header_a')!);
  const choice = planHeaderChoice(headerA, bytes(v.get('header_b')!));
  assert.equal(choice.repair, []);
  const slot = choice.fields.keyslots[0]!;
  assert.is(slot.state, 'active');
  if (slot.state !== 'active') return;
  const kek = await deriveArgon2id(bytes(v.get('passphrase')!), slot.kdfSalt, slot.kdf, 32);
  assert.is(Buffer.from(kek).toString('hex'), v.get('kek'));
  const mk = unwrapMasterKey(kek, choice.fields.uuid, 0, slot);
  assert.ok(mk);
  assert.is(Buffer.from(mk!).toString('hex'), v.get('master_key'));
  const macKey = deriveHeaderMacKey(mk!, choice.fields.uuid);
  assert.is(Buffer.from(macKey).toString('hex'), v.get('k_mac'));
  assert.ok(verifyHeaderMac(headerA, macKey));
  const xts = new XtsCipher(mk!, choice.fields.sectorSize);
  const plain = xts.decryptSectors(bytes(v.get('sector_1_ciphertext')!), 1);
  assert.is(Buffer.from(plain).toString('hex'), v.get('sector_1_plaintext'));
  const zero = xts.decryptSectors(bytes(v.get('sector_0_ciphertext')!), 0);
  assert.ok(zero.every((b) => b === 0));
  xts.dispose();
});

test('valid-header-backup: decodes, and holds valid-minimal copies A and B verbatim', () => {
  const b = parseVector(readFileSync(join(dir, 'valid-header-backup.vector'), 'utf8'));
  const m = parseVector(readFileSync(join(dir, 'valid-minimal.vector'), 'utf8'));
  const backup = decodeHeaderBackup(bytes(b.get('backup')!));
  assert.is(Buffer.from(backup.copies.A).toString('hex'), m.get('header_a'));
  assert.is(Buffer.from(backup.copies.B).toString('hex'), m.get('header_b'));
});

test('each negative vector fails with its expect: code', () => {
  let n = 0;
  for (const f of onDisk) {
    const v = parseVector(readFileSync(join(dir, f), 'utf8'));
    if (v.get('expect') === 'ok') continue;
    let code = 'ok';
    try {
      // SPEC §13.3 for header backup vectors, SPEC §10 for header copies.
      if (v.has('backup')) decodeHeaderBackup(bytes(v.get('backup')!));
      else decodeHeaderCopy(bytes(v.get('header_a')!), 'A');
    } catch (err) {
      assert.instance(err, CryptainerError, f);
      code = (err as CryptainerError).code;
    }
    assert.is(code, v.get('expect'), f);
    n++;
  }
  assert.ok(n >= 30, `only ${n} negative vectors`);
});

test.run();
