/*
 * Keys: graphs per (bucket, tokens per request, variant) on one set of
 * slots and one scratch arena. A keyed step whose outputs have a closed
 * form runs random sequences of keys and variants in every replay mode
 * (eager included, so the form is an eager run's too), with inputs from
 * the host, unchanged slots and feedback over token rows; bad keys are
 * refused by name; the arena is the largest step's, never a sum.
 *
 * The step, for a key (bs, q, v), token row t and request r:
 *
 *   out[t]     = ids[t] * (v == 1 ? 2 : 1) + pos[t] + tok[t] + bias[t]
 *   out_req[r] = lens[r] + cu_k[r + 1] + cu_q[r]
 *
 * with tok = 0, 1, 2, ... (a constant scaled by token, default fill),
 * cu_q = 0, q, 2q, ... (scaled by request, default fill) and bias[t] =
 * bs * 1000 + q * 100 + t (a keyed fill). Variant 2 asks for three times
 * the scratch: the arena must be sized by it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "keys_fixture.h"

static uint32_t below(uint64_t *state, uint32_t bound) {
  return (uint32_t)test_random_below(state, bound);
}

/* What each buffer set was last loaded with (for unchanged slots). */
typedef struct set_state {
  uint32_t pos_rows; /* 0: unknown */
  int32_t pos[MAX_ROWS];
} set_state;

/*
 * `steps` random steps: batch sizes up to past the largest bucket, every
 * tokens value and variant; pos marked unchanged when the set still holds
 * it; with feedback, ids continue random token rows of the previous
 * step's output (a verify step's accepted tokens) or are new.
 */
static void random_steps(cgr_runtime *rt, keyed *m, cgr_replay_mode mode,
                         uint64_t first_step, int steps, uint64_t seed) {
  set_state sets[2];
  memset(sets, 0, sizeof sets);
  int32_t previous_out[MAX_ROWS];
  uint32_t previous_rows = 0;
  int previous_graph = 0;
  for (int n = 0; n < steps; ++n) {
    step_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = 1 + below(&seed, below(&seed, 8) == 0 ? MAX_BATCH : LARGEST);
    in.q = tokens[below(&seed, TOKENS)];
    in.variant = below(&seed, VARIANTS);
    uint32_t rows = in.batch * in.q;
    int graph = in.batch <= LARGEST && mode != CGR_REPLAY_EAGER;
    cgr_batch *batch = NULL;
    assert_cgr_ok(rt,
                  cgr_batch_begin_key(rt, in.batch, in.q, in.variant, &batch));
    /* ids: feedback over token rows, or new from the host. */
    int32_t prev_rows[MAX_ROWS], fresh[MAX_ROWS];
    uint32_t fresh_count = 0;
    int feed = m->feed && previous_graph && mode != CGR_REPLAY_IN_GRAPH &&
               below(&seed, 3) != 0;
    for (uint32_t j = 0; j < rows; ++j) {
      in.ids[j] = (int32_t)below(&seed, 1000);
      if (!feed)
        continue;
      uint32_t pick = below(&seed, 4);
      if (pick == 0 || previous_rows == 0) {
        prev_rows[j] = -1;
        fresh[fresh_count++] = in.ids[j];
      } else {
        prev_rows[j] = (int32_t)(pick == 1 && j < previous_rows
                                     ? j
                                     : below(&seed, previous_rows));
        in.ids[j] = previous_out[prev_rows[j]];
      }
    }
    if (feed)
      assert_cgr_ok(rt, cgr_batch_feedback(batch, m->ids, prev_rows, fresh,
                                           fresh_count * 4));
    else
      assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, in.ids,
                                        rows * 4));
    /* pos: unchanged when the set this step loads (the step number's,
     * which every replay takes, eager ones too) holds the same rows. */
    cgr_ticket ticket;
    uint64_t next = first_step + (uint64_t)n;
    int k = (int)(next % 2);
    if (graph && sets[k].pos_rows == rows && below(&seed, 2) == 0) {
      assert_cgr_ok(rt, cgr_batch_unchanged(batch, m->pos));
      memcpy(in.pos, sets[k].pos, rows * 4);
    } else {
      for (uint32_t j = 0; j < rows; ++j)
        in.pos[j] = (int32_t)below(&seed, 500);
      assert_cgr_ok(rt, cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, in.pos,
                                        rows * 4));
    }
    for (uint32_t r = 0; r < in.batch; ++r) {
      in.lens[r] = (int32_t)below(&seed, 100);
      in.cu_k[r + 1] = in.cu_k[r] + in.lens[r];
    }
    assert_cgr_ok(rt, cgr_batch_input(batch, m->lens, CGR_SOURCE_HOST, in.lens,
                                      in.batch * 4));
    assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, in.cu_k,
                                      (in.batch + 1) * 4));
    assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
    assert_int_equal(ticket.step, next);
    assert_int_equal(ticket.set, graph ? k : -1);
    cgr_key key;
    assert_cgr_ok(rt, cgr_ticket_key(rt, &ticket, &key));
    assert_int_equal(key.padded_batch, ticket.padded_batch);
    assert_int_equal(key.tokens_per_request, in.q);
    assert_int_equal(key.variant, in.variant);
    if (graph) {
      sets[k].pos_rows = rows;
      memcpy(sets[k].pos, in.pos, rows * 4);
      /* The graph's feed copy rewrote the other set's ids, not its pos. */
    }
    check_step(rt, m, &ticket, &in, previous_out);
    previous_rows = rows;
    previous_graph = graph;
  }
}

static void test_random_keys_in_every_mode_match_the_closed_form(void **state) {
  (void)state;
  cgr_test_require_backend();
  static const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                          CGR_REPLAY_DOUBLE_BUFFERED,
                                          CGR_REPLAY_IN_GRAPH,
                                          CGR_REPLAY_EAGER};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
    for (int feed = 0; feed < 2; ++feed) {
      keyed m;
      cgr_runtime *rt = keyed_runtime(&m, modes[i], 0, feed);
      random_steps(rt, &m, modes[i], 0, 300, 1000 + i * 10 + (uint64_t)feed);
      cgr_replay_stats stats;
      assert_cgr_ok(rt, cgr_replay_stats_get(rt, modes[i], &stats));
      assert_int_equal(stats.steps, 300);
      cgr_runtime_destroy(rt);
    }
  }
}

/* ---- capture, memory and stats ------------------------------------------- */

static void test_every_key_is_captured_on_one_arena(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.buckets, BUCKETS);
  assert_int_equal(stats.buckets_captured, BUCKETS);
  assert_int_equal(stats.keys, BUCKETS * TOKENS * VARIANTS);
  assert_int_equal(stats.keys_captured, stats.keys);
  assert_int_equal(stats.graphs, 2 * stats.keys);
  /* The arena is the largest step's scratch: the wide variant of the
   * largest bucket at the most tokens; never a sum over keys. */
  uint64_t most = 0, sum = 0;
  for (size_t b = 0; b < BUCKETS; ++b)
    for (size_t t = 0; t < TOKENS; ++t)
      for (uint32_t v = 0; v < VARIANTS; ++v) {
        cgr_key key = {buckets[b], tokens[t], v};
        cgr_key_stats ks;
        assert_cgr_ok(rt, cgr_key_stats_get(rt, &key, &ks));
        assert_int_equal(ks.captured, 1);
        assert_memory_equal(&ks.key, &key, sizeof key);
        assert_true(ks.nodes[0] > 0 && ks.nodes[1] > 0);
        assert_true(ks.scratch_bytes > 0);
        if (ks.scratch_bytes > most)
          most = ks.scratch_bytes;
        sum += ks.scratch_bytes;
      }
  cgr_key widest = {LARGEST, MOST_TOKENS, 2};
  cgr_key_stats ks;
  assert_cgr_ok(rt, cgr_key_stats_get(rt, &widest, &ks));
  assert_int_equal(ks.scratch_bytes, most);
  assert_int_equal(stats.arena_peak, most);
  assert_int_equal(stats.arena_bytes, most);
  assert_true(stats.arena_bytes < sum);
  /* A bucket's stats are its keys' together. */
  cgr_bucket_stats bs;
  assert_cgr_ok(rt, cgr_bucket_stats_get(rt, LARGEST, &bs));
  assert_int_equal(bs.captured, 1);
  assert_int_equal(bs.scratch_bytes, most);
  /* Constants per bucket and tokens value: cu_q = 0, q, 2q, ...; bias by
   * the keyed fill; tok = 0, 1, 2, ... */
  for (size_t t = 0; t < TOKENS; ++t) {
    cgr_key key = {4, tokens[t], 1};
    void *cu_q = NULL, *bias = NULL, *tok = NULL;
    assert_cgr_ok(rt, cgr_slot_address_key(rt, m.cu_q, 0, &key, &cu_q));
    assert_cgr_ok(rt, cgr_slot_address_key(rt, m.bias, 1, &key, &bias));
    assert_cgr_ok(rt, cgr_slot_address_key(rt, m.tok, 0, &key, &tok));
    int32_t got[4 * MOST_TOKENS + 1];
    assert_cgr_ok(rt, cgr_memcpy(rt, got, cu_q, 5 * 4));
    for (int i = 0; i <= 4; ++i)
      assert_int_equal(got[i], i * (int)tokens[t]);
    assert_cgr_ok(rt, cgr_memcpy(rt, got, bias, 4 * tokens[t] * 4));
    for (uint32_t i = 0; i < 4 * tokens[t]; ++i)
      assert_int_equal(got[i], (int)(4000 + tokens[t] * 100 + i));
    assert_cgr_ok(rt, cgr_memcpy(rt, got, tok, 4 * tokens[t] * 4));
    for (uint32_t i = 0; i < 4 * tokens[t]; ++i)
      assert_int_equal(got[i], (int)i);
  }
  /* Each key's graph can be dumped; a verify key's holds its own graph. */
  char dot[2][128];
  for (int i = 0; i < 2; ++i) {
    snprintf(dot[i], sizeof dot[i], "/tmp/cgr-keys-%ld-%d.dot", (long)getpid(),
             i);
    cgr_key key = {4, i ? 4 : 1, (uint32_t)i};
    assert_cgr_ok(rt, cgr_graph_dump_key(rt, &key, 1, dot[i]));
    FILE *file = fopen(dot[i], "r");
    assert_non_null(file);
    fseek(file, 0, SEEK_END);
    assert_true(ftell(file) > 0);
    fclose(file);
    remove(dot[i]);
  }
  cgr_key bad_key = {4, 2, 0};
  assert_cgr_status(rt, cgr_graph_dump_key(rt, &bad_key, 0, dot[0]),
                    CGR_E_INVALID_ARGUMENT);
  /* The first tokens value's constants are cgr_slot_address's. */
  void *a = NULL, *b = NULL;
  cgr_key first = {4, 1, 0};
  assert_cgr_ok(rt, cgr_slot_address(rt, m.cu_q, 0, 4, &a));
  assert_cgr_ok(rt, cgr_slot_address_key(rt, m.cu_q, 0, &first, &b));
  assert_ptr_equal(a, b);
  cgr_runtime_destroy(rt);
}

static void test_lazy_capture_captures_only_the_keys_replayed(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_FUSED, 1, 0);
  cgr_capture_stats stats;
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.keys_captured, 0);
  /* The arena was sized by every tokens value and variant up front. */
  assert_true(stats.arena_bytes > 0);
  cgr_key key = {2, 3, 2};
  assert_cgr_ok(rt, cgr_capture_key(rt, &key));
  cgr_key_stats ks;
  assert_cgr_ok(rt, cgr_key_stats_get(rt, &key, &ks));
  assert_int_equal(ks.captured, 1);
  cgr_key other = {2, 3, 1};
  assert_cgr_ok(rt, cgr_key_stats_get(rt, &other, &ks));
  assert_int_equal(ks.captured, 0);
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_int_equal(stats.keys_captured, 1);
  assert_int_equal(stats.buckets_captured, 0);
  /* A replay captures its own key only. */
  random_steps(rt, &m, CGR_REPLAY_FUSED, 0, 1, 77);
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_true(stats.keys_captured <= 2);
  assert_cgr_ok(rt, cgr_capture_bucket(rt, 2));
  assert_cgr_ok(rt, cgr_key_stats_get(rt, &other, &ks));
  assert_int_equal(ks.captured, 1);
  random_steps(rt, &m, CGR_REPLAY_FUSED, 1, 100, 78);
  assert_cgr_ok(rt, cgr_capture_stats_get(rt, &stats));
  assert_true(stats.keys_captured > 2 * TOKENS * VARIANTS);
  assert_true(stats.arena_peak <= stats.arena_bytes);
  cgr_runtime_destroy(rt);
}

/* ---- refusals -------------------------------------------------------------
 */

static void expect_message(cgr_runtime *rt, const char *needle) {
  if (strstr(cgr_last_error(rt), needle) == NULL)
    fail_msg("the message \"%s\" does not say \"%s\"", cgr_last_error(rt),
             needle);
}

static void test_bad_keys_and_variants_are_refused_by_name(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED, 0, 1);
  cgr_batch *batch = NULL;
  assert_cgr_status(rt, cgr_batch_begin_key(rt, 2, 2, 0, &batch),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "tokens_per_request 2 is not one of the runtime's (1, 3, "
                     "4");
  assert_null(batch);
  assert_cgr_status(rt, cgr_batch_begin_key(rt, 2, 3, 3, &batch),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "variant 3");
  assert_cgr_status(rt, cgr_batch_begin_key(rt, 0, 3, 0, &batch),
                    CGR_E_INVALID_ARGUMENT);
  assert_cgr_status(rt, cgr_batch_begin_key(rt, UINT32_MAX / 2, 3, 0, &batch),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "do not fit in 32 bits");
  cgr_key bad[] = {{3, 1, 0}, {4, 5, 0}, {4, 1, 9}};
  const char *says[] = {"key->padded_batch 3", "key->tokens_per_request 5",
                        "key->variant 9"};
  for (int i = 0; i < 3; ++i) {
    cgr_key_stats ks;
    assert_cgr_status(rt, cgr_key_stats_get(rt, &bad[i], &ks),
                      CGR_E_INVALID_ARGUMENT);
    expect_message(rt, says[i]);
    assert_cgr_status(rt, cgr_capture_key(rt, &bad[i]), CGR_E_INVALID_ARGUMENT);
    expect_message(rt, says[i]);
    void *address = NULL;
    assert_cgr_status(rt,
                      cgr_slot_address_key(rt, m.cu_q, 0, &bad[i], &address),
                      CGR_E_INVALID_ARGUMENT);
    assert_null(address);
  }
  assert_cgr_status(rt, cgr_capture_key(rt, NULL), CGR_E_INVALID_ARGUMENT);
  /* A token-scaled slot takes batch * q rows. */
  assert_cgr_ok(rt, cgr_batch_begin_key(rt, 2, 3, 0, &batch));
  int32_t rows[MAX_ROWS] = {0};
  assert_cgr_status(rt,
                    cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, rows, 2 * 4),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "batch * tokens_per_request rows");
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, rows, 6 * 4));
  cgr_batch_discard(batch);
  /* Variants by name. */
  uint32_t v = 0;
  assert_cgr_ok(rt, cgr_variant_find(rt, "wide", &v));
  assert_int_equal(v, 2);
  assert_string_equal(cgr_variant_name(rt, 1), "double");
  assert_null(cgr_variant_name(rt, 3));
  assert_int_equal(cgr_variant_count(rt), VARIANTS);
  assert_cgr_status(rt, cgr_variant_find(rt, "lora", &v),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "no variant is named 'lora'");
  const uint32_t *values = NULL;
  size_t count = 0;
  assert_cgr_ok(rt, cgr_tokens_per_request(rt, &values, &count));
  assert_int_equal(count, TOKENS);
  assert_int_equal(values[2], 4);
  cgr_runtime_destroy(rt);
}

static void test_feedback_indices_count_token_rows(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED, 0, 1);
  int32_t zeros[MAX_ROWS] = {0};
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  /* A verify step: 2 requests of 4 tokens, 8 token rows. */
  assert_cgr_ok(rt, cgr_batch_begin_key(rt, 2, 4, 0, &batch));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.ids, CGR_SOURCE_HOST, zeros, 8 * 4));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.pos, CGR_SOURCE_HOST, zeros, 8 * 4));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.lens, CGR_SOURCE_HOST, zeros, 2 * 4));
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m.cu_k, CGR_SOURCE_HOST, zeros, 3 * 4));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  /* The next step continues token rows 0..7; row 8 is past them. */
  assert_cgr_ok(rt, cgr_batch_begin_key(rt, 2, 1, 0, &batch));
  int32_t prev[2] = {7, 8};
  assert_cgr_status(rt, cgr_batch_feedback(batch, m.ids, prev, NULL, 0),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "prev_rows[1] is 8; the previous step had 8 rows");
  prev[1] = 2;
  assert_cgr_ok(rt, cgr_batch_feedback(batch, m.ids, prev, NULL, 0));
  cgr_batch_discard(batch);
  cgr_runtime_destroy(rt);
}

/* One step in one call: cgr_replay_inputs_key opens the key's batch. */
static void test_replay_inputs_key_runs_the_keys_graph(void **state) {
  (void)state;
  cgr_test_require_backend();
  keyed m;
  cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_DOUBLE_BUFFERED, 0, 0);
  step_inputs in;
  memset(&in, 0, sizeof in);
  in.batch = 3;
  in.q = 4;
  in.variant = 1;
  for (uint32_t j = 0; j < 12; ++j) {
    in.ids[j] = (int32_t)(j * 3);
    in.pos[j] = (int32_t)(50 - j);
  }
  for (uint32_t r = 0; r < 3; ++r) {
    in.lens[r] = (int32_t)(r + 1);
    in.cu_k[r + 1] = in.cu_k[r] + in.lens[r];
  }
  cgr_input inputs[] = {
      {.slot = m.ids, .source = CGR_SOURCE_HOST, .data = in.ids, .bytes = 48},
      {.slot = m.pos, .source = CGR_SOURCE_HOST, .data = in.pos, .bytes = 48},
      {.slot = m.lens, .source = CGR_SOURCE_HOST, .data = in.lens, .bytes = 12},
      {.slot = m.cu_k, .source = CGR_SOURCE_HOST, .data = in.cu_k, .bytes = 16},
  };
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay_inputs_key(rt, 3, 4, 1, inputs, 4, NULL, 0, NULL,
                                          &ticket));
  assert_int_equal(ticket.padded_batch, 4);
  int32_t out[MAX_ROWS];
  check_step(rt, &m, &ticket, &in, out);
  cgr_key key;
  assert_cgr_ok(rt, cgr_ticket_key(rt, &ticket, &key));
  assert_int_equal(key.tokens_per_request, 4);
  assert_int_equal(key.variant, 1);
  /* Two steps later the ticket's set is reused: its key is gone too. */
  cgr_ticket later;
  for (int i = 0; i < 2; ++i)
    assert_cgr_ok(rt, cgr_replay_inputs_key(rt, 3, 4, 0, inputs, 4, NULL, 0,
                                            NULL, &later));
  assert_cgr_status(rt, cgr_ticket_key(rt, &ticket, &key), CGR_E_INVALID_STATE);
  assert_cgr_status(rt, cgr_ticket_key(rt, &later, NULL),
                    CGR_E_INVALID_ARGUMENT);
  /* The default key is (bucket, 1, 0): these byte counts are wrong there. */
  assert_cgr_status(rt,
                    cgr_replay_inputs(rt, 3, inputs, 4, NULL, 0, NULL, &ticket),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "inputs[0]");
  assert_cgr_status(rt,
                    cgr_replay_inputs_key(rt, 3, 2, 0, inputs, 4, NULL, 0, NULL,
                                          &ticket),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "tokens_per_request 2");
  cgr_runtime_destroy(rt);
}

/* One step of the keyed runtime in `mode`: ids, lens, cu_k from the host;
 * pos from `pos`, or unchanged when NULL (the status of that call is
 * returned in *unchanged, the batch discarded when it is refused). */
static cgr_ticket pos_step(cgr_runtime *rt, const keyed *m,
                           cgr_replay_mode mode, uint32_t b, uint32_t q,
                           const int32_t *pos, cgr_status *unchanged) {
  int32_t ids[MAX_ROWS] = {0}, lens[MAX_BATCH] = {0}, cu[MAX_BATCH + 1] = {0};
  cgr_batch *batch = NULL;
  cgr_ticket ticket;
  memset(&ticket, 0, sizeof ticket);
  assert_cgr_ok(rt, cgr_set_replay_mode(rt, mode));
  assert_cgr_ok(rt, cgr_batch_begin_key(rt, b, q, 0, &batch));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->ids, CGR_SOURCE_HOST, ids,
                                    b * q * 4));
  cgr_status status = CGR_OK;
  if (pos != NULL)
    status = cgr_batch_input(batch, m->pos, CGR_SOURCE_HOST, pos, b * q * 4);
  else
    status = cgr_batch_unchanged(batch, m->pos);
  if (unchanged != NULL)
    *unchanged = status;
  if (status != CGR_OK) {
    cgr_batch_discard(batch);
    return ticket;
  }
  assert_cgr_ok(rt,
                cgr_batch_input(batch, m->lens, CGR_SOURCE_HOST, lens, b * 4));
  assert_cgr_ok(rt, cgr_batch_input(batch, m->cu_k, CGR_SOURCE_HOST, cu,
                                    (b + 1) * 4));
  assert_cgr_ok(rt, cgr_replay(rt, batch, &ticket));
  assert_cgr_ok(rt, cgr_ticket_wait(rt, &ticket));
  return ticket;
}

/*
 * The same number of token rows can belong to a larger bucket under
 * another q: (2 requests x 3 tokens, bucket 2) and (6 x 1, bucket 8). An
 * in-graph load of the first writes only its 6 rows, so rows 6 and 7 of
 * set 0 still hold an older step's live data; a slot marked unchanged for
 * the second must not let bucket 8's graph read them as padding: the
 * fused modes re-fill them, the in-graph mode refuses the unchanged slot
 * (its graph copies the set's rows whole). Found by review: the padding
 * was skipped.
 */
static void
test_unchanged_token_rows_of_a_larger_bucket_hold_padding(void **state) {
  (void)state;
  cgr_test_require_backend();
  for (int in_graph = 0; in_graph < 2; ++in_graph) {
    keyed m;
    cgr_runtime *rt = keyed_runtime(&m, CGR_REPLAY_FUSED, 0, 0);
    int32_t live[MAX_ROWS];
    for (int i = 0; i < MAX_ROWS; ++i)
      live[i] = 100 + i;
    pos_step(rt, &m, CGR_REPLAY_FUSED, 8, 1, live, NULL); /* set 0: 8 rows */
    pos_step(rt, &m, CGR_REPLAY_FUSED, 1, 1, live, NULL);
    pos_step(rt, &m, CGR_REPLAY_IN_GRAPH, 2, 3, live, NULL); /* set 0: 6 */
    pos_step(rt, &m, CGR_REPLAY_FUSED, 1, 1, live, NULL);
    cgr_replay_mode mode = in_graph ? CGR_REPLAY_IN_GRAPH : CGR_REPLAY_FUSED;
    cgr_status unchanged = CGR_OK;
    cgr_ticket t = pos_step(rt, &m, mode, 6, 1, NULL, &unchanged);
    if (in_graph) {
      assert_int_equal(unchanged, CGR_E_INVALID_ARGUMENT);
      expect_message(rt, "past its 6 rows");
      t = pos_step(rt, &m, mode, 6, 1, live, NULL);
    } else {
      assert_int_equal(unchanged, CGR_OK);
    }
    assert_int_equal(t.set, 0);
    assert_int_equal(t.padded_batch, 8);
    void *pos = NULL;
    int32_t got[8];
    assert_cgr_ok(rt, cgr_slot_address(rt, m.pos, 0, 0, &pos));
    assert_cgr_ok(rt, cgr_memcpy(rt, got, pos, sizeof got));
    for (int i = 0; i < 6; ++i)
      assert_int_equal(got[i], 100 + i);
    for (int i = 6; i < 8; ++i)
      if (got[i] != PAD_POS)
        fail_msg("%s: padded token row %d of pos holds %d, not the pad %d",
                 in_graph ? "in-graph" : "fused", i, got[i], PAD_POS);
    /* Once re-filled, the next unchanged step of the set needs nothing. */
    pos_step(rt, &m, CGR_REPLAY_FUSED, 1, 1, live, NULL);
    pos_step(rt, &m, mode, 6, 1, NULL, &unchanged);
    assert_int_equal(unchanged, CGR_OK);
    cgr_runtime_destroy(rt);
  }
}

static void test_bad_key_config_and_slots_are_refused(void **state) {
  (void)state;
  cgr_test_require_backend();
  static const uint32_t descending[] = {3, 1};
  static const uint32_t zero[] = {0};
  static const uint32_t too_many[] = {CGR_MAX_TOKENS_PER_REQUEST + 1};
  static const char *const repeated[] = {"a", "b", "a"};
  static const char *const empty[] = {""};
  struct {
    const uint32_t *tokens;
    size_t token_count;
    const char *const *variants;
    size_t variant_count;
    const char *says;
  } cases[] = {
      {descending, 2, NULL, 0, "tokens_per_request must ascend"},
      {zero, 1, NULL, 0, "tokens_per_request[0] is 0"},
      {too_many, 1, NULL, 0, "must be 1 to 64"},
      {NULL, 2, NULL, 0, "tokens_per_request is NULL"},
      {NULL, 0, repeated, 3, "variants[2] repeats the name 'a'"},
      {NULL, 0, empty, 1, "variants[0]"},
      {NULL, 0, NULL, 2, "config->variants is NULL"},
      {NULL, 0, repeated, CGR_MAX_VARIANTS + 1, "at most 16"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_config config;
    cgr_test_config(&config);
    config.tokens_per_request = cases[i].tokens;
    config.tokens_per_request_count = cases[i].token_count;
    config.variants = cases[i].variants;
    config.variant_count = cases[i].variant_count;
    cgr_runtime *rt = (cgr_runtime *)&config;
    assert_int_equal(cgr_runtime_create(&config, &rt), CGR_E_INVALID_ARGUMENT);
    assert_null(rt);
    if (strstr(cgr_last_error(NULL), cases[i].says) == NULL)
      fail_msg("case %zu: \"%s\" does not say \"%s\"", i, cgr_last_error(NULL),
               cases[i].says);
  }
  /* Defaults: one key per bucket, q = 1, variant "default". */
  cgr_config config;
  cgr_test_config(&config);
  cgr_runtime *rt = NULL;
  assert_int_equal(cgr_runtime_create(&config, &rt), CGR_OK);
  const uint32_t *values = NULL;
  size_t count = 0;
  assert_cgr_ok(rt, cgr_tokens_per_request(rt, &values, &count));
  assert_int_equal(count, 1);
  assert_int_equal(values[0], 1);
  assert_string_equal(cgr_variant_name(rt, 0), "default");
  /* Slots: a scale that is none, a PREFIX per token, feeds across scales. */
  cgr_slot_desc desc;
  cgr_slot slot;
  cgr_slot_desc_init(&desc, "x", CGR_SLOT_ROWS, 4, 1);
  desc.scale = (cgr_slot_scale)5;
  assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "desc->scale is 5");
  cgr_slot_desc_init(&desc, "p", CGR_SLOT_PREFIX, 4, 1);
  desc.scale = CGR_SCALE_TOKEN;
  assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "a PREFIX slot has a row per request");
  cgr_slot_desc_init(&desc, "r", CGR_SLOT_ROWS, 4, 1);
  desc.fill_key = bias_fill;
  assert_cgr_status(rt, cgr_slot_declare(rt, &desc, &slot),
                    CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "for CONSTANT slots only");
  cgr_slot in, out;
  cgr_slot_desc_init(&desc, "in", CGR_SLOT_ROWS, 4, 1);
  desc.scale = CGR_SCALE_TOKEN;
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &in));
  cgr_slot_desc_init(&desc, "out", CGR_SLOT_OUTPUT, 4, 1);
  assert_cgr_ok(rt, cgr_slot_declare(rt, &desc, &out));
  assert_cgr_status(rt, cgr_slot_feed(rt, out, in), CGR_E_INVALID_ARGUMENT);
  expect_message(rt, "count their rows differently");
  cgr_runtime_destroy(rt);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_keys_in_every_mode_match_the_closed_form),
      cmocka_unit_test(test_every_key_is_captured_on_one_arena),
      cmocka_unit_test(test_lazy_capture_captures_only_the_keys_replayed),
      cmocka_unit_test(test_bad_keys_and_variants_are_refused_by_name),
      cmocka_unit_test(test_feedback_indices_count_token_rows),
      cmocka_unit_test(test_replay_inputs_key_runs_the_keys_graph),
      cmocka_unit_test(
          test_unchanged_token_rows_of_a_larger_bucket_hold_padding),
      cmocka_unit_test(test_bad_key_config_and_slots_are_refused),
  };
  return cgr_test_main(argc, argv, __FILE__, tests,
                       sizeof tests / sizeof tests[0]);
}
