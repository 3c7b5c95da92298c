/*
 * --mode pipelined: the decode steps in CGR_REPLAY_PIPELINED, in runs
 * scheduled one step ahead. cgr_replay_ahead launches step n and stages
 * step n + 1, so step n + 1's batch is built before step n has run: the
 * requests that continue after step n, each request's input_ids fed from
 * its row in step n (a token the host has not read), its position, length
 * and page table one further. The host reads step n - 1's tokens after
 * step n launches, so the device always has the next step behind the one
 * it runs, and the host never waits for it to build a step.
 *
 * What the host knows when it schedules step n + 1: every request's
 * length limit (max_new), so a request whose last token step n samples is
 * not in step n + 1; and whether admission would take a request before
 * step n + 1, which depends on the rows and pages free then
 * (dec_would_admit, dec_pages_settling), not on tokens. A prefill is an
 * eager step, and the mode cannot change while a step is staged, so a run
 * ends (cgr_replay_ahead with no next batch) before an admission, when
 * nothing continues, or at --steps; the serving loop then admits,
 * prefills and starts the next run (cgr_replay_stage). The steps, their
 * rows and the admissions are the other modes', and so are the tokens,
 * also when --steps cuts the trace.
 *
 * A loop that learns a request's end from its tokens (a stop token) has
 * already staged the request into the step after its last: dec_settle
 * discards the token the host reads for a request past its end.
 * --late-ends runs the trace that way, each request riding in the step
 * after its last one (a step it is in anyway, unless the run ends), and
 * must give the same tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* A request of the staged step that is in the next one as a live row. */
static int continues(const request *req) {
  return req->generated + 1 < req->max_new;
}

/* A request whose last token the staged step samples. */
static int ends_now(const request *req) {
  return req->generated + 1 == req->max_new;
}

/*
 * Which requests the step after the staged one carries (`next`, *count of
 * them, in row order, their rows in the staged step in `prev_rows`), or 1
 * when the run ends with the staged step (then `next` holds the requests
 * that continue, for the serving loop). The run ends where the serial loop
 * would admit before the next step: with the rows the continuing requests
 * leave and the pages free once the pending step is read.
 */
static int schedule(const server *s, int32_t next_request, int64_t max_steps,
                    request **next, int32_t *prev_rows, int32_t *count) {
  int32_t live = 0;
  for (int32_t j = 0; j < s->active_count; ++j)
    live += continues(s->active[j]);
  int end = live == 0 || s->stats->decode_steps + 1 >= max_steps ||
            dec_would_admit(s, next_request, live,
                            s->free_count + dec_pages_settling(s));
  *count = 0;
  for (int32_t j = 0; j < s->active_count; ++j) {
    request *req = s->active[j];
    int rides = !end && s->late_ends && ends_now(req);
    if (continues(req) || rides) {
      prev_rows[*count] = j;
      next[(*count)++] = req;
    }
  }
  return end;
}

/* The rows of `count` requests at `ahead` positions past their lengths. */
static void fill_rows(const server *s, dec_rows *r, request *const *reqs,
                      int32_t count, int32_t ahead) {
  r->count = count;
  r->new_count = 0;
  for (int32_t j = 0; j < count; ++j)
    dec_rows_set(s, r, j, reqs[j], &reqs[j]->token, reqs[j]->length + ahead);
}

/* The first step of a run: the active requests from the tokens the host
 * has read (a run follows a prefill, which settled the step before it). */
static cgr_status stage_first(server *s, dec_rows *r) {
  cgr_status status = CGR_OK;
  if (s->pending) {
    s->stats->host_waits++;
    status = dec_settle(s);
    if (status != CGR_OK)
      return status;
  }
  fill_rows(s, r, s->active, s->active_count, 0);
  cgr_batch *batch = NULL;
  cgr_counters before;
  dec_launches_before(s, &before);
  status = dec_rows_open(s, s->model, r, 0, &batch);
  if (status == CGR_OK)
    status = cgr_replay_stage(s->model->rt, batch);
  dec_launches_after(s, &before);
  if (status != CGR_OK)
    return dec_fail(s, status, "staging the first step of a run");
  s->stats->runs++;
  return CGR_OK;
}

/*
 * Launches the staged step (rows `staged`, requests s->active) with
 * `batch` (NULL: none) staged behind it, reads the step before it, runs
 * --check of it, and leaves it pending.
 */
static cgr_status launch(server *s, dec_rows *staged, cgr_batch *batch,
                         double start, double prepared) {
  int64_t step = s->stats->decode_steps;
  int32_t n = s->active_count, live = 0;
  for (int32_t j = 0; j < n; ++j)
    live += s->active[j]->generated < s->active[j]->max_new;
  cgr_ticket ticket;
  cgr_counters before;
  dec_launches_before(s, &before);
  dec_gpu_mark(s, step, 0);
  cgr_status status = cgr_replay_ahead(s->model->rt, batch, &ticket);
  dec_gpu_mark(s, step, 1);
  dec_launches_after(s, &before);
  double replayed = dec_now_ms();
  if (status != CGR_OK)
    return dec_fail(s, status, "a pipelined decode step");
  /* Read the previous step's tokens now, while this one runs (and compare
   * them before the check model's buffers move on). */
  status = dec_settle(s);
  if (status == CGR_OK && s->check != NULL)
    status = dec_check_decode(s, staged, s->active);
  if (status != CGR_OK)
    return status;
  dec_set_pending(s, &ticket, step, s->active, n);
  dec_account_step(s, live, start, prepared, replayed);
  return CGR_OK;
}

cgr_status dec_pipelined_run(server *s, int32_t next_request,
                             int64_t max_steps) {
  int32_t width = s->config->pages_per_seq, most = s->trace->max_batch;
  dec_rows rows[2];
  request **next = malloc((size_t)most * sizeof *next);
  int ok = dec_rows_alloc(&rows[0], most, 1, width);
  ok = dec_rows_alloc(&rows[1], most, 1, width) && ok;
  cgr_status status = CGR_E_OUT_OF_MEMORY;
  if (!ok || next == NULL) {
    snprintf(s->why, s->why_size, "allocating a pipelined run failed");
    goto done;
  }
  dec_rows *staged = &rows[0], *following = &rows[1];
  double start = dec_now_ms();
  status = stage_first(s, staged);
  for (int end = 0; status == CGR_OK && !end;) {
    int32_t count = 0;
    end = schedule(s, next_request, max_steps, next, following->prev_rows,
                   &count);
    cgr_batch *batch = NULL;
    if (!end) {
      fill_rows(s, following, next, count, 1);
      status = dec_rows_open(s, s->model, following, 1, &batch);
      if (status != CGR_OK) {
        status = dec_fail(s, status, "building a pipelined decode step");
        break;
      }
    }
    status = launch(s, staged, batch, start, dec_now_ms());
    if (status != CGR_OK)
      break;
    /* The step behind it is now the staged one (or, at the end, the
     * requests that continue wait for the serving loop). */
    memcpy(s->active, next, (size_t)count * sizeof *next);
    s->active_count = count;
    dec_rows *swap = staged;
    staged = following;
    following = swap;
    start = dec_now_ms();
  }

done:
  dec_rows_free(&rows[0]);
  dec_rows_free(&rows[1]);
  free(next);
  return status;
}
