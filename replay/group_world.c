/*
 * Groups across processes (include/cgr/cgr_group.h, "Across processes"):
 * the id that joins them, and what a process checks of the others through
 * the communicator, since no process can read another's state: after a
 * capture, every rank's buckets and collectives; in validation mode, every
 * replay's batch size. Each check is one eager all-gather on rank 0's main
 * stream, which every process issues at the same point of the same call,
 * and a host wait: a capture's cost, or validation's.
 */
#include <stdio.h>
#include <string.h>

#include "replay/group.h"

#include "capture/capture.h"
#include "replay/replay.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

cgr_status cgr_group_id_create(cgr_backend_kind backend, char *out,
                               size_t size) {
  if (out != NULL && size > 0)
    out[0] = '\0';
  if (backend == CGR_BACKEND_AUTO) {
    /* The backend a runtime here would get, asked the one way that is
     * sure to agree with it. */
    cgr_config config;
    cgr_config_init(&config);
    cgr_runtime *rt = NULL;
    CGR__CHECK(cgr_runtime_create(&config, &rt));
    backend = cgr_backend(rt);
    cgr_runtime_destroy(rt);
  }
  if (backend != CGR_BACKEND_CUDA && backend != CGR_BACKEND_HOST)
    return cgr__fail(NULL, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'backend' is %d: CGR_BACKEND_AUTO, CUDA or "
                     "HOST",
                     (int)backend);
  return cgr__comm_id_create(backend, out, size, NULL);
}

/* An event of the backend, for cgr__group_poll. */
typedef struct event_query {
  cgr__backend *be;
  cgr__event *event;
} event_query;

static cgr_status query_event(void *ctx) {
  const event_query *q = ctx;
  return cgr__be_event_query(q->be, q->event);
}

cgr_status cgr__group_world_gather(cgr_group *group, const uint64_t *mine,
                                   size_t count, uint64_t *all,
                                   const char *func) {
  cgr_runtime *rt = group->rt[0];
  cgr__backend *be = &rt->backend;
  int ranks = group->world_ranks, rank = group->first_rank;
  size_t bytes = count * sizeof(uint64_t);
  uint64_t *buffer = NULL;
  cgr__event *done = NULL;
  const char *what = "allocating its buffer";
  cgr_status status =
      cgr_device_alloc(rt, bytes * (size_t)(ranks + 1), (void **)&buffer);
  if (status == CGR_OK) {
    what = "copying its values";
    status = cgr_memcpy(rt, buffer, mine, bytes);
  }
  if (status == CGR_OK) {
    what = "the all-gather";
    status = cgr__be_event_create(be, 0, &done);
  }
  if (status == CGR_OK) {
    cgr__collective c = {.kind = CGR__COLL_ALL_GATHER,
                         .send = buffer,
                         .recv = buffer + count,
                         .count = count,
                         .dtype = CGR_DTYPE_UINT64};
    cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
    status = cgr__be_collective(be, stream, group->comm->handles[rank], rank,
                                ranks, &c);
    if (status == CGR_OK)
      status = cgr__be_event_record(be, done, stream);
    /* NCCL waits for a peer forever: never a blocking wait here. */
    event_query q = {be, done};
    if (status == CGR_OK)
      status = cgr__group_poll(group, query_event, &q,
                               cgr__group_now_ms() + group->config.timeout_ms);
  }
  if (status == CGR_OK) {
    what = "reading the values";
    status = cgr_memcpy(rt, all, buffer + count, bytes * (size_t)ranks);
  }
  char why[CGR__ERROR_MESSAGE_SIZE];
  snprintf(why, sizeof why, "%s", cgr_last_error(rt));
  if (status == CGR_E_TIMEOUT &&
      cgr__group_comm_state(group, why, sizeof why) == CGR_OK)
    snprintf(why, sizeof why,
             "the other processes did not take part within %u ms "
             "(timeout_ms)",
             group->config.timeout_ms);
  if (status == CGR_OK)
    status = cgr__group_comm_state(group, why, sizeof why);
  if (status != CGR_OK) {
    /* The peers are in the all-gather or on their way: the abort ends it
     * for them too (at once on the host backend; on CUDA within their
     * timeout_ms at most), and this group cannot go on. The buffer goes
     * after the abort, which ends a collective still using it. */
    status = GROUP_BREAK_FAIL(group, status, func,
                              "rank %d: comparing with the other processes "
                              "failed at %s: %s",
                              rank, what, why);
  }
  cgr__be_event_destroy(be, done);
  if (buffer != NULL)
    (void)cgr_device_free(rt, buffer);
  return status;
}

/* FNV-1a over 64-bit words: a digest each process computes alike. */
static uint64_t mix(uint64_t h, uint64_t value) {
  for (int b = 0; b < 8; ++b) {
    h ^= (value >> (8 * b)) & 0xFF;
    h *= UINT64_C(1099511628211);
  }
  return h;
}

/* FNV-1a's start. */
#define DIGEST_START UINT64_C(1469598103934665603)

/* Mixes the runtime's bucket list into *digest. */
static cgr_status buckets_digest(cgr_runtime *rt, uint64_t *digest) {
  const uint32_t *sizes = NULL;
  size_t count = 0;
  CGR__CHECK(cgr_buckets(rt, &sizes, &count));
  for (size_t i = 0; i < count; ++i)
    *digest = mix(*digest, sizes[i]);
  return CGR_OK;
}

cgr_status cgr__group_world_compare_buckets(cgr_group *group,
                                            const char *func) {
  if (!group->world)
    return CGR_OK;
  /* [0]: the bucket list; [1]: the tokens-per-request list and the
   * variants' names. Either decides which key an index is, and so which
   * graph a capture makes: every rank must have the same. */
  cgr_runtime *rt = group->rt[0];
  uint64_t mine[2] = {DIGEST_START, DIGEST_START};
  uint64_t all[2 * CGR_GROUP_MAX_RANKS];
  CGR__CHECK(buckets_digest(rt, &mine[0]));
  for (size_t i = 0; i < rt->config.tokens_per_request_count; ++i)
    mine[1] = mix(mine[1], rt->config.tokens_per_request[i]);
  for (uint32_t v = 0; v < rt->variant_count; ++v) {
    for (const char *c = rt->variant_names[v]; *c != '\0'; ++c)
      mine[1] = mix(mine[1], (unsigned char)*c);
    mine[1] = mix(mine[1], 0); /* the name's end */
  }
  CGR__CHECK(cgr__group_world_gather(group, mine, 2, all, func));
  for (int r = 0; r < group->world_ranks; ++r)
    if (all[2 * r] != mine[0] || all[2 * r + 1] != mine[1])
      return cgr__fail(&group->error, CGR_E_CAPTURE, func,
                       "rank %d has another %s than rank %d (this process): "
                       "every rank must be made with the same buckets, "
                       "tokens per request and variants (nothing was "
                       "captured)",
                       r,
                       all[2 * r] != mine[0]
                           ? "bucket list"
                           : "tokens-per-request list or variant list",
                       group->first_rank);
  return CGR_OK;
}

cgr_status cgr__group_world_compare_captures(cgr_group *group,
                                             const char *func) {
  if (!group->world)
    return CGR_OK;
  cgr_runtime *rt = group->rt[0];
  /* [0]: the bucket list; [1]: every captured key's collectives. */
  uint64_t mine[2] = {DIGEST_START, DIGEST_START};
  CGR__CHECK(buckets_digest(rt, &mine[0]));
  const cgr__capture *cap = rt->layers[CGR__LAYER_CAPTURE].state;
  for (size_t key = 0; key < cap->key_count; ++key) {
    if (!cap->keys[key].stats.captured)
      continue;
    for (int set = 0; set < CGR__SETS; ++set) {
      uint64_t sig = 0;
      uint32_t collectives = 0;
      CGR__CHECK(cgr__capture_collectives(rt, key, set, &sig, &collectives));
      mine[1] = mix(mix(mix(mine[1], key), sig), collectives);
    }
  }
  uint64_t all[2 * CGR_GROUP_MAX_RANKS];
  CGR__CHECK(cgr__group_world_gather(group, mine, 2, all, func));
  for (int r = 0; r < group->world_ranks; ++r) {
    if (all[2 * r] == mine[0] && all[2 * r + 1] == mine[1])
      continue;
    return GROUP_BREAK_FAIL(
        group, CGR_E_CAPTURE, func,
        "rank %d captured %s than rank %d (this process): every rank must "
        "have the same buckets and call the same collectives in the same "
        "order",
        r,
        all[2 * r] != mine[0] ? "another bucket list"
                              : "other collectives in its buckets",
        group->first_rank);
  }
  return CGR_OK;
}

cgr_status cgr__group_world_check_batch(cgr_group *group,
                                        const cgr_batch *batch,
                                        const char *func) {
  if (!group->world || !group->rt[0]->config.validate)
    return CGR_OK;
  /* The batch size, tokens per request and variant in one word. */
  uint64_t mine = batch->size | (uint64_t)batch->tokens << 32 |
                  (uint64_t)batch->variant << 48;
  uint64_t all[CGR_GROUP_MAX_RANKS];
  CGR__CHECK(cgr__group_world_gather(group, &mine, 1, all, func));
  for (int r = 0; r < group->world_ranks; ++r) {
    if (all[r] == mine)
      continue;
    if ((uint32_t)all[r] != batch->size)
      return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d's batch has %u rows and rank %d's (this "
                       "process) %u: a step has one batch size on every rank "
                       "(validation mode; nothing was launched)",
                       r, (uint32_t)all[r], group->first_rank, batch->size);
    return cgr__fail(&group->error, CGR_E_INVALID_ARGUMENT, func,
                     "rank %d's batch has %u tokens per request and variant "
                     "%u, rank %d's (this process) %u and %u: a step has one "
                     "key on every rank (validation mode; nothing was "
                     "launched)",
                     r, (unsigned)(all[r] >> 32 & 0xFFFF),
                     (unsigned)(all[r] >> 48), group->first_rank, batch->tokens,
                     batch->variant);
  }
  return CGR_OK;
}
