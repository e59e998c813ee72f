/**
 * Every environment variable the product reads, in one place (ARCHITECTURE.md §11
 * documents each). Most are for measurements and tests; none is needed in normal use.
 * Each getter reads the environment when it is called: modules that fix a value at import
 * (the /dev/fuse server's limits) call it at import, the others at each use, as before.
 * crypto/ and volume-format/ read no environment at all (ARCHITECTURE.md §2).
 */

function read(name: string): string | undefined {
  return process.env[name];
}

/** Set and not `0` or empty. */
function flag(name: string): boolean {
  const v = read(name);
  return v !== undefined && v !== '' && v !== '0';
}

/** The environment knobs. */
export const config = {
  /** `CRYPTAINER_DRIVE=fuse-native`: root also serves the drive through fuse-native. */
  forceFuseNative: (): boolean => read('CRYPTAINER_DRIVE') === 'fuse-native',
  /** `CRYPTAINER_DRIVE_MAX_REQUEST`: largest /dev/fuse request in bytes (raw text). */
  driveMaxRequest: (): string | undefined => read('CRYPTAINER_DRIVE_MAX_REQUEST'),
  /** `CRYPTAINER_DRIVE_WRITEBACK=0`: no FUSE writeback cache. */
  driveWriteback: (): boolean => read('CRYPTAINER_DRIVE_WRITEBACK') !== '0',
  /** `CRYPTAINER_DRIVE_FLUSH_KICK_MIB`: MiB between background flushes (0 = none; default 16). */
  driveFlushKickMiB: (): number => Number(read('CRYPTAINER_DRIVE_FLUSH_KICK_MIB') ?? 16),
  /** `CRYPTAINER_DRIVE_THREADS`: threads reading /dev/fuse, 1–4 (default 2). */
  driveThreads: (): number =>
    Math.min(4, Math.max(1, Number(read('CRYPTAINER_DRIVE_THREADS')) || 2)),
  /** `CRYPTAINER_SYNC_READ_MAX`: largest fuse-native read served with synchronous I/O. */
  syncReadMax: (): number => Number(read('CRYPTAINER_SYNC_READ_MAX') ?? 131072),
  /** `CRYPTAINER_SYNC_WRITE_MAX`: same for writes. */
  syncWriteMax: (): number => Number(read('CRYPTAINER_SYNC_WRITE_MAX') ?? 131072),
  /** `CRYPTAINER_LOOP_DIO=on|off`: overrides the loop device's direct I/O choice. */
  loopDirectIo: (): string | undefined => read('CRYPTAINER_LOOP_DIO'),
  /** `CRYPTAINER_RUNTIME_DIR`: the runtime directory (mount registry, server logs). */
  runtimeDir: (): string | undefined => read('CRYPTAINER_RUNTIME_DIR') || undefined,
  /** `XDG_RUNTIME_DIR`: a normal user's runtime directory (the standard variable). */
  xdgRuntimeDir: (): string | undefined => read('XDG_RUNTIME_DIR') || undefined,
  /** `CRYPTAINER_DEBUG=1`: internal errors print their stack. */
  debug: (): boolean => read('CRYPTAINER_DEBUG') === '1',
  /** `CRYPTAINER_TRACE`: per-request timing summaries in the server log. */
  trace: (): boolean => flag('CRYPTAINER_TRACE'),
  /** `CRYPTAINER_TRACE_INTERVAL`: seconds between trace summaries (≥ 0.5, default 5). */
  traceIntervalMs: (): number =>
    Math.max(0.5, Number(read('CRYPTAINER_TRACE_INTERVAL') ?? '5')) * 1000,
  /** `CRYPTAINER_TEST_KILL_AT_WRITE`: tests only, fail a tool drive's write (kill-hook.ts). */
  testKillAtWrite: (): string | undefined => read('CRYPTAINER_TEST_KILL_AT_WRITE'),
};
