/*
 * Fuzz target: batches (replay/batch.c) and their replay, on one captured
 * runtime of the host backend with validation on.
 *
 * The runtime is made once (buckets 1, 2, 5, 8; slots of every kind and
 * element size; ids fed by the output; batch_model.c), and its step's
 * outputs have a closed form.
 *
 * Each input opens batches of any size (0, up to the largest bucket, past
 * it: eager steps, absurd), gives slots in every way (host, pinned or
 * device data, right and wrong byte counts, values in and out of the
 * slots' ranges, unchanged, gathers, feedback with new, kept, moved and
 * bad rows), switches replay modes, replays or discards. A model of the
 * runtime predicts each call's status from cgr.h; every replay that
 * succeeds is waited for and checked: its outputs, and on a graph step
 * the live rows and padding the buffer set holds (batch_model.c). Then
 * the input ends with correct replays (which must succeed) that also bring
 * the runtime back to one state, so an input's outcome does not depend on
 * the inputs before it.
 *
 * This file decodes the input: each call, and the status it must return.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/batch_model.h"

/* ---- giving slots -------------------------------------------------------- */

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

/* A slot index: mostly an input, sometimes any slot or none. */
static int bt_pick_slot(fuzz_reader *r) {
  uint8_t how = fuzz_u8(r);
  static const int inputs[6] = {BT_IDS,   BT_POS,  BT_PAGES,
                                BT_FLAGS, BT_WIDE, BT_CU_K};
  if (how < 224)
    return inputs[how % 6];
  return (int)(how % (BT_SLOTS + 2)) - 1;
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
  /* Device and pinned sources lie in memory of their kind, but now and
   * then in pageable memory, which validation must refuse. */
  int wrong_memory = 0;
  if ((how & 0xC0) != 0xC0 || source != CGR_SOURCE_DEVICE) {
    int pageable = (how & 0xC0) == 0x80;
    if (source == CGR_SOURCE_DEVICE && !pageable)
      data = bt_device(st, b, bytes);
    else if (source == CGR_SOURCE_PINNED && !pageable)
      data = bt_pinned(st, b, bytes);
    else
      data = bt_host(b, bytes);
    wrong_memory = pageable &&
                   (source == CGR_SOURCE_DEVICE || source == CGR_SOURCE_PINNED);
    if (is_input)
      bt_values(slot, r, data, bytes, wild);
  }
  if ((shape & 0x3F) == 0x3F)
    data = NULL;

  cgr_status want = bt_slot_verdict(b, slot);
  if (want == CGR_OK) {
    int known = source == CGR_SOURCE_HOST || source == CGR_SOURCE_PINNED ||
                source == CGR_SOURCE_DEVICE;
    if (!known || data == NULL || bytes != exact || wrong_memory)
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

/* Unchanged is refused at the call unless the set the batch will load
 * (step mod 2) was last loaded with this batch size; an eager batch has
 * no set. */
static void bt_unchanged(bt_state *st, bt_batch *b, int slot) {
  cgr_status want =
      b->handle ? bt_slot_verdict(b, slot) : CGR_E_INVALID_ARGUMENT;
  if (want == CGR_OK) {
    const bt_loaded *loaded = &st->loaded[st->next_step % 2][slot];
    int eager = b->size > BT_LARGEST || st->mode == CGR_REPLAY_EAGER;
    if (eager || !loaded->valid || loaded->size != b->size)
      want = CGR_E_INVALID_ARGUMENT;
  }
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
    /* Mostly tokens in input_ids' range; a row whose last byte is 0xFF
     * stays as read, negative: validation must refuse it. */
    const bt_spec *spec = &bt_specs[BT_IDS];
    for (size_t at = 0; at + 4 <= new_bytes; at += 4) {
      uint32_t value;
      memcpy(&value, new_rows + at, 4);
      if (value >> 24 == 0xFF)
        continue;
      value = (uint32_t)spec->valid_min +
              value % (uint32_t)(spec->valid_max - spec->valid_min + 1);
      memcpy(new_rows + at, &value, 4);
    }
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
    else if (fresh > 0 && !bt_in_range(BT_IDS, new_rows, new_bytes))
      want = CGR_E_INVALID_ARGUMENT; /* validated as an input's rows */
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

/* ---- tickets ------------------------------------------------------------- */

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
  /* The pipelined mode stages only batches a graph holds (cgr.h). */
  cgr_status want = size == 0 ? CGR_E_INVALID_ARGUMENT
                    : b->open ? CGR_E_INVALID_STATE
                    : size > BT_LARGEST && st->mode == CGR_REPLAY_PIPELINED
                        ? CGR_E_BATCH_TOO_LARGE
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
  cgr_replay_mode mode = (cgr_replay_mode)(fuzz_u8(r) % 7);
  cgr_status want = (unsigned)mode > CGR_REPLAY_PIPELINED
                        ? CGR_E_INVALID_ARGUMENT
                    : b->open ? CGR_E_INVALID_STATE
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

/* The runtime, kept between inputs. */
static bt_state *bt_runtime;

static bt_state *bt_get(void) {
  if (bt_runtime != NULL)
    return bt_runtime;
  bt_state *st = bt_state_create();
  bt_runtime = st;
  /* The state every input starts from, the first one too. */
  static bt_batch first;
  bt_trailer(st, &first);
  return st;
}

void fuzz_batch_release(void) {
  if (bt_runtime == NULL)
    return;
  bt_state_destroy(bt_runtime);
  bt_runtime = NULL;
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
