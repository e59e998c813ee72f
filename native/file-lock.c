/*
 * cryptainer's file lock: flock(2) on a descriptor, which Node has no API for (SPEC §9.2).
 *
 * A flock lock belongs to the open file description, so it covers every name of the file
 * (symlinks, hard links, bind mounts) and the kernel drops it when the last descriptor of that
 * description closes, including when the process dies. Only flock is offered on purpose:
 * fcntl/OFD record locks are independent of flock locks on Linux and would not exclude them.
 *
 * src/io/flock.ts loads this addon and falls back to util-linux's flock(1) without it.
 */
#define _DEFAULT_SOURCE /* flock(2) and LOCK_* under -std=c11 */
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/file.h>

/* Throws an Error whose `code` is the errno name (as Node's own fs errors carry it). */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  const char *name;
  switch (err) {
    case EBADF: name = "EBADF"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOLCK: name = "ENOLCK"; break;
    case ENOMEM: name = "ENOMEM"; break;
    default: name = "EIO"; break;
  }
  char message[128];
  snprintf(message, sizeof message, "file-lock: %s: errno %d (%s)", what, err, name);
  napi_throw_error(env, name, message);
  return NULL;
}

/* The descriptor (a non-negative integer) in argv[0]; false after throwing. */
static bool fd_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                   int32_t *fd) {
  size_t argc = want;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want ||
      napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, "file-lock: the first argument must be a descriptor");
    return false;
  }
  return true;
}

/*
 * tryLock(fd, exclusive) -> true when taken, false when another open file description holds
 * a conflicting lock. Never waits (LOCK_NB). Taking a lock this description already holds
 * converts it (shared <-> exclusive).
 */
static napi_value try_lock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool exclusive = false;
  if (!fd_arg(env, info, 2, argv, &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &exclusive) != napi_ok) {
    napi_throw_type_error(env, NULL, "file-lock: tryLock(fd, exclusive) needs a boolean");
    return NULL;
  }
  int rc;
  do {
    rc = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  napi_value result;
  if (rc == 0) {
    napi_get_boolean(env, true, &result);
    return result;
  }
  if (errno == EWOULDBLOCK) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  return throw_errno(env, "flock", errno);
}

/* unlock(fd): releases this description's lock (nothing happens if it holds none). */
static napi_value unlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!fd_arg(env, info, 1, argv, &fd)) return NULL;
  int rc;
  do {
    rc = flock(fd, LOCK_UN);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_errno(env, "flock unlock", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"tryLock", NULL, try_lock, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, unlock, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    return NULL;
  }
  return exports;
}
