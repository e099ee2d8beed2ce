/* SHA-256 at OpenSSL speed with a context that can be saved and restored.
 * The node binary exports OpenSSL's SHA256_* symbols; the context lives in a
 * JS Buffer owned by the caller, so saving state is a plain byte copy.
 * Why not node:crypto: its Hash cannot export its internal state. */
#include <node_api.h>
#include <openssl/sha.h>
#include <string.h>
#include <stdlib.h>

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

/* updateAsync(ctx, data, callback): hashes on libuv's thread pool, so the
 * event loop keeps reading the socket while the previous chunk is hashed.
 * The caller must not touch ctx or data until callback runs. */
typedef struct {
  napi_async_work work;
  napi_ref ctx_ref, data_ref, cb_ref;
  SHA256_CTX *ctx;
  void *data;
  size_t len;
} update_job;

static void update_execute(napi_env env, void *p) {
  update_job *job = (update_job *)p;
  SHA256_Update(job->ctx, job->data, job->len);
}

static void update_complete(napi_env env, napi_status status, void *p) {
  update_job *job = (update_job *)p;
  napi_value cb, global, arg;
  napi_get_reference_value(env, job->cb_ref, &cb);
  napi_get_global(env, &global);
  napi_get_null(env, &arg);
  napi_delete_reference(env, job->ctx_ref);
  napi_delete_reference(env, job->data_ref);
  napi_delete_reference(env, job->cb_ref);
  napi_delete_async_work(env, job->work);
  free(job);
  napi_call_function(env, global, cb, 1, &arg, NULL);
}

static napi_value update_async(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], name; SHA256_CTX *ctx; void *data; size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !get_ctx(env, argv[0], &ctx)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a Buffer");
    return NULL;
  }
  update_job *job = (update_job *)calloc(1, sizeof *job);
  if (!job) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  job->ctx = ctx; job->data = data; job->len = len;
  napi_create_reference(env, argv[0], 1, &job->ctx_ref);
  napi_create_reference(env, argv[1], 1, &job->data_ref);
  napi_create_reference(env, argv[2], 1, &job->cb_ref);
  napi_create_string_utf8(env, "sha256.update", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, update_execute, update_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
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
    {"updateAsync", 0, update_async, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, 5, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
