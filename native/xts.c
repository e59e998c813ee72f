/*
 * cryptainer's native XTS-AES-256 engine: OpenSSL's aes-256-xts (EVP), one context per key
 * and direction, applied sector by sector IN PLACE or into a caller's buffer.
 *
 * Why it exists (bench/PERFORMANCE.md, "Round 3"): through node:crypto every update() call
 * allocates and zeroes a fresh output buffer, which cost more than the AES itself (≈ 285 µs
 * per MiB of AES-ECB against ≈ 150 µs for `openssl speed`). Node links OpenSSL statically and
 * exports its symbols, so this file calls the very same OpenSSL code, only without the
 * per-call allocation and with the IV (the tweak value) changed per sector on a context whose
 * key schedule is computed once.
 *
 * The JavaScript side (crypto/xts-native.ts) validates every argument before calling in;
 * this file still checks types and lengths so that a wrong call fails instead of corrupting
 * memory.
 *
 * Tweak value (IEEE 1619-2007 §5.1, SPEC §7): sector number i as a 128-bit little-endian
 * integer, which is exactly OpenSSL's aes-256-xts IV.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 64
#define IV_BYTES 16
/* A sector number must be a safe integer (below 2^53) so JavaScript can name it exactly. */
#define MAX_SAFE_INTEGER 9007199254740991.0

/* One key: an encryption and a decryption context, both keyed once. */
typedef struct {
  EVP_CIPHER_CTX *encrypt;
  EVP_CIPHER_CTX *decrypt;
} xts_key;

static void free_key(xts_key *k) {
  if (k == NULL) return;
  /* EVP_CIPHER_CTX_free cleanses the expanded key schedule before freeing it. */
  EVP_CIPHER_CTX_free(k->encrypt);
  EVP_CIPHER_CTX_free(k->decrypt);
  k->encrypt = k->decrypt = NULL;
}

static void finalize_key(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free_key((xts_key *)data);
  free(data);
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* Exactly `n` arguments into `argv`; false after throwing `message`. */
static bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv,
                     const char *message) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != n) {
    throw_error(env, message);
    return false;
  }
  return true;
}

/*
 * Finds the bytes of a Uint8Array argument. False when it is not one. An empty array may
 * have no backing store: then *bytes is NULL and *length 0.
 */
static bool typed_bytes(napi_env env, napi_value value, uint8_t **bytes, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_get_typedarray_info(env, value, &type, length, &data, NULL, NULL) != napi_ok) {
    return false;
  }
  *bytes = (uint8_t *)data;
  return type == napi_uint8_array && (data != NULL || *length == 0);
}

/* createKey(key: Uint8Array(64)) -> handle. */
static napi_value create_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "xts-native: createKey(key) takes one argument")) {
    return NULL;
  }
  size_t key_length = 0;
  uint8_t *key = NULL;
  if (!typed_bytes(env, argv[0], &key, &key_length) || key_length != KEY_BYTES) {
    return throw_error(env, "xts-native: key must be a 64-byte Uint8Array");
  }
  xts_key *k = calloc(1, sizeof(xts_key));
  if (k == NULL) return throw_error(env, "xts-native: out of memory");
  k->encrypt = EVP_CIPHER_CTX_new();
  k->decrypt = EVP_CIPHER_CTX_new();
  /* OpenSSL refuses K1 = K2 when encrypting (XTS duplicated keys); xts.ts refuses it first. */
  if (k->encrypt == NULL || k->decrypt == NULL ||
      EVP_CipherInit_ex(k->encrypt, EVP_aes_256_xts(), NULL, key, NULL, 1) != 1 ||
      EVP_CipherInit_ex(k->decrypt, EVP_aes_256_xts(), NULL, key, NULL, 0) != 1) {
    free_key(k);
    free(k);
    return throw_error(env, "xts-native: OpenSSL refused the key");
  }
  napi_value handle;
  if (napi_create_external(env, k, finalize_key, NULL, &handle) != napi_ok) {
    free_key(k);
    free(k);
    return throw_error(env, "xts-native: cannot create a handle");
  }
  return handle;
}

/* disposeKey(handle): frees (and so cleanses) both contexts now; later calls throw. */
static napi_value dispose_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data = NULL;
  if (!get_args(env, info, 1, argv, "xts-native: disposeKey(handle) needs a key handle")) {
    return NULL;
  }
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    return throw_error(env, "xts-native: disposeKey(handle) needs a key handle");
  }
  free_key((xts_key *)data);
  return NULL;
}

/* The key handle in `value`, or NULL after throwing. */
static xts_key *key_handle(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    throw_error(env, "xts-native: not a key handle");
    return NULL;
  }
  return (xts_key *)data;
}

/*
 * Reads and checks (first sector, sector size) for `length` bytes of sectors. False after
 * throwing.
 */
static bool sector_args(napi_env env, napi_value first_value, napi_value size_value,
                        size_t length, uint64_t *first, size_t *sector_size, size_t *count) {
  double first_d = 0, size_d = 0;
  if (napi_get_value_double(env, first_value, &first_d) != napi_ok ||
      napi_get_value_double(env, size_value, &size_d) != napi_ok) {
    throw_error(env, "xts-native: sector numbers and sizes must be numbers");
    return false;
  }
  if (!(size_d >= 16 && size_d <= 65536) || (double)(size_t)size_d != size_d ||
      ((size_t)size_d) % 16 != 0) {
    throw_error(env, "xts-native: bad sector size");
    return false;
  }
  *sector_size = (size_t)size_d;
  if (length % *sector_size != 0) {
    throw_error(env, "xts-native: length is not a whole number of sectors");
    return false;
  }
  *count = length / *sector_size;
  /* first must be an integer in [0, 2^53 - 1] and so must the last sector number. */
  if (!(first_d >= 0 && first_d <= MAX_SAFE_INTEGER) || first_d != (double)(uint64_t)first_d ||
      (*count > 0 && (uint64_t)first_d + (*count - 1) > (uint64_t)MAX_SAFE_INTEGER)) {
    throw_error(env, "xts-native: bad first sector number");
    return false;
  }
  *first = (uint64_t)first_d;
  return true;
}

/* XTS of one sector: `ctx` keyed once, IV = sector number (128-bit little-endian). */
static bool crypt_one(EVP_CIPHER_CTX *ctx, uint64_t sector, const uint8_t *in, uint8_t *out,
                      size_t sector_size) {
  uint8_t iv[IV_BYTES];
  memset(iv, 0, sizeof iv);
  for (int b = 0; b < 8; b++) iv[b] = (uint8_t)(sector >> (8 * b));
  int written = 0;
  /* Same cipher and key: only the IV changes, the key schedule is kept. */
  return EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) == 1 &&
         EVP_CipherUpdate(ctx, out, &written, in, (int)sector_size) == 1 &&
         (size_t)written == sector_size;
}

/*
 * crypt(handle, encrypt: boolean, input: Uint8Array, output: Uint8Array,
 *       firstSector: number, sectorSize: number)
 * output may be input itself (in place) or a buffer of the same length that does not overlap.
 */
static napi_value crypt_sectors(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "xts-native: crypt takes six arguments")) return NULL;
  xts_key *k = key_handle(env, argv[0]);
  if (k == NULL) return NULL;
  bool encrypt = false;
  if (napi_get_value_bool(env, argv[1], &encrypt) != napi_ok) {
    return throw_error(env, "xts-native: encrypt must be a boolean");
  }
  size_t in_length = 0, out_length = 0;
  uint8_t *in = NULL, *out = NULL;
  if (!typed_bytes(env, argv[2], &in, &in_length) || !typed_bytes(env, argv[3], &out, &out_length) ||
      in_length != out_length) {
    return throw_error(env, "xts-native: input and output must be Uint8Arrays of one length");
  }
  uint64_t first = 0;
  size_t sector_size = 0, count = 0;
  if (!sector_args(env, argv[4], argv[5], in_length, &first, &sector_size, &count)) return NULL;
  EVP_CIPHER_CTX *ctx = encrypt ? k->encrypt : k->decrypt;
  if (ctx == NULL) return throw_error(env, "xts-native: key is disposed");
  if (count == 0) return NULL;
  if (in != out && in < out + out_length && out < in + in_length) {
    return throw_error(env, "xts-native: output overlaps input partly");
  }
  for (size_t s = 0; s < count; s++) {
    if (!crypt_one(ctx, first + s, in + s * sector_size, out + s * sector_size, sector_size)) {
      return throw_error(env, "xts-native: OpenSSL failed");
    }
  }
  return NULL;
}

/*
 * recrypt(oldHandle, newHandle, data: Uint8Array, firstSector: number, sectorSize: number)
 * Re-encryption in place (SPEC §15.6 step 1): each sector is decrypted under the old key and
 * encrypted under the new one before the next is touched, so it stays in the L1 cache between
 * the two and its plaintext is never in memory longer than one sector's worth of work.
 */
static napi_value recrypt_sectors(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "xts-native: recrypt takes five arguments")) return NULL;
  xts_key *old_key = key_handle(env, argv[0]);
  if (old_key == NULL) return NULL;
  xts_key *new_key = key_handle(env, argv[1]);
  if (new_key == NULL) return NULL;
  size_t length = 0;
  uint8_t *data = NULL;
  if (!typed_bytes(env, argv[2], &data, &length)) {
    return throw_error(env, "xts-native: data must be a Uint8Array");
  }
  uint64_t first = 0;
  size_t sector_size = 0, count = 0;
  if (!sector_args(env, argv[3], argv[4], length, &first, &sector_size, &count)) return NULL;
  if (old_key->decrypt == NULL || new_key->encrypt == NULL) {
    return throw_error(env, "xts-native: key is disposed");
  }
  for (size_t s = 0; s < count; s++) {
    uint8_t *sector = data + s * sector_size;
    if (!crypt_one(old_key->decrypt, first + s, sector, sector, sector_size) ||
        !crypt_one(new_key->encrypt, first + s, sector, sector, sector_size)) {
      return throw_error(env, "xts-native: OpenSSL failed");
    }
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
      {"createKey", NULL, create_key, NULL, NULL, NULL, napi_default, NULL},
      {"disposeKey", NULL, dispose_key, NULL, NULL, NULL, napi_default, NULL},
      {"crypt", NULL, crypt_sectors, NULL, NULL, NULL, napi_default, NULL},
      {"recrypt", NULL, recrypt_sectors, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                             properties) != napi_ok) {
    return NULL;
  }
  return exports;
}
