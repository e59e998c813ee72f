/** crypto/kdf.ts: Argon2id against RFC 9106 §5.3, and the limits checked before hashing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  argon2idRaw,
  checkArgon2idParams,
  deriveArgon2id,
  KDF_LIMITS,
  KdfLimitError,
  type Argon2idParams,
} from '../../crypto/kdf.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
/** Cheap parameters for tests (ARCHITECTURE.md §7): m = 64 KiB, t = 1, p = 1. */
const CHEAP: Argon2idParams = { timeCost: 1, memoryKiB: 64, parallelism: 1 };

const isLimit = (message?: string) => (e: unknown) =>
  e instanceof KdfLimitError &&
  e instanceof RangeError &&
  e.code === 'KDF_LIMITS' &&
  (message === undefined || e.message === message);

test('RFC 9106 §5.3: Argon2id test vector (with secret K and associated data X)', async () => {
  // m = 32 KiB, t = 3, p = 4, T = 32; P = 32 × 0x01, S = 16 × 0x02, K = 8 × 0x03, X = 12 × 0x04.
  const tag = await argon2idRaw(
    fill(32, 0x01),
    fill(16, 0x02),
    { memoryKiB: 32, timeCost: 3, parallelism: 4 },
    32,
    fill(8, 0x03),
    fill(12, 0x04),
  );
  assert.is(hex(tag), '0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659');
});

test('deriveArgon2id: deterministic, = argon2idRaw without K and X, output length', async () => {
  const secret = new TextEncoder().encode('correct horse battery staple');
  const salt = fill(32, 0xaa);
  const a = await deriveArgon2id(secret, salt, CHEAP);
  const b = await deriveArgon2id(secret, salt, CHEAP);
  assert.is(a.length, 32);
  assert.is(hex(a), hex(b));
  assert.is(hex(a), hex(await argon2idRaw(secret, salt, CHEAP, 32)));
  assert.is((await deriveArgon2id(secret, salt, CHEAP, 64)).length, 64);
  const otherSalt = await deriveArgon2id(secret, fill(32, 0xab), CHEAP);
  assert.is.not(hex(otherSalt), hex(a));
  assert.equal([...secret.subarray(0, 7)], [...new TextEncoder().encode('correct')]); // untouched
});

test('checkArgon2idParams: the example message and every bound', () => {
  assert.throws(
    () => checkArgon2idParams({ timeCost: 3, memoryKiB: 8 * 1024 * 1024, parallelism: 4 }),
    isLimit('kdf memory 8388608 KiB exceeds limit 4194304 KiB'),
  );
  const bad: Argon2idParams[] = [
    { timeCost: 0, memoryKiB: 64, parallelism: 1 },
    { timeCost: 33, memoryKiB: 64, parallelism: 1 },
    { timeCost: 1.5, memoryKiB: 64, parallelism: 1 },
    { timeCost: 1, memoryKiB: 7, parallelism: 1 },
    { timeCost: 1, memoryKiB: 64.5, parallelism: 1 },
    { timeCost: 1, memoryKiB: KDF_LIMITS.maxMemoryKiB + 1, parallelism: 1 },
    { timeCost: 1, memoryKiB: 64, parallelism: 0 },
    { timeCost: 1, memoryKiB: 1024, parallelism: 17 },
    { timeCost: 1, memoryKiB: 31, parallelism: 4 }, // RFC 9106: m >= 8·p
    { timeCost: Number.NaN, memoryKiB: 64, parallelism: 1 },
    { timeCost: 1, memoryKiB: Infinity, parallelism: 1 },
    { timeCost: '3', memoryKiB: 64, parallelism: 1 } as unknown as Argon2idParams,
  ];
  for (const p of bad) assert.throws(() => checkArgon2idParams(p), isLimit(), JSON.stringify(p));
  // The bounds themselves are accepted (only checked, never hashed here).
  checkArgon2idParams({ timeCost: 32, memoryKiB: KDF_LIMITS.maxMemoryKiB, parallelism: 16 });
  checkArgon2idParams({ timeCost: 1, memoryKiB: 8, parallelism: 1 });
  checkArgon2idParams({ timeCost: 1, memoryKiB: 128, parallelism: 16 });
  assert.throws(() => checkArgon2idParams(null as unknown as Argon2idParams), TypeError);
});

test('limits are enforced before any hashing starts', async () => {
  // Each of these would take seconds and gigabytes (or hang) if hashing began.
  const hostile: Argon2idParams[] = [
    { timeCost: 3, memoryKiB: 8 * 1024 * 1024, parallelism: 4 },
    { timeCost: 1_000_000, memoryKiB: 1024 * 1024, parallelism: 1 },
    { timeCost: 4, memoryKiB: 2 ** 32 - 1, parallelism: 2 ** 24 - 1 },
  ];
  const salt = fill(32, 1);
  for (const p of hostile) {
    const started = performance.now();
    for (const run of [
      () => deriveArgon2id(fill(8, 7), salt, p),
      () => argon2idRaw(fill(8, 7), salt, p, 32),
    ]) {
      let caught: unknown;
      await run().then(
        () => undefined,
        (e: unknown) => (caught = e),
      );
      assert.ok(isLimit()(caught), JSON.stringify(p));
    }
    // Generous bound for a loaded CI machine; a real run of these would take far longer.
    assert.ok(performance.now() - started < 500, `refused in ${performance.now() - started} ms`);
  }
});

test('salt and output length checks', async () => {
  const secret = fill(8, 1);
  const rejects = async (p: Promise<unknown>, type: typeof Error) => {
    let caught: unknown;
    await p.then(
      () => undefined,
      (e: unknown) => (caught = e),
    );
    assert.instance(caught, type);
  };
  await rejects(deriveArgon2id(secret, fill(15, 1), CHEAP), RangeError);
  await rejects(deriveArgon2id(secret, fill(65, 1), CHEAP), RangeError);
  await rejects(argon2idRaw(secret, fill(7, 1), CHEAP, 32), RangeError);
  await rejects(deriveArgon2id(secret, fill(16, 1), CHEAP, 3), RangeError);
  await rejects(deriveArgon2id(secret, fill(16, 1), CHEAP, 1025), RangeError);
  await rejects(deriveArgon2id('pw' as unknown as Uint8Array, fill(16, 1), CHEAP), TypeError);
  assert.is((await deriveArgon2id(secret, fill(16, 1), CHEAP)).length, 32);
  assert.is((await deriveArgon2id(secret, fill(64, 1), CHEAP)).length, 32);
});

test.run();
