import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { sha256 } from '../../crypto/hkdf.js';
import { HEADER_FIELD_OFFSETS as H, HEADER_SIZE } from '../../volume-format/constants.js';
import { CryptainerError } from '../../volume-format/errors.js';
import {
  decodeHeaderCopy,
  encodeHeaderCopy,
  formatUuid,
  verifyHeaderMac,
} from '../../volume-format/header.js';
import { unwrapMasterKey } from '../../volume-format/keyslot.js';
import { SAMPLE_KEK, SAMPLE_MAC_KEY, sampleFields, sampleMasterKey } from '../helpers/headers.js';

function decodeCode(bytes: Uint8Array, copy: 'A' | 'B' = 'A'): string {
  try {
    decodeHeaderCopy(bytes, copy);
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CryptainerError, `not our error: ${String(err)}`);
    return (err as CryptainerError).code;
  }
}

/** Recompute the checksum after editing a copy (what an attacker or a bug would do). */
function reseal(bytes: Uint8Array): Uint8Array {
  bytes.set(sha256(bytes.subarray(0, H.checksum)), H.checksum);
  return bytes;
}

test('decode(encode(x)) = x for both copies', () => {
  const fields = sampleFields(7);
  for (const copy of ['A', 'B'] as const) {
    const bytes = encodeHeaderCopy(fields, copy, SAMPLE_MAC_KEY);
    assert.is(bytes.length, HEADER_SIZE);
    const back = decodeHeaderCopy(bytes, copy);
    assert.equal(back, fields);
    assert.ok(verifyHeaderMac(bytes, SAMPLE_MAC_KEY));
  }
});

test('property: decode(encode(x)) = x over random seqid, sizes and keyslot sets', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      fc.constantFrom(512, 4096),
      fc.integer({ min: 1, max: 1 << 20 }),
      fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      (seqid, sectorSize, sectors, active) => {
        const base = sampleFields(seqid, sectorSize, sectors * sectorSize);
        const slot0 = base.keyslots[0]!;
        base.keyslots = active.map((on) => (on ? slot0 : { state: 'inactive' as const }));
        const back = decodeHeaderCopy(encodeHeaderCopy(base, 'B', SAMPLE_MAC_KEY), 'B');
        assert.equal(back, base);
      },
    ),
    { numRuns: 200 },
  );
});

test('every single-bit flip in a copy is detected, never a crash or silent acceptance', () => {
  const bytes = encodeHeaderCopy(sampleFields(3), 'A', SAMPLE_MAC_KEY);
  let detected = 0;
  for (let bit = 0; bit < HEADER_SIZE * 8; bit++) {
    const copy = Uint8Array.from(bytes);
    copy[bit >> 3]! ^= 1 << (bit & 7);
    const code = decodeCode(copy);
    // Checked in SPEC §8 order: magic, version, header_size, then the checksum catches the rest.
    assert.ok(
      ['HEADER_CHECKSUM', 'HEADER_MAGIC', 'UNSUPPORTED_VERSION', 'HEADER_FIELD'].includes(code),
      `bit ${bit}: ${code}`,
    );
    detected++;
  }
  assert.is(detected, 32768);
});

test('a copy is only valid at its own offset (magic A vs B)', () => {
  const a = encodeHeaderCopy(sampleFields(), 'A', SAMPLE_MAC_KEY);
  assert.is(decodeCode(a, 'B'), 'HEADER_MAGIC');
});

test('tampering that recomputes the checksum is caught by the keyed MAC', () => {
  const bytes = encodeHeaderCopy(sampleFields(), 'A', SAMPLE_MAC_KEY);
  bytes[H.dataSize + 1]! ^= 0x01; // change data_size by 256 bytes... keep it a valid multiple
  bytes[H.dataSize + 1]! ^= 0x01;
  bytes[H.dataSize + 2]! ^= 0x01; // +65536: still a multiple of 4096
  reseal(bytes);
  assert.is(decodeCode(bytes), 'ok');
  assert.not.ok(verifyHeaderMac(bytes, SAMPLE_MAC_KEY));
});

test('field rules reject with the SPEC §10 code', () => {
  const cases: Array<[string, (b: Uint8Array, v: DataView) => void, string]> = [
    ['version 2', (_b, v) => v.setUint32(H.formatVersion, 2, true), 'UNSUPPORTED_VERSION'],
    ['header size', (_b, v) => v.setUint32(H.headerSize, 8192, true), 'HEADER_FIELD'],
    ['seqid 0', (_b, v) => v.setBigUint64(H.seqid, 0n, true), 'HEADER_FIELD'],
    ['seqid > 2^53', (_b, v) => v.setBigUint64(H.seqid, 1n << 60n, true), 'HEADER_FIELD'],
    ['uuid zero', (b) => b.fill(0, H.uuid, H.uuid + 16), 'HEADER_FIELD'],
    [
      'incompat bit',
      (_b, v) => v.setBigUint64(H.featureIncompat, 1n << 40n, true),
      'UNSUPPORTED_FEATURE',
    ],
    ['cipher', (_b, v) => v.setUint32(H.cipher, 2, true), 'HEADER_FIELD'],
    ['sector 1024', (_b, v) => v.setUint32(H.sectorSize, 1024, true), 'HEADER_FIELD'],
    ['journal offset', (_b, v) => v.setBigUint64(H.journalOffset, 0n, true), 'HEADER_FIELD'],
    ['journal size odd', (_b, v) => v.setBigUint64(H.journalSize, 4097n, true), 'HEADER_FIELD'],
    ['data offset', (_b, v) => v.setBigUint64(H.dataOffset, 8192n, true), 'HEADER_FIELD'],
    ['data size 0', (_b, v) => v.setBigUint64(H.dataSize, 0n, true), 'HEADER_FIELD'],
    ['data size odd', (_b, v) => v.setBigUint64(H.dataSize, 4097n, true), 'HEADER_FIELD'],
    [
      'data end overflow',
      (_b, v) => v.setBigUint64(H.dataSize, (1n << 53n) - 4096n, true),
      'HEADER_FIELD',
    ],
    ['keyslot count', (_b, v) => v.setUint32(H.keyslotCount, 9, true), 'HEADER_FIELD'],
    ['keyslot size', (_b, v) => v.setUint32(H.keyslotSize, 128, true), 'HEADER_FIELD'],
    ['keyslots offset', (_b, v) => v.setUint32(H.keyslotsOffset, 256, true), 'HEADER_FIELD'],
    ['reserved', (b) => (b[H.reserved0 + 3] = 1), 'HEADER_FIELD'],
    ['feature area', (b) => (b[H.featureArea] = 1), 'HEADER_FIELD'],
    ['slot state 2', (_b, v) => v.setUint16(H.keyslots, 2, true), 'KEYSLOT_FIELD'],
    ['inactive slot not zero', (b) => (b[H.keyslots + 256 + 100] = 1), 'KEYSLOT_FIELD'],
    ['kdf algorithm', (_b, v) => v.setUint16(H.keyslots + 2, 2, true), 'KEYSLOT_FIELD'],
    [
      'kdf memory over limit',
      (_b, v) => v.setUint32(H.keyslots + 8, 8 * 1024 * 1024, true),
      'KDF_LIMITS',
    ],
    ['kdf time over limit', (_b, v) => v.setUint32(H.keyslots + 4, 1000, true), 'KDF_LIMITS'],
    ['kdf lanes over limit', (_b, v) => v.setUint32(H.keyslots + 12, 255, true), 'KDF_LIMITS'],
    ['kdf memory under 8p', (_b, v) => v.setUint32(H.keyslots + 8, 4, true), 'KDF_LIMITS'],
    ['wrap algorithm', (_b, v) => v.setUint16(H.keyslots + 48, 7, true), 'KEYSLOT_FIELD'],
    ['key bytes', (_b, v) => v.setUint16(H.keyslots + 50, 32, true), 'KEYSLOT_FIELD'],
    ['slot flags', (_b, v) => v.setUint32(H.keyslots + 52, 1, true), 'KEYSLOT_FIELD'],
    ['slot reserved', (b) => (b[H.keyslots + 200] = 1), 'KEYSLOT_FIELD'],
  ];
  for (const [name, edit, code] of cases) {
    const bytes = encodeHeaderCopy(sampleFields(), 'A', SAMPLE_MAC_KEY);
    edit(bytes, new DataView(bytes.buffer));
    assert.is(decodeCode(reseal(bytes)), code, name);
  }
});

test('short copy is HEADER_SHORT', () => {
  const bytes = encodeHeaderCopy(sampleFields(), 'A', SAMPLE_MAC_KEY);
  assert.is(decodeCode(bytes.subarray(0, 4000)), 'HEADER_SHORT');
});

test('keyslot unwraps with the right KEK only, and is bound to its slot', () => {
  const fields = sampleFields();
  const slot = fields.keyslots[0]!;
  assert.is(slot.state, 'active');
  if (slot.state !== 'active') return;
  assert.equal(unwrapMasterKey(SAMPLE_KEK, fields.uuid, 0, slot), sampleMasterKey());
  assert.is(unwrapMasterKey(new Uint8Array(32), fields.uuid, 0, slot), null);
  assert.is(unwrapMasterKey(SAMPLE_KEK, fields.uuid, 1, slot), null);
  const lowered = { ...slot, kdf: { ...slot.kdf, timeCost: 2 } };
  assert.is(unwrapMasterKey(SAMPLE_KEK, fields.uuid, 0, lowered), null);
});

test('uuid formatting', () => {
  assert.is(
    formatUuid(Uint8Array.from({ length: 16 }, (_, i) => i)),
    '00010203-0405-0607-0809-0a0b0c0d0e0f',
  );
});

test.run();
