// The runtime directory and its records are input from a possibly hostile place (issue 11
// items 6 and 10). Another local user (a real account made here) creates
// /tmp/cryptainer-VICTIMUID first and plants a record naming one of the victim's processes:
// the victim's `list` and `unmount` refuse the directory and signal nothing (before, `unmount`
// sent SIGTERM to the planted PID, and `unmount --all` ended in "internal error: EACCES").
// A record in a good directory naming a process that is not a cryptainer server is refused
// too. Also: `__serve` with empty input, and a `mount` killed early, leave no stack trace and
// no runtime entry behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHEAP_KDF, runCli } from '../helpers/cli.js';
import {
  cliOk as ok,
  forceCleanup,
  mountTestDir,
  sh,
  sleep,
  withTimeout,
} from '../helpers/mount.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const { dir, cleanup, runtime, pass, mnt } = mountTestDir('runtime dir passphrase');
const TEST_MS = 180_000;
const tag = randomBytes(3).toString('hex');
const ATTACKER = `ct-att-${tag}`;
const VICTIM = `ct-vic-${tag}`;

function idOf(user: string, flag: '-u' | '-g'): number {
  return Number(sh('id', [flag, user]).stdout.trim());
}

/** Start time of a process (field 22 of /proc/PID/stat), as the registry records it. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Run the CLI as `user` with a clean environment (no XDG_RUNTIME_DIR, no override). */
function asUser(user: string, args: string[]) {
  return sh('runuser', [
    '-u',
    user,
    '--',
    'env',
    '-i',
    `PATH=${process.env.PATH}`,
    process.execPath,
    MAIN,
    ...args,
  ]);
}

function recordFor(pid: number, mountpoint: string): string {
  return JSON.stringify({
    id: 'aaaaaaaaaaaa',
    container: '/tmp/planted.img',
    mountpoint,
    filesystem: 'none',
    readOnly: false,
    pid,
    pidStart: startTime(pid),
    driveDir: mountpoint,
    loopDevice: null,
    uid: 0,
    startedAt: new Date().toISOString(),
  });
}

test('another user plants the runtime directory: list and unmount refuse it, nothing is signalled', async () => {
  for (const u of [ATTACKER, VICTIM]) {
    const r = sh('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', u]);
    assert.is(r.status, 0, r.stderr);
  }
  const vuid = idOf(VICTIM, '-u');
  const planted = `/tmp/cryptainer-${vuid}`;
  let victimSleep: ChildProcess | null = null;
  try {
    assert.not.ok(existsSync(planted), `${planted} must not exist yet`);
    // A process of the victim's: what the attacker wants the victim to kill.
    victimSleep = spawn('sleep', ['600'], { uid: vuid, gid: idOf(VICTIM, '-g'), stdio: 'ignore' });
    await sleep(200);
    const entry = join(planted, 'mounts', 'aaaaaaaaaaaa');
    const plant = spawnSync(
      'runuser',
      [
        '-u',
        ATTACKER,
        '--',
        'sh',
        '-c',
        `mkdir -p -m 0755 ${planted} ${planted}/mounts ${entry} && cat > ${entry}/info.json`,
      ],
      { input: recordFor(victimSleep.pid!, join(dir, 'planted-mnt')), encoding: 'utf8' },
    );
    assert.is(plant.status, 0, plant.stderr);

    for (const args of [
      ['list'],
      ['list', '--json'],
      ['unmount', join(dir, 'planted-mnt')],
      ['unmount', '--all'],
    ]) {
      const r = asUser(VICTIM, args);
      const what = `victim: cryptainer ${args.join(' ')}: ${r.status} ${r.stdout} ${r.stderr}`;
      assert.is(r.status, 6, what);
      assert.match(
        r.stderr,
        /runtime directory .* belongs to uid \d+, not to you .*refusing to use it/,
        what,
      );
      assert.not.match(r.stderr, /internal error|\n\s+at /, what);
      await sleep(100);
      assert.ok(alive(victimSleep), `${what}: the victim's process was not signalled`);
    }
  } finally {
    victimSleep?.kill('SIGKILL');
    sh('rm', ['-rf', planted]);
    for (const u of [ATTACKER, VICTIM]) sh('userdel', [u]);
  }
});

test('a record naming a process that is not a server of ours: unmount refuses, signals nothing', async () => {
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  const fake = join(dir, 'fake-mnt');
  try {
    await sleep(200);
    const entry = join(runtime, 'mounts', 'aaaaaaaaaaaa');
    mkdirSync(entry, { recursive: true, mode: 0o700 });
    writeFileSync(join(entry, 'info.json'), recordFor(sleeper.pid!, fake));
    const listed = JSON.parse(ok(['list', '--json']));
    assert.is(listed[0].state, 'foreign');
    const r = runCli(['unmount', fake]);
    assert.is.not(r.status, 0, r.stdout);
    assert.match(r.stderr, /not a cryptainer server of yours; nothing was signalled/);
    const all = runCli(['unmount', '--all']);
    assert.is.not(all.status, 0);
    await sleep(100);
    assert.ok(alive(sleeper), 'the process was not signalled');
  } finally {
    sleeper.kill('SIGKILL');
    sh('rm', ['-rf', join(runtime, 'mounts', 'aaaaaaaaaaaa')]);
  }
});

test('__serve with empty or broken input: one line, no stack trace', () => {
  for (const input of ['', 'not json\n', '{"id":1}\n']) {
    const r = runCli(['__serve'], input);
    assert.is(r.status, 1, `${JSON.stringify(input)}: ${r.stderr}`);
    assert.match(r.stderr, /^cryptainer: __serve: no mount request on stdin/);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

/** PIDs of `__serve` processes serving `container` (from /proc). */
function serversOf(container: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv[2] === '__serve' && argv[3] === container) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** A process's `Name: value` line of /proc/PID/status as a number (NaN if absent or gone). */
function procStatus(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** `pid` and its children (the server derives the key in a short-lived child process). */
function withChildren(pid: number): number[] {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name) && procStatus(Number(name), 'PPid') === pid) out.push(Number(name));
  }
  return out;
}

/**
 * Wait until the server of `container` has its request and is unlocking: Argon2id with 512 MiB
 * has made it (or the child it derives in) large; returns the server's PID and its children.
 */
async function unlockingServer(container: string): Promise<number[]> {
  for (let i = 0; i < 400; i++) {
    await sleep(50);
    const servers = serversOf(container);
    if (servers.length !== 1) continue;
    const family = withChildren(servers[0]!);
    if (family.some((pid) => procStatus(pid, 'VmRSS') > 256 * 1024)) return family;
  }
  assert.unreachable('the server did not start unlocking');
  return [];
}

const entries = (): string[] => {
  try {
    return readdirSync(join(runtime, 'mounts'));
  } catch {
    return [];
  }
};

test('a mount killed early (and its server): list removes the entry and says so', async () => {
  await withTimeout(
    (async () => {
      const vol = join(dir, 'slow.img');
      // A costly KDF, so there is time to kill both while the server unlocks.
      ok([
        'create',
        vol,
        '--size',
        '16M',
        '--filesystem',
        'none',
        '--passphrase-file',
        pass,
        '--kdf-memory',
        '524288',
        '--kdf-time',
        '6',
        '--kdf-parallelism',
        '1',
      ]);
      // 1. Only `mount` is killed: its server still runs, so its entry is left alone; the
      //    server finds nobody to report to, undoes the mount and removes the entry itself.
      const mount1 = spawn(
        process.execPath,
        [MAIN, 'mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none'],
        { stdio: 'ignore' },
      );
      let servers = await unlockingServer(vol);
      mount1.kill('SIGKILL');
      await sleep(200);
      const l1 = runCli(['list']);
      assert.is(l1.status, 0, l1.stderr);
      assert.is(entries().length, 1, "a live server's entry stays");
      for (let i = 0; i < 600 && serversOf(vol).length > 0; i++) await sleep(100);
      assert.equal(entries(), [], 'the server removed its entry');

      // 2. `mount` and its server are both killed while unlocking: the entry is left over.
      const mount2 = spawn(
        process.execPath,
        [MAIN, 'mount', vol, mnt, '--passphrase-file', pass, '--filesystem', 'none'],
        { stdio: 'ignore' },
      );
      servers = await unlockingServer(vol);
      mount2.kill('SIGKILL');
      for (const pid of servers) process.kill(pid, 'SIGKILL');
      await sleep(300);
      assert.is(entries().length, 1, 'an entry is left over');
      const log = readFileSync(join(runtime, 'mounts', entries()[0]!, 'server.log'), 'utf8');
      assert.not.match(log, /\n\s+at /, 'no stack trace in server.log');
      const l2 = runCli(['list']);
      assert.is(l2.status, 0, l2.stderr);
      assert.match(
        l2.stderr,
        /removed the runtime entry [0-9a-f]{12} left by an interrupted command/,
      );
      assert.equal(entries(), [], 'list removed it');
    })(),
    TEST_MS,
    'killed mount',
  );
});

test.after(() => {
  forceCleanup(dir, runtime);
  cleanup();
});
test.run();
