#include <stddef.h>
#include <string.h>

#include "runtime/runtime.h"
#include "runtime/versioned.h"

/* Where each version's fields end: version 1 ended with `validate`,
 * version 2 added the capture fields, version 3 replay_mode. A new version
 * appends its fields and its end here. */
static const size_t config_ends[] = {
    CGR__FIELD_END(cgr_config, validate),
    CGR__FIELD_END(cgr_config, log_user),
    CGR__FIELD_END(cgr_config, replay_mode),
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
  if ((unsigned)resolved->replay_mode > CGR_REPLAY_EAGER)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->replay_mode is %d, not a cgr_replay_mode",
                     (int)resolved->replay_mode);
  return check_buckets(resolved, err);
}
