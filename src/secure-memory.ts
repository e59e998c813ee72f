/**
 * Keeping secrets of a long-lived process (the mount server) away from other processes, swap
 * and core dumps, through the one file that loads native/secure-memory.c (built into
 * dist/native/secure-memory.node by scripts/build-native.mjs).
 *
 * Without the addon (a build with CRYPTAINER_SKIP_NATIVE=1, or no C compiler) everything here
 * still works, unprotected: {@link secureBytes} returns ordinary memory and
 * {@link makeUndumpable} returns false; {@link secureMemoryProblem} says why (README,
 * "Security notes", lists what is lost).
 */
import { createRequire } from 'node:module';

interface SecureMemoryAddon {
  setDumpable(flag: boolean): void;
  isDumpable(): boolean;
  secureBuffer(n: number): { buffer: ArrayBuffer; locked: boolean };
}

/** dist/src/secure-memory.js → dist/native/secure-memory.node. */
const ADDON_PATH = '../native/secure-memory.node';

function load(): { addon: SecureMemoryAddon | null; problem: string | null } {
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as SecureMemoryAddon;
    for (const f of ['setDumpable', 'isDumpable', 'secureBuffer'] as const) {
      if (typeof addon[f] !== 'function') throw new Error(`the addon has no ${f}()`);
    }
    return { addon, problem: null };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    return { addon: null, problem: `secure memory unavailable: ${message}` };
  }
}

const loaded = load();

/** Why the addon is unavailable, as one line; null when it loaded. */
export const secureMemoryProblem: string | null = loaded.problem;

/**
 * `prctl(PR_SET_DUMPABLE, 0)`: no core dump, and processes of the same user can no longer
 * ptrace this one or read its /proc/PID/mem. True when done; false without the addon.
 */
export function makeUndumpable(): boolean {
  if (loaded.addon === null) return false;
  loaded.addon.setDumpable(false);
  return !loaded.addon.isDumpable();
}

/** `prctl(PR_GET_DUMPABLE)`, or null without the addon. */
export function isDumpable(): boolean | null {
  return loaded.addon === null ? null : loaded.addon.isDumpable();
}

/**
 * `n` zeroed bytes for key material: in their own mapping, mlocked (never swapped out) when
 * RLIMIT_MEMLOCK allows, left out of core dumps and not inherited by children; zeroed and
 * unmapped when the garbage collector frees the array (wipe it yourself when done). Ordinary
 * memory without the addon.
 */
export function secureBytes(n: number): Uint8Array {
  if (loaded.addon === null || n === 0) return new Uint8Array(n);
  // `locked` false: RLIMIT_MEMLOCK refused mlock; the bytes are still kept out of dumps.
  const { buffer } = loaded.addon.secureBuffer(n);
  return new Uint8Array(buffer);
}

/** A copy of `bytes` in {@link secureBytes} memory (the caller still wipes `bytes`). */
export function secureCopy(bytes: Uint8Array): Uint8Array {
  const out = secureBytes(bytes.length);
  out.set(bytes);
  return out;
}
