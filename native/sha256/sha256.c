/* SHA-256 at OpenSSL speed with a context that can be saved and restored.
 * The node binary exports OpenSSL's SHA256_* symbols; the context lives in a
 * JS Buffer owned by the caller, so saving state is a plain byte copy.
 * Why not node:crypto: its Hash cannot export its internal state. */
#include <node_api.h>
#include <openssl/sha.h>
#include <string.h>

static napi_value ctx_size(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_uint32(env, (uint32_t)sizeof(SHA256_CTX), &out);
  return out;
}

static int get_ctx(napi_env env, napi_value v, SHA256_CTX **ctx) {
  void *data; size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len < sizeof(SHA256_CTX)) {
    napi_throw_type_error(env, NULL, "context buffer too small");
    return 0;
  }
  *ctx = (SHA256_CTX *)data;
  return 1;
}

static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; SHA256_CTX *ctx;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_ctx(env, argv[0], &ctx)) return NULL;
  SHA256_Init(ctx);
  return NULL;
}

static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; SHA256_CTX *ctx; void *data; size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_ctx(env, argv[0], &ctx)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    /* Uint8Array that is not a Buffer */
    napi_typedarray_type t; napi_value ab; size_t off;
    if (napi_get_typedarray_info(env, argv[1], &t, &len, &data, &ab, &off) != napi_ok) {
      napi_throw_type_error(env, NULL, "data must be a Buffer or Uint8Array");
      return NULL;
    }
  }
  SHA256_Update(ctx, data, len);
  return NULL;
}

static napi_value final(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; SHA256_CTX *ctx, copy; napi_value out; void *md;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_ctx(env, argv[0], &ctx)) return NULL;
  memcpy(&copy, ctx, sizeof copy); /* finalising must not spoil the caller's state */
  napi_create_buffer(env, SHA256_DIGEST_LENGTH, &md, &out);
  SHA256_Final((unsigned char *)md, &copy);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"ctxSize", 0, ctx_size, 0, 0, 0, napi_default, 0},
    {"init", 0, init, 0, 0, 0, napi_default, 0},
    {"update", 0, update, 0, 0, 0, napi_default, 0},
    {"final", 0, final, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, 4, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
