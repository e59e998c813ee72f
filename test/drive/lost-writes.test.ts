// Lost writes are never success (issue 11 item 3). The container sits on a small tmpfs made
// here; part of its data area is punched out (a hole) and the tmpfs is filled, so the server's
// writes into that part fail with ENOSPC, as on a host disk that fills up. Both serving paths
// (root's /dev/fuse threads, and fuse-native) must count the failures: `list` shows the mount
// as degraded with the count, `unmount` cleans up and exits 6 naming them. Also: a server that
// dies while `unmount` flushes makes `unmount` exit 6.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  cliOk as ok,
  forceCleanup,
  mountInfo as mounted,
  mountTestDir,
  run,
  sh,
  sleep,
  withTimeout,
} from '../helpers/mount.js';

const { dir, cleanup, runtime, pass, mnt } = mountTestDir('lost writes passphrase');
const host = join(dir, 'host');
const vol = join(host, 'v.img');
const TEST_MS = 180_000;
const MIB = 1024 * 1024;

/** The volume's data area offset (from `info --json`). */
function dataOffset(): number {
  return JSON.parse(ok(['info', vol, '--json'])).dataOffset as number;
}

/**
 * A 64 MiB tmpfs holding a 32 MiB raw volume whose data area from 8 MiB on is a hole, with
 * all but 1 MiB of the tmpfs taken: a 4 MiB write there needs space the host does not have.
 */
function fullHost(): void {
  mkdirSync(host, { recursive: true });
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', host]);
  assert.is(m.status, 0, m.stderr);
  ok([
    'create',
    vol,
    '--size',
    '32M',
    '--filesystem',
    'none',
    '--passphrase-file',
    pass,
    ...CHEAP_KDF,
  ]);
  const punch = sh('fallocate', [
    '--punch-hole',
    '--offset',
    String(dataOffset() + 8 * MIB),
    '--length',
    String(24 * MIB),
    vol,
  ]);
  assert.is(punch.status, 0, punch.stderr);
  // dd stops with ENOSPC once the tmpfs is full (its exit status says so: not checked).
  sh('dd', ['if=/dev/zero', `of=${join(host, 'filler')}`, 'bs=1M']);
  // 1 MiB back, so the first writes succeed; the rest of the 4 MiB will not fit.
  sh('truncate', ['-s', '-1M', join(host, 'filler')]);
  const df = sh('df', ['--output=avail', '-B1', host]).stdout.trim().split('\n')[1];
  assert.ok(Number(df) <= 2 * MIB, `the host is nearly full (${df} bytes free)`);
}

function releaseHost(): void {
  if (mounted().includes(` ${host} `)) sh('umount', [host]);
}

/** Write 4 MiB at drive offset 16 MiB (inside the hole) and flush; returns dd's status. */
async function writeIntoHole(): Promise<number | null> {
  const r = await run(
    'dd',
    [
      'if=/dev/urandom',
      `of=${join(mnt, 'volume')}`,
      'bs=1M',
      'count=4',
      'seek=16',
      'conv=notrunc,fsync',
    ],
    { timeoutMs: 60_000 },
  );
  return r.status;
}

/** `list --json` until the server's count is published (it writes status.json within 200 ms). */
async function listedWithErrors(): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50; i++) {
    const rows = JSON.parse(ok(['list', '--json'])) as Record<string, unknown>[];
    assert.is(rows.length, 1);
    if ((rows[0]!.writeErrors as number) > 0) return rows[0]!;
    await sleep(100);
  }
  return (JSON.parse(ok(['list', '--json'])) as Record<string, unknown>[])[0]!;
}

async function lostWritesAreReported(): Promise<void> {
  fullHost();
  try {
    ok(['mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none']);
    try {
      assert.is.not(await writeIntoHole(), 0, 'the write fails for the application');
      const row = await listedWithErrors();
      assert.is(row.state, 'degraded');
      assert.ok((row.writeErrors as number) > 0, `write errors counted: ${JSON.stringify(row)}`);
      assert.match(String(row.lastError), /ENOSPC|no space/i);
      const text = ok(['list']);
      assert.match(text, /degraded: \d+ write errors?/);
    } finally {
      const r = runCli(['unmount', mnt]);
      assert.is(r.status, 6, `unmount exits 6: ${r.status} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /unmounted .*, but \d+ write errors? occurred/);
      assert.match(r.stderr, /ENOSPC|no space/i);
      assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.not.ok(mounted().includes(` ${mnt} `), 'unmounted all the same');
    assert.equal(JSON.parse(ok(['list', '--json'])), [], 'and the record is gone');
  } finally {
    releaseHost();
  }
}

test('root /dev/fuse server: ENOSPC on the host is counted; list degraded; unmount exits 6', async () => {
  await withTimeout(lostWritesAreReported(), TEST_MS, 'kernel-fuse');
});

test('fuse-native server: ENOSPC on the host is counted; list degraded; unmount exits 6', async () => {
  process.env.CRYPTAINER_DRIVE = 'fuse-native'; // passed on to the server by runCli
  try {
    await withTimeout(lostWritesAreReported(), TEST_MS, 'fuse-native');
  } finally {
    delete process.env.CRYPTAINER_DRIVE;
  }
});

test('control: without errors, list says mounted and unmount exits 0', async () => {
  await withTimeout(
    (async () => {
      const plain = join(dir, 'plain.img');
      ok([
        'create',
        plain,
        '--size',
        '16M',
        '--filesystem',
        'none',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
      ]);
      ok(['mount', plain, mnt, '--passphrase-file', pass, '--filesystem', 'none']);
      try {
        const w = await run('dd', [
          'if=/dev/urandom',
          `of=${join(mnt, 'volume')}`,
          'bs=1M',
          'count=4',
          'conv=notrunc,fsync',
        ]);
        assert.is(w.status, 0, w.stderr);
        const row = JSON.parse(ok(['list', '--json']))[0];
        assert.is(row.state, 'mounted');
        assert.is(row.writeErrors, 0);
      } finally {
        ok(['unmount', mnt]);
      }
    })(),
    TEST_MS,
    'control',
  );
});

test('the server dies while unmount flushes: unmount exits 6 and says so', async () => {
  await withTimeout(
    (async () => {
      const big = join(dir, 'big.img');
      ok([
        'create',
        big,
        '--size',
        '96M',
        '--filesystem',
        'none',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
      ]);
      const rec = JSON.parse(
        ok(['mount', big, mnt, '--passphrase-file', pass, '--filesystem', 'none', '--json']),
      );
      const pid = rec.pid as number;
      let unmount: Promise<{ status: number | null; stderr: string }> | null = null;
      try {
        // 64 MiB left dirty in the kernel's cache of the drive (no fsync): unmount must flush it.
        const w = await run('dd', [
          'if=/dev/urandom',
          `of=${join(mnt, 'volume')}`,
          'bs=1M',
          'count=64',
          'conv=notrunc',
        ]);
        assert.is(w.status, 0, w.stderr);
        // The server stops answering, unmount starts flushing through it, then it dies.
        process.kill(pid, 'SIGSTOP');
        unmount = new Promise((done) => {
          const child = spawn(
            process.execPath,
            [new URL('../../src/cli/main.js', import.meta.url).pathname, 'unmount', mnt],
            {
              stdio: ['ignore', 'ignore', 'pipe'],
            },
          );
          let stderr = '';
          child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
          child.on('close', (status) => done({ status, stderr }));
        });
        await sleep(1500);
        process.kill(pid, 'SIGKILL');
        const r = await withTimeout(unmount, 120_000, 'unmount');
        assert.is(r.status, 6, `unmount exits 6: ${r.stderr}`);
        assert.match(r.stderr, /before finishing its flush and teardown/);
        assert.not.ok(mounted().includes(` ${mnt} `), 'every layer is gone');
        assert.equal(JSON.parse(ok(['list', '--json'])), []);
      } finally {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        if (unmount) await unmount;
      }
    })(),
    TEST_MS,
    'die during flush',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  releaseHost();
  if (existsSync(host)) sh('rmdir', [host]);
  cleanup();
});
test.run();
