// The container lock (SPEC §9.2): flock(2) on the file itself, through both engines (the native
// addon and util-linux's flock(1) on an inherited descriptor). Opens through different names
// of one file conflict, the two engines see each other, a flock(1) lock stays held by our
// descriptor after the child exits, a lock dies with its process (SIGKILL), nothing is
// written beside the container, and `create --force` cannot replace a locked volume.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createVolume, openVolume } from '../../src/index.js';
import { openContainer } from '../../src/io/container-file.js';
import { type FlockEngine, nativeFlock, utilLinuxFlock } from '../../src/io/flock.js';
import { type HeldLock, lockFile } from '../../src/io/lock.js';
import { TEST_KDF, makeTempDir } from '../helpers/tmp.js';

const { dir, cleanup } = makeTempDir();
const file = join(dir, 'c.img');
writeFileSync(file, Buffer.alloc(65536));
const sym = join(dir, 'sym.img');
symlinkSync(file, sym);
const hard = join(dir, 'hard.img');
linkSync(file, hard);

assert.ok(nativeFlock !== null, 'the native addon is built (npm run build)');
const ENGINES: FlockEngine[] = [nativeFlock!, utilLinuxFlock];

async function codeOf(p: Promise<HeldLock>): Promise<string> {
  try {
    await (await p).release();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** Lines of /proc/locks about `path`'s inode (flock locks only). */
function procLocksOf(path: string): string[] {
  const ino = String(statSync(path).ino);
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes(' FLOCK ') && l.trim().split(/\s+/)[5]?.endsWith(`:${ino}`));
}

for (const engine of ENGINES) {
  test(`${engine.name}: opens of one file through a symlink and a hard link conflict`, async () => {
    const held = await lockFile(file, 'exclusive', undefined, engine);
    try {
      for (const alias of [file, sym, hard]) {
        assert.is(await codeOf(lockFile(alias, 'exclusive', undefined, engine)), 'VOLUME_BUSY');
        assert.is(await codeOf(lockFile(alias, 'shared', undefined, engine)), 'VOLUME_BUSY');
      }
    } finally {
      await held.release();
    }
    // Readers share; a writer through any name is refused while one holds a shared lock.
    const r1 = await lockFile(sym, 'shared', undefined, engine);
    const r2 = await lockFile(hard, 'shared', undefined, engine);
    try {
      assert.is(await codeOf(lockFile(file, 'exclusive', undefined, engine)), 'VOLUME_BUSY');
    } finally {
      await r1.release();
      await r2.release();
    }
    assert.is(await codeOf(lockFile(hard, 'exclusive', undefined, engine)), 'ok', 'released');
  });
}

test('the two engines take the same kernel lock (each refuses what the other holds)', async () => {
  for (const [a, b] of [
    [nativeFlock!, utilLinuxFlock],
    [utilLinuxFlock, nativeFlock!],
  ] as const) {
    const held = await lockFile(sym, 'exclusive', undefined, a);
    try {
      assert.is(await codeOf(lockFile(hard, 'shared', undefined, b)), 'VOLUME_BUSY');
    } finally {
      await held.release();
    }
    assert.is(await codeOf(lockFile(hard, 'exclusive', undefined, b)), 'ok');
  }
});

test('flock(1) on an inherited descriptor: the lock stays held by our descriptor after it exits', async () => {
  const fd = openSync(file, 'r');
  try {
    assert.ok(utilLinuxFlock.tryLock(fd, 'exclusive'), 'taken');
    // The flock child has exited; the open file description (ours) still holds the lock.
    assert.is(procLocksOf(file).length, 1, 'one flock lock on the inode in /proc/locks');
    const other = openSync(hard, 'r');
    try {
      assert.not.ok(nativeFlock!.tryLock(other, 'shared'), 'another description is refused');
      utilLinuxFlock.unlock(fd);
      assert.ok(nativeFlock!.tryLock(other, 'exclusive'), 'free after unlock');
      nativeFlock!.unlock(other);
    } finally {
      closeSync(other);
    }
  } finally {
    closeSync(fd);
  }
  assert.is(procLocksOf(file).length, 0, 'nothing left');
});

/** A child process that locks `path` with `engine`, says "locked" and waits to be killed. */
function lockingChild(path: string, engine: FlockEngine['name']) {
  const lockModule = pathToFileURL(new URL('../../src/io/lock.js', import.meta.url).pathname);
  const flockModule = pathToFileURL(new URL('../../src/io/flock.js', import.meta.url).pathname);
  const script = `
    const { lockFile } = await import(${JSON.stringify(lockModule.href)});
    const f = await import(${JSON.stringify(flockModule.href)});
    const engine = ${JSON.stringify(engine)} === 'native' ? f.nativeFlock : f.utilLinuxFlock;
    await lockFile(${JSON.stringify(path)}, 'exclusive', undefined, engine);
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const locked = new Promise<void>((done, fail) => {
    child.stdout.on('data', (c: Buffer) => {
      if (c.toString().includes('locked')) done();
    });
    void exited.then(() => fail(new Error('the locking child exited early')));
  });
  return { child, locked, exited };
}

for (const engine of ENGINES) {
  test(`${engine.name}: a lock dies with its process (SIGKILL), leaving nothing behind`, async () => {
    const before = readdirSync(dir).sort();
    const { child, locked, exited } = lockingChild(sym, engine.name);
    try {
      await locked;
      let message = '';
      try {
        await lockFile(hard, 'exclusive');
      } catch (err) {
        message = (err as Error).message;
        assert.is((err as { code?: string }).code, 'VOLUME_BUSY');
      }
      assert.match(message, /volume is busy/);
      // /proc/locks names the process that called flock(2): the child itself for the addon.
      if (engine.name === 'native') assert.match(message, new RegExp(`process ${child.pid}\\b`));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    assert.is(await codeOf(lockFile(file, 'exclusive')), 'ok', 'the kernel released it');
    assert.equal(readdirSync(dir).sort(), before, 'no lock file was created or left');
  });
}

test('openContainer checks that the lock and the I/O descriptor name the same file', async () => {
  const opened = await openContainer(sym, { lock: 'exclusive' });
  try {
    assert.is(await codeOf(lockFile(hard, 'shared')), 'VOLUME_BUSY');
    const { storage } = opened;
    assert.is((await storage.readAt(0, 4)).length, 4);
  } finally {
    await opened.storage.close();
    await opened.lock?.release();
  }
  const unlocked = await openContainer(hard, { readOnly: true, lock: 'none' });
  const holder = await lockFile(file, 'exclusive');
  await unlocked.storage.close(); // a header reader takes no lock: it coexists with a writer
  await holder.release();
});

test('create --force cannot replace a volume that is open, through any name', async () => {
  const vol = join(dir, 'v.img');
  const v = await createVolume(vol, { passphrase: 'pw', sizeBytes: 1 << 20, kdf: TEST_KDF });
  await v.write(0, Buffer.from('keep me'));
  const volSym = join(dir, 'v-sym.img');
  symlinkSync(vol, volSym);
  const volHard = join(dir, 'v-hard.img');
  linkSync(vol, volHard);
  try {
    for (const alias of [vol, volSym, volHard]) {
      const code = await createVolume(alias, {
        passphrase: 'other',
        sizeBytes: 1 << 20,
        kdf: TEST_KDF,
        force: true,
      }).then(
        async (nv) => {
          await nv.close();
          return 'ok';
        },
        (err: { code?: string }) => err.code ?? String(err),
      );
      assert.is(code, 'VOLUME_BUSY', alias);
    }
  } finally {
    await v.close();
  }
  const again = await openVolume(volHard, { passphrase: 'pw' });
  assert.is(Buffer.from(await again.read(0, 7)).toString(), 'keep me');
  // The new volume is locked from its creation until it is closed.
  const made = await createVolume(join(dir, 'new.img'), {
    passphrase: 'pw',
    sizeBytes: 1 << 20,
    kdf: TEST_KDF,
  });
  try {
    assert.is(await codeOf(lockFile(join(dir, 'new.img'), 'shared')), 'VOLUME_BUSY');
  } finally {
    await made.close();
    await again.close();
  }
});

test.after(cleanup);
test.run();
