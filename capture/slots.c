/* Slots: declared inputs and outputs, and their buffers at fixed addresses. */
#include <string.h>

#include "capture/capture.h"
#include "kernels/fused_copy.h"
#include "runtime/alloc.h"

cgr_status cgr_slot_desc_init(cgr_slot_desc *desc, const char *name,
                              cgr_slot_kind kind, uint32_t elem_size,
                              uint64_t row_elems) {
  if (desc == NULL)
    return CGR_E_INVALID_ARGUMENT;
  memset(desc, 0, sizeof *desc);
  desc->name = name;
  desc->kind = kind;
  desc->elem_size = elem_size;
  desc->row_elems = row_elems;
  return CGR_OK;
}

uint64_t cgr__constant_elems(const cgr__slot *slot, uint32_t padded_batch,
                             uint32_t q) {
  return cgr__slot_rows(slot, padded_batch, q) * slot->desc.row_elems +
         slot->desc.extra_elems;
}

uint64_t cgr__slot_bytes_for(const cgr__slot *slot, uint32_t requests,
                             uint32_t q) {
  switch (slot->desc.kind) {
  case CGR_SLOT_PREFIX:
    return ((uint64_t)requests + 1) * slot->desc.elem_size;
  case CGR_SLOT_CONSTANT:
    return cgr__constant_elems(slot, requests, q) * slot->desc.elem_size;
  default:
    return cgr__slot_rows(slot, requests, q) * slot->row_bytes;
  }
}

/* Constant buffers: one per bucket and tokens value. */
static size_t constant_count(const cgr__capture *cap) {
  return cap->bucket_count * cap->token_count;
}

static void free_slot(cgr_runtime *rt, const cgr__capture *cap,
                      cgr__slot *slot) {
  for (int set = 0; set < CGR__SETS; ++set)
    cgr__be_device_free(&rt->backend, slot->buffers[set]);
  if (slot->constant_buffers != NULL)
    for (size_t i = 0; i < constant_count(cap); ++i)
      cgr__be_device_free(&rt->backend, slot->constant_buffers[i]);
  cgr__free(slot->constant_buffers);
}

void cgr__slots_free(cgr_runtime *rt, cgr__capture *cap) {
  for (size_t i = 0; i < cap->slot_count; ++i)
    free_slot(rt, cap, &cap->slots[i]);
  cgr__free(cap->slots);
  cap->slots = NULL;
  cap->slot_count = cap->slot_capacity = 0;
}

static cgr_status bad_desc(cgr_runtime *rt, const char *name,
                           const char *problem) {
  return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_slot_declare",
                   "slot '%s': %s", name ? name : "(null)", problem);
}

/* Checks everything that does not need memory; fills the derived sizes. */
static cgr_status check_desc(cgr_runtime *rt, const cgr__capture *cap,
                             const cgr_slot_desc *desc, cgr__slot *slot) {
  const char *name = desc->name;
  if (name == NULL || name[0] == '\0')
    return bad_desc(rt, name, "desc->name is NULL or empty");
  if (strlen(name) > CGR__SLOT_NAME_MAX)
    return bad_desc(rt, name, "desc->name is longer than 63 characters");
  for (size_t i = 0; i < cap->slot_count; ++i)
    if (strcmp(cap->slots[i].name, name) == 0)
      return bad_desc(rt, name, "a slot of that name is already declared");
  if (desc->kind != CGR_SLOT_ROWS && desc->kind != CGR_SLOT_PREFIX &&
      desc->kind != CGR_SLOT_CONSTANT && desc->kind != CGR_SLOT_OUTPUT)
    return bad_desc(rt, name, "desc->kind is not a cgr_slot_kind");
  uint32_t elem = desc->elem_size;
  if (elem != 1 && elem != 2 && elem != 4 && elem != 8)
    return bad_desc(rt, name, "desc->elem_size is not 1, 2, 4 or 8");
  if (desc->row_elems == 0)
    return bad_desc(rt, name, "desc->row_elems is 0");
  if (desc->kind == CGR_SLOT_PREFIX && desc->row_elems != 1)
    return bad_desc(rt, name, "a PREFIX slot has row_elems 1");
  if (desc->elem_unsigned != 0 && desc->elem_unsigned != 1)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_slot_declare",
                     "slot '%s': desc->elem_unsigned is %d, must be 0 or 1",
                     name, desc->elem_unsigned);
  if (desc->kind != CGR_SLOT_CONSTANT &&
      (desc->extra_elems != 0 || desc->fill != NULL || desc->fill_key != NULL))
    return bad_desc(rt, name,
                    "desc->extra_elems, desc->fill and desc->fill_key are "
                    "for CONSTANT slots only");
  if (desc->scale != CGR_SCALE_REQUEST && desc->scale != CGR_SCALE_TOKEN)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, "cgr_slot_declare",
                     "slot '%s': desc->scale is %d, not a cgr_slot_scale", name,
                     (int)desc->scale);
  if (desc->kind == CGR_SLOT_PREFIX && desc->scale == CGR_SCALE_TOKEN)
    return bad_desc(rt, name,
                    "a PREFIX slot has a row per request (desc->scale "
                    "CGR_SCALE_REQUEST)");
  /* The largest size anything here reaches: (largest + 1) rows of
   * row_elems (times the most tokens per request), plus extra elements;
   * keep it far from overflow. */
  uint64_t limit = UINT64_C(1) << 48;
  uint64_t rows =
      ((uint64_t)cgr__largest_bucket(cap) + 1) *
      (desc->scale == CGR_SCALE_TOKEN ? cgr__largest_tokens(cap) : 1);
  if (desc->row_elems > limit / rows / elem || desc->extra_elems > limit / elem)
    return bad_desc(rt, name, "the slot's size overflows");

  memset(slot, 0, sizeof *slot);
  slot->fed_by = -1;
  memcpy(slot->name, name, strlen(name) + 1);
  slot->desc = *desc;
  slot->desc.name = slot->name;
  slot->row_bytes = (uint64_t)elem * desc->row_elems;
  return CGR_OK;
}

/* Allocates the slot's buffers and writes the padding inputs start as. */
static cgr_status allocate(cgr_runtime *rt, const cgr__capture *cap,
                           cgr__slot *slot) {
  cgr__backend *be = &rt->backend;
  if (slot->desc.kind == CGR_SLOT_CONSTANT) {
    slot->constant_buffers =
        cgr__calloc(constant_count(cap), sizeof *slot->constant_buffers);
    if (slot->constant_buffers == NULL)
      return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, "cgr_slot_declare",
                       "slot '%s': allocating its bucket table failed",
                       slot->name);
    for (size_t i = 0; i < constant_count(cap); ++i) {
      uint64_t bytes =
          cgr__slot_bytes_for(slot, cap->sizes[i / cap->token_count],
                              cap->tokens[i % cap->token_count]);
      if (bytes == 0)
        continue;
      CGR__CHECK(cgr__be_device_alloc(be, bytes, &slot->constant_buffers[i]));
      slot->bytes += bytes;
    }
    return CGR_OK;
  }
  uint64_t bytes = cgr__slot_bytes_for(slot, cgr__largest_bucket(cap),
                                       cgr__largest_tokens(cap));
  for (int set = 0; set < CGR__SETS; ++set) {
    CGR__CHECK(cgr__be_device_alloc(be, bytes, &slot->buffers[set]));
    slot->bytes += bytes;
  }
  cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
  if (slot->desc.kind == CGR_SLOT_PREFIX) {
    for (int set = 0; set < CGR__SETS; ++set)
      CGR__CHECK(
          cgr__be_memset_async(be, stream, slot->buffers[set], 0, bytes));
  } else if (slot->desc.kind == CGR_SLOT_ROWS) {
    /* Every row starts as a padded row. */
    cgr__copy_plan plan;
    cgr__copy_plan_init(&plan);
    cgr_status status = CGR_OK;
    for (int set = 0; set < CGR__SETS && status == CGR_OK; ++set)
      status =
          cgr__copy_plan_fill(&plan, slot->buffers[set], slot->desc.pad_value,
                              slot->desc.elem_size, bytes, &rt->error);
    if (status == CGR_OK)
      status = cgr__copy_plan_finish(&plan, &rt->error);
    if (status == CGR_OK)
      status = cgr__fused_copy_launch(be, stream, &plan);
    cgr__copy_plan_release(&plan);
    CGR__CHECK(status);
  }
  return cgr__be_stream_synchronize(be, stream);
}

cgr_status cgr_slot_declare(cgr_runtime *rt, const cgr_slot_desc *desc,
                            cgr_slot *out) {
  if (out != NULL)
    *out = -1;
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  if (desc == NULL || out == NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is NULL", desc == NULL ? "desc" : "out");
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step != NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "slot '%s' declared after cgr_capture(): graphs already "
                     "hold the slots' addresses",
                     desc->name ? desc->name : "(null)");
  cgr__slot slot;
  CGR__CHECK(check_desc(rt, cap, desc, &slot));
  if (cap->slot_count == cap->slot_capacity) {
    size_t capacity = cap->slot_capacity ? cap->slot_capacity * 2 : 8;
    cgr__slot *slots = cgr__calloc(capacity, sizeof *slots);
    if (slots == NULL)
      return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                       "growing the slot table failed");
    if (cap->slot_count > 0)
      memcpy(slots, cap->slots, cap->slot_count * sizeof *slots);
    cgr__free(cap->slots);
    cap->slots = slots;
    cap->slot_capacity = capacity;
  }
  cgr_status status = allocate(rt, cap, &slot);
  if (status != CGR_OK) {
    /* A fill may still be queued on the buffers. */
    cgr__be_stream_drain(&rt->backend, rt->streams[CGR_STREAM_MAIN]);
    free_slot(rt, cap, &slot);
    return status;
  }
  /* desc.name must point into the slot's final home. */
  cap->slots[cap->slot_count] = slot;
  cap->slots[cap->slot_count].desc.name = cap->slots[cap->slot_count].name;
  cap->slot_bytes += slot.bytes;
  *out = (cgr_slot)cap->slot_count++;
  return CGR_OK;
}

cgr_status cgr_slot_feed(cgr_runtime *rt, cgr_slot output, cgr_slot input) {
  if (rt == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(rt, &cap));
  if (cap->step != NULL)
    return cgr__fail(&rt->error, CGR_E_INVALID_STATE, __func__,
                     "feeds are declared before cgr_capture(): the graphs "
                     "hold the feed copies");
  if (output < 0 || (size_t)output >= cap->slot_count || input < 0 ||
      (size_t)input >= cap->slot_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "slot %d is not declared",
                     output < 0 || (size_t)output >= cap->slot_count
                         ? (int)output
                         : (int)input);
  cgr__slot *from = &cap->slots[output], *to = &cap->slots[input];
  if (from->desc.kind != CGR_SLOT_OUTPUT || to->desc.kind != CGR_SLOT_ROWS)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "a feed goes from an OUTPUT slot to a ROWS slot, not "
                     "from '%s' to '%s'",
                     from->name, to->name);
  if (from->desc.scale != to->desc.scale)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "'%s' and '%s' count their rows differently (desc->scale "
                     "%d and %d): a feed copies rows one for one",
                     from->name, to->name, (int)from->desc.scale,
                     (int)to->desc.scale);
  if (from->desc.elem_size != to->desc.elem_size ||
      from->desc.row_elems != to->desc.row_elems)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "'%s' rows (%u x %llu) do not match '%s' rows (%u x "
                     "%llu)",
                     from->name, from->desc.elem_size,
                     (unsigned long long)from->desc.row_elems, to->name,
                     to->desc.elem_size,
                     (unsigned long long)to->desc.row_elems);
  if (to->fed_by >= 0)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "slot '%s' is already fed by '%s'", to->name,
                     cap->slots[to->fed_by].name);
  to->fed_by = output;
  return CGR_OK;
}

cgr_status cgr_slot_find(const cgr_runtime *rt, const char *name,
                         cgr_slot *out) {
  if (out != NULL)
    *out = -1;
  if (rt == NULL || name == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  cgr__capture *cap = NULL;
  CGR__CHECK(cgr__capture_state(mutable_rt, &cap));
  for (size_t i = 0; i < cap->slot_count; ++i) {
    if (strcmp(cap->slots[i].name, name) == 0) {
      *out = (cgr_slot)i;
      return CGR_OK;
    }
  }
  return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                   "no slot is named '%s'", name);
}

/* The checks both address calls make; *slot_out is the slot. */
static cgr_status address_args(cgr_runtime *rt, cgr_slot slot, int set,
                               const char *func, cgr__capture **cap,
                               const cgr__slot **slot_out) {
  CGR__CHECK(cgr__capture_state(rt, cap));
  if (slot < 0 || (size_t)slot >= (*cap)->slot_count)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "slot %d is not declared", (int)slot);
  if (set != 0 && set != 1)
    return cgr__fail(&rt->error, CGR_E_INVALID_ARGUMENT, func,
                     "set is %d, must be 0 or 1", set);
  *slot_out = &(*cap)->slots[slot];
  return CGR_OK;
}

cgr_status cgr_slot_address(const cgr_runtime *rt, cgr_slot slot, int set,
                            uint32_t padded_batch, void **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  cgr__capture *cap = NULL;
  const cgr__slot *s = NULL;
  CGR__CHECK(address_args(mutable_rt, slot, set, __func__, &cap, &s));
  if (s->desc.kind != CGR_SLOT_CONSTANT) {
    *out = s->buffers[set];
    return CGR_OK;
  }
  long index = cgr__bucket_index(cap, padded_batch);
  if (index < 0)
    return cgr__fail(&mutable_rt->error, CGR_E_INVALID_ARGUMENT, __func__,
                     "padded_batch %u is not a bucket (slot '%s' is "
                     "CONSTANT)",
                     padded_batch, s->name);
  *out = s->constant_buffers[(size_t)index * cap->token_count];
  return CGR_OK;
}

cgr_status cgr_slot_address_key(const cgr_runtime *rt, cgr_slot slot, int set,
                                const cgr_key *key, void **out) {
  if (out != NULL)
    *out = NULL;
  if (rt == NULL || out == NULL)
    return CGR_E_INVALID_ARGUMENT;
  cgr_runtime *mutable_rt = (cgr_runtime *)rt;
  cgr__capture *cap = NULL;
  const cgr__slot *s = NULL;
  CGR__CHECK(address_args(mutable_rt, slot, set, __func__, &cap, &s));
  size_t index = 0;
  CGR__CHECK(cgr__key_find(mutable_rt, cap, key, __func__, &index));
  *out = s->desc.kind == CGR_SLOT_CONSTANT
             ? s->constant_buffers[cgr__constant_index(cap, index)]
             : s->buffers[set];
  return CGR_OK;
}

cgr_status cgr__constant_upload(cgr_runtime *rt, const cgr__slot *slot,
                                const cgr_key *key, void *device) {
  uint64_t elems =
      cgr__constant_elems(slot, key->padded_batch, key->tokens_per_request);
  uint64_t bytes = elems * slot->desc.elem_size;
  if (bytes == 0)
    return CGR_OK;
  unsigned char *image = cgr__malloc(bytes);
  if (image == NULL)
    return cgr__fail(&rt->error, CGR_E_OUT_OF_MEMORY, __func__,
                     "slot '%s': a host image of %llu bytes", slot->name,
                     (unsigned long long)bytes);
  cgr_key constant_key = {key->padded_batch, key->tokens_per_request, 0};
  if (slot->desc.fill_key != NULL) {
    slot->desc.fill_key(slot->desc.fill_user, &constant_key, image, elems);
  } else if (slot->desc.fill != NULL) {
    slot->desc.fill(slot->desc.fill_user, key->padded_batch, image, elems);
  } else {
    /* arange: element i holds i (times q for a slot scaled by request:
     * cu_seqlens_q), in the slot's element width. */
    uint64_t step = slot->desc.scale == CGR_SCALE_TOKEN
                        ? 1
                        : (uint64_t)key->tokens_per_request;
    for (uint64_t i = 0; i < elems; ++i) {
      uint64_t value = i * step;
      memcpy(image + i * slot->desc.elem_size, &value, slot->desc.elem_size);
    }
  }
  cgr__stream *stream = rt->streams[CGR_STREAM_MAIN];
  cgr_status status =
      cgr__be_memcpy_async(&rt->backend, stream, device, image, bytes);
  if (status == CGR_OK)
    status = cgr__be_stream_synchronize(&rt->backend, stream);
  /* The copy reads the image until it has run, whatever the sync said. */
  cgr__be_stream_drain(&rt->backend, stream);
  cgr__free(image);
  return status;
}
