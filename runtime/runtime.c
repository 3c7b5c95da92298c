/* The runtime object: creation (config, backend choice, streams), queries,
 * counters, destruction. */
#include "runtime/runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/nvtx.h"

static const char *const stream_names[2] = {"cgr main", "cgr side"};

/* Picks and initializes the backend the resolved config asks for, and says
 * why in rt->backend_reason. AUTO falls back to the host backend only when
 * the probe says CUDA is unusable: a CUDA that probes fine and then fails to
 * initialize is an error, never a silent switch. */
static cgr_status choose_backend(cgr_runtime *rt, const cgr__env *env) {
  const char *origin = env->has_backend ? "CGR_BACKEND" : "config->backend";
  char why[192] = "";
  cgr_status status;

  switch (rt->config.backend) {
  case CGR_BACKEND_HOST:
    rt->kind = CGR_BACKEND_HOST;
    snprintf(rt->backend_reason, sizeof rt->backend_reason,
             "%s=host asked for the host backend", origin);
    return cgr__host_backend_init(&rt->backend, &rt->error, rt->config.device);
  case CGR_BACKEND_CUDA:
    status = cgr__cuda_probe(rt->config.device, why, sizeof why);
    if (status != CGR_OK)
      return cgr__fail(&rt->error, status, "cgr_runtime_create",
                       "%s=cuda, but CUDA is unusable: %s", origin, why);
    rt->kind = CGR_BACKEND_CUDA;
    snprintf(rt->backend_reason, sizeof rt->backend_reason,
             "%s=cuda asked for CUDA device %d", origin, rt->config.device);
    return cgr__cuda_backend_init(&rt->backend, &rt->error, rt->config.device);
  case CGR_BACKEND_AUTO:
  default:
    status = cgr__cuda_probe(rt->config.device, why, sizeof why);
    if (status == CGR_OK) {
      rt->kind = CGR_BACKEND_CUDA;
      snprintf(rt->backend_reason, sizeof rt->backend_reason,
               "AUTO: CUDA device %d is usable (%s)", rt->config.device, why);
      return cgr__cuda_backend_init(&rt->backend, &rt->error,
                                    rt->config.device);
    }
    rt->kind = CGR_BACKEND_HOST;
    snprintf(rt->backend_reason, sizeof rt->backend_reason,
             "AUTO: %s; using the host backend (CPU threads)", why);
    return cgr__host_backend_init(&rt->backend, &rt->error, rt->config.device);
  }
}

static void destroy_parts(cgr_runtime *rt) {
  /* Layers free device memory and graphs that queued work may still use:
   * drain the streams first. */
  if (rt->layers[CGR__LAYER_CAPTURE].state != NULL ||
      rt->layers[CGR__LAYER_REPLAY].state != NULL) {
    for (int role = 0; role < 2; ++role)
      cgr__be_stream_drain(&rt->backend, rt->streams[role]);
  }
  for (int layer = CGR__LAYER_COUNT - 1; layer >= 0; --layer) {
    if (rt->layers[layer].state != NULL)
      rt->layers[layer].destroy(rt, rt->layers[layer].state);
    rt->layers[layer].state = NULL;
  }
  for (int role = 0; role < 2; ++role) {
    cgr__be_stream_destroy(&rt->backend, rt->streams[role]);
    rt->streams[role] = NULL;
  }
  cgr__be_stream_destroy(&rt->backend, rt->copy_stream);
  rt->copy_stream = NULL;
  cgr__backend_destroy(&rt->backend);
}

cgr_status cgr_runtime_create(const cgr_config *config, cgr_runtime **out) {
  if (out == NULL)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'out' is NULL");
  *out = NULL;

  const cgr__env *env = cgr__env_get();
  cgr_config resolved;
  cgr_status status = cgr__config_resolve(config, env, &resolved, NULL);
  if (status != CGR_OK)
    return status;

  cgr_runtime *rt = cgr__calloc(1, sizeof *rt);
  if (rt == NULL)
    return cgr__fail(NULL, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the runtime (%zu bytes) failed", sizeof *rt);
  rt->config = resolved;
  cgr__config_copy_keys(rt);
  if (resolved.buckets != NULL) {
    rt->bucket_list = cgr__calloc(resolved.bucket_count, sizeof(uint32_t));
    if (rt->bucket_list == NULL) {
      cgr__free(rt);
      return cgr__fail(NULL, CGR_E_OUT_OF_MEMORY, __func__,
                       "copying config->buckets (%zu sizes) failed",
                       resolved.bucket_count);
    }
    memcpy(rt->bucket_list, resolved.buckets,
           resolved.bucket_count * sizeof(uint32_t));
    rt->config.buckets = rt->bucket_list;
  }
  if (cgr__error_init(&rt->error) != CGR_OK) {
    cgr__free(rt->bucket_list);
    cgr__free(rt);
    return cgr__fail(NULL, CGR_E_SYSTEM, __func__,
                     "pthread_mutex_init for the error message failed");
  }
  if (pthread_mutex_init(&rt->layer_lock, NULL) != 0) {
    cgr__error_fini(&rt->error);
    cgr__free(rt->bucket_list);
    cgr__free(rt);
    return cgr__fail(NULL, CGR_E_SYSTEM, __func__,
                     "pthread_mutex_init for the layer lock failed");
  }
  rt->backend.error = &rt->error;

  CGR__NVTX_PUSH(rt->config.nvtx, CGR__NVTX_CREATE, (uint64_t)resolved.device);
  CGR__CHECK_GOTO(choose_backend(rt, env), status, fail);
  const cgr_stream_priority priorities[2] = {resolved.main_stream_priority,
                                             resolved.side_stream_priority};
  for (int role = 0; role < 2; ++role) {
    CGR__CHECK_GOTO(cgr__be_stream_create(&rt->backend, priorities[role],
                                          stream_names[role],
                                          &rt->streams[role]),
                    status, fail);
    void *native = cgr__be_stream_native(&rt->backend, rt->streams[role]);
    if (native != NULL && rt->config.nvtx)
      cgr__nvtx_name_cuda_stream(native, stream_names[role]);
  }
  CGR__NVTX_POP(rt->config.nvtx);
  *out = rt;
  return CGR_OK;

fail:
  CGR__NVTX_POP(rt->config.nvtx);
  destroy_parts(rt);
  cgr__error_publish_thread(&rt->error);
  pthread_mutex_destroy(&rt->layer_lock);
  cgr__error_fini(&rt->error);
  cgr__free(rt->bucket_list);
  cgr__free(rt);
  return status;
}

void cgr_runtime_destroy(cgr_runtime *rt) {
  if (rt == NULL)
    return;
  destroy_parts(rt);
  pthread_mutex_destroy(&rt->layer_lock);
  cgr__error_fini(&rt->error);
  cgr__free(rt->bucket_list);
  cgr__free(rt);
}

void cgr__warn(const cgr_runtime *rt, const char *format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (rt->config.log != NULL)
    rt->config.log(rt->config.log_user, message);
  else
    fprintf(stderr, "cgr: warning: %s\n", message);
}

cgr_backend_kind cgr_backend(const cgr_runtime *rt) {
  return rt ? rt->kind : CGR_BACKEND_AUTO;
}

const char *cgr_backend_name(const cgr_runtime *rt) {
  if (rt == NULL)
    return "none";
  return rt->kind == CGR_BACKEND_CUDA ? "cuda" : "host";
}

const char *cgr_backend_reason(const cgr_runtime *rt) {
  return rt ? rt->backend_reason : "";
}

const char *cgr_last_error(const cgr_runtime *rt) {
  return rt ? rt->error.message : cgr__thread_error_message();
}

int cgr_last_cuda_error(const cgr_runtime *rt) {
  return rt ? rt->error.cuda_error : cgr__thread_error_cuda();
}

cgr_status cgr_device_info_get(cgr_runtime *rt, cgr_device_info *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  return cgr__be_device_info(&rt->backend, out);
}

cgr_status cgr_synchronize(cgr_runtime *rt) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  for (int role = 0; role < 2; ++role)
    CGR__CHECK(cgr__be_stream_synchronize(&rt->backend, rt->streams[role]));
  return CGR_OK;
}

cgr_status cgr_counters_get(const cgr_runtime *rt, cgr_counters *out) {
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  const cgr__backend *be = &rt->backend;
  out->stream_creates = cgr__be_calls(be, CGR__CALL_STREAM_CREATE);
  out->event_creates = cgr__be_calls(be, CGR__CALL_EVENT_CREATE);
  out->event_records = cgr__be_calls(be, CGR__CALL_EVENT_RECORD);
  out->event_waits = cgr__be_calls(be, CGR__CALL_EVENT_WAIT);
  out->device_allocs = cgr__be_calls(be, CGR__CALL_DEVICE_ALLOC);
  out->pinned_allocs = cgr__be_calls(be, CGR__CALL_PINNED_ALLOC);
  out->copies = cgr__be_calls(be, CGR__CALL_COPY);
  out->memsets = cgr__be_calls(be, CGR__CALL_MEMSET);
  out->kernel_launches = cgr__be_calls(be, CGR__CALL_KERNEL_LAUNCH);
  out->host_funcs = cgr__be_calls(be, CGR__CALL_HOST_FUNC);
  out->captures = cgr__be_calls(be, CGR__CALL_CAPTURE_BEGIN);
  out->graph_instantiates = cgr__be_calls(be, CGR__CALL_GRAPH_INSTANTIATE);
  out->graph_launches = cgr__be_calls(be, CGR__CALL_GRAPH_LAUNCH);
  out->synchronizations = cgr__be_calls(be, CGR__CALL_SYNCHRONIZE);
  return CGR_OK;
}

cgr_status cgr_counters_reset(cgr_runtime *rt) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__be_reset_calls(&rt->backend);
  return CGR_OK;
}
