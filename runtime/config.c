#define _POSIX_C_SOURCE 200809L /* strnlen */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/versioned.h"

/* Where each version's fields end: version 1 ended with `validate`,
 * version 2 added the capture fields, version 3 replay_mode, version 4 the
 * key lists. A new version
 * appends its fields and its end here. */
static const size_t config_ends[] = {
    CGR__FIELD_END(cgr_config, validate),
    CGR__FIELD_END(cgr_config, log_user),
    CGR__FIELD_END(cgr_config, replay_mode),
    CGR__FIELD_END(cgr_config, variant_count),
};
CGR__VERSIONED_STRUCT(cgr_config, config_ends, CGR_CONFIG_VERSION);

const cgr__versions cgr__config_versions = {"cgr_config", "cgr_config_init",
                                            sizeof(cgr_config),
                                            CGR_CONFIG_VERSION, config_ends};

cgr_status cgr_config_init(cgr_config *config) {
  if (config == NULL)
    return CGR_E_INVALID_ARGUMENT;
  memset(config, 0, sizeof *config);
  config->size = sizeof *config;
  config->version = CGR_CONFIG_VERSION;
  config->backend = CGR_BACKEND_AUTO;
  config->device = 0;
  config->main_stream_priority = CGR_PRIORITY_HIGH;
  config->side_stream_priority = CGR_PRIORITY_NORMAL;
  config->nvtx = 1;
  config->validate = 0;
  config->buckets = NULL;
  config->bucket_count = 0;
  config->allow_eager = 1;
  config->scratch_bytes = 0;
  config->lazy_capture = 0;
  config->log = NULL;
  config->log_user = NULL;
  config->replay_mode = CGR_REPLAY_DOUBLE_BUFFERED;
  config->tokens_per_request = NULL;
  config->tokens_per_request_count = 0;
  config->variants = NULL;
  config->variant_count = 0;
  return CGR_OK;
}

static int priority_valid(cgr_stream_priority priority) {
  return priority == CGR_PRIORITY_NORMAL || priority == CGR_PRIORITY_HIGH;
}

/* The list is only checked here; capture/ gives the sizes their meaning
 * (and the default list when there is none). */
static cgr_status check_buckets(const cgr_config *config, cgr__error *err) {
  if (config->buckets == NULL) {
    if (config->bucket_count != 0)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->buckets is NULL but config->bucket_count is "
                       "%zu",
                       config->bucket_count);
    return CGR_OK;
  }
  if (config->bucket_count == 0)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->bucket_count is 0");
  for (size_t i = 0; i < config->bucket_count; ++i) {
    uint32_t size = config->buckets[i];
    if (size == 0 || size > CGR_MAX_BUCKET)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->buckets[%zu] is %u, must be 1 to %d", i, size,
                       CGR_MAX_BUCKET);
    if (i > 0 && size <= config->buckets[i - 1])
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->buckets must ascend without repeats: [%zu] "
                       "is %u after %u",
                       i, size, config->buckets[i - 1]);
  }
  return CGR_OK;
}

/* The key lists: tokens per request like the buckets, variant names like
 * slot names. */
static cgr_status check_keys(const cgr_config *config, cgr__error *err) {
  const uint32_t *tokens = config->tokens_per_request;
  size_t count = config->tokens_per_request_count;
  if ((tokens == NULL) != (count == 0))
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->tokens_per_request is %s but "
                     "config->tokens_per_request_count is %zu",
                     tokens == NULL ? "NULL" : "set", count);
  if (count > CGR_MAX_TOKENS_PER_REQUEST)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->tokens_per_request_count is %zu, at most %d",
                     count, CGR_MAX_TOKENS_PER_REQUEST);
  for (size_t i = 0; i < count; ++i) {
    if (tokens[i] == 0 || tokens[i] > CGR_MAX_TOKENS_PER_REQUEST)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->tokens_per_request[%zu] is %u, must be 1 to "
                       "%d",
                       i, tokens[i], CGR_MAX_TOKENS_PER_REQUEST);
    if (i > 0 && tokens[i] <= tokens[i - 1])
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->tokens_per_request must ascend without "
                       "repeats: [%zu] is %u after %u",
                       i, tokens[i], tokens[i - 1]);
  }
  const char *const *names = config->variants;
  if ((names == NULL) != (config->variant_count == 0))
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->variants is %s but config->variant_count is "
                     "%zu",
                     names == NULL ? "NULL" : "set", config->variant_count);
  if (config->variant_count > CGR_MAX_VARIANTS)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->variant_count is %zu, at most %d",
                     config->variant_count, CGR_MAX_VARIANTS);
  for (size_t i = 0; i < config->variant_count; ++i) {
    size_t length = names[i] == NULL ? 0 : strnlen(names[i], 64);
    if (length == 0 || length > 63)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                       "config->variants[%zu] is %s: a name is 1 to 63 "
                       "characters",
                       i, names[i] == NULL ? "NULL" : "too long or empty");
    for (size_t j = 0; j < i; ++j)
      if (strcmp(names[i], names[j]) == 0)
        return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                         "config->variants[%zu] repeats the name '%s' of "
                         "[%zu]",
                         i, names[i], j);
  }
  return CGR_OK;
}

void cgr__config_copy_keys(cgr_runtime *rt) {
  cgr_config *config = &rt->config;
  size_t count = config->tokens_per_request_count;
  if (count == 0) {
    rt->token_list[0] = 1;
    count = 1;
  } else {
    memcpy(rt->token_list, config->tokens_per_request,
           count * sizeof(uint32_t));
  }
  config->tokens_per_request = rt->token_list;
  config->tokens_per_request_count = count;
  rt->variant_count =
      config->variant_count ? (uint32_t)config->variant_count : 1;
  for (uint32_t v = 0; v < rt->variant_count; ++v) {
    snprintf(rt->variant_names[v], sizeof rt->variant_names[v], "%s",
             config->variant_count ? config->variants[v] : "default");
    rt->variant_list[v] = rt->variant_names[v];
  }
  config->variants = rt->variant_list;
  config->variant_count = rt->variant_count;
}

cgr_status cgr__config_resolve(const cgr_config *config, const cgr__env *env,
                               cgr_config *resolved, cgr__error *err) {
  cgr_config_init(resolved);
  /* Fields an older caller never knew keep their defaults. */
  if (config != NULL)
    CGR__CHECK(cgr__versioned_read(&cgr__config_versions, config, resolved, err,
                                   "cgr_runtime_create", "config"));
  if (env->problem[0] != '\0')
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create", "%s",
                     env->problem);
  if (env->has_backend)
    resolved->backend = env->backend;
  if (env->has_device)
    resolved->device = env->device;
  if (env->has_nvtx)
    resolved->nvtx = env->nvtx;

  if (resolved->backend != CGR_BACKEND_AUTO &&
      resolved->backend != CGR_BACKEND_CUDA &&
      resolved->backend != CGR_BACKEND_HOST)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->backend is %d, not a cgr_backend_kind",
                     (int)resolved->backend);
  if (resolved->device < 0)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->device is %d, must be >= 0", resolved->device);
  if (!priority_valid(resolved->main_stream_priority))
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->main_stream_priority is %d",
                     (int)resolved->main_stream_priority);
  if (!priority_valid(resolved->side_stream_priority))
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->side_stream_priority is %d",
                     (int)resolved->side_stream_priority);
  if (resolved->nvtx != 0 && resolved->nvtx != 1)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->nvtx is %d, must be 0 or 1", resolved->nvtx);
  if (resolved->validate != 0 && resolved->validate != 1)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->validate is %d, must be 0 or 1",
                     resolved->validate);
  if (resolved->allow_eager != 0 && resolved->allow_eager != 1)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->allow_eager is %d, must be 0 or 1",
                     resolved->allow_eager);
  if (resolved->lazy_capture != 0 && resolved->lazy_capture != 1)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->lazy_capture is %d, must be 0 or 1",
                     resolved->lazy_capture);
  if ((unsigned)resolved->replay_mode > CGR_REPLAY_PIPELINED)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->replay_mode is %d, not a cgr_replay_mode",
                     (int)resolved->replay_mode);
  CGR__CHECK(check_buckets(resolved, err));
  return check_keys(resolved, err);
}
