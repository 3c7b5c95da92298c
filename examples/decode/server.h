/*
 * What the serving loop's files share (serve.c, rows.c, spec.c,
 * pipelined.c), inside
 * cgr-decode only: a request, the run's state, a step's rows, and the
 * helpers that build, run, read and check a step. serve.h is the loop's
 * face to decode.c.
 */
#ifndef CGR_EXAMPLE_DECODE_SERVER_H
#define CGR_EXAMPLE_DECODE_SERVER_H

#ifdef CGR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "serve.h"

typedef struct request {
  int32_t id, prompt_len, max_new;
  int32_t *prompt;
  int32_t length;      /* tokens in the KV cache */
  int32_t generated;   /* tokens its launched steps sample (its prefill's
                          first token included) */
  int32_t hashed;      /* tokens the host has read and kept: at most
                          max_new, the rest are discarded (dec_settle) */
  int32_t token;       /* the next input token, when the host knows it */
  int32_t check_token; /* the same for the check model */
  int32_t row;         /* token row of `token` in the last decode step's
                          output, -1 if none */
  int32_t *pages;
  int32_t page_count;
  dec_reference ref;
  int has_ref;
  uint64_t hash; /* of its tokens, in order (dec_hash_token) */
  /* --spec: the prompt and every token sampled, what the draft reads
   * (prompt_len + max_new entries). */
  int32_t *history;
  int32_t history_len;
} request;

/* The most requests one step carries (--max-batch is at most 256; a
 * prefill's rows are its prompts' tokens, not requests). */
enum { DEC_MAX_ROWS = 4096 };

/* Everything one run holds. */
typedef struct server {
  dec_model *model, *check;
  const dec_config *config;
  const dec_trace_config *trace;
  int reference;
  int32_t spec; /* draft tokens per verify step (--spec K); 0: plain */
  request *requests;
  request **active; /* in row order */
  int32_t active_count;
  int32_t *free_pages;
  int32_t free_count;
  /* A decode step whose tokens the host has not read yet. */
  int pending;
  cgr_ticket pending_ticket;
  int64_t pending_step; /* its decode step number */
  request *pending_rows[DEC_MAX_ROWS];
  int32_t pending_count;
  int32_t *check_ids;  /* the check model's tokens of a step */
  float *check_logits; /* ... and its logits */
  int feed_ok; /* the last step was a graph replay the next may continue */
  cgr_replay_mode mode; /* the decode steps' mode */
  /* --late-ends (pipelined): each request rides in the step after its
   * last, as when its end shows only in its tokens. */
  int late_ends;
#ifdef CGR_HAVE_CUDA
  /* GPU time of a decode step: events around it on the main stream, a
   * pair per step parity, read when the step is settled. */
  cudaEvent_t gpu_events[2][2];
  int gpu_timing;
#endif
  dec_run_stats *stats;
  char *why;
  size_t why_size;
  char rank_error[512]; /* a rank's batch refused its inputs */
} server;

/*
 * One step's inputs: `count` requests of q tokens each. What a token
 * carries has count * q entries (request j's token t at j * q + t), what
 * a request carries count (cu_k count + 1, page_table count rows). For
 * feedback, prev_rows (count * q) and, for its -1 entries in order,
 * new_ids.
 */
typedef struct dec_rows {
  int32_t count, q;
  int32_t *ids, *positions, *out_loc;      /* per token */
  int32_t *seq_lens, *cu_k, *page_table;   /* per request */
  int32_t *prev_rows, *new_ids, new_count; /* feedback */
} dec_rows;

/* Allocates rows for count requests of q tokens (0 on failure; free with
 * dec_rows_free either way). */
int dec_rows_alloc(dec_rows *r, int32_t count, int32_t q, int32_t width);
void dec_rows_free(dec_rows *r);

/* Request j of the rows: req's q tokens `tokens`, at positions `position`
 * on (so its length after the step is position + q). */
void dec_rows_set(const server *s, dec_rows *r, int32_t j, const request *req,
                  const int32_t *tokens, int32_t position);

/* Opens a batch of r on m, gives it r (input_ids by feedback when
 * `feedback`), replays it. */
cgr_status dec_rows_run(server *s, dec_model *m, const dec_rows *r,
                        int feedback, cgr_ticket *ticket);

/* The same without the replay, for one runtime: *out is the open batch,
 * NULL on failure (the batch discarded). */
cgr_status dec_rows_open(const server *s, const dec_model *m, const dec_rows *r,
                         int feedback, cgr_batch **out);

/* --check of a decode step whose rows are r, request j's in rows[j]: the
 * same step, eagerly, on the check model, with the tokens the host knows
 * from the check model's own last step (or, for a group, the group's:
 * its sums run in another order on CUDA, where a near tie may flip a
 * token, and the check must not follow the flip into a sequence of its
 * own); its tokens and logits are left in s->check_ids and
 * s->check_logits for dec_settle to compare. Overwrites r->ids. */
cgr_status dec_check_decode(server *s, dec_rows *r, request *const *rows);

/* Waits for a step and reads `count` next_ids (and logits when not NULL)
 * of its token rows: for a group, rank 0's. */
cgr_status dec_read_outputs(const dec_model *m, const cgr_ticket *ticket,
                            int32_t *ids, float *logits, int32_t count);

/* Compares `count` token rows of a step with the check model's. */
void dec_compare(server *s, const int32_t *ids, const float *logits,
                 const int32_t *check_ids, const float *check_logits,
                 int32_t count);

/* The plain-C reference's token after `token_in` for req's next position,
 * compared with `token_out`. */
void dec_check_reference(server *s, request *req, int32_t token_in,
                         int32_t token_out);

/* The replay mode of m's runtime, or of every rank of its group. */
cgr_status dec_set_mode(dec_model *m, cgr_replay_mode mode);

/* Records `status` with what failed and the runtime's message in s->why;
 * returns status. */
cgr_status dec_fail(server *s, cgr_status status, const char *what);

/* A token req generated: into its hash (and its history with --spec). */
void dec_hash_token(server *s, request *req, int32_t token);

/* Gives req's pages back (it generated its last token). */
void dec_finish_request(server *s, request *req);

/* Reads the pending decode step's tokens (waiting for it), hashes and
 * counts them, checks them against the check model's, and finishes the
 * requests whose last token it read. A token of a request that already
 * has its max_new tokens is past its end: discarded, never hashed. */
cgr_status dec_settle(server *s);

/* The pages dec_settle will give back when it reads the pending step. */
int32_t dec_pages_settling(const server *s);

/* Whether admission would take the queued request `next_request` now,
 * with `active` requests decoding and `free_pages` free: the rule the
 * loop admits by, which the pipelined loop asks a step ahead. */
int dec_would_admit(const server *s, int32_t next_request, int32_t active,
                    int32_t free_pages);

/* The decode step just launched as `ticket` (step number `step`), whose
 * row j is rows[j]: pending until dec_settle reads it. Its requests move
 * one token on, but for a row past its request's end (--late-ends). */
void dec_set_pending(server *s, const cgr_ticket *ticket, int64_t step,
                     request *const *rows, int32_t count);

/* The model runtime's counters (rank 0's for a group) before launching a
 * decode step, and what the launch added to the run's stats. */
void dec_launches_before(const server *s, cgr_counters *before);
void dec_launches_after(server *s, const cgr_counters *before);

/* A decode step of n requests is done (serve.c): its times (host clock,
 * dec_now_ms) into the run's stats. */
void dec_account_step(server *s, int32_t n, double start, double prepared,
                      double replayed);

/* GPU time of decode step `step`: its start (which 0) or end (1) mark,
 * and the reading once it is settled. No-ops on the host. */
void dec_gpu_mark(server *s, int64_t step, int which);
void dec_gpu_read(server *s, int64_t step);

/* The host's monotonic clock, in ms. */
double dec_now_ms(void);

/* One verify step of --spec (spec.c): drafts, verifies and accepts
 * tokens for every active request. */
cgr_status dec_spec_step(server *s);

/* --mode pipelined (pipelined.c): one run of decode steps from the active
 * requests, each step staged before the one before it launches, until
 * nothing continues, --steps (max_steps) is reached, or admission would
 * take `next_request` before the next step. */
cgr_status dec_pipelined_run(server *s, int32_t next_request,
                             int64_t max_steps);

#endif /* CGR_EXAMPLE_DECODE_SERVER_H */
