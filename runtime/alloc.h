/*
 * Host memory for cgr's own objects. Every allocation goes through here so
 * fault injection (CGR__CALL_HOST_ALLOC) can fail any of them; the macros
 * pass the caller's site (runtime/site.h), so it counts each calling
 * function's allocations apart.
 */
#ifndef CGR_RUNTIME_ALLOC_H
#define CGR_RUNTIME_ALLOC_H

#include <stddef.h>

#include "runtime/site.h"

/* calloc that fault injection can fail; NULL on failure. */
void *cgr__calloc_at(cgr__site site, size_t count, size_t size);
#define cgr__calloc(count, size) cgr__calloc_at(CGR__SITE, (count), (size))
/* malloc that fault injection can fail; NULL on failure. */
void *cgr__malloc_at(cgr__site site, size_t size);
#define cgr__malloc(size) cgr__malloc_at(CGR__SITE, (size))
/* free; NULL-safe. */
void cgr__free(void *ptr);

#endif /* CGR_RUNTIME_ALLOC_H */
