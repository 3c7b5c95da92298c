/* A whole step in one call (cgr_replay_inputs): the same steps through it
 * and through the batch calls give the same tickets, outputs and copy work
 * in every mode, with every kind of entry; and it orders the step after the
 * caller's events and records done_event after it. Its refusals are in
 * replay_inputs_errors.c. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "replay_inputs_fixture.h"

enum { STEPS = 48 };

/* How a step gives one slot. Slot i: 0 ids, 1 pos, 2 pages, 3 cu_k. */
typedef enum how { HOST, PINNED, DEVICE, UNCHANGED, GATHER, FEEDBACK } how;
enum { HOWS = 6 };

/* One step, the same for every runtime: how each slot is given, and what
 * the step therefore sees. */
typedef struct plan {
  uint32_t rows;
  how how[4];
  int first; /* entries start at this slot and wrap around */
  model_inputs in;
  int32_t index[4][MAX_ROWS]; /* GATHER: table rows */
  int32_t prev_rows[MAX_ROWS];
  int32_t fresh[MAX_ROWS];
  uint32_t fresh_count;
} plan;

/* What the plans so far leave behind, to plan the next one. */
typedef struct script {
  cgr_replay_mode mode;
  uint64_t seed;
  const tables *t;
  int previous_graph; /* the previous step ran a graph */
  uint32_t previous_padded;
  model_inputs previous_in;
  uint32_t loaded_rows[2]; /* per buffer set: its last graph step's rows */
  model_inputs loaded_in[2];
  int used[HOWS]; /* entries planned of each kind */
} script;

static int32_t *slot_data(model_inputs *in, int slot) {
  int32_t *data[4] = {in->ids, in->pos, in->pages, in->cu_k};
  return data[slot];
}

/* Which ways slot `slot` of step n may be given. */
static int choices(const script *sc, int n, uint32_t rows, int slot, how *out) {
  int in_graph = sc->mode == CGR_REPLAY_IN_GRAPH;
  int eager = sc->mode == CGR_REPLAY_EAGER || rows > LARGEST;
  int count = 0;
  out[count++] = HOST;
  out[count++] = PINNED;
  if (!in_graph) {
    out[count++] = DEVICE;
    if (slot == 0 || slot == 2)
      out[count++] = GATHER;
  }
  /* input_ids is fed: the previous graph wrote its rows in this set. */
  if (!eager && slot != 0 && sc->loaded_rows[n % 2] == rows)
    out[count++] = UNCHANGED;
  if (slot == 0 && sc->previous_graph && !in_graph)
    out[count++] = FEEDBACK;
  return count;
}

static void plan_feedback(script *sc, plan *p, uint32_t previous_rows) {
  /* Now and then every row continues its own: the copy-free path. */
  int same = p->rows <= previous_rows && below(&sc->seed, 3) == 0;
  p->fresh_count = 0;
  for (uint32_t j = 0; j < p->rows; ++j) {
    int32_t from = same ? (int32_t)j
                   : below(&sc->seed, 4) == 0
                       ? -1
                       : (int32_t)below(&sc->seed, previous_rows);
    p->prev_rows[j] = from;
    if (from < 0) {
      p->fresh[p->fresh_count++] = (int32_t)below(&sc->seed, 50000);
      p->in.ids[j] = p->fresh[p->fresh_count - 1];
    } else {
      p->in.ids[j] = model_expected_out(&sc->previous_in, sc->previous_padded,
                                        (uint32_t)from);
    }
  }
}

static void plan_step(script *sc, int n, plan *p) {
  uint32_t limit = sc->mode == CGR_REPLAY_EAGER ? MAX_ROWS : LARGEST;
  p->rows = 1 + below(&sc->seed, limit);
  /* Same sizes in a row now and then, so UNCHANGED has a set to reuse. */
  if (n >= 2 && below(&sc->seed, 3) == 0 && sc->loaded_rows[n % 2] > 0)
    p->rows = sc->loaded_rows[n % 2];
  p->first = (int)below(&sc->seed, 4);
  model_make_inputs(&p->in, p->rows, p->rows, (unsigned)test_random(&sc->seed));
  for (int slot = 0; slot < 4; ++slot) {
    how options[HOWS];
    int count = choices(sc, n, p->rows, slot, options);
    how chosen = options[below(&sc->seed, (uint32_t)count)];
    /* Favor the kinds that need a history, which are offered less. */
    if (options[count - 1] >= UNCHANGED && below(&sc->seed, 2) == 0)
      chosen = options[count - 1];
    p->how[slot] = chosen;
    sc->used[chosen]++;
    if (chosen == UNCHANGED) {
      memcpy(slot_data(&p->in, slot), slot_data(&sc->loaded_in[n % 2], slot),
             slot_bytes(slot, p->rows));
    } else if (chosen == GATHER) {
      for (uint32_t j = 0; j < p->rows; ++j) {
        int32_t row = (int32_t)below(&sc->seed, TABLE_ROWS);
        p->index[slot][j] = row;
        if (slot == 0)
          p->in.ids[j] = sc->t->ids[row];
        else
          memcpy(&p->in.pages[j * MODEL_PAGES],
                 &sc->t->pages[row * MODEL_PAGES],
                 MODEL_PAGES * sizeof(int32_t));
      }
    } else if (chosen == FEEDBACK) {
      plan_feedback(sc, p, sc->previous_in.rows);
    }
  }
}

static void script_after(script *sc, const plan *p, const cgr_ticket *ticket) {
  sc->previous_graph = ticket->set >= 0;
  sc->previous_padded = ticket->padded_batch;
  sc->previous_in = p->in;
  if (ticket->set >= 0) {
    sc->loaded_rows[ticket->set] = p->rows;
    sc->loaded_in[ticket->set] = p->in;
  }
}

/* The plan's entries for one runtime, writing its sources for the step. */
static void make_entries(side *s, const plan *p, int parity, cgr_input *out) {
  const cgr_slot slots[4] = {s->m.ids, s->m.pos, s->m.pages, s->m.cu_k};
  model_inputs in = p->in;
  for (int e = 0; e < 4; ++e) {
    int slot = (p->first + e) % 4;
    const int32_t *data = slot_data(&in, slot);
    size_t bytes = slot_bytes(slot, p->rows);
    cgr_input entry = {.slot = slots[slot]};
    switch (p->how[slot]) {
    case HOST:
      memcpy(s->pageable[slot], data, bytes);
      entry.kind = CGR_INPUT_DATA;
      entry.source = CGR_SOURCE_HOST;
      entry.data = s->pageable[slot];
      entry.bytes = bytes;
      break;
    case PINNED:
      memcpy(s->pinned[parity][slot], data, bytes);
      entry.kind = CGR_INPUT_DATA;
      entry.source = CGR_SOURCE_PINNED;
      entry.data = s->pinned[parity][slot];
      entry.bytes = bytes;
      break;
    case DEVICE:
      assert_cgr_ok(s->rt,
                    cgr_memcpy(s->rt, s->device[parity][slot], data, bytes));
      entry.kind = CGR_INPUT_DATA;
      entry.source = CGR_SOURCE_DEVICE;
      entry.data = s->device[parity][slot];
      entry.bytes = bytes;
      break;
    case UNCHANGED:
      entry.kind = CGR_INPUT_UNCHANGED;
      break;
    case GATHER:
      assert_cgr_ok(s->rt, cgr_memcpy(s->rt, s->index[parity][slot],
                                      p->index[slot], p->rows * 4));
      entry.kind = CGR_INPUT_GATHER;
      entry.data = slot == 0 ? s->table_ids : s->table_pages;
      entry.rows = s->index[parity][slot];
      break;
    case FEEDBACK:
      entry.kind = CGR_INPUT_FEEDBACK;
      entry.rows = p->prev_rows;
      entry.data = p->fresh_count > 0 ? p->fresh : NULL;
      entry.bytes = p->fresh_count * sizeof(int32_t);
      break;
    }
    out[e] = entry;
  }
}

/* The reference: the same entries through the batch calls, one by one. */
static void replay_by_batch_calls(cgr_runtime *rt, uint32_t rows,
                                  const cgr_input *entries, size_t count,
                                  cgr_ticket *ticket) {
  cgr_batch *batch = NULL;
  assert_cgr_ok(rt, cgr_batch_begin(rt, rows, &batch));
  for (size_t i = 0; i < count; ++i) {
    const cgr_input *e = &entries[i];
    switch (e->kind) {
    case CGR_INPUT_DATA:
      assert_cgr_ok(rt, cgr_batch_input(batch, e->slot, e->source, e->data,
                                        e->bytes));
      break;
    case CGR_INPUT_UNCHANGED:
      assert_cgr_ok(rt, cgr_batch_unchanged(batch, e->slot));
      break;
    case CGR_INPUT_GATHER:
      assert_cgr_ok(rt, cgr_batch_gather(batch, e->slot, e->data, e->rows));
      break;
    case CGR_INPUT_FEEDBACK:
      assert_cgr_ok(rt, cgr_batch_feedback(batch, e->slot, e->rows, e->data,
                                           e->bytes));
      break;
    default:
      fail_msg("entry %zu has kind %d", i, (int)e->kind);
    }
  }
  assert_cgr_ok(rt, cgr_replay(rt, batch, ticket));
}

/* A step in flight on both runtimes, to check once it is done. */
typedef struct pending {
  cgr_ticket by_batch, by_inputs;
  model_inputs in;
} pending;

/* Both runtimes wrote the same bytes, and the live rows are the model's. */
static void check_same_outputs(side *by_batch, side *by_inputs,
                               const pending *p) {
  int32_t out[2][MAX_ROWS], pages[2][MAX_ROWS * MODEL_PAGES];
  const cgr_ticket *ticket = &p->by_inputs;
  read_outputs(by_batch, &p->by_batch, out[0], pages[0]);
  read_outputs(by_inputs, ticket, out[1], pages[1]);
  uint32_t padded = ticket->padded_batch;
  assert_memory_equal(out[0], out[1], padded * 4);
  assert_memory_equal(pages[0], pages[1], padded * 4 * MODEL_PAGES);
  for (uint32_t r = 0; r < ticket->batch_size; ++r) {
    if (out[1][r] != model_expected_out(&p->in, padded, r))
      fail_msg("step %llu: out[%u] = %d, expected %d",
               (unsigned long long)ticket->step, r, out[1][r],
               model_expected_out(&p->in, padded, r));
    for (int k = 0; k < MODEL_PAGES; ++k)
      assert_int_equal(pages[1][r * MODEL_PAGES + k],
                       2 * p->in.pages[r * MODEL_PAGES + k]);
  }
}

static void assert_same_ticket(const cgr_ticket *a, const cgr_ticket *b) {
  assert_int_equal(a->step, b->step);
  assert_int_equal(a->batch_size, b->batch_size);
  assert_int_equal(a->padded_batch, b->padded_batch);
  assert_int_equal(a->set, b->set);
}

/* The same steps on two runtimes, one through the batch calls, one through
 * cgr_replay_inputs, two steps in flight. */
static void run_side_by_side(cgr_replay_mode mode) {
  cgr_test_require_backend();
  tables t;
  tables_make(&t, 0x7AB1E + (uint64_t)mode);
  side by_batch, by_inputs;
  side_open(&by_batch, mode, &t);
  side_open(&by_inputs, mode, &t);
  script sc = {.mode = mode, .seed = 0x1A9075 + (uint64_t)mode, .t = &t};
  pending previous;
  int have_previous = 0;
  for (int n = 0; n < STEPS; ++n) {
    pending now;
    plan p;
    plan_step(&sc, n, &p);
    now.in = p.in;
    cgr_input entries[4];
    make_entries(&by_batch, &p, n % 2, entries);
    replay_by_batch_calls(by_batch.rt, p.rows, entries, 4, &now.by_batch);
    make_entries(&by_inputs, &p, n % 2, entries);
    assert_cgr_ok(by_inputs.rt,
                  cgr_replay_inputs(by_inputs.rt, p.rows, entries, 4, NULL, 0,
                                    NULL, &now.by_inputs));
    memset(by_batch.pageable, 0xEE, sizeof by_batch.pageable);
    memset(by_inputs.pageable, 0xEE, sizeof by_inputs.pageable);
    assert_same_ticket(&now.by_batch, &now.by_inputs);
    assert_int_equal(now.by_inputs.step, (uint64_t)n);
    assert_int_equal(now.by_inputs.batch_size, p.rows);
    /* An eager step's outputs end at the next replay: check it now. */
    if (now.by_inputs.set < 0)
      check_same_outputs(&by_batch, &by_inputs, &now);
    if (have_previous && previous.by_inputs.set >= 0)
      check_same_outputs(&by_batch, &by_inputs, &previous);
    script_after(&sc, &p, &now.by_inputs);
    previous = now;
    have_previous = 1;
  }
  if (previous.by_inputs.set >= 0)
    check_same_outputs(&by_batch, &by_inputs, &previous);

  /* The sequence used what this mode allows, so the test covered it. */
  assert_true(sc.used[HOST] > 0 && sc.used[PINNED] > 0);
  if (mode != CGR_REPLAY_IN_GRAPH)
    assert_true(sc.used[DEVICE] > 0 && sc.used[GATHER] > 0);
  if (mode != CGR_REPLAY_EAGER)
    assert_true(sc.used[UNCHANGED] > 0);
  if (mode != CGR_REPLAY_EAGER && mode != CGR_REPLAY_IN_GRAPH)
    assert_true(sc.used[FEEDBACK] > 0);

  /* The same work: copies, skips and launches alike (host waits are left
   * out: whether one is needed depends on the device's timing). */
  cgr_replay_stats a, b;
  assert_cgr_ok(by_batch.rt, cgr_replay_stats_get(by_batch.rt, mode, &a));
  assert_cgr_ok(by_inputs.rt, cgr_replay_stats_get(by_inputs.rt, mode, &b));
  assert_int_equal(a.steps, STEPS);
  assert_int_equal(b.steps, STEPS);
  assert_int_equal(a.eager_steps, b.eager_steps);
  assert_int_equal(a.ops_copied, b.ops_copied);
  assert_int_equal(a.bytes_copied, b.bytes_copied);
  assert_int_equal(a.ops_skipped, b.ops_skipped);
  cgr_counters ca, cb;
  assert_cgr_ok(by_batch.rt, cgr_counters_get(by_batch.rt, &ca));
  assert_cgr_ok(by_inputs.rt, cgr_counters_get(by_inputs.rt, &cb));
  assert_int_equal(ca.graph_launches, cb.graph_launches);
  assert_int_equal(ca.kernel_launches, cb.kernel_launches);
  assert_int_equal(ca.copies, cb.copies);
  assert_int_equal(ca.memsets, cb.memsets);
  assert_int_equal(ca.event_records, cb.event_records);
  assert_int_equal(ca.event_waits, cb.event_waits);
  side_close(&by_batch);
  side_close(&by_inputs);
}

static void test_inputs_match_the_batch_calls_in_naive_mode(void **state) {
  (void)state;
  run_side_by_side(CGR_REPLAY_NAIVE);
}

static void test_inputs_match_the_batch_calls_in_fused_mode(void **state) {
  (void)state;
  run_side_by_side(CGR_REPLAY_FUSED);
}

static void
test_inputs_match_the_batch_calls_in_double_buffered_mode(void **state) {
  (void)state;
  run_side_by_side(CGR_REPLAY_DOUBLE_BUFFERED);
}

static void test_inputs_match_the_batch_calls_in_in_graph_mode(void **state) {
  (void)state;
  run_side_by_side(CGR_REPLAY_IN_GRAPH);
}

static void test_inputs_match_the_batch_calls_in_eager_mode(void **state) {
  (void)state;
  run_side_by_side(CGR_REPLAY_EAGER);
}

/* ---- each kind, step by step --------------------------------------------- */

/* Three steps that give the slots every way there is, in one call each. */
static void test_each_kind_reaches_the_step(void **state) {
  (void)state;
  cgr_test_require_backend();
  tables t;
  tables_make(&t, 11);
  side s;
  side_open(&s, CGR_REPLAY_FUSED, &t);
  cgr_runtime *rt = s.rt;

  /* Step 0 (set 0): ids from the host, positions pinned, pages from the
   * device, cu_seqlens_k from the host. */
  model_inputs in0;
  model_make_inputs(&in0, ROWS, ROWS, 1);
  memcpy(s.pinned[0][1], in0.pos, ROWS * 4);
  assert_cgr_ok(rt, cgr_memcpy(rt, s.device[0][2], in0.pages,
                               ROWS * 4 * MODEL_PAGES));
  cgr_input step0[4];
  host_entries(&s.m, &in0, step0);
  step0[1].source = CGR_SOURCE_PINNED;
  step0[1].data = s.pinned[0][1];
  step0[2].source = CGR_SOURCE_DEVICE;
  step0[2].data = s.device[0][2];
  cgr_ticket t0;
  assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, step0, 4, NULL, 0, NULL, &t0));
  assert_int_equal(t0.step, 0);
  assert_int_equal(t0.set, 0);
  check_step(&s, &t0, &in0);

  /* Step 1 (set 1): ids continue rows 2 and 0 of step 0 with a new
   * request between them; pages gathered from the device table. */
  model_inputs in1;
  model_make_inputs(&in1, ROWS, ROWS, 2);
  int32_t prev_rows[ROWS] = {2, -1, 0};
  int32_t fresh[1] = {4242};
  in1.ids[0] = model_expected_out(&in0, t0.padded_batch, 2);
  in1.ids[1] = fresh[0];
  in1.ids[2] = model_expected_out(&in0, t0.padded_batch, 0);
  int32_t index[ROWS] = {5, 31, 5};
  for (uint32_t j = 0; j < ROWS; ++j)
    memcpy(&in1.pages[j * MODEL_PAGES], &t.pages[index[j] * MODEL_PAGES],
           MODEL_PAGES * 4);
  assert_cgr_ok(rt, cgr_memcpy(rt, s.index[1][2], index, sizeof index));
  cgr_input step1[4];
  host_entries(&s.m, &in1, step1);
  step1[0] = (cgr_input){.slot = s.m.ids,
                         .kind = CGR_INPUT_FEEDBACK,
                         .data = fresh,
                         .bytes = sizeof fresh,
                         .rows = prev_rows};
  step1[2] = (cgr_input){.slot = s.m.pages,
                         .kind = CGR_INPUT_GATHER,
                         .data = s.table_pages,
                         .rows = s.index[1][2]};
  cgr_ticket t1;
  assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, step1, 4, NULL, 0, NULL, &t1));
  assert_int_equal(t1.step, 1);
  check_step(&s, &t1, &in1);

  /* Step 2 (set 0 again): positions, pages and cu_seqlens_k unchanged
   * since step 0; every id continues its own row (no new request: no
   * new_rows at all). */
  model_inputs in2 = in0;
  for (uint32_t j = 0; j < ROWS; ++j)
    in2.ids[j] = model_expected_out(&in1, t1.padded_batch, j);
  int32_t same_rows[ROWS] = {0, 1, 2};
  const cgr_input step2[4] = {
      {.slot = s.m.cu_k, .kind = CGR_INPUT_UNCHANGED},
      {.slot = s.m.ids, .kind = CGR_INPUT_FEEDBACK, .rows = same_rows},
      {.slot = s.m.pages, .kind = CGR_INPUT_UNCHANGED},
      {.slot = s.m.pos, .kind = CGR_INPUT_UNCHANGED},
  };
  cgr_replay_stats before, after;
  assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &before));
  cgr_ticket t2;
  assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, step2, 4, NULL, 0, NULL, &t2));
  assert_cgr_ok(rt, cgr_replay_stats_get(rt, CGR_REPLAY_FUSED, &after));
  assert_int_equal(t2.set, 0);
  check_step(&s, &t2, &in2);
  /* Nothing of the step was copied: all four were already in place. The
   * one operation is input_ids' padded row, which step 1's feed wrote. */
  assert_int_equal(after.ops_copied - before.ops_copied, 1);
  assert_true(after.ops_skipped > before.ops_skipped);
  side_close(&s);
}

/* ---- ordering with the caller's work ------------------------------------- */

/* The caller's producer: once the test opens its gate, writes the
 * positions into the device source and signals its event. */
typedef struct producer {
  cgr_event *event;
  int32_t *device_pos;
  int32_t pos[ROWS];
  test_gate go;
  atomic_int written;
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  (void)test_gate_wait(&p->go, 10000);
  /* Host backend: its device memory is host memory, which the caller's
   * "kernel" writes directly. */
  memcpy(p->device_pos, p->pos, sizeof p->pos);
  atomic_store(&p->written, 1);
  if (cgr_event_signal_host(p->event) != CGR_OK)
    atomic_store(&p->written, -1);
  return NULL;
}

/* Two wait events, one signaled by another thread after the replay
 * returned, one by this thread later still; the step reads its device
 * source only after both, and done_event completes only with it. */
static void test_step_waits_for_the_callers_events(void **state) {
  (void)state;
  cgr_test_require_backend();
  cgr_test_require_host();
  const cgr_replay_mode modes[] = {CGR_REPLAY_NAIVE, CGR_REPLAY_FUSED,
                                   CGR_REPLAY_DOUBLE_BUFFERED,
                                   CGR_REPLAY_EAGER};
  for (size_t k = 0; k < sizeof modes / sizeof modes[0]; ++k) {
    int eager = modes[k] == CGR_REPLAY_EAGER;
    tables t;
    tables_make(&t, 3);
    side s;
    side_open(&s, modes[k], &t);
    cgr_runtime *rt = s.rt;
    model_inputs in;
    model_make_inputs(&in, ROWS, ROWS, 70 + (unsigned)k);
    producer p = {.device_pos = s.device[0][1]};
    memcpy(p.pos, in.pos, sizeof p.pos);
    int32_t stale[ROWS] = {-5000, -5000, -5000};
    assert_cgr_ok(rt, cgr_memcpy(rt, p.device_pos, stale, sizeof stale));
    cgr_event *later = NULL, *done = NULL;
    assert_cgr_ok(rt, cgr_event_create(rt, &p.event));
    assert_cgr_ok(rt, cgr_event_create(rt, &later));
    assert_cgr_ok(rt, cgr_event_create(rt, &done));
    assert_cgr_ok(rt, cgr_event_record_host(p.event));
    assert_cgr_ok(rt, cgr_event_record_host(later));
    test_gate_init(&p.go);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, produce, &p), 0);

    cgr_input entries[4];
    host_entries(&s.m, &in, entries);
    entries[1].source = CGR_SOURCE_DEVICE;
    entries[1].data = p.device_pos;
    cgr_event *const waits[2] = {p.event, later};
    cgr_ticket ticket;
    if (eager) {
      /* An eager step waits inside the call: both signals come first. */
      test_gate_open(&p.go);
      assert_cgr_ok(rt, cgr_event_signal_host(later));
      assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, entries, 4, waits, 2, done,
                                          &ticket));
      assert_int_equal(ticket.set, -1);
    } else {
      assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, entries, 4, waits, 2, done,
                                          &ticket));
      /* The host did not wait; the step, and so done_event, did. */
      assert_int_equal(atomic_load(&p.written), 0);
      usleep(20000);
      assert_int_equal(cgr_ticket_query(rt, &ticket), CGR_E_NOT_READY);
      assert_int_equal(cgr_event_query(done), CGR_E_NOT_READY);
      test_gate_open(&p.go);
      assert_int_equal(pthread_join(thread, NULL), 0);
      /* One of the two is still pending. */
      usleep(20000);
      assert_int_equal(cgr_event_query(done), CGR_E_NOT_READY);
      assert_cgr_ok(rt, cgr_event_signal_host(later));
    }
    if (eager)
      assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(atomic_load(&p.written), 1);
    assert_cgr_ok(rt, cgr_event_synchronize(done));
    assert_cgr_ok(rt, cgr_ticket_query(rt, &ticket));
    check_step(&s, &ticket, &in);
    test_gate_fini(&p.go);
    cgr_event_destroy(p.event);
    cgr_event_destroy(later);
    cgr_event_destroy(done);
    side_close(&s);
  }
}

/* done_event completes with the step, not before: the graph is held at
 * its first node until the test lets it go. */
static void test_done_event_completes_with_the_step(void **state) {
  (void)state;
  cgr_test_require_backend();
  tables t;
  tables_make(&t, 4);
  side s;
  side_open(&s, CGR_REPLAY_DOUBLE_BUFFERED, &t);
  cgr_runtime *rt = s.rt;
  cgr_event *done = NULL;
  assert_cgr_ok(rt, cgr_event_create(rt, &done));
  assert_cgr_ok(rt, cgr_event_query(done)); /* never recorded: complete */
  model_inputs in;
  model_make_inputs(&in, ROWS, ROWS, 80);
  cgr_input entries[4];
  host_entries(&s.m, &in, entries);
  test_gate gate;
  test_gate_init(&gate);
  __atomic_store_n(&s.m.hold, &gate, __ATOMIC_RELEASE);
  cgr_ticket ticket;
  assert_cgr_ok(rt, cgr_replay_inputs(rt, ROWS, entries, 4, NULL, 0, done,
                                      &ticket));
  usleep(20000);
  assert_int_equal(cgr_event_query(done), CGR_E_NOT_READY);
  assert_int_equal(cgr_ticket_query(rt, &ticket), CGR_E_NOT_READY);
  test_gate_open(&gate);
  assert_cgr_ok(rt, cgr_event_synchronize(done));
  /* The step is done once its event is: no ticket wait needed. */
  assert_cgr_ok(rt, cgr_ticket_query(rt, &ticket));
  check_step(&s, &ticket, &in);
  test_gate_fini(&gate);
  cgr_event_destroy(done);
  side_close(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_inputs_match_the_batch_calls_in_naive_mode),
    cmocka_unit_test(test_inputs_match_the_batch_calls_in_fused_mode),
    cmocka_unit_test(test_inputs_match_the_batch_calls_in_double_buffered_mode),
    cmocka_unit_test(test_inputs_match_the_batch_calls_in_in_graph_mode),
    cmocka_unit_test(test_inputs_match_the_batch_calls_in_eager_mode),
    cmocka_unit_test(test_each_kind_reaches_the_step),
    HOST_TEST(test_step_waits_for_the_callers_events),
    cmocka_unit_test(test_done_event_completes_with_the_step),
};

CGR_TEST_MAIN(tests)
