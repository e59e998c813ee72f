import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256 } from '../../crypto/hkdf.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { encodeHeaderCopy } from '../../volume-format/header.js';
import { planHeaderChoice } from '../../volume-format/header-copies.js';
import { SAMPLE_MAC_KEY, sampleFields } from '../helpers/headers.js';

const enc = (seqid: number, copy: 'A' | 'B') =>
  encodeHeaderCopy(sampleFields(seqid), copy, SAMPLE_MAC_KEY);
const garbage = () => new Uint8Array(4096).fill(0x5a);

test('both valid and equal: A wins, nothing to repair', () => {
  const c = planHeaderChoice(enc(4, 'A'), enc(4, 'B'));
  assert.is(c.winner, 'A');
  assert.equal(c.repair, []);
  assert.is(c.copies.A.status, 'ok');
  assert.is(c.copies.B.status, 'ok');
});

test('higher seqid wins; the other is stale', () => {
  const c = planHeaderChoice(enc(4, 'A'), enc(5, 'B'));
  assert.is(c.winner, 'B');
  assert.equal(c.repair, ['A']);
  assert.is(c.copies.A.status, 'stale');
  const d = planHeaderChoice(enc(6, 'A'), enc(5, 'B'));
  assert.is(d.winner, 'A');
  assert.equal(d.repair, ['B']);
});

test('one corrupt copy: the other wins and the corrupt one is repaired', () => {
  const c = planHeaderChoice(garbage(), enc(2, 'B'));
  assert.is(c.winner, 'B');
  assert.equal(c.repair, ['A']);
  assert.is(c.copies.A.status, 'corrupt');
  assert.is(c.copies.A.error?.code, 'HEADER_MAGIC');
  const d = planHeaderChoice(enc(2, 'A'), null);
  assert.is(d.winner, 'A');
  assert.is(d.copies.B.error?.code, 'HEADER_SHORT');
});

test('equal seqid with different content: A wins and B is rewritten', () => {
  const other = sampleFields(3, 512);
  const c = planHeaderChoice(enc(3, 'A'), encodeHeaderCopy(other, 'B', SAMPLE_MAC_KEY));
  assert.is(c.winner, 'A');
  assert.equal(c.repair, ['B']);
});

test('no valid copy: NO_VALID_HEADER, never an auth error', () => {
  try {
    planHeaderChoice(garbage(), garbage());
    assert.unreachable();
  } catch (err) {
    assert.is((err as CryptainerError).code, 'NO_VALID_HEADER');
  }
});

test('both copies share a volume-level reason: that reason is reported', () => {
  const a = enc(1, 'A');
  const b = enc(1, 'B');
  for (const bytes of [a, b]) new DataView(bytes.buffer).setBigUint64(40, 1n << 63n, true);
  // Re-seal the checksums, as a newer writer would.
  for (const bytes of [a, b]) bytes.set(sha256(bytes.subarray(0, 4064)), 4064);
  try {
    planHeaderChoice(a, b);
    assert.unreachable();
  } catch (err) {
    assert.is((err as CryptainerError).code, 'UNSUPPORTED_FEATURE');
  }
});

test.run();
