/*
 * The batch fuzz target's runtime and model (batch_model.h): the runtime
 * and its step, whose outputs have a closed form,
 *
 *   out[r]          = ids[r] + pos[r] + cu_k[r + 1] + cu_q[r]   (cu_q = r)
 *   out_pages[r][p] = 2 * pages[r][p]
 *
 * the memory a batch points at, and the replay: what cgr_replay must
 * answer for a batch (from cgr.h), and, for every replay that succeeds,
 * the outputs and the live rows and padding of the buffer set it must
 * leave. batch.c decodes the input into the calls.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/batch_model.h"
#include "kernels/basic.h"
#include "runtime/runtime.h"

static const uint32_t bt_buckets[] = {1, 2, 5, 8};

/* In declaration order: a slot's index is its enum value. */
const bt_spec bt_specs[BT_SLOTS] = {
    {"positions", CGR_SLOT_ROWS, 4, 1, 7, 0, 0},
    {"page_table", CGR_SLOT_ROWS, 4, 3, 0xFFFFFFFFu, 0, 99},
    {"flags", CGR_SLOT_ROWS, 1, 2, 0x55, -5, 5},
    {"wide", CGR_SLOT_ROWS, 8, 1, UINT64_C(0x0102030405060708), 0, 0},
    {"cu_seqlens_k", CGR_SLOT_PREFIX, 4, 1, 0, 0, 1 << 20},
    {"input_ids", CGR_SLOT_ROWS, 4, 1, 0, 0, 100000},
    {"cu_seqlens_q", CGR_SLOT_CONSTANT, 4, 1, 0, 0, 0},
    {"out", CGR_SLOT_OUTPUT, 4, 1, 0, 0, 0},
    {"out_pages", CGR_SLOT_OUTPUT, 4, 3, 0, 0, 0},
};

static uint32_t bt_bucket_for(uint32_t batch) {
  for (size_t i = 0; i < sizeof bt_buckets / sizeof *bt_buckets; ++i)
    if (bt_buckets[i] >= batch)
      return bt_buckets[i];
  return batch; /* eager: buffers of the batch's own size */
}

/* ---- the runtime --------------------------------------------------------- */

static cgr_status bt_add(cgr_step *step, void *dst, const void *a,
                         const void *b, uint64_t count) {
  cgr__add_i32_args args = {dst, a, b, (int64_t)count};
  return cgr_step_launch(step, &cgr__kernel_add_i32, &args);
}

static cgr_status bt_step(cgr_step *step, void *user) {
  const bt_state *st = user;
  uint32_t rows = cgr_step_padded_batch(step);
  int32_t *ids = cgr_step_slot(step, st->slots[BT_IDS]);
  int32_t *pos = cgr_step_slot(step, st->slots[BT_POS]);
  int32_t *pages = cgr_step_slot(step, st->slots[BT_PAGES]);
  int32_t *cu_k = cgr_step_slot(step, st->slots[BT_CU_K]);
  int32_t *cu_q = cgr_step_slot(step, st->slots[BT_CU_Q]);
  int32_t *out = cgr_step_slot(step, st->slots[BT_OUT]);
  int32_t *out_pages = cgr_step_slot(step, st->slots[BT_OUT_PAGES]);
  cgr_status status = bt_add(step, out, ids, pos, rows);
  if (status == CGR_OK)
    status = bt_add(step, out, out, cu_k + 1, rows);
  if (status == CGR_OK)
    status = bt_add(step, out, out, cu_q, rows);
  if (status == CGR_OK)
    status = bt_add(step, out_pages, pages, pages, (uint64_t)rows * 3);
  return status;
}

bt_state *bt_state_create(void) {
  bt_state *st = calloc(1, sizeof *st);
  FUZZ_CHECK(st != NULL);
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_HOST;
  config.validate = 1;
  config.buckets = bt_buckets;
  config.bucket_count = sizeof bt_buckets / sizeof *bt_buckets;
  FUZZ_CHECK_STATUS(NULL, cgr_runtime_create(&config, &st->rt), CGR_OK);
  for (int i = 0; i < BT_SLOTS; ++i) {
    const bt_spec *spec = &bt_specs[i];
    cgr_slot_desc desc;
    cgr_slot_desc_init(&desc, spec->name, spec->kind, spec->elem_size,
                       spec->row_elems);
    desc.pad_value = spec->pad_value;
    desc.valid_min = spec->valid_min;
    desc.valid_max = spec->valid_max;
    if (spec->kind == CGR_SLOT_CONSTANT)
      desc.extra_elems = 1;
    FUZZ_CHECK_STATUS(st->rt, cgr_slot_declare(st->rt, &desc, &st->slots[i]),
                      CGR_OK);
    FUZZ_CHECK(st->slots[i] == i);
  }
  FUZZ_CHECK_STATUS(st->rt, cgr_slot_feed(st->rt, BT_OUT, BT_IDS), CGR_OK);
  FUZZ_CHECK_STATUS(st->rt, cgr_capture(st->rt, bt_step, st), CGR_OK);
  st->mode = CGR_REPLAY_DOUBLE_BUFFERED;
  return st;
}

void bt_state_destroy(bt_state *st) {
  cgr_runtime_destroy(st->rt);
  free(st);
}

/* ---- memory the batch points at ------------------------------------------ */

/* Exactly `bytes` of host memory (ASan sees any read past them). */
void *bt_host(bt_batch *b, size_t bytes) {
  FUZZ_CHECK(b->host_count < BT_MAX_ALLOCS);
  void *memory = malloc(bytes ? bytes : 1);
  FUZZ_CHECK(memory != NULL);
  b->host[b->host_count++] = memory;
  return memory;
}

/* Device memory of the runtime (host memory on the host backend). */
void *bt_device(bt_state *st, bt_batch *b, size_t bytes) {
  FUZZ_CHECK(b->device_count < BT_MAX_ALLOCS);
  void *memory = NULL;
  FUZZ_CHECK_STATUS(st->rt,
                    cgr__be_device_alloc(&st->rt->backend, bytes ? bytes : 1,
                                         &memory),
                    CGR_OK);
  b->device[b->device_count++] = memory;
  return memory;
}

void *bt_pinned(bt_state *st, bt_batch *b, size_t bytes) {
  FUZZ_CHECK(b->pinned_count < BT_MAX_ALLOCS);
  void *memory = NULL;
  FUZZ_CHECK_STATUS(st->rt,
                    cgr__be_pinned_alloc(&st->rt->backend, bytes ? bytes : 1,
                                         &memory),
                    CGR_OK);
  b->pinned[b->pinned_count++] = memory;
  return memory;
}

/* After the batch is consumed: nothing reads the memory any more. */
void bt_free_memory(bt_state *st, bt_batch *b) {
  FUZZ_CHECK_STATUS(st->rt, cgr_synchronize(st->rt), CGR_OK);
  for (size_t i = 0; i < b->host_count; ++i)
    free(b->host[i]);
  for (size_t i = 0; i < b->device_count; ++i)
    cgr__be_device_free(&st->rt->backend, b->device[i]);
  for (size_t i = 0; i < b->pinned_count; ++i)
    cgr__be_pinned_free(&st->rt->backend, b->pinned[i]);
  b->host_count = b->device_count = b->pinned_count = 0;
}

/* ---- what a call must answer --------------------------------------------- */

static int64_t bt_element(const unsigned char *bytes, uint32_t width) {
  switch (width) {
  case 1: {
    int8_t v;
    memcpy(&v, bytes, 1);
    return v;
  }
  case 2: {
    int16_t v;
    memcpy(&v, bytes, 2);
    return v;
  }
  case 4: {
    int32_t v;
    memcpy(&v, bytes, 4);
    return v;
  }
  default: {
    int64_t v;
    memcpy(&v, bytes, 8);
    return v;
  }
  }
}

/* Every element within the slot's range (or no range). */
int bt_in_range(int slot, const unsigned char *data, uint64_t bytes) {
  const bt_spec *spec = &bt_specs[slot];
  if (spec->valid_max <= spec->valid_min)
    return 1;
  for (uint64_t at = 0; at + spec->elem_size <= bytes; at += spec->elem_size) {
    int64_t value = bt_element(data + at, spec->elem_size);
    if (value < spec->valid_min || value > spec->valid_max)
      return 0;
  }
  return 1;
}

/* The status every input call starts with: the batch open, the slot an
 * input not given yet. CGR_OK when those hold. */
cgr_status bt_slot_verdict(const bt_batch *b, int slot) {
  if (!b->open)
    return CGR_E_INVALID_STATE;
  if (!bt_is_input(slot) || b->how[slot] != BT_NONE)
    return CGR_E_INVALID_ARGUMENT;
  return CGR_OK;
}

/* A call's status as predicted; a refusal says why. */
void bt_after(bt_state *st, const bt_batch *b, cgr_status got, cgr_status want,
              const char *call, int slot) {
  fuzz_trace("%s slot %d (batch %u%s) -> %s %s", call, slot, b->size,
             b->open ? "" : ", closed", cgr_status_name(got),
             got == CGR_OK ? "" : cgr_last_error(st->rt));
  FUZZ_CHECK_STATUS(st->rt, got, want);
  if (got != CGR_OK)
    FUZZ_CHECK(b->handle == NULL || cgr_last_error(st->rt)[0] != '\0');
}

/* ---- replay -------------------------------------------------------------- */

static uint32_t bt_u32(const unsigned char *bytes, uint64_t index) {
  uint32_t value;
  memcpy(&value, bytes + 4 * index, 4);
  return value;
}

/* The step's outputs for the batch's live rows (any step). */
static void bt_check_outputs(bt_state *st, const bt_batch *b,
                             const cgr_ticket *ticket, int32_t *out_rows) {
  void *out = NULL, *out_pages = NULL;
  FUZZ_CHECK_STATUS(st->rt, cgr_output(st->rt, ticket, BT_OUT, &out), CGR_OK);
  FUZZ_CHECK_STATUS(st->rt,
                    cgr_output(st->rt, ticket, BT_OUT_PAGES, &out_pages),
                    CGR_OK);
  void *not_output = NULL;
  FUZZ_CHECK_STATUS(st->rt, cgr_output(st->rt, ticket, BT_IDS, &not_output),
                    CGR_E_INVALID_ARGUMENT);
  FUZZ_CHECK(not_output == NULL);
  for (uint32_t row = 0; row < b->size; ++row) {
    uint32_t want = bt_u32(b->expect[BT_IDS], row) +
                    bt_u32(b->expect[BT_POS], row) +
                    bt_u32(b->expect[BT_CU_K], row + 1) + row;
    uint32_t got = bt_u32(out, row);
    FUZZ_CHECK(got == want);
    out_rows[row] = (int32_t)got;
    for (uint32_t p = 0; p < 3; ++p)
      FUZZ_CHECK(bt_u32(out_pages, row * 3 + p) ==
                 2 * bt_u32(b->expect[BT_PAGES], row * 3 + p));
  }
}

/* A graph step's buffer set: live rows as given, padded rows as the slot
 * pads them (ROWS: pad_value; PREFIX: the last live entry). */
static void bt_check_set(bt_state *st, const bt_batch *b, int set,
                         uint32_t padded) {
  for (int slot = 0; slot < BT_SLOTS; ++slot) {
    if (!bt_is_input(slot))
      continue;
    const bt_spec *spec = &bt_specs[slot];
    void *address = NULL;
    FUZZ_CHECK_STATUS(st->rt, cgr_slot_address(st->rt, slot, set, 0, &address),
                      CGR_OK);
    const unsigned char *bytes = address;
    uint64_t live = bt_input_bytes(slot, b->size);
    FUZZ_CHECK(memcmp(bytes, b->expect[slot], live) == 0);
    uint64_t end = bt_input_bytes(slot, padded);
    const void *pad = spec->kind == CGR_SLOT_PREFIX
                          ? (const void *)(bytes + live - spec->elem_size)
                          : (const void *)&spec->pad_value;
    for (uint64_t at = live; at < end; at += spec->elem_size)
      FUZZ_CHECK(memcmp(bytes + at, pad, spec->elem_size) == 0);
  }
}

/* What cgr_replay must answer, from cgr.h. An unchanged slot was checked
 * when it was given (cgr_batch_unchanged), so it needs nothing here. */
static cgr_status bt_replay_verdict(const bt_state *st, const bt_batch *b) {
  if (b->handle == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (!b->open)
    return CGR_E_INVALID_STATE;
  /* Pipelined steps run through cgr_replay_stage / _ahead only. */
  if (st->mode == CGR_REPLAY_PIPELINED)
    return CGR_E_INVALID_STATE;
  for (int slot = 0; slot < BT_SLOTS; ++slot)
    if (bt_is_input(slot) && b->how[slot] == BT_NONE)
      return CGR_E_INVALID_ARGUMENT;
  int eager = b->size > BT_LARGEST || st->mode == CGR_REPLAY_EAGER;
  for (int slot = 0; slot < BT_SLOTS; ++slot) {
    if (!eager && st->mode == CGR_REPLAY_IN_GRAPH) {
      /* The in-graph mode reads host staging only. */
      if (b->how[slot] == BT_GATHER || b->how[slot] == BT_FEEDBACK ||
          (b->how[slot] == BT_INPUT && b->source[slot] == CGR_SOURCE_DEVICE))
        return CGR_E_UNSUPPORTED;
    } else if (b->how[slot] == BT_GATHER && b->misaligned_index[slot]) {
      return CGR_E_INVALID_ARGUMENT; /* the copy plan refuses it */
    }
  }
  return CGR_OK;
}

/* A replay's step counts in its mode's stats, eager or not. */
static void bt_check_stats(bt_state *st, const cgr_replay_stats *before,
                           int counted, int eager) {
  cgr_replay_stats after;
  FUZZ_CHECK_STATUS(st->rt, cgr_replay_stats_get(st->rt, st->mode, &after),
                    CGR_OK);
  FUZZ_CHECK(after.steps == before->steps + (counted ? 1 : 0));
  FUZZ_CHECK(after.eager_steps ==
             before->eager_steps + (counted && eager ? 1 : 0));
}

void bt_replay(bt_state *st, bt_batch *b) {
  cgr_status want = bt_replay_verdict(st, b);
  /* Past the batch's own checks (open, every slot given), a replay ends
   * the previous eager step's outputs, whatever happens next. */
  int checked =
      b->handle != NULL && b->open && st->mode != CGR_REPLAY_PIPELINED;
  for (int slot = 0; slot < BT_SLOTS; ++slot)
    checked &= !bt_is_input(slot) || b->how[slot] != BT_NONE;
  cgr_replay_stats stats;
  FUZZ_CHECK_STATUS(st->rt, cgr_replay_stats_get(st->rt, st->mode, &stats),
                    CGR_OK);
  cgr_ticket ticket;
  cgr_status got = cgr_replay(st->rt, b->handle, &ticket);
  b->open = 0; /* consumed, whatever happened */
  if (checked)
    st->eager_live = 0;
  bt_after(st, b, got, want,
           st->mode == CGR_REPLAY_NAIVE       ? "replay naive"
           : st->mode == CGR_REPLAY_FUSED     ? "replay fused"
           : st->mode == CGR_REPLAY_IN_GRAPH  ? "replay in-graph"
           : st->mode == CGR_REPLAY_EAGER     ? "replay eager"
           : st->mode == CGR_REPLAY_PIPELINED ? "replay pipelined (refused)"
                                              : "replay double-buffered",
           -1);
  int eager = b->size > BT_LARGEST || st->mode == CGR_REPLAY_EAGER;
  bt_check_stats(st, &stats, got == CGR_OK, eager);
  if (got != CGR_OK) {
    FUZZ_CHECK(ticket.step == 0 && ticket.set == 0 && ticket.batch_size == 0);
    bt_free_memory(st, b);
    return;
  }
  uint32_t padded = eager ? b->size : bt_bucket_for(b->size);
  FUZZ_CHECK(ticket.step == st->next_step);
  FUZZ_CHECK(ticket.batch_size == b->size);
  FUZZ_CHECK(ticket.padded_batch == padded);
  FUZZ_CHECK(ticket.set == (eager ? -1 : (int)(st->next_step % 2)));
  st->next_step++;
  st->tickets[st->ticket_count++ % BT_TICKETS] = ticket;
  if (eager) {
    st->eager_live = 1;
    st->eager_step = ticket.step;
  }
  fuzz_trace("  ticket: step %llu, set %d, bucket %u",
             (unsigned long long)ticket.step, ticket.set, ticket.padded_batch);
  FUZZ_CHECK_STATUS(st->rt, cgr_ticket_wait(st->rt, &ticket), CGR_OK);
  FUZZ_CHECK_STATUS(st->rt, cgr_ticket_query(st->rt, &ticket), CGR_OK);

  /* An unchanged slot holds what its set was last loaded with. */
  for (int slot = 0; slot < BT_SLOTS; ++slot) {
    if (b->how[slot] != BT_UNCHANGED)
      continue;
    FUZZ_CHECK(!eager);
    const bt_loaded *loaded = &st->loaded[ticket.set][slot];
    FUZZ_CHECK(loaded->valid && loaded->size == b->size);
    memcpy(b->expect[slot], loaded->bytes, bt_input_bytes(slot, b->size));
  }
  int32_t out_rows[BT_MAX_BATCH];
  bt_check_outputs(st, b, &ticket, out_rows);
  if (eager) {
    st->fed_valid = 0; /* nothing continues an eager step */
  } else {
    bt_check_set(st, b, ticket.set, padded);
    for (int slot = 0; slot < BT_SLOTS; ++slot) {
      if (!bt_is_input(slot))
        continue;
      bt_loaded *loaded = &st->loaded[ticket.set][slot];
      loaded->valid = 1;
      loaded->size = b->size;
      memcpy(loaded->bytes, b->expect[slot], bt_input_bytes(slot, b->size));
    }
    /* The graph fed its output into the other set's input_ids. */
    st->loaded[1 - ticket.set][BT_IDS].valid = 0;
    st->fed_valid = 1;
    st->fed_batch = b->size;
    memcpy(st->fed_out, out_rows, b->size * sizeof *out_rows);
  }
  bt_free_memory(st, b);
}
