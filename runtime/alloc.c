#include "runtime/alloc.h"

#include <stdlib.h>

#include "runtime/fault.h"

void *cgr__calloc_at(cgr__site site, size_t count, size_t size) {
  if (!cgr__fault_idle() && cgr__fault_hit_at(CGR__CALL_HOST_ALLOC, site))
    return NULL;
  return calloc(count, size);
}

void *cgr__malloc_at(cgr__site site, size_t size) {
  if (!cgr__fault_idle() && cgr__fault_hit_at(CGR__CALL_HOST_ALLOC, site))
    return NULL;
  return malloc(size);
}

void cgr__free(void *ptr) { free(ptr); }
