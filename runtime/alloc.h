/*
 * Host memory for cgr's own objects. Every allocation goes through here so
 * fault injection (CGR__CALL_HOST_ALLOC) can fail any of them.
 */
#ifndef CGR_RUNTIME_ALLOC_H
#define CGR_RUNTIME_ALLOC_H

#include <stddef.h>

/* calloc that fault injection can fail; NULL on failure. */
void *cgr__calloc(size_t count, size_t size);
/* malloc that fault injection can fail; NULL on failure. */
void *cgr__malloc(size_t size);
/* free; NULL-safe. */
void cgr__free(void *ptr);

#endif /* CGR_RUNTIME_ALLOC_H */
