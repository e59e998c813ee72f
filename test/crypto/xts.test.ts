/**
 * XtsCipher against IEEE 1619-2007 Annex B and, for random inputs, against OpenSSL's own
 * aes-256-xts run one sector at a time (the definition we must be byte-identical to), for both
 * engines.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NATIVE_XTS_AVAILABLE,
  XTS_KEY_BYTES,
  XtsCipher,
  type XtsEngine,
} from '../../crypto/xts.js';
import { nativeXts, nativeXtsProblem } from '../../crypto/xts-native.js';
import { createXtsKernel } from '../../crypto/xts-kernel.js';
import { IEEE_DATA_UNIT_BYTES, IEEE_KEY_HEX, IEEE_VECTORS, ieeePlaintext } from './xts-vectors.js';

const ENGINES: XtsEngine[] = ['native', 'wasm', 'openssl'];
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** OpenSSL aes-256-xts, one cipher per sector, IV = sector number as 128-bit little-endian. */
function reference(
  encrypt: boolean,
  key: Uint8Array,
  data: Uint8Array,
  sectorSize: number,
  first: number,
) {
  const out = Buffer.alloc(data.length);
  for (let k = 0; k * sectorSize < data.length; k++) {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(BigInt(first + k), 0);
    const make = encrypt ? createCipheriv : createDecipheriv;
    const c = make('aes-256-xts', key, iv);
    out.set(c.update(data.subarray(k * sectorSize, (k + 1) * sectorSize)), k * sectorSize);
    c.final();
  }
  return out;
}

/** A random key whose halves differ (equal halves from randomBytes are 2^-256 unlikely). */
const newKey = (): Buffer => randomBytes(XTS_KEY_BYTES);

test('the native engine is built and is the default (else volumes run 2x slower)', () => {
  assert.ok(NATIVE_XTS_AVAILABLE, nativeXtsProblem ?? '');
  for (const sectorSize of [512, 4096, 65536]) {
    assert.is(new XtsCipher(newKey(), sectorSize).engine, 'native');
  }
});

test('the WebAssembly SIMD kernel compiles on this runtime (the fallback engine)', () => {
  assert.ok(createXtsKernel() !== null);
  assert.is(new XtsCipher(newKey(), 4096, { engine: 'wasm' }).engine, 'wasm');
});

for (const engine of ENGINES) {
  test(`${engine}: IEEE 1619-2007 Annex B Vectors 10-14 (XTS-AES-256, 512-byte units)`, () => {
    const key = Buffer.from(IEEE_KEY_HEX, 'hex');
    const pt = ieeePlaintext();
    const xts = new XtsCipher(key, IEEE_DATA_UNIT_BYTES, { engine });
    for (const v of IEEE_VECTORS) {
      const ct = xts.encryptSectors(pt, v.dataUnit);
      assert.is(hex(ct), v.ciphertextHex, `vector ${v.vector} encrypt`);
      assert.is(hex(xts.decryptSectors(ct, v.dataUnit)), hex(pt), `vector ${v.vector} decrypt`);
      // The same sector in the middle of a batch: batch offsets map to sector numbers.
      const batch = new Uint8Array(3 * IEEE_DATA_UNIT_BYTES);
      batch.set(pt, IEEE_DATA_UNIT_BYTES);
      const out = xts.encryptSectors(batch, v.dataUnit - 1);
      assert.is(hex(out.subarray(512, 1024)), v.ciphertextHex, `vector ${v.vector} in a batch`);
    }
    xts.dispose();
  });

  test(`${engine}: matches OpenSSL aes-256-xts per sector on random batches`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 48, 512, 4096, 4112),
        fc.integer({ min: 1, max: 40 }),
        fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(2 ** 32 - 3)),
        (sectorSize, count, first) => {
          const key = newKey();
          const data = randomBytes(sectorSize * count);
          const xts = new XtsCipher(key, sectorSize, { engine });
          const ct = xts.encryptSectors(data, first);
          assert.is(hex(ct), hex(reference(true, key, data, sectorSize, first)));
          assert.is(hex(xts.decryptSectors(ct, first)), hex(data));
          xts.dispose();
        },
      ),
      { numRuns: 60 },
    );
  });

  for (const sectorSize of [512, 4096]) {
    test(`${engine}: ${sectorSize}-byte sectors, 1 MiB batch and more sectors than one tweak group`, () => {
      const key = newKey();
      const xts = new XtsCipher(key, sectorSize, { engine });
      // 4097 sectors cross the kernel's 4096-sector tweak group; 1 MiB is many 64 KiB windows.
      for (const count of [(1024 * 1024) / sectorSize, 4097]) {
        const data = randomBytes(count * sectorSize);
        const ct = xts.encryptSectors(data, 777);
        assert.ok(Buffer.from(ct).equals(reference(true, key, data, sectorSize, 777)));
        const pt = reference(false, key, ct, sectorSize, 777);
        assert.ok(Buffer.from(xts.decryptSectors(ct, 777)).equals(pt));
        assert.ok(pt.equals(data));
      }
      xts.dispose();
    });
  }

  test(`${engine}: sector numbers near 2^53 and across 2^32`, () => {
    const key = newKey();
    const xts = new XtsCipher(key, 512, { engine });
    for (const [first, count] of [
      [Number.MAX_SAFE_INTEGER - 6, 7],
      [Number.MAX_SAFE_INTEGER, 1],
      [2 ** 32 - 2, 5],
      [2 ** 48 - 1, 3],
    ] as const) {
      const data = randomBytes(count * 512);
      const ct = xts.encryptSectors(data, first);
      assert.is(hex(ct), hex(reference(true, key, data, 512, first)), `first ${first}`);
      assert.is(hex(xts.decryptSectors(ct, first)), hex(data));
    }
    assert.throws(
      () => xts.encryptSectors(new Uint8Array(1024), Number.MAX_SAFE_INTEGER),
      RangeError,
    );
    xts.dispose();
  });

  test(`${engine}: in place, into a separate buffer, and on unaligned views`, () => {
    const key = newKey();
    const xts = new XtsCipher(key, 512, { engine });
    const data = randomBytes(9 * 512);
    const expected = reference(true, key, data, 512, 42);

    const inPlace = Buffer.from(data);
    assert.is(xts.encryptSectors(inPlace, 42, inPlace), inPlace);
    assert.is(hex(inPlace), hex(expected));
    xts.decryptSectors(inPlace, 42, inPlace);
    assert.is(hex(inPlace), hex(data));

    // Views at odd offsets into larger buffers, for both input and output.
    const src = new Uint8Array(data.length + 3);
    src.set(data, 1);
    const dst = new Uint8Array(data.length + 5);
    const outView = dst.subarray(3, 3 + data.length);
    xts.encryptSectors(src.subarray(1, 1 + data.length), 42, outView);
    assert.is(hex(outView), hex(expected));
    assert.is(dst[0], 0);
    assert.is(dst[dst.length - 1], 0);

    // A partial overlap would read bytes already overwritten: refused.
    const shared = new Uint8Array(10 * 512);
    assert.throws(
      () => xts.encryptSectors(shared.subarray(0, 9 * 512), 0, shared.subarray(512)),
      (e: unknown) => e instanceof RangeError && /overlap/.test(e.message),
    );
    xts.dispose();
  });

  test(`${engine}: recryptSectors equals decrypt under one key, encrypt under the other`, () => {
    for (const sectorSize of [512, 4096]) {
      const oldXts = new XtsCipher(newKey(), sectorSize, { engine });
      const newXts = new XtsCipher(newKey(), sectorSize, { engine });
      const data = randomBytes(9 * sectorSize);
      const expected = newXts.encryptSectors(oldXts.decryptSectors(data, 77), 77);
      const inPlace = Buffer.from(data);
      oldXts.recryptSectors(newXts, inPlace, 77);
      assert.is(hex(inPlace), hex(expected), `${sectorSize}`);
      assert.throws(() => oldXts.recryptSectors(newXts, inPlace.subarray(1), 0), RangeError);
      assert.throws(() => oldXts.recryptSectors(newXts, inPlace, -1), RangeError);
      newXts.dispose();
      assert.throws(() => oldXts.recryptSectors(newXts, inPlace, 0), TypeError);
      oldXts.dispose();
    }
  });

  test(`${engine}: on views of a SharedArrayBuffer (the drive's worker threads use them)`, () => {
    const key = newKey();
    const xts = new XtsCipher(key, 4096, { engine });
    const data = randomBytes(8 * 4096);
    const shared = new Uint8Array(new SharedArrayBuffer(data.length + 4096));
    const view = shared.subarray(4096);
    view.set(data);
    xts.encryptSectors(view, 9, view);
    assert.is(hex(view), hex(reference(true, key, data, 4096, 9)));
    assert.ok(shared.subarray(0, 4096).every((b) => b === 0));
    xts.decryptSectors(view, 9, view);
    assert.is(hex(view), hex(data));
    xts.dispose();
  });

  test(`${engine}: reused ECB state: many calls of mixed sizes equal one big call`, () => {
    const key = newKey();
    const xts = new XtsCipher(key, 4096, { engine });
    const data = randomBytes(64 * 4096);
    const whole = xts.encryptSectors(data, 1000);
    const pieces = new Uint8Array(data.length);
    let sector = 0;
    for (const n of [1, 3, 4, 5, 16, 17, 2, 16]) {
      const range = [sector * 4096, (sector + n) * 4096] as const;
      xts.encryptSectors(data.subarray(...range), 1000 + sector, pieces.subarray(...range));
      xts.decryptSectors(data.subarray(0, 4096), 5); // interleaved other-direction calls
      sector += n;
    }
    assert.is(sector, 64);
    assert.is(hex(pieces), hex(whole));
    xts.dispose();
  });

  test(`${engine}: empty input`, () => {
    const xts = new XtsCipher(newKey(), 512, { engine });
    assert.is(xts.encryptSectors(new Uint8Array(0), 0).length, 0);
    assert.is(xts.decryptSectors(new Uint8Array(0), 5).length, 0);
    xts.dispose();
  });
}

test('refuses bad keys', () => {
  const same = Buffer.alloc(64, 7);
  assert.throws(
    () => new XtsCipher(same, 512),
    (e: unknown) => {
      return e instanceof RangeError && e.message === 'xts: key halves must differ';
    },
  );
  for (const len of [0, 32, 63, 65]) {
    assert.throws(
      () => new XtsCipher(new Uint8Array(len), 512),
      (e: unknown) => {
        return e instanceof RangeError && e.message === 'xts: key must be 64 bytes';
      },
    );
  }
  assert.throws(() => new XtsCipher('k'.repeat(64) as unknown as Uint8Array, 512), TypeError);
});

test('refuses bad sector sizes', () => {
  for (const size of [0, 8, 24, 500, 512.5, -512, 65552, Number.NaN]) {
    assert.throws(() => new XtsCipher(newKey(), size), RangeError, `size ${size}`);
  }
  for (const size of [16, 512, 4096, 65536]) new XtsCipher(newKey(), size).dispose();
});

test('refuses bad lengths, indices and outputs', () => {
  const xts = new XtsCipher(newKey(), 512);
  const isRange = (msg: string) => (e: unknown) => e instanceof RangeError && e.message === msg;
  assert.throws(
    () => xts.encryptSectors(new Uint8Array(511), 0),
    isRange('xts: data length must be a multiple of the sector size'),
  );
  assert.throws(() => xts.decryptSectors(new Uint8Array(1000), 0), RangeError);
  for (const first of [-1, 1.5, Number.NaN, 2 ** 53]) {
    assert.throws(
      () => xts.encryptSectors(new Uint8Array(512), first),
      RangeError,
      `first ${first}`,
    );
  }
  assert.throws(
    () => xts.encryptSectors(new Uint8Array(512), 0, new Uint8Array(1024)),
    isRange('xts: out length must equal data length'),
  );
  assert.throws(() => xts.encryptSectors([1, 2] as unknown as Uint8Array, 0), TypeError);
  xts.dispose();
});

test('dispose wipes and makes later use throw', () => {
  for (const engine of ENGINES) {
    const xts = new XtsCipher(newKey(), 512, { engine });
    xts.encryptSectors(randomBytes(2048), 0);
    xts.dispose();
    xts.dispose(); // idempotent
    assert.throws(
      () => xts.encryptSectors(new Uint8Array(512), 0),
      (e: unknown) => {
        return e instanceof TypeError && e.message === 'xts: cipher is disposed';
      },
    );
    assert.throws(() => xts.decryptSectors(new Uint8Array(512), 0), TypeError);
  }
});

test('the addon itself refuses bad arguments with an error, not a crash', () => {
  if (nativeXts === null) return; // the first test fails then
  const key = nativeXts.createKey(newKey());
  const buf = new Uint8Array(1024);
  const bad: [string, () => void][] = [
    ['short key', () => nativeXts!.createKey(new Uint8Array(63))],
    ['key not bytes', () => nativeXts!.createKey(new Uint16Array(32) as unknown as Uint8Array)],
    ['equal halves', () => nativeXts!.createKey(new Uint8Array(64))],
    ['not a handle', () => nativeXts!.crypt({} as never, true, buf, buf, 0, 512)],
    ['lengths differ', () => nativeXts!.crypt(key, true, buf, buf.subarray(1), 0, 512)],
    ['partial sector', () => nativeXts!.crypt(key, true, buf.subarray(1), buf.subarray(1), 0, 512)],
    ['sector size 8', () => nativeXts!.crypt(key, true, buf, buf, 0, 8)],
    ['sector size 520', () => nativeXts!.crypt(key, true, buf, buf, 0, 520)],
    ['negative sector', () => nativeXts!.crypt(key, true, buf, buf, -1, 512)],
    ['fractional sector', () => nativeXts!.crypt(key, true, buf, buf, 0.5, 512)],
    ['past 2^53', () => nativeXts!.crypt(key, true, buf, buf, 2 ** 53 - 1, 512)],
    [
      'partial overlap',
      () => nativeXts!.crypt(key, true, buf.subarray(0, 512), buf.subarray(256, 768), 0, 512),
    ],
    [
      'missing argument',
      () => (nativeXts!.crypt as (...a: unknown[]) => void)(key, true, buf, buf, 0),
    ],
  ];
  for (const [what, call] of bad) assert.throws(call, /xts-native/, what);
  nativeXts.disposeKey(key);
  assert.throws(() => nativeXts!.crypt(key, true, buf, buf, 0, 512), /disposed/);
  assert.throws(() => nativeXts!.recrypt(key, key, buf, 0, 512), /disposed/);
});

test('each kernel instance owns its memory (so one dispose wipes one cipher only)', () => {
  const a = createXtsKernel()!;
  const b = createXtsKernel()!;
  a.memory.fill(1);
  assert.ok(b.memory.every((x) => x === 0));
  assert.is(a.memory.length, 3 * 65536);
});

test.run();
