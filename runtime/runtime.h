/*
 * The runtime object, seen from inside the library. capture/ and replay/
 * reach the device only through rt->backend.
 */
#ifndef CGR_RUNTIME_RUNTIME_H
#define CGR_RUNTIME_RUNTIME_H

#include <pthread.h>

#include "cgr/cgr.h"
#include "runtime/backend.h"
#include "runtime/error.h"

/*
 * Upper layers (capture/, replay/) keep their state here, created on first
 * use. runtime/ knows nothing of it but how to destroy it: at destroy, after
 * the streams are drained, in reverse layer order, before the backend.
 */
typedef enum cgr__layer_id {
  CGR__LAYER_CAPTURE,
  CGR__LAYER_REPLAY,
  CGR__LAYER_COUNT
} cgr__layer_id;

typedef struct cgr__layer {
  void *state;
  void (*destroy)(cgr_runtime *rt, void *state);
} cgr__layer;

struct cgr_runtime {
  /* Resolved: defaults, caller's fields, environment. config.buckets points
   * at bucket_list, the runtime's own copy. */
  cgr_config config;
  uint32_t *bucket_list;
  /* The key lists (cgr.h, "Keys"), always set: config.tokens_per_request
   * points at token_list ({1} by default), config.variants at
   * variant_list, the names ("default" when none) of variant_names. */
  uint32_t token_list[CGR_MAX_TOKENS_PER_REQUEST];
  char variant_names[CGR_MAX_VARIANTS][64];
  const char *variant_list[CGR_MAX_VARIANTS];
  uint32_t variant_count;
  cgr__error error;
  cgr__backend backend;
  cgr_backend_kind kind; /* CUDA or HOST, never AUTO */
  char backend_reason[256];
  cgr__stream *streams[2];  /* indexed by cgr_stream_role */
  cgr__stream *copy_stream; /* cgr_memcpy's, made at its first call */
  cgr__layer layers[CGR__LAYER_COUNT];
  /* Guards the creation of layer state, which const queries may trigger
   * from any thread. */
  pthread_mutex_t layer_lock;
  /* The group this runtime is rank `rank` of (cgr_group.h), set by the
   * group after creation; NULL and 0 outside a group. */
  struct cgr__comm *comm;
  int rank;
};

/* A cgr_event: a backend event of one runtime (runtime/event.c). */
struct cgr_event {
  cgr_runtime *rt;
  cgr__event *event;
};

/* Reports a warning through config.log (stderr when NULL). */
void cgr__warn(const cgr_runtime *rt, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Environment overrides, read once per process. Each has_* says the
 * variable was set to a valid value; `problem` names a variable set to a
 * value that means nothing (create then fails rather than guess).
 */
typedef struct cgr__env {
  int has_backend;
  cgr_backend_kind backend;
  int has_device;
  int device;
  int has_nvtx;
  int nvtx;
  char problem[160];
} cgr__env;

/* The process's overrides (read at the first call). */
const cgr__env *cgr__env_get(void);

/* Reads the environment again. For tests only: not thread-safe with a
 * concurrent cgr_runtime_create. */
void cgr__env_reload(void);

/*
 * Resolves the caller's config (NULL = defaults) into *resolved: copies the
 * fields the caller's `size` covers, checks them, applies env. On failure
 * the message goes to err.
 */
/* Copies the key lists into rt (runtime.h) after resolving. */
void cgr__config_copy_keys(cgr_runtime *rt);
cgr_status cgr__config_resolve(const cgr_config *config, const cgr__env *env,
                               cgr_config *resolved, cgr__error *err);

#endif /* CGR_RUNTIME_RUNTIME_H */
