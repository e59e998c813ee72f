// SPEC §13: the header backup file. Round trip, every validation rule with its code, the
// match check, and the property that any single flipped bit is detected.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { sha256 } from '../../crypto/hkdf.js';
import {
  checkBackupMatches,
  checkBackupPrefix,
  decodeHeaderBackup,
  encodeHeaderBackup,
  planBackupStaleness,
} from '../../volume-format/backup.js';
import { INCOMPAT_REENCRYPT } from '../../volume-format/features.js';
import {
  encodeReencryptState,
  initialReencryptState,
} from '../../volume-format/reencrypt-state.js';
import {
  BACKUP_FIELD_OFFSETS as K,
  BACKUP_SIZE,
  HEADER_FIELD_OFFSETS as H,
} from '../../volume-format/constants.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { type HeaderFields, encodeHeaderCopy } from '../../volume-format/header.js';
import { SAMPLE_MAC_KEY, sampleFields } from '../helpers/headers.js';

function copies(fields: HeaderFields = sampleFields(7)): { A: Uint8Array; B: Uint8Array } {
  return {
    A: encodeHeaderCopy(fields, 'A', SAMPLE_MAC_KEY),
    B: encodeHeaderCopy(fields, 'B', SAMPLE_MAC_KEY),
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.instance(err, CryptainerError, String(err));
    return (err as CryptainerError).code;
  }
}

/** A valid backup, edited by `edit`, with the outer checksum recomputed. */
function edited(edit: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const c = copies();
  const b = encodeHeaderBackup(c.A, c.B);
  edit(b, new DataView(b.buffer, b.byteOffset, b.byteLength));
  b.set(sha256(b.subarray(0, K.checksum)), K.checksum);
  return b;
}

/** Re-seal an embedded copy's own checksum after editing it. */
function resealCopy(b: Uint8Array, at: number): void {
  b.set(sha256(b.subarray(at, at + H.checksum)), at + H.checksum);
}

test('round trip: both copies verbatim, preamble describes them', () => {
  const c = copies();
  const bytes = encodeHeaderBackup(c.A, c.B);
  assert.is(bytes.length, BACKUP_SIZE);
  assert.is(Buffer.from(bytes.subarray(0, 8)).toString(), 'CRYPTBAK');
  const b = decodeHeaderBackup(bytes);
  assert.ok(Buffer.from(b.copies.A).equals(Buffer.from(c.A)));
  assert.ok(Buffer.from(b.copies.B).equals(Buffer.from(c.B)));
  assert.is(b.fields.seqid, 7);
  assert.equal(b.fields.uuid, sampleFields().uuid);
  assert.is(new DataView(bytes.buffer).getBigUint64(K.dataSize, true), BigInt(1 << 20));
});

test('encoding refuses copies that are invalid or disagree', () => {
  const c = copies();
  assert.is(
    codeOf(() => encodeHeaderBackup(c.B, c.A)),
    'BACKUP_INVALID',
    'swapped copies',
  );
  const older = copies(sampleFields(6));
  assert.is(
    codeOf(() => encodeHeaderBackup(c.A, older.B)),
    'BACKUP_INVALID',
    'seqid differs',
  );
  const broken = Uint8Array.from(c.B);
  broken[100]! ^= 1;
  assert.is(
    codeOf(() => encodeHeaderBackup(c.A, broken)),
    'BACKUP_INVALID',
    'corrupt copy',
  );
});

const cases: Array<[string, () => Uint8Array, string]> = [
  ['empty file', () => new Uint8Array(0), 'BACKUP_INVALID'],
  ['bad magic', () => edited((b) => (b[0] = 0x41)), 'BACKUP_INVALID'],
  ['a header copy is not a backup', () => copies().A, 'BACKUP_INVALID'],
  [
    'backup version 2',
    () => edited((_b, v) => v.setUint32(K.backupVersion, 2, true)),
    'UNSUPPORTED_VERSION',
  ],
  ['one byte short', () => edited(() => undefined).subarray(0, BACKUP_SIZE - 1), 'BACKUP_INVALID'],
  [
    'one byte long',
    () => {
      const b = new Uint8Array(BACKUP_SIZE + 1);
      b.set(edited(() => undefined));
      return b;
    },
    'BACKUP_INVALID',
  ],
  [
    'checksum mismatch',
    () => {
      const b = edited(() => undefined);
      b[K.copyA + 600]! ^= 0x80;
      return b;
    },
    'BACKUP_INVALID',
  ],
  [
    'format version 2',
    () => edited((_b, v) => v.setUint32(K.formatVersion, 2, true)),
    'UNSUPPORTED_VERSION',
  ],
  [
    'copy size 8192',
    () => edited((_b, v) => v.setUint32(K.copySize, 8192, true)),
    'BACKUP_INVALID',
  ],
  ['copy count 1', () => edited((_b, v) => v.setUint32(K.copyCount, 1, true)), 'BACKUP_INVALID'],
  ['reserved byte set', () => edited((b) => (b[K.reserved + 5] = 1)), 'BACKUP_INVALID'],
  ['preamble uuid differs', () => edited((b) => (b[K.uuid]! ^= 1)), 'BACKUP_INVALID'],
  [
    'preamble seqid differs',
    () => edited((_b, v) => v.setBigUint64(K.seqid, 8n, true)),
    'BACKUP_INVALID',
  ],
  [
    'preamble seqid above 2^53-1',
    () => edited((_b, v) => v.setBigUint64(K.seqid, 1n << 60n, true)),
    'BACKUP_INVALID',
  ],
  [
    'preamble data size differs',
    () => edited((_b, v) => v.setBigUint64(K.dataSize, 4096n, true)),
    'BACKUP_INVALID',
  ],
  [
    'preamble sector size differs',
    () => edited((_b, v) => v.setUint32(K.sectorSize, 512, true)),
    'BACKUP_INVALID',
  ],
  [
    'embedded copy A corrupt (its checksum fails)',
    () => edited((b) => (b[K.copyA + H.dataSize]! ^= 1)),
    'BACKUP_INVALID',
  ],
  [
    'embedded copy B has copy A magic',
    () =>
      edited((b) => {
        b.set(b.subarray(K.copyA, K.copyA + 8), K.copyB);
        resealCopy(b, K.copyB);
      }),
    'BACKUP_INVALID',
  ],
  [
    'embedded copies differ in a keyslot',
    () =>
      edited((b) => {
        b[K.copyB + H.keyslots + 60]! ^= 1; // wrap nonce of keyslot 0
        resealCopy(b, K.copyB);
      }),
    'BACKUP_INVALID',
  ],
  [
    'embedded copies demand too much Argon2 memory',
    () =>
      edited((b, v) => {
        for (const at of [K.copyA, K.copyB]) {
          v.setUint32(at + H.keyslots + 8, 8 * 1024 * 1024, true);
          resealCopy(b, at);
        }
      }),
    'KDF_LIMITS',
  ],
  [
    'embedded copies have an unknown incompatible feature',
    () =>
      edited((b, v) => {
        for (const at of [K.copyA, K.copyB]) {
          v.setBigUint64(at + H.featureIncompat, 1n << 40n, true);
          resealCopy(b, at);
        }
      }),
    'UNSUPPORTED_FEATURE',
  ],
];

for (const [name, make, expect] of cases) {
  test(`decode rejects: ${name} → ${expect}`, () => {
    assert.is(
      codeOf(() => decodeHeaderBackup(make())),
      expect,
    );
  });
}

test('the prefix check rejects a wrong length from the first bytes alone', () => {
  const b = edited(() => undefined);
  assert.is(
    codeOf(() => checkBackupPrefix(b.subarray(0, 64), BACKUP_SIZE)),
    'ok',
  );
  assert.is(
    codeOf(() => checkBackupPrefix(b.subarray(0, 64), 10 << 30)),
    'BACKUP_INVALID',
  );
  assert.is(
    codeOf(() => checkBackupPrefix(b.subarray(0, 4), BACKUP_SIZE)),
    'BACKUP_INVALID',
  );
});

test('checkBackupMatches: same uuid and layout, else BACKUP_MISMATCH', () => {
  const c = copies();
  const backup = decodeHeaderBackup(encodeHeaderBackup(c.A, c.B));
  assert.is(
    codeOf(() => checkBackupMatches(backup, sampleFields(99))),
    'ok',
    'seqid may differ',
  );
  const other = sampleFields(7);
  other.uuid = Uint8Array.from(other.uuid).fill(0x42, 0, 4);
  assert.is(
    codeOf(() => checkBackupMatches(backup, other)),
    'BACKUP_MISMATCH',
  );
  assert.is(
    codeOf(() => checkBackupMatches(backup, sampleFields(7, 4096, 2 << 20))),
    'BACKUP_MISMATCH',
  );
  assert.is(
    codeOf(() => checkBackupMatches(backup, sampleFields(7, 512))),
    'BACKUP_MISMATCH',
  );
});

test('property: any single flipped bit is rejected, never accepted or crashing', () => {
  const c = copies();
  const good = encodeHeaderBackup(c.A, c.B);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: BACKUP_SIZE * 8 - 1 }), (bit) => {
      const b = Uint8Array.from(good);
      b[bit >> 3]! ^= 1 << (bit & 7);
      const code = codeOf(() => decodeHeaderBackup(b));
      return code === 'BACKUP_INVALID' || code === 'UNSUPPORTED_VERSION';
    }),
    { numRuns: 2000 },
  );
});

test('SPEC §13.4 precondition 4: staleness by key generation and re-encryption state', () => {
  const base = sampleFields(7);
  const at = (fields: HeaderFields) => {
    const c = copies(fields);
    return decodeHeaderBackup(encodeHeaderBackup(c.A, c.B));
  };
  const reencrypting = (sectorsDone: number): HeaderFields => ({
    ...base,
    keyGeneration: 1,
    features: { ...base.features, incompat: INCOMPAT_REENCRYPT },
    featureArea: encodeReencryptState(
      { ...initialReencryptState('checksum', new Uint8Array(24), new Uint8Array(80)), sectorsDone },
      base,
    ),
  });
  const done: HeaderFields = { ...base, keyGeneration: 1 };
  assert.is(planBackupStaleness(at(base), base), null, 'generation 0 on both sides');
  assert.is(planBackupStaleness(at(done), done), null, 'generation 1 on both sides');
  assert.match(planBackupStaleness(at(base), done)!.reason, /made before a re-encryption/);
  assert.match(planBackupStaleness(at(done), base)!.reason, /made after a re-encryption/);
  assert.is(planBackupStaleness(at(reencrypting(8)), reencrypting(8)), null, 'same progress point');
  assert.match(planBackupStaleness(at(reencrypting(8)), reencrypting(16))!.reason, /another point/);
  assert.match(planBackupStaleness(at(reencrypting(8)), done)!.reason, /has finished since/);
  assert.match(planBackupStaleness(at(done), reencrypting(8))!.reason, /being re-encrypted/);
});

test.run();
