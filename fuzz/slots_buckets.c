/*
 * Fuzz target: the runtime's configuration (runtime/config.c), its bucket
 * list (capture/buckets.c) and slot declarations (capture/slots.c), on the
 * host backend.
 *
 * Each input makes one runtime from a config with a bucket list of random
 * length and values (unsorted, repeated, 0, past CGR_MAX_BUCKET, cut off by
 * an older `size`, ...), then declares slots with random fields (every
 * kind, element size, row and extra count, names empty, long, repeated or
 * made of any bytes, ranges, fills), feeds outputs to inputs, and
 * sometimes captures a step that touches every byte of every slot. The
 * decoder checks each status against the rules cgr.h states:
 *
 *   - create succeeds exactly when the config is valid, and otherwise says
 *     why; the buckets and the batch -> bucket lookup are the list's;
 *   - a declaration succeeds exactly when its descriptor is valid, and
 *     then its buffers have the documented sizes (cgr_capture_stats'
 *     slot_bytes) and content (ROWS padding, PREFIX zeros); a refused one
 *     declares nothing and says why;
 *   - feeds follow the OUTPUT -> ROWS, same-shape, one-feeder rule;
 *   - after cgr_capture, declarations and feeds are CGR_E_INVALID_STATE,
 *     and CONSTANT slots hold their fill.
 *
 * Sizes that would be valid but large are not declared (an input must stay
 * cheap): the size-overflow checks are reached with sizes past them.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_targets.h"
#include "runtime/error.h"

enum {
  SB_MAX_BUCKETS = 12,
  SB_DEFAULT_BUCKETS = 35, /* 1, 2, 4, 8, 16, 24, ..., 256 */
  SB_MAX_SLOTS = 12,
  SB_MAX_OPS = 40,
  /* Device bytes one declaration may cost, and all of them together. */
  SB_SLOT_BUDGET = 256 << 10,
  SB_TOTAL_BUDGET = 1 << 20
};

/* What the model knows of a declared slot. */
typedef struct sb_slot {
  char name[64];
  cgr_slot_kind kind;
  uint32_t elem_size;
  uint64_t row_elems;
  uint64_t extra_elems;
  uint64_t pad_value;
  int has_fill;
  int fed;
} sb_slot;

typedef struct sb_model {
  cgr_runtime *rt;
  uint32_t buckets[SB_DEFAULT_BUCKETS]; /* as many as either list has */
  size_t bucket_count;
  int lazy;
  sb_slot slots[SB_MAX_SLOTS];
  cgr_slot ids[SB_MAX_SLOTS];
  size_t slot_count;
  uint64_t slot_bytes;
  int captured;
} sb_model;

static const uint32_t sb_default_buckets[SB_DEFAULT_BUCKETS] = {
    1,   2,   4,   8,   16,  24,  32,  40,  48,  56,  64,  72,
    80,  88,  96,  104, 112, 120, 128, 136, 144, 152, 160, 168,
    176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 256};

/* ---- the config ---------------------------------------------------------- */

/* A bucket list: mostly ascending, with the mistakes users make. */
static size_t sb_bucket_list(fuzz_reader *r, uint32_t *list) {
  size_t count = 1 + fuzz_below(r, SB_MAX_BUCKETS);
  uint32_t previous = 0;
  for (size_t i = 0; i < count; ++i) {
    uint8_t how = fuzz_u8(r);
    uint32_t value;
    switch (how % 10) {
    case 6:
      value = previous; /* a repeat */
      break;
    case 7:
      value = previous - 1; /* descending (0 after 1, UINT32_MAX after 0) */
      break;
    case 8:
      value = how < 128 ? 0 : CGR_MAX_BUCKET + (how & 1);
      break;
    case 9:
      value = fuzz_u32(r);
      break;
    default:
      value = previous + 1 + (how < 128 ? fuzz_u8(r) % 16 : fuzz_u16(r) % 512);
      break;
    }
    list[i] = value;
    previous = value;
  }
  return count;
}

static int sb_buckets_valid(const uint32_t *list, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (list[i] == 0 || list[i] > CGR_MAX_BUCKET)
      return 0;
    if (i > 0 && list[i] <= list[i - 1])
      return 0;
  }
  return 1;
}

/* The fields cgr_runtime_create checks, the defaults past a short size
 * applied as the header says. CGR_E_VERSION (a size past cgr_config, an
 * unknown version, or a size short of its version's fields),
 * CGR_E_INVALID_ARGUMENT or CGR_OK. */
static cgr_status sb_config_verdict(const cgr_config *config) {
  static const size_t version_ends[] = {
      offsetof(cgr_config, validate) + sizeof config->validate,
      offsetof(cgr_config, log_user) + sizeof config->log_user,
      offsetof(cgr_config, replay_mode) + sizeof config->replay_mode,
      offsetof(cgr_config, variant_count) + sizeof config->variant_count};
  _Static_assert(sizeof version_ends / sizeof version_ends[0] ==
                     CGR_CONFIG_VERSION,
                 "a version's end for every cgr_config version");
  if (config->size > sizeof *config || config->size < version_ends[0] ||
      config->version == 0 || config->version > CGR_CONFIG_VERSION ||
      config->size < version_ends[config->version - 1])
    return CGR_E_VERSION;
  cgr_config effective;
  cgr_config_init(&effective);
  memcpy(&effective, config,
         config->size < sizeof effective ? config->size : sizeof effective);
  const cgr_config *c = &effective;
  int valid = c->backend == CGR_BACKEND_HOST && c->device >= 0 &&
              (c->main_stream_priority == CGR_PRIORITY_NORMAL ||
               c->main_stream_priority == CGR_PRIORITY_HIGH) &&
              (c->side_stream_priority == CGR_PRIORITY_NORMAL ||
               c->side_stream_priority == CGR_PRIORITY_HIGH) &&
              (c->nvtx == 0 || c->nvtx == 1) &&
              (c->validate == 0 || c->validate == 1) &&
              (c->allow_eager == 0 || c->allow_eager == 1) &&
              (c->lazy_capture == 0 || c->lazy_capture == 1) &&
              (unsigned)c->replay_mode <= CGR_REPLAY_PIPELINED;
  if (c->buckets == NULL)
    valid = valid && c->bucket_count == 0;
  else
    valid = valid && c->bucket_count > 0 &&
            sb_buckets_valid(c->buckets, c->bucket_count);
  /* The key lists (version 4): this target leaves them at their defaults,
   * which are valid. */
  valid = valid && c->tokens_per_request == NULL &&
          c->tokens_per_request_count == 0 && c->variants == NULL &&
          c->variant_count == 0;
  return valid ? CGR_OK : CGR_E_INVALID_ARGUMENT;
}

/* Decodes a config (list stores its buckets) and creates the runtime;
 * returns 1 when one was made. */
static int sb_create(sb_model *m, fuzz_reader *r, uint32_t *list) {
  static const size_t sizes[8] = {
      sizeof(cgr_config),
      sizeof(cgr_config),
      sizeof(cgr_config),
      sizeof(cgr_config),
      offsetof(cgr_config, replay_mode), /* version 2 */
      offsetof(cgr_config, buckets),     /* version 1 */
      offsetof(cgr_config, backend) + sizeof(cgr_backend_kind),
      offsetof(cgr_config, backend), /* too small */
  };
  static const uint32_t versions[8] = {CGR_CONFIG_VERSION,
                                       CGR_CONFIG_VERSION,
                                       CGR_CONFIG_VERSION,
                                       CGR_CONFIG_VERSION,
                                       1,
                                       2,
                                       0,
                                       CGR_CONFIG_VERSION + 1};
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_HOST;
  uint8_t how = fuzz_u8(r);
  config.size = sizes[how & 7];
  config.version = versions[(how >> 3) & 7];
  uint8_t list_how = fuzz_u8(r);
  switch (list_how % 8) {
  case 0:
    break; /* the default list */
  case 1:
    config.bucket_count = 1 + list_how / 8; /* NULL list, nonzero count */
    break;
  case 2:
    config.buckets = list; /* a list of nothing */
    list[0] = 1;
    break;
  default:
    config.buckets = list;
    config.bucket_count = sb_bucket_list(r, list);
    break;
  }
  /* Now and then one field out of its range. */
  uint8_t broken = fuzz_u8(r);
  config.lazy_capture = broken & 1;
  config.validate = (broken >> 1) & 1;
  config.allow_eager = (broken >> 2) & 1;
  if (broken >= 224) {
    switch (broken % 9) {
    case 0:
      config.backend = (cgr_backend_kind)7;
      break;
    case 1:
      config.device = -1;
      break;
    case 2:
      config.main_stream_priority = (cgr_stream_priority)2;
      break;
    case 3:
      config.side_stream_priority = (cgr_stream_priority)-1;
      break;
    case 4:
      config.nvtx = 2;
      break;
    case 5:
      config.validate = -1;
      break;
    case 6:
      config.allow_eager = 3;
      break;
    case 7:
      config.lazy_capture = 2;
      break;
    default:
      config.replay_mode = (cgr_replay_mode)(CGR_REPLAY_PIPELINED + 1);
      break;
    }
  }
  cgr_status want = sb_config_verdict(&config);
  /* Not NULL before the call: create must set it on failure too. */
  static char sentinel;
  cgr_runtime *rt = (cgr_runtime *)(void *)&sentinel;
  cgr_status got = cgr_runtime_create(&config, &rt);
  fuzz_trace("create (size %zu, version %u, %zu buckets from %p) -> %s %s",
             config.size, config.version, config.bucket_count,
             (const void *)config.buckets, cgr_status_name(got),
             got == CGR_OK ? "" : cgr_last_error(NULL));
  FUZZ_CHECK_STATUS(NULL, got, want);
  if (got != CGR_OK) {
    FUZZ_CHECK(rt == NULL);
    FUZZ_CHECK(cgr_last_error(NULL)[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(rt != NULL && cgr_backend(rt) == CGR_BACKEND_HOST);
  m->rt = rt;
  /* The list a short size cuts off is not read. */
  int has_list = config.size > offsetof(cgr_config, bucket_count) &&
                 config.buckets != NULL;
  const uint32_t *expected = has_list ? config.buckets : sb_default_buckets;
  m->bucket_count = has_list ? config.bucket_count : SB_DEFAULT_BUCKETS;
  memcpy(m->buckets, expected, m->bucket_count * sizeof(uint32_t));
  m->lazy =
      config.size > offsetof(cgr_config, lazy_capture) && config.lazy_capture;
  return 1;
}

/* The buckets are the list, and each batch goes to the smallest that
 * holds it. */
static void sb_check_buckets(sb_model *m, fuzz_reader *r) {
  const uint32_t *sizes = NULL;
  size_t count = 0;
  FUZZ_CHECK_STATUS(m->rt, cgr_buckets(m->rt, &sizes, &count), CGR_OK);
  FUZZ_CHECK(count == m->bucket_count);
  FUZZ_CHECK(memcmp(sizes, m->buckets, count * sizeof *sizes) == 0);
  uint32_t largest = m->buckets[m->bucket_count - 1];
  uint32_t batches[6] = {0,           1,           largest,
                         largest + 1, fuzz_u16(r), fuzz_below(r, largest + 2)};
  for (int i = 0; i < 6; ++i) {
    uint32_t padded = 12345;
    cgr_status status = cgr_bucket_for_batch(m->rt, batches[i], &padded);
    if (batches[i] == 0) {
      FUZZ_CHECK_STATUS(m->rt, status, CGR_E_INVALID_ARGUMENT);
    } else if (batches[i] > largest) {
      FUZZ_CHECK_STATUS(m->rt, status, CGR_E_BATCH_TOO_LARGE);
    } else {
      FUZZ_CHECK_STATUS(m->rt, status, CGR_OK);
      size_t k = 0;
      while (m->buckets[k] < batches[i])
        ++k;
      FUZZ_CHECK(padded == m->buckets[k]);
      continue;
    }
    FUZZ_CHECK(padded == 0);
  }
}

/* ---- slots --------------------------------------------------------------- */

/* A CONSTANT fill that depends on the bucket and the element. */
static void sb_fill(void *user, uint32_t padded_batch, void *dst,
                    uint64_t elems) {
  const sb_slot *slot = user;
  unsigned char *bytes = dst;
  for (uint64_t i = 0; i < elems * slot->elem_size; ++i)
    bytes[i] = (unsigned char)(padded_batch * 31 + i * 7);
}

/* The bytes the declaration allocates, as cgr.h describes the buffers;
 * UINT64_MAX when past any budget (the sizes are kept below 2^48). */
static uint64_t sb_slot_bytes(const sb_model *m, const sb_slot *s) {
  if (s->row_elems > (UINT64_C(1) << 40) || s->extra_elems > (1u << 30))
    return UINT64_MAX;
  uint32_t largest = m->buckets[m->bucket_count - 1];
  if (s->kind == CGR_SLOT_CONSTANT) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->bucket_count; ++i)
      bytes += (m->buckets[i] * s->row_elems + s->extra_elems) * s->elem_size;
    return bytes;
  }
  uint64_t rows = s->kind == CGR_SLOT_PREFIX ? largest + 1 : largest;
  return 2 * rows * s->row_elems * s->elem_size;
}

static uint64_t sb_stats_slot_bytes(const sb_model *m) {
  cgr_capture_stats stats;
  FUZZ_CHECK_STATUS(m->rt, cgr_capture_stats_get(m->rt, &stats), CGR_OK);
  return stats.slot_bytes;
}

static const char *sb_name(fuzz_reader *r, char *storage, size_t capacity) {
  static const char *const pool[] = {"input_ids",  "positions", "page_table",
                                     "cu_seqlens", "logits",    "x"};
  uint8_t how = fuzz_u8(r);
  size_t length = 0;
  switch (how % 12) {
  case 0:
    return NULL;
  case 1:
    return "";
  case 2:
  case 3:
  case 4: {
    /* 63 characters are the most; 64 and 200 are too many. */
    static const size_t lengths[3] = {63, 64, 200};
    length = lengths[how % 12 - 2];
    memset(storage, 'a' + how % 26, length);
    break;
  }
  case 5:
  case 6: {
    /* Any bytes but NUL, from the input. */
    length = fuzz_below(r, 72);
    for (size_t i = 0; i < length; ++i)
      storage[i] = (char)(1 + fuzz_u8(r) % 255);
    break;
  }
  default:
    return pool[how / 12 % 6];
  }
  FUZZ_CHECK(length < capacity);
  storage[length] = '\0';
  return storage;
}

/* The descriptor's fields, as a model slot; 1 when cgr.h calls them
 * valid. */
static int sb_desc_valid(const sb_model *m, const cgr_slot_desc *d) {
  if (d->name == NULL || d->name[0] == '\0' || strlen(d->name) > 63)
    return 0;
  for (size_t i = 0; i < m->slot_count; ++i)
    if (strcmp(m->slots[i].name, d->name) == 0)
      return 0;
  if ((unsigned)d->kind > CGR_SLOT_OUTPUT)
    return 0;
  if (d->elem_size != 1 && d->elem_size != 2 && d->elem_size != 4 &&
      d->elem_size != 8)
    return 0;
  if (d->row_elems == 0 || (d->kind == CGR_SLOT_PREFIX && d->row_elems != 1))
    return 0;
  if (d->kind != CGR_SLOT_CONSTANT && (d->extra_elems != 0 || d->fill != NULL))
    return 0;
  /* "size overflow": slots.c keeps every size below 2^48 bytes. */
  uint64_t limit = UINT64_C(1) << 48;
  uint64_t rows = (uint64_t)m->buckets[m->bucket_count - 1] + 1;
  return d->row_elems <= limit / rows / d->elem_size &&
         d->extra_elems <= limit / d->elem_size;
}

/* Counts that hit the rules: 0, 1, a few, many, and the overflow edge. */
static uint64_t sb_count(const sb_model *m, fuzz_reader *r, uint32_t elem,
                         int extra) {
  uint8_t how = fuzz_u8(r);
  uint64_t limit = UINT64_C(1) << 48;
  uint64_t rows = (uint64_t)m->buckets[m->bucket_count - 1] + 1;
  uint64_t width = elem ? elem : 1;
  switch (how % 8) {
  case 0:
    return extra ? 0 : 1;
  case 1:
    return 0;
  case 2:
  case 3:
    return 1 + how / 8 % 16;
  case 4:
    return 1 + fuzz_u16(r) % 1024;
  case 5: /* just past the overflow check */
    return (extra ? limit / width : limit / rows / width) + 1 + how / 8 % 4;
  case 6:
    return UINT64_MAX - how / 8;
  default:
    return 2;
  }
}

static void sb_check_new_slot(sb_model *m, const sb_slot *s, cgr_slot slot) {
  cgr_slot found = -7;
  FUZZ_CHECK_STATUS(m->rt, cgr_slot_find(m->rt, s->name, &found), CGR_OK);
  FUZZ_CHECK(found == slot);
  void *address = NULL;
  FUZZ_CHECK_STATUS(m->rt, cgr_slot_address(m->rt, slot, 2, 0, &address),
                    CGR_E_INVALID_ARGUMENT);
  FUZZ_CHECK(address == NULL);
  if (s->kind == CGR_SLOT_CONSTANT) {
    for (size_t i = 0; i < m->bucket_count; ++i) {
      FUZZ_CHECK_STATUS(m->rt,
                        cgr_slot_address(m->rt, slot, (int)i % 2, m->buckets[i],
                                         &address),
                        CGR_OK);
      FUZZ_CHECK(address != NULL);
    }
    /* Not a bucket: one past the largest always is not. */
    FUZZ_CHECK_STATUS(m->rt,
                      cgr_slot_address(m->rt, slot, 0,
                                       m->buckets[m->bucket_count - 1] + 1,
                                       &address),
                      CGR_E_INVALID_ARGUMENT);
    return;
  }
  /* Inputs start as padding: ROWS the pad value, PREFIX zeros. On the
   * host backend device memory is host memory, and the declaration has
   * synchronized. */
  uint32_t largest = m->buckets[m->bucket_count - 1];
  uint64_t elems = s->kind == CGR_SLOT_PREFIX
                       ? (uint64_t)largest + 1
                       : (uint64_t)largest * s->row_elems;
  void *sets[2];
  for (int set = 0; set < 2; ++set) {
    FUZZ_CHECK_STATUS(m->rt, cgr_slot_address(m->rt, slot, set, 0, &sets[set]),
                      CGR_OK);
    FUZZ_CHECK(sets[set] != NULL);
    if (s->kind == CGR_SLOT_OUTPUT)
      continue;
    uint64_t pad = s->kind == CGR_SLOT_ROWS ? s->pad_value : 0;
    const unsigned char *bytes = sets[set];
    for (uint64_t e = 0; e < elems; ++e)
      FUZZ_CHECK(memcmp(bytes + e * s->elem_size, &pad, s->elem_size) == 0);
  }
  FUZZ_CHECK(sets[0] != sets[1]);
}

static void sb_declare(sb_model *m, fuzz_reader *r) {
  char name[256];
  cgr_slot_desc desc;
  sb_slot s;
  memset(&s, 0, sizeof s);
  static const uint32_t elem_sizes[8] = {1, 2, 4, 8, 4, 0, 3, 16};
  uint8_t how = fuzz_u8(r);
  cgr_slot_kind kind = how % 16 < 14 ? (cgr_slot_kind)(how % 4)
                                     : (cgr_slot_kind)(how % 2 ? 4 : -1);
  uint32_t elem = elem_sizes[(how >> 4) & 7];
  cgr_slot_desc_init(&desc, sb_name(r, name, sizeof name), kind, elem,
                     sb_count(m, r, elem, 0));
  if (kind == CGR_SLOT_PREFIX && fuzz_u8(r) % 4 != 0)
    desc.row_elems = 1;
  desc.pad_value = fuzz_u64(r);
  uint8_t extras = fuzz_u8(r);
  if (kind == CGR_SLOT_CONSTANT || extras >= 240) {
    desc.extra_elems = sb_count(m, r, elem, 1);
    if (extras & 1) {
      desc.fill = sb_fill;
      desc.fill_user = &m->slots[m->slot_count % SB_MAX_SLOTS];
    }
  }
  desc.valid_min = (int64_t)fuzz_u64(r);
  desc.valid_max = (int64_t)fuzz_u64(r);

  int valid = !m->captured && sb_desc_valid(m, &desc);
  if (valid) {
    s.kind = desc.kind;
    s.elem_size = desc.elem_size;
    s.row_elems = desc.row_elems;
    s.extra_elems = desc.extra_elems;
    s.pad_value = desc.pad_value;
    s.has_fill = desc.fill != NULL;
    memcpy(s.name, desc.name, strlen(desc.name) + 1);
    uint64_t bytes = sb_slot_bytes(m, &s);
    /* Valid but too large for a cheap input: not declared. */
    if (bytes > SB_SLOT_BUDGET || m->slot_bytes + bytes > SB_TOTAL_BUDGET ||
        m->slot_count == SB_MAX_SLOTS)
      return;
  }
  uint64_t before = sb_stats_slot_bytes(m);
  FUZZ_CHECK(before == m->slot_bytes);
  cgr_slot out = 99;
  cgr_status status = cgr_slot_declare(m->rt, &desc, &out);
  fuzz_trace("declare '%.80s' kind %d elem %u row_elems %llu extra %llu%s "
             "-> %s %s",
             desc.name ? desc.name : "(null)", (int)desc.kind, desc.elem_size,
             (unsigned long long)desc.row_elems,
             (unsigned long long)desc.extra_elems, desc.fill ? " fill" : "",
             cgr_status_name(status),
             status == CGR_OK ? "" : cgr_last_error(m->rt));
  if (!valid) {
    FUZZ_CHECK_STATUS(m->rt, status,
                      m->captured ? CGR_E_INVALID_STATE
                                  : CGR_E_INVALID_ARGUMENT);
    FUZZ_CHECK(out == -1);
    FUZZ_CHECK(cgr_last_error(m->rt)[0] != '\0');
    FUZZ_CHECK(sb_stats_slot_bytes(m) == before);
    return;
  }
  FUZZ_CHECK_STATUS(m->rt, status, CGR_OK);
  FUZZ_CHECK(out == (cgr_slot)m->slot_count);
  uint64_t bytes = sb_slot_bytes(m, &s);
  FUZZ_CHECK(sb_stats_slot_bytes(m) == before + bytes);
  m->slots[m->slot_count] = s;
  m->ids[m->slot_count] = out;
  m->slot_count++;
  m->slot_bytes += bytes;
  sb_check_new_slot(m, &s, out);
}

static void sb_feed(sb_model *m, fuzz_reader *r) {
  int count = (int)m->slot_count;
  cgr_slot output = (cgr_slot)fuzz_below(r, (uint32_t)count + 2) - 1;
  cgr_slot input = (cgr_slot)fuzz_below(r, (uint32_t)count + 2) - 1;
  cgr_status want = CGR_OK;
  if (m->captured) {
    want = CGR_E_INVALID_STATE;
  } else if (output < 0 || output >= count || input < 0 || input >= count) {
    want = CGR_E_INVALID_ARGUMENT;
  } else {
    const sb_slot *from = &m->slots[output], *to = &m->slots[input];
    if (from->kind != CGR_SLOT_OUTPUT || to->kind != CGR_SLOT_ROWS ||
        from->elem_size != to->elem_size || from->row_elems != to->row_elems ||
        to->fed)
      want = CGR_E_INVALID_ARGUMENT;
  }
  cgr_status got = cgr_slot_feed(m->rt, output, input);
  fuzz_trace("feed %d -> %d -> %s", (int)output, (int)input,
             cgr_status_name(got));
  FUZZ_CHECK_STATUS(m->rt, got, want);
  if (want == CGR_OK)
    m->slots[input].fed = 1;
  else
    FUZZ_CHECK(cgr_last_error(m->rt)[0] != '\0');
}

/* ---- capture ------------------------------------------------------------- */

/* Touches every byte the slots hold for this bucket: writes the rows of
 * inputs and outputs, reads each constant into scratch. Out-of-bounds
 * sizes show up under ASan. */
static cgr_status sb_step(cgr_step *step, void *user) {
  const sb_model *m = user;
  uint32_t padded = cgr_step_padded_batch(step);
  for (size_t i = 0; i < m->slot_count; ++i) {
    const sb_slot *s = &m->slots[i];
    void *address = cgr_step_slot(step, m->ids[i]);
    uint64_t rows = s->kind == CGR_SLOT_PREFIX ? padded + 1 : padded;
    if (s->kind == CGR_SLOT_CONSTANT) {
      uint64_t bytes =
          ((uint64_t)padded * s->row_elems + s->extra_elems) * s->elem_size;
      void *scratch = NULL;
      CGR__CHECK(cgr_step_scratch(step, bytes, 0, &scratch));
      CGR__CHECK(cgr_step_memcpy(step, scratch, address, bytes));
    } else {
      CGR__CHECK(cgr_step_memset(step, address, 0x5A,
                                 rows * s->row_elems * s->elem_size));
    }
  }
  return CGR_OK;
}

/* Each CONSTANT buffer holds its fill (or arange) for its bucket. */
static void sb_check_constants(const sb_model *m) {
  for (size_t i = 0; i < m->slot_count; ++i) {
    const sb_slot *s = &m->slots[i];
    if (s->kind != CGR_SLOT_CONSTANT)
      continue;
    for (size_t b = 0; b < m->bucket_count; ++b) {
      void *address = NULL;
      FUZZ_CHECK_STATUS(m->rt,
                        cgr_slot_address(m->rt, m->ids[i], 0, m->buckets[b],
                                         &address),
                        CGR_OK);
      const unsigned char *bytes = address;
      uint64_t elems = m->buckets[b] * s->row_elems + s->extra_elems;
      for (uint64_t e = 0; e < elems; ++e) {
        for (uint32_t k = 0; k < s->elem_size; ++k) {
          uint64_t at = e * s->elem_size + k;
          unsigned char want =
              s->has_fill ? (unsigned char)(m->buckets[b] * 31 + at * 7)
                          : (unsigned char)(k < 8 ? e >> (8 * k) : 0);
          FUZZ_CHECK(bytes[at] == want);
        }
      }
    }
  }
}

static void sb_capture(sb_model *m) {
  cgr_status status = cgr_capture(m->rt, sb_step, m);
  fuzz_trace("capture (%zu slots) -> %s", m->slot_count,
             cgr_status_name(status));
  if (m->captured) {
    FUZZ_CHECK_STATUS(m->rt, status, CGR_E_INVALID_STATE);
    return;
  }
  FUZZ_CHECK_STATUS(m->rt, status, CGR_OK);
  m->captured = 1;
  for (size_t b = 0; b < m->bucket_count; ++b) {
    cgr_bucket_stats stats;
    FUZZ_CHECK_STATUS(m->rt, cgr_bucket_stats_get(m->rt, m->buckets[b], &stats),
                      CGR_OK);
    FUZZ_CHECK(stats.padded_batch == m->buckets[b]);
    FUZZ_CHECK(stats.captured == !m->lazy);
  }
  if (!m->lazy)
    sb_check_constants(m);
}

int fuzz_slots_buckets_one(const uint8_t *data, size_t size) {
  fuzz_reader r = fuzz_reader_make(data, size);
  sb_model m;
  memset(&m, 0, sizeof m);
  uint32_t list[SB_MAX_BUCKETS + 1];
  if (!sb_create(&m, &r, list))
    return 0;
  sb_check_buckets(&m, &r);
  for (int op = 0; op < SB_MAX_OPS && fuzz_more(&r); ++op) {
    uint8_t what = fuzz_u8(&r);
    if (what < 160)
      sb_declare(&m, &r);
    else if (what < 230)
      sb_feed(&m, &r);
    else
      sb_capture(&m);
  }
  cgr_runtime_destroy(m.rt);
  return 0;
}

#ifdef CGR_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_slots_buckets_one(data, size);
}
#endif
