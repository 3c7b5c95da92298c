/*
 * Fuzz target: batches (replay/batch.c) and their replay, on one captured
 * runtime of the host backend with validation on.
 *
 * The runtime is made once (buckets 1, 2, 5, 8; slots of every kind and
 * element size; ids fed by the output), and a step computes
 *
 *   out[r]          = ids[r] + pos[r] + cu_k[r + 1] + cu_q[r]   (cu_q = r)
 *   out_pages[r][p] = 2 * pages[r][p]
 *
 * Each input opens batches of any size (0, up to the largest bucket, past
 * it: eager steps, absurd), gives slots in every way (host, pinned or
 * device data, right and wrong byte counts, values in and out of the
 * slots' ranges, unchanged, gathers, feedback with new, kept, moved and
 * bad rows), switches replay modes, replays or discards. A model of the
 * runtime predicts each call's status from cgr.h; every replay that
 * succeeds is waited for and checked: its outputs, and on a graph step
 * the live rows and padding the buffer set holds. Then the input ends
 * with correct replays (which must succeed) that also bring the runtime
 * back to one state, so an input's outcome does not depend on the inputs
 * before it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_targets.h"
#include "kernels/basic.h"
#include "runtime/runtime.h"

enum {
  BT_LARGEST = 8,
  /* Past the largest bucket: eager steps, up to 12 times its size, so an
   * eager step whose rows overran per-set buffers sized for the largest
   * bucket would run past their allocation (rounded up to 256 bytes),
   * where ASan sees it. */
  BT_MAX_BATCH = 100,
  BT_MAX_ROW = 16, /* bytes of the widest row */
  BT_MAX_BYTES = (BT_MAX_BATCH + 1) * BT_MAX_ROW,
  BT_SRC_ROWS = 64, /* rows of a gather source */
  BT_MAX_OPS = 64,
  BT_MAX_ALLOCS = 4 * BT_MAX_OPS, /* three per call at most */
  BT_TRAILER_BATCH = 5,
  BT_TICKETS = 8
};

static const uint32_t bt_buckets[] = {1, 2, 5, 8};

/* input_ids, the fed slot, is the last input: a write past its region of
 * per-set staging runs off the allocation, where ASan sees it. */
enum {
  BT_POS,
  BT_PAGES,
  BT_FLAGS,
  BT_WIDE,
  BT_CU_K,
  BT_IDS,
  BT_CU_Q,
  BT_OUT,
  BT_OUT_PAGES,
  BT_SLOTS
};

typedef struct bt_spec {
  const char *name;
  cgr_slot_kind kind;
  uint32_t elem_size;
  uint64_t row_elems;
  uint64_t pad_value;
  int64_t valid_min, valid_max; /* checked when max > min */
} bt_spec;

/* In declaration order: a slot's index is its enum value. */
static const bt_spec bt_specs[BT_SLOTS] = {
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

static int bt_is_input(int slot) {
  return slot >= 0 && slot < BT_SLOTS &&
         (bt_specs[slot].kind == CGR_SLOT_ROWS ||
          bt_specs[slot].kind == CGR_SLOT_PREFIX);
}

static uint64_t bt_row_bytes(int slot) {
  return bt_specs[slot].elem_size * bt_specs[slot].row_elems;
}

/* The bytes a batch of `rows` gives a ROWS or PREFIX slot. */
static uint64_t bt_input_bytes(int slot, uint64_t rows) {
  if (bt_specs[slot].kind == CGR_SLOT_PREFIX)
    return (rows + 1) * bt_specs[slot].elem_size;
  return rows * bt_row_bytes(slot);
}

static uint32_t bt_bucket_for(uint32_t batch) {
  for (size_t i = 0; i < sizeof bt_buckets / sizeof *bt_buckets; ++i)
    if (bt_buckets[i] >= batch)
      return bt_buckets[i];
  return batch; /* eager: buffers of the batch's own size */
}

/* ---- the runtime and the model ------------------------------------------ */

typedef enum bt_how {
  BT_NONE = 0,
  BT_INPUT,
  BT_UNCHANGED,
  BT_GATHER,
  BT_FEEDBACK
} bt_how;

/* What a buffer set holds, as far as the model knows. */
typedef struct bt_loaded {
  int valid;
  uint32_t size;
  unsigned char bytes[BT_MAX_BYTES];
} bt_loaded;

typedef struct bt_state {
  cgr_runtime *rt;
  cgr_slot slots[BT_SLOTS];
  cgr_replay_mode mode;
  uint64_t next_step;
  bt_loaded loaded[2][BT_SLOTS];
  /* The previous step was a graph step: its out rows, which feedback
   * continues. */
  int fed_valid;
  uint32_t fed_batch;
  int32_t fed_out[BT_MAX_BATCH];
  /* The last eager step's outputs live until the next replay gets past
   * its batch's checks. */
  int eager_live;
  uint64_t eager_step;
  /* This input's tickets, the last BT_TICKETS of them. */
  cgr_ticket tickets[BT_TICKETS];
  size_t ticket_count;
} bt_state;

/* One open (or closed) batch, with what each slot was given. */
struct bt_batch {
  cgr_batch *handle; /* kept after it closes, for misuse */
  int open;
  uint32_t size;
  bt_how how[BT_SLOTS];
  cgr_source source[BT_SLOTS];
  int misaligned_index[BT_SLOTS];
  unsigned char expect[BT_SLOTS][BT_MAX_BYTES]; /* live bytes, when given */
  void *host[BT_MAX_ALLOCS];
  size_t host_count;
  void *device[BT_MAX_ALLOCS];
  size_t device_count;
};

static bt_state *bt_runtime;

typedef struct bt_batch bt_batch;
static void bt_trailer(bt_state *st, bt_batch *b);

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

static bt_state *bt_get(void) {
  if (bt_runtime != NULL)
    return bt_runtime;
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
  bt_runtime = st;
  /* The state every input starts from, the first one too. */
  static bt_batch first;
  bt_trailer(st, &first);
  return st;
}

void fuzz_batch_release(void) {
  if (bt_runtime == NULL)
    return;
  cgr_runtime_destroy(bt_runtime->rt);
  free(bt_runtime);
  bt_runtime = NULL;
}

/* ---- memory the batch points at ------------------------------------------ */

/* Exactly `bytes` of host memory (ASan sees any read past them). */
static void *bt_host(bt_batch *b, size_t bytes) {
  FUZZ_CHECK(b->host_count < BT_MAX_ALLOCS);
  void *memory = malloc(bytes ? bytes : 1);
  FUZZ_CHECK(memory != NULL);
  b->host[b->host_count++] = memory;
  return memory;
}

/* Device memory of the runtime (host memory on the host backend). */
static void *bt_device(bt_state *st, bt_batch *b, size_t bytes) {
  FUZZ_CHECK(b->device_count < BT_MAX_ALLOCS);
  void *memory = NULL;
  FUZZ_CHECK_STATUS(st->rt,
                    cgr__be_device_alloc(&st->rt->backend, bytes ? bytes : 1,
                                         &memory),
                    CGR_OK);
  b->device[b->device_count++] = memory;
  return memory;
}

/* After the batch is consumed: nothing reads the memory any more. */
static void bt_free_memory(bt_state *st, bt_batch *b) {
  FUZZ_CHECK_STATUS(st->rt, cgr_synchronize(st->rt), CGR_OK);
  for (size_t i = 0; i < b->host_count; ++i)
    free(b->host[i]);
  for (size_t i = 0; i < b->device_count; ++i)
    cgr__be_device_free(&st->rt->backend, b->device[i]);
  b->host_count = b->device_count = 0;
}

/* ---- values -------------------------------------------------------------- */

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
static int bt_in_range(int slot, const unsigned char *data, uint64_t bytes) {
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

/* Elements for a slot: mostly inside its range, sometimes anything. */
static void bt_values(int slot, fuzz_reader *r, unsigned char *data,
                      uint64_t bytes, int wild) {
  const bt_spec *spec = &bt_specs[slot];
  for (uint64_t at = 0; at < bytes; at += spec->elem_size) {
    uint64_t value = fuzz_u16(r);
    if (wild) {
      value = fuzz_u64(r);
    } else if (spec->valid_max > spec->valid_min) {
      uint64_t span = (uint64_t)(spec->valid_max - spec->valid_min) + 1;
      value = (uint64_t)spec->valid_min + value % span;
    }
    /* Little-endian; a wrong byte count may cut the last element. */
    uint64_t left = bytes - at;
    memcpy(data + at, &value, left < spec->elem_size ? left : spec->elem_size);
  }
}

/* ---- giving slots -------------------------------------------------------- */

/* The status every input call starts with: the batch open, the slot an
 * input not given yet. CGR_OK when those hold. */
static cgr_status bt_slot_verdict(const bt_batch *b, int slot) {
  if (!b->open)
    return CGR_E_INVALID_STATE;
  if (!bt_is_input(slot) || b->how[slot] != BT_NONE)
    return CGR_E_INVALID_ARGUMENT;
  return CGR_OK;
}

/* A slot index: mostly an input, sometimes any slot or none. */
static int bt_pick_slot(fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  static const int inputs[6] = {BT_IDS,   BT_POS,  BT_PAGES,
                                BT_FLAGS, BT_WIDE, BT_CU_K};
  if (how < 224)
    return inputs[how % 6];
  return (int)(how % (BT_SLOTS + 2)) - 1;
}

static void bt_after(bt_state *st, const bt_batch *b, cgr_status got,
                     cgr_status want, const char *call, int slot) {
  fuzz_trace("%s slot %d (batch %u%s) -> %s %s", call, slot, b->size,
             b->open ? "" : ", closed", cgr_status_name(got),
             got == CGR_OK ? "" : cgr_last_error(st->rt));
  FUZZ_CHECK_STATUS(st->rt, got, want);
  if (got != CGR_OK)
    FUZZ_CHECK(b->handle == NULL || cgr_last_error(st->rt)[0] != '\0');
}

static void bt_input(bt_state *st, bt_batch *b, fuzz_reader *r, int slot) {
  uint8_t how = fuzz_u8(r);
  cgr_source source = how % 8 < 5   ? CGR_SOURCE_HOST
                      : how % 8 < 6 ? CGR_SOURCE_PINNED
                      : how % 8 < 7 ? CGR_SOURCE_DEVICE
                                    : (cgr_source)(how & 8 ? 3 : -1);
  int is_input = bt_is_input(slot);
  uint64_t exact = is_input ? bt_input_bytes(slot, b->size) : 8;
  uint64_t bytes = exact;
  uint8_t shape = fuzz_u8(r);
  if (shape >= 200) {
    uint64_t elem = is_input ? bt_specs[slot].elem_size : 4;
    uint64_t wrong[4] = {0, exact + elem, exact - elem, exact + 1};
    bytes = wrong[shape % 4];
  }
  /* A batch too large to give is given a wrong, small count. */
  if (bytes > BT_MAX_BYTES)
    bytes = 3;
  int wild = (how & 0x30) == 0x30;
  unsigned char *data = NULL;
  int not_device = 0;
  if ((how & 0xC0) != 0xC0 || source != CGR_SOURCE_DEVICE) {
    if (source == CGR_SOURCE_DEVICE && (how & 0xC0) != 0x80)
      data = bt_device(st, b, bytes);
    else
      data = bt_host(b, bytes);
    not_device = source == CGR_SOURCE_DEVICE && (how & 0xC0) == 0x80;
    if (is_input)
      bt_values(slot, r, data, bytes, wild);
  }
  if ((shape & 0x3F) == 0x3F)
    data = NULL;

  cgr_status want = bt_slot_verdict(b, slot);
  if (want == CGR_OK) {
    int known = source == CGR_SOURCE_HOST || source == CGR_SOURCE_PINNED ||
                source == CGR_SOURCE_DEVICE;
    if (!known || data == NULL || bytes != exact || not_device)
      want = CGR_E_INVALID_ARGUMENT;
    else if (source != CGR_SOURCE_DEVICE && !bt_in_range(slot, data, bytes))
      want = CGR_E_INVALID_ARGUMENT;
  }
  cgr_status got = cgr_batch_input(b->handle, slot, source, data, bytes);
  if (b->handle == NULL)
    want = CGR_E_INVALID_ARGUMENT;
  fuzz_trace("  (source %d, %llu bytes of %llu)", (int)source,
             (unsigned long long)bytes, (unsigned long long)exact);
  bt_after(st, b, got, want, "input", slot);
  if (got == CGR_OK) {
    b->how[slot] = BT_INPUT;
    b->source[slot] = source;
    memcpy(b->expect[slot], data, bytes);
  }
}

static void bt_unchanged(bt_state *st, bt_batch *b, int slot) {
  cgr_status want =
      b->handle ? bt_slot_verdict(b, slot) : CGR_E_INVALID_ARGUMENT;
  cgr_status got = cgr_batch_unchanged(b->handle, slot);
  bt_after(st, b, got, want, "unchanged", slot);
  if (got == CGR_OK)
    b->how[slot] = BT_UNCHANGED;
}

static void bt_gather(bt_state *st, bt_batch *b, fuzz_reader *r, int slot) {
  uint8_t how = fuzz_u8(r);
  uint64_t row = bt_is_input(slot) ? bt_row_bytes(slot) : 4;
  /* An open batch too large for the model is never gathered into: the
   * index array must hold batch_size entries. */
  if (b->open && b->size > BT_MAX_BATCH)
    return;
  int rows_ok = b->size <= BT_MAX_BATCH;
  /* The source: device rows, host memory (not device memory), or NULL. */
  unsigned char *src = NULL;
  int src_device = (how & 3) <= 1;
  if ((how & 3) == 0 || (how & 3) == 1)
    src = bt_device(st, b, BT_SRC_ROWS * row);
  else if ((how & 3) == 2)
    src = bt_host(b, BT_SRC_ROWS * row);
  if (src != NULL)
    for (uint64_t i = 0; i < BT_SRC_ROWS * row; ++i)
      src[i] = (unsigned char)(fuzz_u8(r) ^ (i * 13));
  /* The indices: device memory, host memory, NULL, or misaligned. */
  unsigned index_how = (how >> 2) & 7;
  unsigned char *index = NULL;
  int index_device = index_how != 5;
  int misaligned = index_how == 4;
  uint64_t count = rows_ok ? b->size : 1;
  if (index_how != 6) {
    index = index_how == 5 ? bt_host(b, count * 4 + 2)
                           : bt_device(st, b, count * 4 + 2);
    if (misaligned)
      index += 2;
    for (uint64_t j = 0; j < count; ++j) {
      int32_t value = (int32_t)(fuzz_u8(r) % BT_SRC_ROWS);
      memcpy(index + j * 4, &value, 4);
    }
  }
  cgr_status want =
      b->handle ? bt_slot_verdict(b, slot) : CGR_E_INVALID_ARGUMENT;
  if (want == CGR_OK && (bt_specs[slot].kind != CGR_SLOT_ROWS || src == NULL ||
                         index == NULL || !src_device || !index_device))
    want = CGR_E_INVALID_ARGUMENT;
  cgr_status got =
      cgr_batch_gather(b->handle, slot, src, (const int32_t *)index);
  bt_after(st, b, got, want, misaligned ? "gather (misaligned)" : "gather",
           slot);
  if (got != CGR_OK)
    return;
  b->how[slot] = BT_GATHER;
  b->misaligned_index[slot] = misaligned;
  for (uint64_t j = 0; j < count && rows_ok; ++j) {
    int32_t value;
    memcpy(&value, index + j * 4, 4);
    memcpy(b->expect[slot] + j * row, src + (uint64_t)value * row, row);
  }
}

static void bt_feedback(bt_state *st, bt_batch *b, fuzz_reader *r, int slot) {
  uint8_t how = fuzz_u8(r);
  /* prev_rows must hold batch_size entries: not for a batch too large for
   * the model. */
  if (b->open && b->size > BT_MAX_BATCH)
    return;
  uint32_t count = b->size <= BT_MAX_BATCH ? b->size : 0;
  int32_t *prev = NULL;
  uint32_t fresh = 0;
  int rows_valid = 1;
  if ((how & 7) != 7) {
    prev = bt_host(b, (size_t)count * 4);
    for (uint32_t j = 0; j < count; ++j) {
      uint8_t pick = fuzz_u8(r);
      int32_t value;
      if (pick < 80)
        value = -1;
      else if (pick < 160)
        value = (int32_t)j;
      else if (pick < 250)
        value = st->fed_batch ? (int32_t)(pick % st->fed_batch) : 0;
      else
        value = pick == 250   ? (int32_t)st->fed_batch
                : pick == 251 ? -2
                : pick == 252 ? INT32_MAX
                              : (int32_t)(j + pick % 3);
      prev[j] = value;
      if (value == -1)
        fresh++;
      else if (value < 0 || (uint32_t)value >= st->fed_batch)
        rows_valid = 0;
    }
  }
  size_t new_bytes = (size_t)fresh * 4;
  if ((how & 0x18) == 0x18)
    new_bytes += (how & 0x20) ? 4 : (size_t)-4;
  unsigned char *new_rows = NULL;
  if ((how & 0xC0) != 0xC0 && new_bytes <= BT_MAX_BYTES) {
    new_rows = bt_host(b, new_bytes);
    for (size_t i = 0; i < new_bytes; ++i)
      new_rows[i] = fuzz_u8(r);
  }

  cgr_status want =
      b->handle ? bt_slot_verdict(b, slot) : CGR_E_INVALID_ARGUMENT;
  if (want == CGR_OK) {
    if (slot != BT_IDS)
      want = CGR_E_INVALID_ARGUMENT; /* not a fed slot */
    else if (st->mode == CGR_REPLAY_IN_GRAPH)
      want = CGR_E_UNSUPPORTED;
    else if (!st->fed_valid)
      want = CGR_E_INVALID_STATE;
    else if (prev == NULL || !rows_valid)
      want = CGR_E_INVALID_ARGUMENT;
    else if (new_bytes != (size_t)fresh * 4 || (fresh > 0 && !new_rows))
      want = CGR_E_INVALID_ARGUMENT;
  }
  cgr_status got =
      cgr_batch_feedback(b->handle, slot, prev, new_rows, new_bytes);
  fuzz_trace("  (%u new rows, %zu bytes of them)", fresh, new_bytes);
  bt_after(st, b, got, want, "feedback", slot);
  if (got != CGR_OK)
    return;
  b->how[slot] = BT_FEEDBACK;
  uint32_t used = 0;
  for (uint32_t j = 0; j < count; ++j) {
    const void *from = prev[j] == -1 ? (const void *)(new_rows + 4 * used++)
                                     : (const void *)&st->fed_out[prev[j]];
    memcpy(b->expect[slot] + 4 * j, from, 4);
  }
}

/* Gives every slot not given yet correct host data: lets short inputs
 * reach replays that succeed. */
static void bt_complete(bt_state *st, bt_batch *b, fuzz_reader *r) {
  if (!b->open || b->size > BT_MAX_BATCH)
    return;
  for (int slot = 0; slot < BT_SLOTS; ++slot) {
    if (!bt_is_input(slot) || b->how[slot] != BT_NONE)
      continue;
    uint64_t bytes = bt_input_bytes(slot, b->size);
    unsigned char *data = bt_host(b, bytes);
    bt_values(slot, r, data, bytes, 0);
    FUZZ_CHECK_STATUS(st->rt,
                      cgr_batch_input(b->handle, slot, CGR_SOURCE_HOST, data,
                                      bytes),
                      CGR_OK);
    b->how[slot] = BT_INPUT;
    b->source[slot] = CGR_SOURCE_HOST;
    memcpy(b->expect[slot], data, bytes);
  }
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

/* What cgr_replay may answer, from cgr.h: `want`, or `or_else` where the
 * answer depends on state the model does not follow exactly (whether a
 * set, or its in-graph staging, still holds an unchanged slot's data).
 * A replay that succeeds is checked against the data instead. */
typedef struct bt_verdict {
  cgr_status want;
  cgr_status or_else;
} bt_verdict;

static bt_verdict bt_exactly(cgr_status status) {
  return (bt_verdict){status, status};
}

static bt_verdict bt_replay_verdict(const bt_state *st, const bt_batch *b) {
  if (b->handle == NULL)
    return bt_exactly(CGR_E_INVALID_ARGUMENT);
  if (!b->open)
    return bt_exactly(CGR_E_INVALID_STATE);
  for (int slot = 0; slot < BT_SLOTS; ++slot)
    if (bt_is_input(slot) && b->how[slot] == BT_NONE)
      return bt_exactly(CGR_E_INVALID_ARGUMENT);
  int eager = b->size > BT_LARGEST || st->mode == CGR_REPLAY_EAGER;
  int unchanged = 0;
  if (!eager && st->mode == CGR_REPLAY_IN_GRAPH) {
    /* Slot by slot: the first that needs another mode, or is unchanged
     * without a staged image, decides. */
    for (int slot = 0; slot < BT_SLOTS; ++slot) {
      if (!bt_is_input(slot))
        continue;
      if (b->how[slot] == BT_GATHER || b->how[slot] == BT_FEEDBACK ||
          (b->how[slot] == BT_INPUT && b->source[slot] == CGR_SOURCE_DEVICE))
        return unchanged
                   ? (bt_verdict){CGR_E_UNSUPPORTED, CGR_E_INVALID_ARGUMENT}
                   : bt_exactly(CGR_E_UNSUPPORTED);
      unchanged |= b->how[slot] == BT_UNCHANGED;
    }
  } else {
    for (int slot = 0; slot < BT_SLOTS; ++slot) {
      /* The copy plan refuses a misaligned index array. */
      if (b->how[slot] == BT_GATHER && b->misaligned_index[slot])
        return bt_exactly(CGR_E_INVALID_ARGUMENT);
      if (b->how[slot] == BT_UNCHANGED && eager)
        return bt_exactly(CGR_E_INVALID_ARGUMENT);
      unchanged |= b->how[slot] == BT_UNCHANGED;
    }
  }
  return unchanged ? (bt_verdict){CGR_OK, CGR_E_INVALID_ARGUMENT}
                   : bt_exactly(CGR_OK);
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

static void bt_replay(bt_state *st, bt_batch *b) {
  bt_verdict verdict = bt_replay_verdict(st, b);
  /* Past the batch's own checks (open, every slot given), a replay ends
   * the previous eager step's outputs, whatever happens next. */
  int checked = b->handle != NULL && b->open;
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
  bt_after(st, b, got, got == verdict.or_else ? got : verdict.want,
           st->mode == CGR_REPLAY_NAIVE      ? "replay naive"
           : st->mode == CGR_REPLAY_FUSED    ? "replay fused"
           : st->mode == CGR_REPLAY_IN_GRAPH ? "replay in-graph"
           : st->mode == CGR_REPLAY_EAGER    ? "replay eager"
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

/* An earlier ticket of this input, or a forged one: waits and queries
 * answer for any ticket the runtime issued; an output only until the
 * ticket expires (its set reused by the replay after next; an eager
 * step's at the next replay). */
static void bt_old_ticket(bt_state *st, fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  cgr_ticket ticket;
  void *out = NULL;
  if (st->ticket_count == 0 || how % 4 == 3) {
    memset(&ticket, 0, sizeof ticket);
    ticket.step = st->next_step + how / 4 % 3;
    ticket.set = how & 0x40 ? 2 : 0;
    if (how & 0x80) {
      ticket.step = 0;
      ticket.set = -2;
    }
    fuzz_trace("forged ticket: step %llu, set %d",
               (unsigned long long)ticket.step, ticket.set);
    FUZZ_CHECK_STATUS(st->rt, cgr_output(st->rt, &ticket, BT_OUT, &out),
                      CGR_E_INVALID_ARGUMENT);
    FUZZ_CHECK(out == NULL);
    FUZZ_CHECK_STATUS(st->rt, cgr_ticket_wait(st->rt, &ticket),
                      CGR_E_INVALID_ARGUMENT);
    FUZZ_CHECK_STATUS(st->rt, cgr_ticket_query(st->rt, &ticket),
                      CGR_E_INVALID_ARGUMENT);
    return;
  }
  size_t kept = st->ticket_count < BT_TICKETS ? st->ticket_count : BT_TICKETS;
  ticket = st->tickets[how / 4 % kept];
  int expired = ticket.set < 0
                    ? !st->eager_live || ticket.step != st->eager_step
                    : ticket.step + 2 <= st->next_step - 1;
  cgr_status got = cgr_output(st->rt, &ticket, BT_OUT, &out);
  fuzz_trace("old ticket: step %llu, set %d -> %s",
             (unsigned long long)ticket.step, ticket.set, cgr_status_name(got));
  FUZZ_CHECK_STATUS(st->rt, got, expired ? CGR_E_INVALID_STATE : CGR_OK);
  if (!expired && ticket.set >= 0) {
    void *address = NULL;
    FUZZ_CHECK_STATUS(st->rt,
                      cgr_slot_address(st->rt, BT_OUT, ticket.set, 0, &address),
                      CGR_OK);
    FUZZ_CHECK(out == address);
  }
  FUZZ_CHECK(expired ? out == NULL : out != NULL);
  FUZZ_CHECK_STATUS(st->rt, cgr_ticket_wait(st->rt, &ticket), CGR_OK);
  FUZZ_CHECK_STATUS(st->rt, cgr_ticket_query(st->rt, &ticket), CGR_OK);
}

/* ---- the input ----------------------------------------------------------- */

static void bt_begin(bt_state *st, bt_batch *b, fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  uint32_t size;
  if (how < 150)
    size = 1 + how % BT_LARGEST;
  else if (how < 230)
    size = BT_LARGEST + 1 + how % (BT_MAX_BATCH - BT_LARGEST);
  else if (how < 245)
    size = 0;
  else
    size = 60000 + how; /* eager: too large to give, cheap to allocate */
  cgr_batch *handle = (cgr_batch *)(void *)b;
  cgr_status want = size == 0 ? CGR_E_INVALID_ARGUMENT
                    : b->open ? CGR_E_INVALID_STATE
                              : CGR_OK;
  cgr_status got = cgr_batch_begin(st->rt, size, &handle);
  fuzz_trace("begin %u -> %s", size, cgr_status_name(got));
  FUZZ_CHECK_STATUS(st->rt, got, want);
  if (got != CGR_OK) {
    FUZZ_CHECK(handle == NULL);
    return;
  }
  FUZZ_CHECK(handle != NULL);
  b->handle = handle;
  b->open = 1;
  b->size = size;
  memset(b->how, 0, sizeof b->how);
  memset(b->misaligned_index, 0, sizeof b->misaligned_index);
}

static void bt_discard(bt_state *st, bt_batch *b) {
  fuzz_trace("discard%s", b->open ? "" : " (not open)");
  cgr_batch_discard(b->handle);
  b->open = 0;
  bt_free_memory(st, b);
}

static void bt_set_mode(bt_state *st, bt_batch *b, fuzz_reader *r) {
  cgr_replay_mode mode = (cgr_replay_mode)(fuzz_u8(r) % 6);
  cgr_status want = (unsigned)mode > CGR_REPLAY_EAGER ? CGR_E_INVALID_ARGUMENT
                    : b->open                         ? CGR_E_INVALID_STATE
                                                      : CGR_OK;
  cgr_status got = cgr_set_replay_mode(st->rt, mode);
  fuzz_trace("mode %d -> %s", (int)mode, cgr_status_name(got));
  FUZZ_CHECK_STATUS(st->rt, got, want);
  if (want == CGR_OK)
    st->mode = mode;
}

/* A batch of fixed size and data from the host, which must replay; run
 * until both sets hold it and the next step is even: every input starts
 * from the same state. */
static void bt_trailer(bt_state *st, bt_batch *b) {
  FUZZ_CHECK(!b->open);
  fuzz_trace("-- trailer: correct batches until both sets hold one");
  FUZZ_CHECK_STATUS(st->rt,
                    cgr_set_replay_mode(st->rt, CGR_REPLAY_DOUBLE_BUFFERED),
                    CGR_OK);
  st->mode = CGR_REPLAY_DOUBLE_BUFFERED;
  static const uint8_t fixed[1] = {0};
  for (int run = 0; run < 2 || st->next_step % 2 != 0; ++run) {
    fuzz_reader none = fuzz_reader_make(fixed, 0);
    FUZZ_CHECK_STATUS(st->rt,
                      cgr_batch_begin(st->rt, BT_TRAILER_BATCH, &b->handle),
                      CGR_OK);
    b->open = 1;
    b->size = BT_TRAILER_BATCH;
    memset(b->how, 0, sizeof b->how);
    memset(b->misaligned_index, 0, sizeof b->misaligned_index);
    bt_complete(st, b, &none);
    uint64_t before = st->next_step;
    bt_replay(st, b);
    FUZZ_CHECK(st->next_step == before + 1);
  }
}

int fuzz_batch_one(const uint8_t *data, size_t size) {
  bt_state *st = bt_get();
  fuzz_reader r = fuzz_reader_make(data, size);
  static bt_batch batch;
  bt_batch *b = &batch;
  memset(b, 0, offsetof(bt_batch, expect));
  b->host_count = b->device_count = 0;
  st->ticket_count = 0;
  bt_set_mode(st, b, &r);
  for (int op = 0; op < BT_MAX_OPS && fuzz_more(&r); ++op) {
    uint8_t what = fuzz_u8(&r);
    switch (what % 16) {
    case 0:
    case 1:
      bt_begin(st, b, &r);
      break;
    case 2:
    case 3:
    case 4:
      bt_input(st, b, &r, bt_pick_slot(&r));
      break;
    case 5:
      bt_unchanged(st, b, bt_pick_slot(&r));
      break;
    case 6:
      bt_gather(st, b, &r, bt_pick_slot(&r));
      break;
    case 7:
      bt_feedback(st, b, &r, what & 0x80 ? bt_pick_slot(&r) : BT_IDS);
      break;
    case 8:
    case 9:
    case 10:
      bt_replay(st, b);
      break;
    case 11:
      bt_discard(st, b);
      break;
    case 12:
      bt_set_mode(st, b, &r);
      break;
    case 14:
      bt_old_ticket(st, &r);
      break;
    default:
      bt_complete(st, b, &r);
      break;
    }
  }
  bt_discard(st, b);
  bt_trailer(st, b);
  return 0;
}

#ifdef CGR_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_batch_one(data, size);
}
#endif
