/*
 * bench_fused_copy's timing of one method on one workload: the gate that
 * holds the stream shut while the method is enqueued, the issue of each
 * method, the check of its result, and the timed runs.
 *
 * Per run, the stream is first held shut by a host function (a "gate"), a
 * timing event is recorded, the method is issued, a second event is
 * recorded, and then the gate opens: the event pair measures the work
 * alone, never the host issuing it. A second series records the events
 * around the issue on an idle stream, which is what a caller sees from
 * idle. If the driver would not queue a whole plan behind the gate (the
 * gate times out), the method falls back to the idle-stream series and
 * says "gated":false.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench_fused_copy.h"
#include "kernels/fused_copy.h"
#include "runtime/backend.h"

/* Long enough for any plan's issue to finish; only a driver that refuses
 * to queue more work behind a closed gate ever reaches it. */
#define GATE_TIMEOUT_S 2

/* ---- the gate ------------------------------------------------------------ */

static void gate_wait(void *user) {
  gate *g = user;
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += GATE_TIMEOUT_S;
  pthread_mutex_lock(&g->lock);
  while (!g->open) {
    if (pthread_cond_timedwait(&g->opened, &g->lock, &deadline) == ETIMEDOUT) {
      g->timed_out = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g->lock);
}

int gate_init(gate *g) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return -1;
  int failed = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
               pthread_cond_init(&g->opened, &attr) != 0;
  pthread_condattr_destroy(&attr);
  if (failed)
    return -1;
  if (pthread_mutex_init(&g->lock, NULL) != 0) {
    pthread_cond_destroy(&g->opened);
    return -1;
  }
  g->open = 1;
  g->timed_out = 0;
  return 0;
}

void gate_destroy(gate *g) {
  pthread_cond_destroy(&g->opened);
  pthread_mutex_destroy(&g->lock);
}

static void gate_set(gate *g, int open) {
  pthread_mutex_lock(&g->lock);
  g->open = open;
  if (open)
    pthread_cond_broadcast(&g->opened);
  pthread_mutex_unlock(&g->lock);
}

/* ---- issuing one plan ---------------------------------------------------- */

#ifdef BENCH_HAVE_BATCH
static cudaError_t batch_copy(bench *b, workload *w) {
  struct cudaMemcpyAttributes attrs;
  memset(&attrs, 0, sizeof attrs);
  /* The sources are written by earlier stream work: read them in order. */
  attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  size_t attrs_index = 0;
#if CUDART_VERSION >= 13000
  return cudaMemcpyBatchAsync(w->dsts, (const void *const *)w->srcs, w->sizes,
                              w->copies, &attrs, &attrs_index, 1,
                              b->cuda_stream);
#else
  /* 12.8 and 12.9 take a failIdx, and they differ in the constness of the
   * pointer arrays: a void * converts to either. */
  size_t fail_index = 0;
  return cudaMemcpyBatchAsync((void *)w->dsts, (void *)w->srcs, w->sizes,
                              w->copies, &attrs, &attrs_index, 1, &fail_index,
                              b->cuda_stream);
#endif
}
#endif

/* Enqueues the method once. */
static cgr_status issue(bench *b, workload *w, method m) {
  switch (m) {
  case METHOD_FUSED:
    return cgr__fused_copy_launch(b->be, b->stream, &w->plan);
  case METHOD_PER_OP:
    for (size_t i = 0; i < w->copies; ++i) {
      cgr_status status = cgr__be_memcpy_async(b->be, b->stream, w->dsts[i],
                                               w->srcs[i], w->sizes[i]);
      if (status != CGR_OK)
        return status;
    }
    return CGR_OK;
  case METHOD_SINGLE:
    return cgr__be_memcpy_async(b->be, b->stream, w->single_dst, w->single_src,
                                w->total_bytes);
  case METHOD_BATCH:
#ifdef BENCH_HAVE_BATCH
  {
    cudaError_t e = batch_copy(b, w);
    if (e == cudaSuccess)
      return CGR_OK;
    fprintf(stderr, "bench_fused_copy: cudaMemcpyBatchAsync(%zu copies): %s\n",
            w->copies, cudaGetErrorString(e));
    return CGR_E_CUDA;
  }
#endif
  case METHOD_COUNT:
    break;
  }
  return CGR_E_UNSUPPORTED;
}

/* ---- measuring ----------------------------------------------------------- */

/* Clears dst, runs the method once, and compares dst with what it must
 * hold. Returns 0; -1 after a failed call or on wrong bytes (the run then
 * ends with exit status 1); -2 when memcpy_batch is refused. */
static int verify(bench *b, workload *w, method m) {
  BENCH_CHECK(b,
              cgr__be_memset_async(b->be, b->stream, w->dst, 0, w->dst_bytes),
              "clearing the destination");
  cgr_status status = issue(b, w, m);
  if (status != CGR_OK) {
    if (m == METHOD_BATCH)
      return -2; /* the caller drops the method, not the run */
    return bench_fail_call("bench_fused_copy", b->rt, status, method_names[m]);
  }
  BENCH_CHECK(b,
              cgr__be_memcpy_async(b->be, b->stream, w->readback, w->dst,
                                   w->dst_bytes),
              "reading the destination back");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing after the check");
  if (memcmp(w->readback, w->expected, w->dst_bytes) != 0) {
    size_t at = 0;
    while (w->readback[at] == w->expected[at])
      ++at;
    fprintf(stderr,
            "bench_fused_copy: WRONG RESULT: config %s, %llu ops x %llu "
            "bytes, method %s: destination byte %zu is 0x%02x, expected "
            "0x%02x\n",
            w->config, (unsigned long long)w->ops,
            (unsigned long long)w->bytes_per_op, method_names[m], at,
            w->readback[at], w->expected[at]);
    return -1;
  }
  return 0;
fail:
  return -1;
}

/* Launches (kernels plus copies) one issue makes, from the counters. */
static int count_launches(bench *b, workload *w, method m, uint64_t *out) {
  cgr_counters before, after;
  BENCH_CHECK(b, cgr_counters_get(b->rt, &before), "cgr_counters_get");
  BENCH_CHECK(b, issue(b, w, m), method_names[m]);
  BENCH_CHECK(b, cgr_counters_get(b->rt, &after), "cgr_counters_get");
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "cgr__be_stream_synchronize");
  *out = (after.kernel_launches - before.kernel_launches) +
         (after.copies - before.copies);
  if (m == METHOD_BATCH)
    *out = 1; /* one cudaMemcpyBatchAsync; cgr does not see it */
  return 0;
fail:
  return -1;
}

/* One timed run; gated or on an idle stream. */
static int timed_run(bench *b, workload *w, method m, int gated, double *gpu,
                     double *issue_time) {
  if (gated) {
    gate_set(&b->gate, 0);
    cgr_status status =
        cgr__be_host_func(b->be, b->stream, gate_wait, &b->gate);
    if (status != CGR_OK) {
      gate_set(&b->gate, 1);
      return bench_fail_call("bench_fused_copy", b->rt, status,
                             "enqueueing the gate");
    }
  }
  BENCH_CHECK(b, cgr__be_event_record(b->be, b->start, b->stream),
              "recording the start event");
  double t0 = bench_now_us();
  cgr_status status = issue(b, w, m);
  double t1 = bench_now_us();
  if (status == CGR_OK)
    status = cgr__be_event_record(b->be, b->end, b->stream);
  if (gated)
    gate_set(&b->gate, 1);
  BENCH_CHECK(b, status, method_names[m]);
  BENCH_CHECK(b, cgr__be_event_synchronize(b->be, b->end),
              "synchronizing the end event");
  float ms = 0.0f;
  BENCH_CHECK(b, cgr__be_event_elapsed_ms(b->be, b->start, b->end, &ms),
              "cgr__be_event_elapsed_ms");
  *gpu = (double)ms * 1e3;
  *issue_time = t1 - t0;
  return 0;
fail:
  if (gated)
    gate_set(&b->gate, 1); /* never leave the stream shut */
  return -1;
}

int measure(bench *b, workload *w, method m, result *res) {
  memset(res, 0, sizeof *res);
  int rc = verify(b, w, m);
  if (rc != 0)
    return rc;
  for (int i = 0; i < b->warmup; ++i)
    BENCH_CHECK(b, issue(b, w, m), method_names[m]);
  BENCH_CHECK(b, cgr__be_stream_synchronize(b->be, b->stream),
              "synchronizing after the warm-up");
  if (count_launches(b, w, m, &res->launches) != 0)
    return -1;

  int runs = b->opt.runs;
  res->gated = 1;
  for (int r = 0; r < runs && res->gated; ++r) {
    if (timed_run(b, w, m, 1, &b->gpu_us[r], &b->issue_us[r]) != 0)
      return -1;
    pthread_mutex_lock(&b->gate.lock);
    if (b->gate.timed_out) {
      b->gate.timed_out = 0;
      res->gated = 0;
    }
    pthread_mutex_unlock(&b->gate.lock);
  }
  for (int r = 0; r < runs; ++r) {
    double issue_time;
    if (timed_run(b, w, m, 0, &b->e2e_us[r], &issue_time) != 0)
      return -1;
    if (!res->gated) {
      b->gpu_us[r] = b->e2e_us[r];
      b->issue_us[r] = issue_time;
    }
  }
  bench_percentiles(b->gpu_us, runs, b->sorted, &res->median_us, 90,
                    &res->p90_us);
  bench_percentiles(b->e2e_us, runs, b->sorted, &res->e2e_median_us, 90, NULL);
  bench_percentiles(b->issue_us, runs, b->sorted, &res->issue_median_us, 90,
                    &res->issue_p90_us);
  res->gbps = res->median_us > 0
                  ? (double)w->total_bytes / (res->median_us * 1e3)
                  : 0.0;
  return 0;
fail:
  return -1;
}
