/*
 * cryptainer's secure-memory addon: the few Linux calls that keep secrets of a long-running
 * process (the mount server) away from other processes, swap and core dumps. Node has none of
 * them. Loaded by src/secure-memory.ts, which falls back to plain memory when the addon is
 * missing (a build with CRYPTAINER_SKIP_NATIVE=1) and says so.
 *
 * - setDumpable(false): prctl(PR_SET_DUMPABLE, 0). A non-dumpable process writes no core
 *   dump, and processes of the same user can no longer ptrace it or read /proc/PID/mem,
 *   /proc/PID/environ and the like (only a process with CAP_SYS_PTRACE can, such as root).
 * - isDumpable(): prctl(PR_GET_DUMPABLE), so callers and tests can check.
 * - secureBuffer(n): n bytes in their own anonymous mapping, mlock()ed (never swapped) where
 *   RLIMIT_MEMLOCK allows, marked MADV_DONTDUMP (left out of core dumps) and MADV_DONTFORK
 *   (not copied into children). Returned as an external ArrayBuffer whose finalizer zeroes and
 *   unmaps it. `locked` tells whether mlock succeeded.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Largest secure buffer: key material is small; this only catches a wrong call. */
#define MAX_SECURE_BYTES (1024 * 1024)

typedef struct {
  void *base;
  size_t mapped;
} region;

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* Zero through a volatile pointer so the compiler cannot drop the stores before munmap. */
static void zero(void *p, size_t n) {
  volatile uint8_t *v = (volatile uint8_t *)p;
  for (size_t i = 0; i < n; i++) v[i] = 0;
}

static void finalize_region(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  region *r = (region *)hint;
  if (r == NULL) return;
  zero(r->base, r->mapped);
  munlock(r->base, r->mapped);
  munmap(r->base, r->mapped);
  free(r);
}

/* setDumpable(flag: boolean): prctl(PR_SET_DUMPABLE). */
static napi_value set_dumpable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool flag = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_bool(env, argv[0], &flag) != napi_ok) {
    return throw_error(env, "secure-memory: setDumpable(flag) takes a boolean");
  }
  if (prctl(PR_SET_DUMPABLE, flag ? 1 : 0, 0, 0, 0) != 0) {
    return throw_error(env, "secure-memory: prctl(PR_SET_DUMPABLE) failed");
  }
  return NULL;
}

/* isDumpable(): boolean. */
static napi_value is_dumpable(napi_env env, napi_callback_info info) {
  (void)info;
  int v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  napi_value result;
  napi_get_boolean(env, v == 1, &result);
  return result;
}

/* secureBuffer(n: number): { buffer: ArrayBuffer, locked: boolean }. */
static napi_value secure_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double n_d = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_double(env, argv[0], &n_d) != napi_ok || n_d < 1 ||
      n_d > MAX_SECURE_BYTES || n_d != (double)(size_t)n_d) {
    return throw_error(env, "secure-memory: secureBuffer(n) takes a size from 1 to 1 MiB");
  }
  size_t n = (size_t)n_d;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  size_t mapped = (n + (size_t)page - 1) / (size_t)page * (size_t)page;
  void *base = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return throw_error(env, "secure-memory: mmap failed");
  /* Best effort, each on its own: a normal user's RLIMIT_MEMLOCK may refuse the lock. */
  bool locked = mlock(base, mapped) == 0;
  madvise(base, mapped, MADV_DONTDUMP);
  madvise(base, mapped, MADV_DONTFORK);
  region *r = calloc(1, sizeof(region));
  if (r == NULL) {
    if (locked) munlock(base, mapped);
    munmap(base, mapped);
    return throw_error(env, "secure-memory: out of memory");
  }
  r->base = base;
  r->mapped = mapped;
  napi_value buffer, result, locked_value;
  if (napi_create_external_arraybuffer(env, base, n, finalize_region, r, &buffer) != napi_ok) {
    finalize_region(env, NULL, r);
    return throw_error(env, "secure-memory: cannot create an external buffer");
  }
  napi_create_object(env, &result);
  napi_get_boolean(env, locked, &locked_value);
  napi_set_named_property(env, result, "buffer", buffer);
  napi_set_named_property(env, result, "locked", locked_value);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"setDumpable", NULL, set_dumpable, NULL, NULL, NULL, napi_default, NULL},
      {"isDumpable", NULL, is_dumpable, NULL, NULL, NULL, napi_default, NULL},
      {"secureBuffer", NULL, secure_buffer, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) {
    return NULL;
  }
  return exports;
}
