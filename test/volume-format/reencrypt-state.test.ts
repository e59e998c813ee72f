// SPEC §15.2/§15.3/§15.5 and §16: the re-encryption record in `feature_area` (round trip,
// every §10 row 30 rule, single-bit flips), the old-key wrap, checksum records and the
// block-by-block recovery merge, and the resize plan.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { sha256 } from '../../crypto/hkdf.js';
import { XtsCipher } from '../../crypto/xts.js';
import {
  FEATURE_AREA_BYTES,
  HEADER_FIELD_OFFSETS as H,
  REENCRYPT_FIELD_OFFSETS as R,
} from '../../volume-format/constants.js';
import { CryptainerError } from '../../volume-format/errors.js';
import { INCOMPAT_REENCRYPT, KNOWN_FEATURES } from '../../volume-format/features.js';
import { decodeHeaderCopy, encodeHeaderCopy } from '../../volume-format/header.js';
import {
  type ReencryptState,
  buildChecksumRecord,
  findChecksumMismatch,
  writeChecksumRecord,
  checkNotReencrypting,
  decodeReencryptState,
  encodeReencryptState,
  initialReencryptState,
  journalRecordBytes,
  journalSlotOffset,
  maxSegmentSectors,
  mergeCheckedSegment,
  unwrapOldMasterKey,
  wrapOldMasterKey,
} from '../../volume-format/reencrypt-state.js';
import { parseSizeRequest, planResize } from '../../volume-format/resize.js';
import { SAMPLE_MAC_KEY, pattern, sampleFields } from '../helpers/headers.js';

const layout = sampleFields(1, 4096, 8 << 20); // 2048 sectors, 12 MiB journal
const NEW_KEY = pattern(64, 21);
const OLD_KEY = pattern(64, 31);

function sampleState(over: Partial<ReencryptState> = {}): ReencryptState {
  const nonce = pattern(24, 41);
  return {
    ...initialReencryptState(
      'checksum',
      nonce,
      wrapOldMasterKey(NEW_KEY, OLD_KEY, layout.uuid, nonce),
    ),
    sectorsDone: 100,
    segmentSectors: 64,
    journalSlot: 1,
    journalDigest: pattern(32, 51),
    ...over,
  };
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof CryptainerError, `not our error: ${String(err)}`);
    return (err as CryptainerError).code;
  }
}

test('the flag is known; the record round-trips and decodes inside a header copy', () => {
  assert.is(INCOMPAT_REENCRYPT, 2n);
  assert.ok((KNOWN_FEATURES.incompat & INCOMPAT_REENCRYPT) !== 0n);
  const state = sampleState();
  const area = encodeReencryptState(state, layout);
  assert.is(area.length, FEATURE_AREA_BYTES);
  assert.equal(decodeReencryptState(area, layout), state);
  const fields = {
    ...layout,
    features: { ...layout.features, incompat: INCOMPAT_REENCRYPT },
    featureArea: area,
  };
  assert.equal(decodeHeaderCopy(encodeHeaderCopy(fields, 'A', SAMPLE_MAC_KEY), 'A'), fields);
  // The same bytes without the flag: a non-zero feature area is invalid (§10 row 13).
  const noFlag = { ...fields, features: layout.features };
  assert.is(
    code(() => decodeHeaderCopy(encodeHeaderCopy(noFlag, 'A', SAMPLE_MAC_KEY), 'A')),
    'HEADER_FIELD',
  );
  // With the flag but an all-zero area: version 0 is invalid (§10 row 30).
  const empty = { ...fields, featureArea: new Uint8Array(FEATURE_AREA_BYTES) };
  assert.is(
    code(() => decodeHeaderCopy(encodeHeaderCopy(empty, 'A', SAMPLE_MAC_KEY), 'A')),
    'HEADER_FIELD',
  );
});

test('property: decode(encode(x)) = x over valid states', () => {
  const count = layout.dataSize / layout.sectorSize;
  fc.assert(
    fc.property(
      fc.constantFrom('checksum' as const, 'journal' as const),
      fc.integer({ min: 0, max: count }),
      fc.integer({ min: 0, max: count }),
      fc.integer({ min: 0, max: 1 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (resilience, done, seg, slot, digest) => {
        const max = maxSegmentSectors(resilience, layout);
        const segmentSectors = Math.min(seg, count - done, max);
        const s = sampleState({
          resilience,
          sectorsDone: done,
          segmentSectors,
          journalSlot: segmentSectors === 0 ? 0 : slot,
          journalDigest: segmentSectors === 0 ? new Uint8Array(32) : digest,
        });
        assert.equal(decodeReencryptState(encodeReencryptState(s, layout), layout), s);
      },
    ),
    { numRuns: 300 },
  );
});

test('§10 row 30: every rule of the record is enforced', () => {
  const good = encodeReencryptState(sampleState(), layout);
  const count = layout.dataSize / layout.sectorSize;
  const cases: [string, (b: Uint8Array, v: DataView) => void][] = [
    ['version 2', (_b, v) => v.setUint32(R.version, 2, true)],
    ['resilience 0', (_b, v) => v.setUint16(R.resilience, 0, true)],
    ['resilience 3', (_b, v) => v.setUint16(R.resilience, 3, true)],
    ['slot 2', (_b, v) => v.setUint16(R.journalSlot, 2, true)],
    ['done > N', (_b, v) => v.setBigUint64(R.sectorsDone, BigInt(count + 1), true)],
    ['done + n > N', (_b, v) => v.setBigUint64(R.sectorsDone, BigInt(count - 10), true)],
    ['u64 > 2^53-1', (_b, v) => v.setBigUint64(R.segmentSectors, 1n << 60n, true)],
    [
      'record larger than a slot',
      (_b, v) => {
        v.setBigUint64(R.sectorsDone, 0n, true);
        v.setBigUint64(R.segmentSectors, BigInt(count), true); // 2048 × 128 = 256 KiB fits
        v.setUint16(R.resilience, 2, true); // journal: 8 MiB does not fit 6 MiB
      },
    ],
    [
      'digest with nothing in flight',
      (_b, v) => {
        v.setBigUint64(R.segmentSectors, 0n, true);
        v.setUint16(R.journalSlot, 0, true);
      },
    ],
    ['slot with nothing in flight', (_b, v) => v.setBigUint64(R.segmentSectors, 0n, true)],
    ['reserved byte', (b) => (b[R.reserved + 7] = 1)],
  ];
  for (const [name, mutate] of cases) {
    const b = Uint8Array.from(good);
    mutate(b, new DataView(b.buffer));
    assert.is(
      code(() => decodeReencryptState(b, layout)),
      'HEADER_FIELD',
      name,
    );
  }
});

test('any single-bit flip of a flagged header copy is caught (checksum), never accepted', () => {
  const fields = {
    ...layout,
    features: { ...layout.features, incompat: INCOMPAT_REENCRYPT },
    featureArea: encodeReencryptState(sampleState(), layout),
  };
  const bytes = encodeHeaderCopy(fields, 'B', SAMPLE_MAC_KEY);
  for (let bit = H.featureArea * 8; bit < (H.featureArea + FEATURE_AREA_BYTES) * 8; bit += 7) {
    const b = Uint8Array.from(bytes);
    b[bit >> 3]! ^= 1 << (bit & 7);
    assert.is(
      code(() => decodeHeaderCopy(b, 'B')),
      'HEADER_CHECKSUM',
    );
    b.set(sha256(b.subarray(0, H.checksum)), H.checksum); // resealed: rules or the MAC decide
    const c = code(() => decodeHeaderCopy(b, 'B'));
    assert.ok(c === 'ok' || c === 'HEADER_FIELD', `bit ${bit}: ${c}`);
  }
});

test('§15.3: the old key opens only under the new key, the uuid and the untouched wrap', () => {
  const s = sampleState();
  assert.equal(unwrapOldMasterKey(NEW_KEY, layout.uuid, s), OLD_KEY);
  assert.is(unwrapOldMasterKey(OLD_KEY, layout.uuid, s), null);
  assert.is(unwrapOldMasterKey(NEW_KEY, pattern(16, 99), s), null);
  const bent = { ...s, wrappedOldKey: Uint8Array.from(s.wrappedOldKey) };
  bent.wrappedOldKey[5]! ^= 1;
  assert.is(unwrapOldMasterKey(NEW_KEY, layout.uuid, bent), null);
});

test('§15.5: record sizes, slots and the largest segment', () => {
  assert.is(journalRecordBytes('checksum', 4096, 10), 10 * 128);
  assert.is(journalRecordBytes('checksum', 512, 10), 10 * 16);
  assert.is(journalRecordBytes('journal', 4096, 10), 40960);
  // The 12 MiB journal of v1 writers (SPEC §2): slots of 6 MiB, so segments of up to 192 MiB
  // in checksum mode and 6 MiB in journal mode.
  assert.is(layout.journalSize, 12 << 20);
  assert.is(journalSlotOffset(layout, 0), 1 << 20);
  assert.is(journalSlotOffset(layout, 1), (1 << 20) + (6 << 20));
  assert.is(maxSegmentSectors('checksum', layout) * 4096, 192 << 20);
  assert.is(maxSegmentSectors('journal', layout) * 4096, 6 << 20);
  // The 3 MiB journal of earlier writers: 48 MiB and 1.5 MiB.
  const earlier = { ...layout, journalSize: 3 << 20, dataOffset: 4 << 20 };
  assert.is(journalSlotOffset(earlier, 1), (1 << 20) + (3 << 19));
  assert.is(maxSegmentSectors('checksum', earlier) * 4096, 48 << 20);
  assert.is(maxSegmentSectors('journal', earlier) * 4096, 3 << 19);
  const rec = buildChecksumRecord(Uint8Array.from({ length: 2048 }, (_, i) => i & 0xff));
  assert.is(rec.length, 64);
  assert.equal(
    rec.subarray(16, 32),
    Uint8Array.from({ length: 16 }, (_, i) => i),
  ); // 512 & 0xff = 0
  // Unaligned input takes the byte path and gives the same bytes.
  const src = new Uint8Array(2049);
  src.set(
    Uint8Array.from({ length: 2048 }, (_, i) => i & 0xff),
    1,
  );
  assert.equal(buildChecksumRecord(src.subarray(1)), rec);
  // Into a caller's buffer (a view into a shared one, as the re-encryption's threads do), at an
  // aligned and at an unaligned offset; a wrong output length is refused.
  const shared = new Uint8Array(new SharedArrayBuffer(4 + 64 + 1));
  writeChecksumRecord(src.subarray(1), shared.subarray(4, 68));
  assert.equal(shared.slice(4, 68), rec);
  writeChecksumRecord(src.subarray(1), shared.subarray(5, 69));
  assert.equal(shared.slice(5, 69), rec);
  assert.throws(() => writeChecksumRecord(src.subarray(1), new Uint8Array(63)), RangeError);
  assert.throws(() => writeChecksumRecord(new Uint8Array(100), new Uint8Array(3)), RangeError);
});

test('§15.6 step 4: a second read is checked against the record, block by block', () => {
  const cipher = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff);
  const rec = buildChecksumRecord(cipher);
  assert.is(findChecksumMismatch(cipher, rec), -1);
  // A change inside a fingerprint is found at its 512-byte block, on the aligned path and on
  // the byte path (an unaligned view).
  const unaligned = new Uint8Array(4097).subarray(1);
  const flip = (b: Uint8Array, at: number, bit: number) => b.set([b[at]! ^ bit], at);
  for (const view of [Uint8Array.from(cipher), unaligned]) {
    view.set(cipher);
    flip(view, 5 * 512 + 15, 1);
    assert.is(findChecksumMismatch(view, rec), 5);
    flip(view, 2 * 512, 0x80);
    assert.is(findChecksumMismatch(view, rec), 2, 'the first block that differs');
  }
  // Bytes past a block's first 16 are not fingerprinted, so a change there is not seen (the
  // record only has to tell old ciphertext from new, SPEC §15.5).
  const tail = Uint8Array.from(cipher);
  flip(tail, 3 * 512 + 16, 1);
  assert.is(findChecksumMismatch(tail, rec), -1);
  assert.throws(() => findChecksumMismatch(cipher, rec.subarray(1)), RangeError);
  assert.throws(() => findChecksumMismatch(cipher.subarray(1), rec), RangeError);
});

test('§15.7: a sector torn between old and new blocks is recovered block by block', () => {
  for (const ss of [512, 4096]) {
    const oldX = new XtsCipher(OLD_KEY, ss);
    const newX = new XtsCipher(NEW_KEY, ss);
    const plain = pattern(4 * ss, 77);
    const oldCipher = oldX.encryptSectors(plain, 40);
    const newCipher = newX.encryptSectors(plain, 40);
    const record = buildChecksumRecord(oldCipher);
    // On disk: every other 512-byte block rewritten (as if writes landed out of order).
    const current = Uint8Array.from(oldCipher);
    for (let b = 1; b < current.length / 512; b += 2) {
      current.set(newCipher.subarray(b * 512, b * 512 + 512), b * 512);
    }
    const a = oldX.decryptSectors(current, 40);
    const counts = mergeCheckedSegment(current, record, a, newX.decryptSectors(current, 40));
    assert.equal(a, plain, `sector size ${ss}`);
    assert.is(counts.oldBlocks, counts.newBlocks);
    oldX.dispose();
    newX.dispose();
  }
});

test('checkNotReencrypting names the command that resumes', () => {
  const fields = {
    ...layout,
    features: { ...layout.features, incompat: INCOMPAT_REENCRYPT },
    featureArea: encodeReencryptState(
      sampleState({
        sectorsDone: 1024,
        segmentSectors: 0,
        journalSlot: 0,
        journalDigest: new Uint8Array(32),
      }),
      layout,
    ),
  };
  try {
    checkNotReencrypting(fields, 'v.img');
    assert.unreachable();
  } catch (err) {
    assert.is((err as CryptainerError).code, 'REENCRYPT_IN_PROGRESS');
    assert.match((err as Error).message, /50% done.*cryptainer reencrypt v\.img/);
  }
  checkNotReencrypting(layout, 'v.img'); // no flag: fine
});

test('§16: resize plans', () => {
  const l = sampleFields(1, 4096, 64 << 20);
  const grow = planResize(l, { kind: 'absolute', bytes: 128 << 20 });
  assert.equal(
    [grow.direction, grow.oldSectorCount, grow.newSectorCount, grow.newContainerSize],
    ['grow', 16384, 32768, l.dataOffset + (128 << 20)],
  );
  assert.is(planResize(l, { kind: 'shrink', bytes: 16 << 20 }).newDataSize, 48 << 20);
  assert.is(planResize(l, { kind: 'grow', bytes: 0 }).direction, 'none');
  for (const bad of [
    { kind: 'absolute', bytes: 4095 },
    { kind: 'absolute', bytes: (64 << 20) + 512 },
    { kind: 'shrink', bytes: 64 << 20 },
    { kind: 'absolute', bytes: Number.MAX_SAFE_INTEGER - 4095 },
  ] as const) {
    assert.is(
      code(() => planResize(l, bad)),
      'USAGE',
      JSON.stringify(bad),
    );
  }
  assert.is(
    planResize(sampleFields(1, 512, 1 << 20), { kind: 'absolute', bytes: 1536 }).newSectorCount,
    3,
  );
  const parse = (s: string) => Number(s.replace('M', '')) << 20;
  assert.equal(parseSizeRequest('+5M', parse), { kind: 'grow', bytes: 5 << 20 });
  assert.equal(parseSizeRequest('-5M', parse), { kind: 'shrink', bytes: 5 << 20 });
  assert.equal(parseSizeRequest('5M', parse), { kind: 'absolute', bytes: 5 << 20 });
});

test.run();
