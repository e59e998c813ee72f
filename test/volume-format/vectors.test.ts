// Format vectors (SPEC §12): the files in test/vectors/ match what the generator produces
// (no drift), and each one decodes to its `expect:` outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeHeaderBackup } from '../../volume-format/backup.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { decodeHeaderCopy, keyGenerationOf, verifyHeaderMac } from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { unwrapMasterKey } from '../../volume-format/keyslot.js';
import { deriveArgon2id } from '../../crypto/kdf.js';
import { deriveHeaderMacKey, sha256 } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import { generateVectors, parseVector, vectorDir } from '../../scripts/generate-vectors.js';
import { ORDER_VECTORS, SINGLE_FAULTS } from '../../scripts/order-vectors.js';

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
    if (v.get('expect') === 'ok' || f.startsWith('pair-')) continue;
    let code = 'ok';
    try {
      // SPEC §13.3 for header backup vectors; SPEC §8 step 2 on copy A alone otherwise (§12.2).
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

test('pair vectors: the SPEC §8 step 3 verdict on both copies', () => {
  let n = 0;
  for (const f of onDisk.filter((name) => name.startsWith('pair-'))) {
    const v = parseVector(readFileSync(join(dir, f), 'utf8'));
    let verdict: string;
    try {
      verdict = `ok:${planHeaderChoice(bytes(v.get('header_a')!), bytes(v.get('header_b')!)).winner}`;
    } catch (err) {
      assert.instance(err, CryptainerError, f);
      verdict = (err as CryptainerError).code;
    }
    assert.is(verdict, v.get('expect'), f);
    n++;
  }
  assert.ok(n >= 8, `only ${n} pair vectors`);
});

test('valid-key-generation: both copies valid at generation 1, MAC under the example key', () => {
  const v = parseVector(readFileSync(join(dir, 'valid-key-generation.vector'), 'utf8'));
  const m = parseVector(readFileSync(join(dir, 'valid-minimal.vector'), 'utf8'));
  const a = bytes(v.get('header_a')!);
  const choice = planHeaderChoice(a, bytes(v.get('header_b')!));
  assert.equal(choice.repair, []);
  assert.is(choice.fields.keyGeneration, 1);
  assert.is(choice.fields.features.compat, 1n);
  assert.ok(verifyHeaderMac(a, bytes(m.get('k_mac')!)));
  const plain = planHeaderChoice(bytes(m.get('header_a')!), bytes(m.get('header_b')!));
  assert.is(keyGenerationOf(plain.fields), 0, 'the 1.0-shaped example is generation 0');
});

test('order vectors really pin the order: each fault alone gives another code', () => {
  const m = parseVector(readFileSync(join(dir, 'valid-minimal.vector'), 'utf8'));
  const codeOf = (copy: Uint8Array): string => {
    try {
      decodeHeaderCopy(copy, 'A');
      return 'ok';
    } catch (err) {
      return (err as CryptainerError).code;
    }
  };
  for (const v of ORDER_VECTORS) {
    const alone = v.faults.map((f) => {
      const c = bytes(m.get('header_a')!);
      SINGLE_FAULTS[f].edit(c, new DataView(c.buffer));
      return codeOf(resealed(c));
    });
    if (v.reseal === false) {
      // The second fault is the checksum itself: alone, a stale checksum over the intact copy.
      const c = bytes(m.get('header_a')!);
      c[4064] = c[4064]! ^ 1;
      alone.push(codeOf(c));
    }
    const codes = new Set(alone);
    assert.ok(codes.size >= 2, `${v.name}: its faults alone give ${[...codes].join(', ')}`);
    assert.ok(codes.has(v.expect), `${v.name}: ${v.expect} is one of ${[...codes].join(', ')}`);
  }
});

function resealed(copy: Uint8Array): Uint8Array {
  const c = Uint8Array.from(copy);
  c.set(sha256(c.subarray(0, 4064)), 4064);
  return c;
}

test.run();
