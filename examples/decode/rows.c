/*
 * A step of the serving loop as cgr sees it: the rows a batch is given
 * (a request's tokens, positions, KV slots, length and page table), the
 * replay, the outputs read back, and --check's comparison of them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

int dec_rows_alloc(dec_rows *r, int32_t count, int32_t q, int32_t width) {
  size_t tokens = (size_t)count * (size_t)q;
  memset(r, 0, sizeof *r);
  r->count = count;
  r->q = q;
  r->ids = calloc(tokens, 4);
  r->positions = calloc(tokens, 4);
  r->out_loc = calloc(tokens, 4);
  r->prev_rows = calloc(tokens, 4);
  r->new_ids = calloc(tokens, 4);
  r->seq_lens = calloc((size_t)count, 4);
  r->cu_k = calloc((size_t)count + 1, 4);
  r->page_table = calloc((size_t)count * width, 4);
  return r->ids && r->positions && r->out_loc && r->prev_rows && r->new_ids &&
         r->seq_lens && r->cu_k && r->page_table;
}

void dec_rows_free(dec_rows *r) {
  free(r->ids);
  free(r->positions);
  free(r->out_loc);
  free(r->prev_rows);
  free(r->new_ids);
  free(r->seq_lens);
  free(r->cu_k);
  free(r->page_table);
  memset(r, 0, sizeof *r);
}

void dec_rows_set(const server *s, dec_rows *r, int32_t j, const request *req,
                  const int32_t *tokens, int32_t position) {
  const dec_config *c = s->config;
  for (int32_t t = 0; t < r->q; ++t) {
    int32_t row = j * r->q + t, at = position + t;
    r->ids[row] = tokens[t];
    r->positions[row] = at;
    r->out_loc[row] =
        req->pages[at / c->page_size] * c->page_size + at % c->page_size;
  }
  r->seq_lens[j] = position + r->q;
  r->cu_k[j + 1] = r->cu_k[j] + position + r->q;
  int32_t *table = r->page_table + (size_t)j * c->pages_per_seq;
  for (int32_t p = 0; p < c->pages_per_seq; ++p)
    table[p] = p < req->page_count ? req->pages[p] : dec_dummy_page(c);
}

/* Gives a batch its rows: every slot from the host, input_ids by feedback
 * when `feedback`. */
static cgr_status give(const server *s, const dec_model *m, cgr_batch *batch,
                       const dec_rows *r, int feedback) {
  const dec_config *c = s->config;
  size_t n = (size_t)r->count, tokens = n * (size_t)r->q;
  cgr_status status =
      feedback ? cgr_batch_feedback(batch, m->slot.input_ids, r->prev_rows,
                                    r->new_count > 0 ? r->new_ids : NULL,
                                    (size_t)r->new_count * 4)
               : cgr_batch_input(batch, m->slot.input_ids, CGR_SOURCE_HOST,
                                 r->ids, tokens * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->slot.positions, CGR_SOURCE_HOST,
                             r->positions, tokens * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->slot.seq_lens, CGR_SOURCE_HOST,
                             r->seq_lens, n * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->slot.cu_seqlens_k, CGR_SOURCE_HOST,
                             r->cu_k, (n + 1) * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->slot.out_loc, CGR_SOURCE_HOST,
                             r->out_loc, tokens * 4);
  if (status == CGR_OK)
    status = cgr_batch_input(batch, m->slot.page_table, CGR_SOURCE_HOST,
                             r->page_table, n * c->pages_per_seq * 4);
  return status;
}

/* A step of one token per request is the runtime's first key; a verify
 * step names its tokens per request. */
static cgr_status begin(cgr_runtime *rt, const dec_rows *r, cgr_batch **out) {
  if (r->q == 1)
    return cgr_batch_begin(rt, (uint32_t)r->count, out);
  return cgr_batch_begin_key(rt, (uint32_t)r->count, (uint32_t)r->q, 0, out);
}

/* A batch refused halfway is discarded, its message kept. */
cgr_status dec_rows_open(const server *s, const dec_model *m, const dec_rows *r,
                         int feedback, cgr_batch **out) {
  cgr_batch *batch = NULL;
  *out = NULL;
  cgr_status status = begin(m->rt, r, &batch);
  if (status != CGR_OK)
    return status;
  status = give(s, m, batch, r, feedback);
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return status;
  }
  *out = batch;
  return CGR_OK;
}

/* A group's step gives every rank's batch the same rows: the ranks differ
 * in their weights, not in their inputs. */
cgr_status dec_rows_run(server *s, dec_model *m, const dec_rows *r,
                        int feedback, cgr_ticket *ticket) {
  s->rank_error[0] = '\0';
  if (m->group == NULL) {
    cgr_batch *batch = NULL;
    cgr_status status = dec_rows_open(s, m, r, feedback, &batch);
    return status == CGR_OK ? cgr_replay(m->rt, batch, ticket) : status;
  }
  /* Every rank replays the same key: a verify step names its tokens. */
  cgr_batch *batches[CGR_GROUP_MAX_RANKS] = {NULL};
  cgr_status status =
      r->q == 1 ? cgr_group_batch_begin(m->group, (uint32_t)r->count, batches)
                : cgr_group_batch_begin_key(m->group, (uint32_t)r->count,
                                            (uint32_t)r->q, 0, batches);
  if (status != CGR_OK)
    return status;
  for (int32_t local = 0; local < cgr_group_ranks(m->group); ++local) {
    const dec_model *share = &m->group_models[local];
    status = give(s, share, batches[local], r, feedback);
    if (status != CGR_OK) {
      snprintf(s->rank_error, sizeof s->rank_error, "rank %d: %s",
               (int)share->rank, cgr_last_error(share->rt));
      cgr_group_batch_discard(m->group, batches);
      return status;
    }
  }
  return cgr_group_replay(m->group, batches, ticket);
}

cgr_status dec_set_mode(dec_model *m, cgr_replay_mode mode) {
  return m->group != NULL ? cgr_group_set_replay_mode(m->group, mode)
                          : cgr_set_replay_mode(m->rt, mode);
}

cgr_status dec_read_outputs(const dec_model *m, const cgr_ticket *ticket,
                            int32_t *ids, float *logits, int32_t count) {
  void *device = NULL;
  cgr_status status = m->group != NULL ? cgr_group_ticket_wait(m->group, ticket)
                                       : cgr_ticket_wait(m->rt, ticket);
  if (status == CGR_OK)
    status = cgr_output(m->rt, ticket, m->slot.next_ids, &device);
  if (status == CGR_OK)
    status = dec_copy(m, ids, device, (size_t)count * 4);
  if (status == CGR_OK && logits != NULL) {
    status = cgr_output(m->rt, ticket, m->slot.logits, &device);
    if (status == CGR_OK)
      status = dec_copy(m, logits, device, (size_t)count * m->config.vocab * 4);
  }
  return status;
}

void dec_compare(server *s, const int32_t *ids, const float *logits,
                 const int32_t *check_ids, const float *check_logits,
                 int32_t count) {
  int mismatch = 0;
  size_t vocab = (size_t)s->config->vocab;
  for (int32_t j = 0; j < count; ++j) {
    mismatch |= ids[j] != check_ids[j];
    s->stats->mismatched_tokens += ids[j] != check_ids[j];
    s->stats->compared_tokens++;
    for (size_t v = 0; v < vocab; ++v) {
      float diff = fabsf(logits[j * vocab + v] - check_logits[j * vocab + v]);
      if (!(diff <= s->stats->max_logit_diff)) /* NaN counts */
        s->stats->max_logit_diff = isnan(diff) ? INFINITY : diff;
    }
  }
  s->stats->checked_steps++;
  s->stats->mismatched_steps += mismatch;
}

cgr_status dec_check_decode(server *s, dec_rows *r, request *const *rows) {
  int follow = s->model->ranks > 1;
  for (int32_t j = 0; j < r->count; ++j) {
    if (follow)
      rows[j]->check_token = rows[j]->token;
    r->ids[j] = rows[j]->check_token;
  }
  cgr_ticket ticket;
  cgr_status status = dec_rows_run(s, s->check, r, 0, &ticket);
  if (status == CGR_OK)
    status = dec_read_outputs(s->check, &ticket, s->check_ids, s->check_logits,
                              r->count);
  if (status != CGR_OK)
    return dec_fail(s, status, "the check model's step");
  for (int32_t j = 0; j < r->count; ++j) {
    /* A row past its request's end (--late-ends) is no token of it. */
    if (rows[j]->generated < rows[j]->max_new)
      dec_check_reference(s, rows[j], rows[j]->check_token, s->check_ids[j]);
    rows[j]->check_token = s->check_ids[j];
  }
  return CGR_OK;
}

void dec_check_reference(server *s, request *req, int32_t token_in,
                         int32_t token_out) {
  if (!req->has_ref)
    return;
  int32_t expected = dec_reference_step(&req->ref, token_in, NULL);
  s->stats->reference_tokens++;
  s->stats->reference_mismatches += expected != token_out;
}
