/*
 * The serving loop: admit requests while pages and rows allow, prefill
 * their prompts in one eager step, then decode the running batch step by
 * step through cgr. Sampled tokens flow into the next step on the device
 * (feedback); the host reads each step's tokens one step late, while the
 * next step already runs, the way a serving engine streams them out.
 * With --spec each decode step is a verify step instead (spec.c); in
 * --mode pipelined the decode steps run in runs scheduled a step ahead
 * (pipelined.c). A step's rows, replay and check are in rows.c.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "server.h"

#ifdef CGR_HAVE_CUDA
#include <cgr/cgr_cuda.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double dec_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The message of m's last failure: its group's, or its runtime's. A
 * failure of one rank's batch is that rank's runtime's (run() keeps it). */
static const char *last_error(const server *s, const dec_model *m) {
  if (s->rank_error[0] != '\0')
    return s->rank_error;
  return m->group != NULL ? cgr_group_last_error(m->group)
                          : cgr_last_error(m->rt);
}

cgr_status dec_fail(server *s, cgr_status status, const char *what) {
  snprintf(s->why, s->why_size, "%s: %s: %s", what, cgr_status_name(status),
           last_error(s, s->model));
  return status;
}

/* A verify step writes the KV of its K drafts past the request's last
 * input token: --spec reserves their pages too. */
static int32_t pages_needed(const server *s, const request *r) {
  int32_t tokens = r->prompt_len + r->max_new + s->spec;
  return (tokens + s->config->page_size - 1) / s->config->page_size;
}

/* FNV-1a over the 8 bytes of `value`. */
static uint64_t fnv(uint64_t h, uint64_t value) {
  for (int b = 0; b < 8; ++b) {
    h ^= (value >> (8 * b)) & 0xFF;
    h *= UINT64_C(1099511628211);
  }
  return h;
}

#define FNV_OFFSET UINT64_C(1469598103934665603)

/* Each request hashes its own tokens in order; the run's hash combines
 * the requests in id order (run_hash). So the hash says which tokens each
 * request generated, not how steps interleaved them: plain decoding and
 * --spec, whose steps make several tokens per request, give the same. */
void dec_hash_token(server *s, request *req, int32_t token) {
  req->hash = fnv(req->hash, (uint64_t)(uint32_t)token);
  req->hashed++;
  if (req->history != NULL)
    req->history[req->history_len++] = token;
  s->stats->tokens++;
}

static uint64_t run_hash(const server *s) {
  uint64_t h = FNV_OFFSET;
  for (int32_t i = 0; i < s->trace->requests; ++i)
    if (s->requests[i].hash != FNV_OFFSET)
      h = fnv(fnv(h, (uint64_t)s->requests[i].id), s->requests[i].hash);
  return h;
}

/* GPU timing (CUDA only). */

#ifdef CGR_HAVE_CUDA
static void gpu_timing_open(server *s) {
  s->gpu_timing = cgr_backend(s->model->rt) == CGR_BACKEND_CUDA;
  for (int p = 0; p < 2 && s->gpu_timing; ++p)
    for (int i = 0; i < 2; ++i)
      if (cudaEventCreate(&s->gpu_events[p][i]) != cudaSuccess) {
        (void)cudaGetLastError();
        s->gpu_timing = 0; /* the report then says "not measured" */
      }
}

static void gpu_timing_close(server *s) {
  for (int p = 0; p < 2; ++p)
    for (int i = 0; i < 2; ++i)
      if (s->gpu_events[p][i] != NULL)
        (void)cudaEventDestroy(s->gpu_events[p][i]);
}

/* Records the start (which 0) or end (1) of decode step `step`. */
void dec_gpu_mark(server *s, int64_t step, int which) {
  cudaStream_t stream = NULL;
  if (!s->gpu_timing ||
      cgr_cuda_stream(s->model->rt, CGR_STREAM_MAIN, &stream) != CGR_OK ||
      cudaEventRecord(s->gpu_events[step % 2][which], stream) != cudaSuccess) {
    (void)cudaGetLastError();
    s->gpu_timing = 0;
  }
}

/* The GPU time of a settled step (its events have completed). */
void dec_gpu_read(server *s, int64_t step) {
  float ms = 0.0f;
  if (!s->gpu_timing)
    return;
  if (cudaEventElapsedTime(&ms, s->gpu_events[step % 2][0],
                           s->gpu_events[step % 2][1]) != cudaSuccess) {
    (void)cudaGetLastError();
    s->gpu_timing = 0;
    return;
  }
  s->stats->gpu_step_ms[s->stats->gpu_steps++] = ms;
}
#else
static void gpu_timing_open(server *s) { (void)s; }
static void gpu_timing_close(server *s) { (void)s; }
void dec_gpu_mark(server *s, int64_t step, int which) {
  (void)s;
  (void)step;
  (void)which;
}
void dec_gpu_read(server *s, int64_t step) {
  (void)s;
  (void)step;
}
#endif

/* ---- the pending step: tokens read one step late
 * ------------------------------ */

void dec_finish_request(server *s, request *req) {
  for (int32_t p = 0; p < req->page_count; ++p)
    s->free_pages[s->free_count++] = req->pages[p];
  req->page_count = 0;
  if (req->has_ref)
    dec_reference_free(&req->ref);
  req->has_ref = 0;
}

/* A pending row the host keeps: its request still lacks tokens. */
static int row_kept(const request *req) { return req->hashed < req->max_new; }

int32_t dec_pages_settling(const server *s) {
  int32_t pages = 0;
  for (int32_t j = 0; s->pending && j < s->pending_count; ++j) {
    const request *req = s->pending_rows[j];
    if (row_kept(req) && req->hashed + 1 >= req->max_new)
      pages += req->page_count;
  }
  return pages;
}

cgr_status dec_settle(server *s) {
  if (!s->pending)
    return CGR_OK;
  s->pending = 0;
  int32_t n = s->pending_count;
  int32_t *ids = malloc((size_t)n * 4);
  float *logits = s->check ? malloc((size_t)n * s->config->vocab * 4) : NULL;
  cgr_status status = CGR_E_OUT_OF_MEMORY;
  if (ids != NULL && (s->check == NULL || logits != NULL))
    status = dec_read_outputs(s->model, &s->pending_ticket, ids, logits, n);
  if (status == CGR_OK && s->pending_ticket.set >= 0)
    dec_gpu_read(s, s->pending_step);
  if (status == CGR_OK) {
    if (s->check != NULL)
      dec_compare(s, ids, logits, s->check_ids, s->check_logits, n);
    /* A request finishes when the host has read its last token: its
     * pages come back then. A row the step carried past the request's end
     * (a loop that learns the end from the tokens schedules the request
     * before it knows) gives a token that is no token of the request. */
    for (int32_t j = 0; j < n; ++j) {
      request *req = s->pending_rows[j];
      if (!row_kept(req)) {
        s->stats->discarded_tokens++;
        continue;
      }
      dec_hash_token(s, req, ids[j]);
      s->stats->decode_tokens++;
      req->token = ids[j];
      if (!row_kept(req))
        dec_finish_request(s, req);
    }
  } else {
    dec_fail(s, status, "reading a decode step's tokens");
  }
  free(ids);
  free(logits);
  return status;
}

void dec_set_pending(server *s, const cgr_ticket *ticket, int64_t step,
                     request *const *rows, int32_t count) {
  s->pending = 1;
  s->pending_ticket = *ticket;
  s->pending_step = step;
  s->pending_count = count;
  for (int32_t j = 0; j < count; ++j) {
    request *req = rows[j];
    s->pending_rows[j] = req;
    req->row = j;
    if (req->generated < req->max_new) {
      req->length++;
      req->generated++;
    }
  }
}

/* ---- launch counters
 * ----------------------------------------------------------- */

void dec_launches_before(const server *s, cgr_counters *before) {
  if (cgr_counters_get(s->model->rt, before) != CGR_OK)
    memset(before, 0, sizeof *before);
}

void dec_launches_after(server *s, const cgr_counters *before) {
  cgr_counters now;
  if (cgr_counters_get(s->model->rt, &now) != CGR_OK)
    return;
  /* A launch that captured a graph first (a lazy capture: the pipelined
   * and in-graph variants are captured at their first step) ran the
   * capture's warm-up too: counted apart, its launches left out. */
  if (now.captures != before->captures) {
    s->stats->capturing_launches++;
    return;
  }
  s->stats->graph_launches +=
      (int64_t)(now.graph_launches - before->graph_launches);
  s->stats->other_launches +=
      (int64_t)((now.kernel_launches - before->kernel_launches) +
                (now.copies - before->copies) +
                (now.memsets - before->memsets));
}

/* ---- admission and prefill
 * ----------------------------------------------------- */

/* Prefills the prompts of `fresh` requests in one eager step on `m`; each
 * request's first token is the one sampled at its last prompt row. */
static cgr_status prefill(server *s, dec_model *m, request **fresh,
                          int32_t count, int32_t *first_tokens) {
  int32_t total = 0;
  for (int32_t i = 0; i < count; ++i)
    total += fresh[i]->prompt_len;
  dec_rows r;
  if (!dec_rows_alloc(&r, total, 1, s->config->pages_per_seq)) {
    dec_rows_free(&r);
    return CGR_E_OUT_OF_MEMORY;
  }
  int32_t j = 0;
  for (int32_t i = 0; i < count; ++i)
    for (int32_t t = 0; t < fresh[i]->prompt_len; ++t, ++j)
      dec_rows_set(s, &r, j, fresh[i], &fresh[i]->prompt[t], t);
  cgr_ticket ticket;
  int32_t *ids = malloc((size_t)total * 4);
  cgr_status status =
      ids ? dec_rows_run(s, m, &r, 0, &ticket) : CGR_E_OUT_OF_MEMORY;
  if (status == CGR_OK)
    status = dec_read_outputs(m, &ticket, ids, NULL, total);
  if (status == CGR_OK) {
    int32_t last = -1;
    for (int32_t i = 0; i < count; ++i) {
      last += fresh[i]->prompt_len;
      first_tokens[i] = ids[last];
    }
  }
  free(ids);
  dec_rows_free(&r);
  return status;
}

/* Prefill runs in the eager mode, on the model (its decode mode restored
 * after) and, in --check, on the check model (always eager). */
static cgr_status prefill_all(server *s, request **fresh, int32_t count) {
  int32_t *first = malloc((size_t)count * 4);
  int32_t *check_first = malloc((size_t)count * 4);
  cgr_status status = CGR_E_OUT_OF_MEMORY;
  if (first != NULL && check_first != NULL)
    status = dec_set_mode(s->model, CGR_REPLAY_EAGER);
  if (status == CGR_OK) {
    status = prefill(s, s->model, fresh, count, first);
    cgr_status restore = dec_set_mode(s->model, s->mode);
    if (status == CGR_OK)
      status = restore;
  }
  if (status == CGR_OK && s->check != NULL)
    status = prefill(s, s->check, fresh, count, check_first);
  if (status != CGR_OK) {
    free(first);
    free(check_first);
    return dec_fail(s, status, "a prefill step");
  }
  s->stats->prefill_steps++;
  if (s->check != NULL) {
    s->stats->checked_steps++;
    s->stats->mismatched_steps +=
        memcmp(first, check_first, (size_t)count * 4) != 0;
  }
  for (int32_t i = 0; i < count; ++i) {
    request *req = fresh[i];
    req->length = req->prompt_len;
    req->generated = 1;
    req->token = first[i];
    req->check_token = s->check ? check_first[i] : first[i];
    req->row = -1;
    dec_hash_token(s, req, first[i]);
    if (req->has_ref) {
      int32_t expected = -1;
      for (int32_t t = 0; t < req->prompt_len; ++t)
        expected = dec_reference_step(&req->ref, req->prompt[t], NULL);
      s->stats->reference_tokens++;
      s->stats->reference_mismatches += expected != req->check_token;
    }
  }
  free(first);
  free(check_first);
  return CGR_OK;
}

/* Requests join in trace order while a row is free and the next one's
 * pages are (else it waits for running requests to free pages). */
int dec_would_admit(const server *s, int32_t next_request, int32_t active,
                    int32_t free_pages) {
  return next_request < s->trace->requests && active < s->trace->max_batch &&
         pages_needed(s, &s->requests[next_request]) <= free_pages;
}

/*
 * Admits queued requests while rows and pages allow, and prefills them. A
 * prefill breaks the feedback chain (its tokens come back through the
 * host), so the pending decode step is settled first.
 */
static cgr_status admit(server *s, int32_t *next_request) {
  request *fresh[4096];
  int32_t count = 0;
  while (dec_would_admit(s, *next_request, s->active_count + count,
                         s->free_count)) {
    request *req = &s->requests[*next_request];
    int32_t need = pages_needed(s, req);
    req->pages = malloc((size_t)need * sizeof(int32_t));
    if (req->pages == NULL)
      return CGR_E_OUT_OF_MEMORY;
    for (int32_t p = 0; p < need; ++p)
      req->pages[p] = s->free_pages[--s->free_count];
    req->page_count = need;
    if (s->spec > 0) {
      req->history =
          malloc((size_t)(req->prompt_len + req->max_new) * sizeof(int32_t));
      if (req->history == NULL)
        return CGR_E_OUT_OF_MEMORY;
      memcpy(req->history, req->prompt, (size_t)req->prompt_len * 4);
      req->history_len = req->prompt_len;
    }
    if (s->reference) {
      if (!dec_reference_init(&req->ref, s->config, &s->model->host,
                              req->prompt_len + req->max_new))
        return CGR_E_OUT_OF_MEMORY;
      req->has_ref = 1;
    }
    fresh[count++] = req;
    ++*next_request;
  }
  if (count == 0)
    return CGR_OK;
  if (s->pending)
    s->stats->host_waits++;
  cgr_status status = dec_settle(s);
  if (status != CGR_OK)
    return status;
  status = prefill_all(s, fresh, count);
  if (status != CGR_OK)
    return status;
  s->feed_ok = 0;
  for (int32_t i = 0; i < count; ++i) {
    if (fresh[i]->generated >= fresh[i]->max_new)
      dec_finish_request(s, fresh[i]); /* done at its first token */
    else
      s->active[s->active_count++] = fresh[i];
  }
  return CGR_OK;
}

/* ---- decode
 * -------------------------------------------------------------------- */

/* One decode step of every active request. */
static cgr_status decode(server *s) {
  double start = dec_now_ms();
  /* The in-graph mode loads host staging only: no feedback, so the host
   * reads each step's tokens before building the next (and waits). */
  if (s->mode == CGR_REPLAY_IN_GRAPH && s->pending) {
    s->stats->host_waits++;
    cgr_status settled = dec_settle(s);
    if (settled != CGR_OK)
      return settled;
    s->feed_ok = 0;
  }
  int32_t n = s->active_count;
  dec_rows r;
  if (!dec_rows_alloc(&r, n, 1, s->config->pages_per_seq)) {
    dec_rows_free(&r);
    return CGR_E_OUT_OF_MEMORY;
  }
  for (int32_t j = 0; j < n; ++j) {
    request *req = s->active[j];
    dec_rows_set(s, &r, j, req, &req->token, req->length);
    r.prev_rows[j] = req->row;
  }
  double prepared = dec_now_ms();
  /* The previous step is still unread: its tokens stay on the device and
   * reach this step through feedback. */
  cgr_ticket ticket;
  int64_t step_number = s->stats->decode_steps;
  cgr_counters before;
  dec_launches_before(s, &before);
  dec_gpu_mark(s, step_number, 0);
  cgr_status status = dec_rows_run(s, s->model, &r, s->feed_ok, &ticket);
  dec_gpu_mark(s, step_number, 1);
  dec_launches_after(s, &before);
  double replayed = dec_now_ms();
  if (status != CGR_OK) {
    dec_rows_free(&r);
    return dec_fail(s, status, "a decode step");
  }
  /* Read the previous step's tokens now, while this one runs (and compare
   * them before the check model's buffers move on). */
  status = dec_settle(s);
  /* --check: the same step, eagerly, on the check model (after the group's
   * tokens were read, which it follows). */
  if (status == CGR_OK && s->check != NULL)
    status = dec_check_decode(s, &r, s->active);
  dec_rows_free(&r);
  if (status != CGR_OK)
    return status;
  dec_set_pending(s, &ticket, step_number, s->active, n);
  /* An eager step (a batch over the largest bucket) feeds nothing: settle
   * it now, while its outputs live. */
  s->feed_ok = ticket.set >= 0;
  if (!s->feed_ok) {
    status = dec_settle(s);
    if (status != CGR_OK)
      return status;
  }
  /* Requests that reached their length leave; the rest move up. */
  int32_t kept = 0;
  for (int32_t j = 0; j < n; ++j)
    if (s->active[j]->generated < s->active[j]->max_new)
      s->active[kept++] = s->active[j];
  s->active_count = kept;
  dec_account_step(s, n, start, prepared, replayed);
  return CGR_OK;
}

void dec_account_step(server *s, int32_t n, double start, double prepared,
                      double replayed) {
  s->stats->request_steps += n;
  double end = dec_now_ms();
  int64_t step = s->stats->decode_steps++;
  s->stats->step_ms[step] = end - start;
  s->stats->prepare_ms += prepared - start;
  s->stats->replay_ms += replayed - prepared;
  s->stats->rest_ms += end - replayed;
}

/* ---- the run
 * -------------------------------------------------------------------- */

static int make_trace(server *s) {
  const dec_trace_config *t = s->trace;
  uint64_t seed = t->seed * 0xD1B54A32D192ED03u + 7;
  s->requests = calloc((size_t)t->requests, sizeof *s->requests);
  if (s->requests == NULL)
    return 0;
  for (int32_t i = 0; i < t->requests; ++i) {
    request *req = &s->requests[i];
    req->id = i;
    req->prompt_len =
        1 + (int32_t)(dec_random(&seed) % (uint64_t)t->max_prompt);
    req->max_new = 1 + (int32_t)(dec_random(&seed) % (uint64_t)t->max_new);
    req->row = -1;
    req->hash = FNV_OFFSET;
    req->prompt = malloc((size_t)req->prompt_len * 4);
    if (req->prompt == NULL)
      return 0;
    for (int32_t k = 0; k < req->prompt_len; ++k)
      req->prompt[k] =
          (int32_t)(dec_random(&seed) % (uint64_t)s->config->vocab);
  }
  return 1;
}

/* The trace must fit: every request within one page table row, and the
 * cache (less the dummy page) able to hold the largest one. */
static cgr_status check_fits(server *s) {
  const dec_config *c = s->config;
  for (int32_t i = 0; i < s->trace->requests; ++i) {
    int32_t need = pages_needed(s, &s->requests[i]);
    if (need > c->pages_per_seq) {
      snprintf(s->why, s->why_size,
               "request %d needs %d pages of %d tokens%s, but a page table row "
               "holds %d (raise --max-seq)",
               i, need, c->page_size,
               s->spec > 0 ? " (with room for the drafts of --spec)" : "",
               c->pages_per_seq);
      return CGR_E_INVALID_ARGUMENT;
    }
    if (need > c->pages - 1) {
      snprintf(s->why, s->why_size,
               "the KV cache is too small for the trace: request %d needs %d "
               "pages, the cache has %d besides the dummy page (raise "
               "--pages)",
               i, need, c->pages - 1);
      return CGR_E_INVALID_ARGUMENT;
    }
  }
  return CGR_OK;
}

cgr_status dec_serve(dec_model *model, dec_model *check, int reference,
                     const dec_trace_config *trace, cgr_replay_mode mode,
                     int32_t spec, int late_ends, int progress,
                     dec_run_stats *stats, char *why, size_t why_size) {
  server s;
  memset(&s, 0, sizeof s);
  memset(stats, 0, sizeof *stats);
  s.model = model;
  s.check = check;
  s.config = &model->config;
  s.trace = trace;
  s.reference = reference && check != NULL;
  s.mode = mode;
  s.spec = spec;
  s.late_ends = late_ends;
  s.stats = stats;
  s.why = why;
  s.why_size = why_size;
  why[0] = '\0';
  stats->reference_tokens = s.reference ? 0 : -1;
  stats->spec = spec;
  /* A verify step reads q = spec + 1 token rows per request. */
  size_t token_rows = (size_t)trace->max_batch * (size_t)(spec + 1);
  int64_t step_capacity =
      trace->max_steps > 0
          ? trace->max_steps
          : (int64_t)trace->requests * (trace->max_new + 1) + 1;
  stats->step_ms = calloc((size_t)step_capacity, sizeof(double));
  stats->gpu_step_ms = calloc((size_t)step_capacity, sizeof(double));
  s.active = calloc((size_t)trace->max_batch, sizeof *s.active);
  s.free_pages = calloc((size_t)model->config.pages, sizeof(int32_t));
  s.check_ids = calloc(token_rows, sizeof(int32_t));
  s.check_logits = calloc(token_rows * model->config.vocab, sizeof(float));
  cgr_status status = CGR_OK;
  if (stats->step_ms == NULL || stats->gpu_step_ms == NULL ||
      s.active == NULL || s.free_pages == NULL || s.check_ids == NULL ||
      s.check_logits == NULL || !make_trace(&s)) {
    snprintf(why, why_size, "allocating the serving loop's state failed");
    status = CGR_E_OUT_OF_MEMORY;
    goto done;
  }
  status = check_fits(&s);
  if (status != CGR_OK)
    goto done;
  gpu_timing_open(&s);
  /* Every page but the dummy one is free; hand out low pages first. */
  for (int32_t p = model->config.pages - 2; p >= 0; --p)
    s.free_pages[s.free_count++] = p;

  double start = dec_now_ms(), last_report = start;
  int32_t next_request = 0;
  while ((next_request < trace->requests || s.active_count > 0) &&
         stats->decode_steps < step_capacity) {
    status = admit(&s, &next_request);
    if (status != CGR_OK)
      goto done;
    if (s.active_count > 0) {
      if (s.spec > 0)
        status = dec_spec_step(&s);
      else if (s.mode == CGR_REPLAY_PIPELINED)
        status = dec_pipelined_run(&s, next_request, step_capacity);
      else
        status = decode(&s);
      if (status != CGR_OK)
        goto done;
    } else if (next_request < trace->requests && s.pending) {
      status = dec_settle(&s); /* pages come back when tokens are read */
      if (status != CGR_OK)
        goto done;
    }
    double now = dec_now_ms();
    if (progress && now - last_report > 2000.0) {
      fprintf(stderr,
              "cgr-decode: %lld decode steps, %lld tokens, %d/%d requests "
              "admitted, %.1f s\n",
              (long long)stats->decode_steps, (long long)stats->tokens,
              next_request, trace->requests, (now - start) / 1e3);
      last_report = now;
    }
  }
  status = dec_settle(&s);
  stats->seconds = (dec_now_ms() - start) / 1e3;
  stats->token_hash = run_hash(&s);

done:
  gpu_timing_close(&s);
  if (s.requests != NULL)
    for (int32_t i = 0; i < trace->requests; ++i) {
      free(s.requests[i].prompt);
      free(s.requests[i].pages);
      free(s.requests[i].history);
      if (s.requests[i].has_ref)
        dec_reference_free(&s.requests[i].ref);
    }
  free(s.requests);
  free(s.active);
  free(s.free_pages);
  free(s.check_ids);
  free(s.check_logits);
  return status;
}

void dec_run_stats_free(dec_run_stats *stats) {
  free(stats->gpu_step_ms);
  stats->gpu_step_ms = NULL;
  free(stats->step_ms);
  stats->step_ms = NULL;
}
