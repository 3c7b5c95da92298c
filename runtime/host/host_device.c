/*
 * The host backend's device: one per process, shared by every runtime on
 * the host backend, as every runtime of one GPU shares its CUDA context.
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
  /* The contexts attached: guarded by device_lock, which no worker thread
   * takes, so waiting for their streams under it cannot block a worker. */
  host_attached *attached;
  pthread_mutex_t lock;
  host_allocation *allocations;
  atomic_int faulted;
  char fault_reason[CGR__HOST_FAULT_REASON];
};

static pthread_mutex_t device_lock = PTHREAD_MUTEX_INITIALIZER;
static host_device *the_device;

cgr_status cgr__host_device_acquire(host_ctx *ctx, cgr__error *err,
                                    host_device **out) {
  *out = NULL;
  host_attached *attached = cgr__malloc(sizeof *attached);
  if (attached == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the host backend's device failed");
  attached->ctx = ctx;
  pthread_mutex_lock(&device_lock);
  if (the_device == NULL) {
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
    the_device = device;
  }
  the_device->refs++;
  attached->next = the_device->attached;
  the_device->attached = attached;
  *out = the_device;
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
  the_device = NULL;
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
  pthread_mutex_lock(&device->lock);
  if (!atomic_load_explicit(&device->faulted, memory_order_relaxed)) {
    snprintf(device->fault_reason, sizeof device->fault_reason, "%s", reason);
    atomic_store_explicit(&device->faulted, 1, memory_order_release);
  }
  pthread_mutex_unlock(&device->lock);
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
