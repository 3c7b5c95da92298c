#include "runtime/alloc.h"

#include <stdlib.h>

#include "runtime/fault.h"

void *cgr__calloc(size_t count, size_t size) {
  if (cgr__fault_hit(CGR__CALL_HOST_ALLOC))
    return NULL;
  return calloc(count, size);
}

void *cgr__malloc(size_t size) {
  if (cgr__fault_hit(CGR__CALL_HOST_ALLOC))
    return NULL;
  return malloc(size);
}

void cgr__free(void *ptr) { free(ptr); }
