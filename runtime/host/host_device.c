/*
 * The host backend's devices: one per ordinal (cgr_config.device), shared
 * by every runtime on the host backend with that ordinal, as every runtime
 * of one GPU shares its CUDA context; runtimes of other ordinals (the ranks
 * of a group) have devices of their own, as GPUs do: a free waits only for
 * its own device, and a fault loses only its own device.
 *
 * It holds what CUDA keeps per device rather than per runtime: which
 * memory is device memory and which is page-locked (so validation can
 * refuse a pageable pointer passed as pinned, or a device range that runs
 * past its allocation, as a GPU would fault on them), and whether the
 * device is lost. A fault in one runtime loses the device for all of them,
 * as a sticky CUDA error loses the context of every lane and every library
 * in the process. The device lives while a runtime uses it; the next
 * runtime after the last one is destroyed gets a fresh one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/host/host.h"

/* A remembered allocation. */
typedef struct host_allocation {
  struct host_allocation *next;
  uintptr_t begin;
  uintptr_t end;
  cgr__memory_kind kind;
} host_allocation;

/* A runtime's context on the device, for waiting on all of its streams. */
typedef struct host_attached {
  struct host_attached *next;
  host_ctx *ctx;
} host_attached;

struct host_device {
  int refs; /* guarded by device_lock */
  int ordinal;
  /* The contexts attached: guarded by device_lock, which no worker thread
   * takes, so waiting for their streams under it cannot block a worker. */
  host_attached *attached;
  pthread_mutex_t lock;
  host_allocation *allocations;
  atomic_int faulted;
  char fault_reason[CGR__HOST_FAULT_REASON];
};

static pthread_mutex_t device_lock = PTHREAD_MUTEX_INITIALIZER;
static host_device *devices[CGR__HOST_MAX_DEVICES];

cgr_status cgr__host_device_acquire(host_ctx *ctx, cgr__error *err, int ordinal,
                                    host_device **out) {
  *out = NULL;
  if (ordinal < 0 || ordinal >= CGR__HOST_MAX_DEVICES)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr_runtime_create",
                     "config->device is %d: the host backend has devices 0 "
                     "to %d",
                     ordinal, CGR__HOST_MAX_DEVICES - 1);
  host_attached *attached = cgr__malloc(sizeof *attached);
  if (attached == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the host backend's device failed");
  attached->ctx = ctx;
  pthread_mutex_lock(&device_lock);
  if (devices[ordinal] == NULL) {
    host_device *device = cgr__calloc(1, sizeof *device);
    if (device == NULL) {
      pthread_mutex_unlock(&device_lock);
      cgr__free(attached);
      return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                       "allocating the host backend's device failed");
    }
    if (pthread_mutex_init(&device->lock, NULL) != 0) {
      cgr__free(device);
      pthread_mutex_unlock(&device_lock);
      cgr__free(attached);
      return cgr__fail(err, CGR_E_SYSTEM, __func__,
                       "pthread_mutex_init failed");
    }
    atomic_init(&device->faulted, 0);
    device->ordinal = ordinal;
    devices[ordinal] = device;
  }
  host_device *device = devices[ordinal];
  device->refs++;
  attached->next = device->attached;
  device->attached = attached;
  *out = device;
  pthread_mutex_unlock(&device_lock);
  return CGR_OK;
}

void cgr__host_device_release(host_device *device, host_ctx *ctx) {
  if (device == NULL)
    return;
  pthread_mutex_lock(&device_lock);
  for (host_attached **link = &device->attached; *link != NULL;
       link = &(*link)->next) {
    if ((*link)->ctx == ctx) {
      host_attached *gone = *link;
      *link = gone->next;
      cgr__free(gone);
      break;
    }
  }
  if (--device->refs > 0) {
    pthread_mutex_unlock(&device_lock);
    return;
  }
  devices[device->ordinal] = NULL;
  pthread_mutex_unlock(&device_lock);
  /* Allocations no runtime freed: their records go with the device (the
   * memory itself was the owner's to free). */
  while (device->allocations != NULL) {
    host_allocation *next = device->allocations->next;
    cgr__free(device->allocations);
    device->allocations = next;
  }
  pthread_mutex_destroy(&device->lock);
  cgr__free(device);
}

cgr_status cgr__host_device_remember(host_device *device, cgr__error *err,
                                     const void *ptr, size_t bytes,
                                     cgr__memory_kind kind) {
  host_allocation *record = cgr__malloc(sizeof *record);
  if (record == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating an allocation record failed");
  record->begin = (uintptr_t)ptr;
  record->end = record->begin + bytes;
  record->kind = kind;
  pthread_mutex_lock(&device->lock);
  record->next = device->allocations;
  device->allocations = record;
  pthread_mutex_unlock(&device->lock);
  return CGR_OK;
}

int cgr__host_device_forget(host_device *device, const void *ptr,
                            cgr__memory_kind kind) {
  host_allocation *found = NULL;
  pthread_mutex_lock(&device->lock);
  for (host_allocation **link = &device->allocations; *link != NULL;
       link = &(*link)->next) {
    if ((*link)->begin == (uintptr_t)ptr && (*link)->kind == kind) {
      found = *link;
      *link = found->next;
      break;
    }
  }
  pthread_mutex_unlock(&device->lock);
  cgr__free(found);
  return found != NULL;
}

cgr__memory_kind cgr__host_device_kind_of(host_device *device, const void *ptr,
                                          size_t bytes) {
  uintptr_t begin = (uintptr_t)ptr;
  cgr__memory_kind kind = CGR__MEMORY_OTHER;
  if (bytes == 0)
    bytes = 1;
  pthread_mutex_lock(&device->lock);
  for (const host_allocation *a = device->allocations; a != NULL; a = a->next) {
    /* The whole range in one allocation; bytes past its end would be an
     * illegal address on a GPU. */
    if (begin >= a->begin && begin < a->end && bytes <= a->end - begin) {
      kind = a->kind;
      break;
    }
  }
  pthread_mutex_unlock(&device->lock);
  return kind;
}

void cgr__host_device_fault(host_device *device, const char *reason) {
  /* The backends' checks before each call look from now on. */
  cgr__be_trouble_raise(CGR__TROUBLE_LOST);
  pthread_mutex_lock(&device->lock);
  if (!atomic_load_explicit(&device->faulted, memory_order_relaxed)) {
    snprintf(device->fault_reason, sizeof device->fault_reason, "%s", reason);
    atomic_store_explicit(&device->faulted, 1, memory_order_release);
  }
  pthread_mutex_unlock(&device->lock);
}

const _Atomic int *cgr__host_device_fault_flag(host_device *device) {
  return &device->faulted;
}

int cgr__host_device_faulted(host_device *device) {
  return atomic_load_explicit(&device->faulted, memory_order_acquire);
}

int cgr__host_device_fault_reason(host_device *device, char *reason,
                                  size_t size) {
  if (!cgr__host_device_faulted(device))
    return 0;
  pthread_mutex_lock(&device->lock);
  snprintf(reason, size, "%s", device->fault_reason);
  pthread_mutex_unlock(&device->lock);
  return 1;
}

/* Waits until the stream has run what was submitted to it so far. */
static void wait_for_stream(cgr__stream *stream) {
  pthread_mutex_lock(&stream->lock);
  uint64_t target = stream->submitted;
  while (stream->completed < target)
    pthread_cond_wait(&stream->work_done, &stream->lock);
  pthread_mutex_unlock(&stream->lock);
}

void cgr__host_device_wait_idle(host_device *device) {
  pthread_mutex_lock(&device_lock);
  for (host_attached *a = device->attached; a != NULL; a = a->next) {
    /* ctx->lock keeps the context's streams from being destroyed while
     * this waits; workers never take it. */
    pthread_mutex_lock(&a->ctx->lock);
    for (cgr__stream *stream = a->ctx->streams; stream != NULL;
         stream = stream->next)
      wait_for_stream(stream);
    pthread_mutex_unlock(&a->ctx->lock);
  }
  pthread_mutex_unlock(&device_lock);
}

/* ---- the backend table's memory entries -----------------------------------
 */

/* Device allocations are aligned like cudaMalloc's (256 bytes) and filled
 * with a pattern, so a step that reads memory nobody wrote gets garbage
 * here too rather than the zeros a fresh page would give. Both kinds are
 * remembered, so validation and the public free calls know what they are. */
enum { DEVICE_ALIGNMENT = 256, UNINITIALIZED_BYTE = 0xA5 };

static cgr_status aligned_allocation(host_ctx *ctx, size_t bytes, void **out,
                                     const char *what, const char *func) {
  CGR__CHECK(cgr__host_check_thread_not_capturing(ctx, what, func));
  size_t rounded =
      (bytes + DEVICE_ALIGNMENT - 1) / DEVICE_ALIGNMENT * DEVICE_ALIGNMENT;
  if (rounded < bytes)
    return cgr__fail(ctx->err, CGR_E_INVALID_ARGUMENT, func,
                     "argument 'bytes' (%zu) overflows when rounded up", bytes);
  void *memory = aligned_alloc(DEVICE_ALIGNMENT, rounded);
  if (memory == NULL)
    return cgr__fail(ctx->err, CGR_E_DEVICE_OUT_OF_MEMORY, func,
                     "%s: %zu bytes: aligned_alloc failed", what, bytes);
  memset(memory, UNINITIALIZED_BYTE, rounded);
  *out = memory;
  return CGR_OK;
}

cgr_status cgr__host_device_alloc(void *vctx, size_t bytes, void **out) {
  host_ctx *ctx = vctx;
  cgr_status status =
      aligned_allocation(ctx, bytes, out, "allocating device memory", __func__);
  if (status != CGR_OK)
    return status;
  status = cgr__host_device_remember(ctx->device, ctx->err, *out, bytes,
                                     CGR__MEMORY_DEVICE);
  if (status != CGR_OK) {
    free(*out);
    *out = NULL;
  }
  return status;
}

void cgr__host_device_free(void *vctx, void *ptr) {
  host_ctx *ctx = vctx;
  /* cudaFree waits for the whole device, every runtime's work on it: so
   * must this, or a test passes here that serializes lanes on a GPU. */
  cgr__host_device_wait_idle(ctx->device);
  /* Only what was allocated here is freed (cudaFree refuses the rest). */
  if (cgr__host_device_forget(ctx->device, ptr, CGR__MEMORY_DEVICE))
    free(ptr);
}

cgr_status cgr__host_memory_kind(void *vctx, const void *ptr, size_t bytes,
                                 cgr__memory_kind *out) {
  host_ctx *ctx = vctx;
  *out = cgr__host_device_kind_of(ctx->device, ptr, bytes);
  return CGR_OK;
}

cgr_status cgr__host_pinned_alloc(void *vctx, size_t bytes, void **out) {
  host_ctx *ctx = vctx;
  cgr_status status = aligned_allocation(vctx, bytes, out,
                                         "allocating pinned memory", __func__);
  /* Pinned allocation failing is host memory running out. */
  if (status != CGR_OK)
    return status == CGR_E_DEVICE_OUT_OF_MEMORY ? CGR_E_OUT_OF_MEMORY : status;
  status = cgr__host_device_remember(ctx->device, ctx->err, *out, bytes,
                                     CGR__MEMORY_PINNED);
  if (status != CGR_OK) {
    free(*out);
    *out = NULL;
  }
  return status;
}

void cgr__host_pinned_free(void *vctx, void *ptr) {
  host_ctx *ctx = vctx;
  if (cgr__host_device_forget(ctx->device, ptr, CGR__MEMORY_PINNED))
    free(ptr);
}
