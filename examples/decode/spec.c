/*
 * Speculative decoding (--spec K): a draft proposes K tokens per request,
 * one verify step of q = K + 1 tokens per request runs them through the
 * model, and greedy acceptance keeps the drafts the model agrees with.
 *
 * The draft is prompt lookup (an n-gram draft): it costs no graph and no
 * model, only the request's own history. The verify step carries, for
 * each request, [its last token, d1 .. dK] at positions length ..
 * length + K; the model's greedy token after each is o0 .. oK. o0 is what
 * plain decoding would sample next; d1 == o0 means the token fed at
 * position length + 1 is the one plain decoding would have fed there, so
 * o1 is its next token too; and so on. The request takes o0 .. om, m the
 * number of leading drafts equal to the model's tokens: 1 to K + 1
 * tokens, exactly those plain greedy decoding makes, cut at the request's
 * max_new as plain decoding cuts it.
 *
 * The KV the step wrote for positions past the accepted ones is never
 * read: the request's length grows by the accepted tokens only, and the
 * next step writes those positions again before attending to them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* The longest suffix the draft matches. */
enum { DRAFT_NGRAM = 3 };

/* Token i of history followed by what the draft has proposed so far:
 * a continuation that runs into the present goes on with the proposal
 * (a repeating pattern keeps repeating). */
static int32_t token_at(const int32_t *history, int32_t len,
                        const int32_t *proposal, int32_t i) {
  return i < len ? history[i] : proposal[i - len];
}

/*
 * Prompt lookup: for n = DRAFT_NGRAM down to 1, the latest earlier place
 * where history's last n tokens occur, and the k tokens that followed it;
 * with no match, k repeats of the last token. len >= 1.
 */
static void draft_ngram(const int32_t *history, int32_t len, int32_t k,
                        int32_t *out) {
  for (int32_t n = len - 1 < DRAFT_NGRAM ? len - 1 : DRAFT_NGRAM; n >= 1; --n) {
    const int32_t *suffix = history + len - n;
    for (int32_t start = len - n - 1; start >= 0; --start) {
      if (memcmp(history + start, suffix, (size_t)n * sizeof *suffix) != 0)
        continue;
      for (int32_t i = 0; i < k; ++i)
        out[i] = token_at(history, len, out, start + n + i);
      return;
    }
  }
  for (int32_t i = 0; i < k; ++i)
    out[i] = history[len - 1];
}

/*
 * How many of the verify step's q outputs a request takes: o0 always,
 * then o_t while the token fed at t (the draft d_t) equals o_{t-1}, at
 * most `remaining` (the tokens it may still generate).
 */
static int32_t accepted_tokens(const int32_t *fed, const int32_t *outputs,
                               int32_t q, int32_t remaining) {
  int32_t taken = 1;
  while (taken < q && taken < remaining && fed[taken] == outputs[taken - 1])
    ++taken;
  return taken;
}

/* The rows of a verify step: request j's last token and its drafts. With
 * feedback the last token is the previous step's output row req->row
 * (still on the device) and the drafts are new rows; a request fresh from
 * its prefill is all new rows. */
static void build_rows(server *s, dec_rows *r, int32_t *fed) {
  int32_t q = r->q;
  r->new_count = 0;
  for (int32_t j = 0; j < r->count; ++j) {
    request *req = s->active[j];
    int32_t *tokens = fed + (size_t)j * q;
    tokens[0] = req->token;
    draft_ngram(req->history, req->history_len, q - 1, tokens + 1);
    dec_rows_set(s, r, j, req, tokens, req->length);
    for (int32_t t = 0; t < q; ++t) {
      int32_t row = j * q + t;
      r->prev_rows[row] = t == 0 ? req->row : -1;
      if (r->prev_rows[row] < 0)
        r->new_ids[r->new_count++] = tokens[t];
    }
  }
}

/* --check: the same verify step, eagerly, on the check model, from the
 * same tokens (the acceptance follows the model's outputs, and the
 * plain-C reference, one token at a time, checks those). */
static cgr_status check_step(server *s, const dec_rows *r, const int32_t *ids,
                             const float *logits) {
  cgr_ticket ticket;
  int32_t rows = r->count * r->q;
  cgr_status status = dec_rows_run(s, s->check, r, 0, &ticket);
  if (status == CGR_OK)
    status = dec_read_outputs(s->check, &ticket, s->check_ids, s->check_logits,
                              rows);
  if (status != CGR_OK)
    return dec_fail(s, status, "the check model's verify step");
  dec_compare(s, ids, logits, s->check_ids, s->check_logits, rows);
  return CGR_OK;
}

/* Takes request j's accepted tokens: hashed, counted, and checked against
 * the plain-C reference, fed as plain decoding feeds it, each token the
 * one before it generated (which the acceptance claims equals the draft
 * the step was fed): a wrong acceptance shows there. */
static void accept(server *s, int32_t j, int32_t q, const int32_t *fed,
                   const int32_t *outputs) {
  request *req = s->active[j];
  int32_t remaining = req->max_new - req->generated;
  int32_t taken = accepted_tokens(fed, outputs, q, remaining);
  for (int32_t t = 0; t < taken; ++t) {
    dec_check_reference(s, req, t == 0 ? fed[0] : outputs[t - 1], outputs[t]);
    dec_hash_token(s, req, outputs[t]);
  }
  /* Drafts that could have been used, and those that were. */
  s->stats->drafted += remaining - 1 < q - 1 ? remaining - 1 : q - 1;
  s->stats->accepted_drafts += taken - 1;
  s->stats->decode_tokens += taken;
  req->length += taken;
  req->generated += taken;
  req->token = outputs[taken - 1];
  req->row = j * q + taken - 1;
}

/*
 * One verify step of every active request. The acceptance decides the
 * next step's positions and tokens, so the host reads every step's
 * outputs before building the next: it waits for the device each step.
 */
cgr_status dec_spec_step(server *s) {
  double start = dec_now_ms();
  int32_t n = s->active_count, q = s->spec + 1;
  size_t rows = (size_t)n * (size_t)q;
  dec_rows r;
  int32_t *fed = malloc(rows * sizeof *fed);
  int32_t *ids = malloc(rows * sizeof *ids);
  float *logits = s->check != NULL
                      ? malloc(rows * (size_t)s->config->vocab * sizeof *logits)
                      : NULL;
  cgr_status status = CGR_E_OUT_OF_MEMORY;
  if (!dec_rows_alloc(&r, n, q, s->config->pages_per_seq) || fed == NULL ||
      ids == NULL || (s->check != NULL && logits == NULL)) {
    snprintf(s->why, s->why_size, "allocating a verify step of %zu rows failed",
             rows);
    goto done;
  }
  build_rows(s, &r, fed);
  double prepared = dec_now_ms();
  cgr_ticket ticket;
  int64_t step_number = s->stats->decode_steps;
  cgr_counters before;
  dec_launches_before(s, &before);
  dec_gpu_mark(s, step_number, 0);
  status = dec_rows_run(s, s->model, &r, s->feed_ok, &ticket);
  dec_gpu_mark(s, step_number, 1);
  dec_launches_after(s, &before);
  double replayed = dec_now_ms();
  if (status != CGR_OK) {
    dec_fail(s, status, "a verify step");
    goto done;
  }
  s->stats->host_waits++;
  status = dec_read_outputs(s->model, &ticket, ids, logits, (int32_t)rows);
  if (status != CGR_OK) {
    dec_fail(s, status, "reading a verify step's tokens");
    goto done;
  }
  if (ticket.set >= 0)
    dec_gpu_read(s, step_number);
  if (s->check != NULL && (status = check_step(s, &r, ids, logits)) != CGR_OK)
    goto done;
  for (int32_t j = 0; j < n; ++j)
    accept(s, j, q, fed + (size_t)j * q, ids + (size_t)j * q);
  /* The next step continues this one's rows on the device, unless it was
   * eager or the mode takes no feedback. */
  s->feed_ok = ticket.set >= 0 && s->mode != CGR_REPLAY_IN_GRAPH;
  int32_t kept = 0;
  for (int32_t j = 0; j < n; ++j) {
    request *req = s->active[j];
    if (req->generated < req->max_new)
      s->active[kept++] = req;
    else
      dec_finish_request(s, req);
  }
  s->active_count = kept;
  dec_account_step(s, n, start, prepared, replayed);

done:
  dec_rows_free(&r);
  free(fed);
  free(ids);
  free(logits);
  return status;
}
