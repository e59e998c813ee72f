// Secrets in the mount server (issue 11 item 7): a normal user mounts a raw drive; root then
// scans every readable mapping of the serving process for the passphrase (none may be left
// after the unlock) and the master key (only inside mlocked memory), and the same user is
// refused /proc/PID/environ and /proc/PID/mem, because the server made itself non-dumpable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, MAIN } from '../helpers/cli.js';
import { forceCleanup, mountTestDir, sh, withTimeout } from '../helpers/mount.js';

const USER = 'cryptainer-ts';
const TEST_MS = 240_000;
// Long, random, and distinctive: a hit in memory cannot be a coincidence.
const PASSPHRASE = `sekrit-${randomBytes(33).toString('base64url')}`;
const { dir, cleanup, runtime, pass, mnt } = mountTestDir(PASSPHRASE);
const vol = join(dir, 'v.img');
let uid = 0;

/** Run as the test user (runuser; only the environment we pass). */
function asUser(cmd: string, args: string[], timeoutMs = 120_000) {
  return sh(
    'runuser',
    [
      '-u',
      USER,
      '--',
      'env',
      '-i',
      `PATH=${process.env.PATH}`,
      `CRYPTAINER_RUNTIME_DIR=${runtime}`,
      cmd,
      ...args,
    ],
    timeoutMs,
  );
}

function cliAsUser(args: string[]): string {
  const r = asUser(process.execPath, [MAIN, ...args]);
  assert.is(r.status, 0, `as ${USER}: cryptainer ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Count `needle` in every readable mapping of `pid`; hits per mapping, with its Locked size. */
function scanMemory(pid: number, needle: Buffer): { total: number; unlocked: number } {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const lockedKiB = lockedByMapping(pid);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  let total = 0;
  let unlocked = 0;
  try {
    for (const line of maps) {
      const [range, perms] = line.split(/\s+/);
      if (!perms!.startsWith('r') || line.endsWith('[vvar]') || line.endsWith('[vsyscall]')) {
        continue;
      }
      const [lo, hi] = range!.split('-').map((h) => BigInt(`0x${h}`));
      let hits = 0;
      const chunk = Buffer.alloc(4 << 20);
      let carry = Buffer.alloc(0);
      for (let at = lo!; at < hi!;) {
        const want = Number(hi! - at < BigInt(chunk.length) ? hi! - at : BigInt(chunk.length));
        let n = 0;
        try {
          n = readSync(fd, chunk, 0, want, at);
        } catch {
          break; // an unreadable hole (guard pages)
        }
        if (n === 0) break;
        const window = Buffer.concat([carry, chunk.subarray(0, n)]);
        for (let i = window.indexOf(needle); i >= 0; i = window.indexOf(needle, i + 1)) hits++;
        carry = Buffer.from(window.subarray(Math.max(0, window.length - needle.length + 1)));
        at += BigInt(n);
      }
      total += hits;
      if (hits > 0 && !(lockedKiB.get(range!)! > 0)) unlocked += hits;
    }
  } finally {
    closeSync(fd);
  }
  return { total, unlocked };
}

/** `Locked:` of each mapping in /proc/PID/smaps, by address range. */
function lockedByMapping(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let current = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+) /.exec(line);
    if (head) current = head[1]!;
    const locked = /^Locked:\s+(\d+) kB/.exec(line);
    if (locked) out.set(current, Number(locked[1]));
  }
  return out;
}

test.before(() => {
  if (sh('id', ['-u', USER]).status !== 0) {
    const r = sh('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
    assert.is(r.status, 0, r.stderr);
  }
  uid = Number(sh('id', ['-u', USER]).stdout.trim());
  chmodSync('/dev/fuse', 0o666);
  chmodSync(dir, 0o755);
  for (const p of [pass, mnt]) chownSync(p, uid, uid);
  chmodSync(pass, 0o600);
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
  sh('userdel', [USER]);
});

test('the server keeps no passphrase, keeps the master key locked, and is not dumpable', async () => {
  await withTimeout(
    (async () => {
      chownSync(dir, uid, uid);
      cliAsUser([
        'create',
        vol,
        '--size',
        '16M',
        '--passphrase-file',
        pass,
        ...CHEAP_KDF,
        '--filesystem',
        'none',
      ]);
      const dump = sh(process.execPath, [
        MAIN,
        'info',
        vol,
        '--dump-master-key',
        '--yes',
        '--passphrase-file',
        pass,
      ]);
      assert.is(dump.status, 0, dump.stderr);
      const masterKey = Buffer.from(/master key:\s+([0-9a-f]{128})/.exec(dump.stdout)![1]!, 'hex');
      // The passphrase is given on stdin: the path `gpg -d | cryptainer mount` takes.
      const m = asUser('sh', [
        '-c',
        `printf '%s\\n' '${PASSPHRASE}' | ${process.execPath} ${MAIN} mount ${vol} ${mnt} --filesystem none --json`,
      ]);
      assert.is(m.status, 0, m.stderr);
      const pid = (JSON.parse(m.stdout) as { pid: number }).pid;
      try {
        const mem = scanMemory(pid, Buffer.from(PASSPHRASE, 'utf8'));
        const key = scanMemory(pid, masterKey);
        const halves = [masterKey.subarray(0, 32), masterKey.subarray(32)].map((h) =>
          scanMemory(pid, h),
        );
        console.log(
          `server ${pid}: passphrase ${mem.total} times; master key ${key.total} times ` +
            `(${key.unlocked} outside mlocked memory); its halves ${halves
              .map((h) => `${h.total} (${h.unlocked} unlocked)`)
              .join(' and ')}`,
        );
        assert.is(mem.total, 0, 'the passphrase is still in the server');
        assert.ok(key.total >= 1, 'the scan finds the master key the server holds');
        assert.is(key.unlocked, 0, 'the master key is in memory that is not mlocked');
        // Non-dumpable: the kernel gives the process's /proc files to root, and refuses them
        // to other processes of the same user.
        assert.is(statSync(`/proc/${pid}/status`).uid, 0, '/proc/PID belongs to the user');
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
        for (const file of ['environ', 'mem']) {
          const r = asUser('head', ['-c', '1', `/proc/${pid}/${file}`]);
          assert.is.not(r.status, 0, `same user could read /proc/${pid}/${file}`);
          assert.match(r.stderr, /Permission denied/);
        }
      } finally {
        cliAsUser(['unmount', mnt]);
      }
    })(),
    TEST_MS,
    'secrets test',
  );
});

test.run();
