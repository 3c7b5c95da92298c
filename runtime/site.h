/*
 * A call site: the function that makes a call, and where it is.
 *
 * The dispatch wrappers (runtime/backend.h) and cgr's allocator
 * (runtime/alloc.h) take the caller's site through a macro of the
 * wrapper's own name, so no caller passes it by hand. Fault injection
 * counts calls per site (runtime/fault.h): "the 2nd copy that
 * run_naive makes" is the same copy in every run however threads
 * interleave, where "the 7th copy of the process" is not.
 */
#ifndef CGR_RUNTIME_SITE_H
#define CGR_RUNTIME_SITE_H

typedef struct cgr__site {
  const char *func; /* the calling function (__func__): the site's name */
  const char *file; /* __FILE__ and __LINE__ of the call, for messages */
  int line;
} cgr__site;

/* The site of the call this macro is an argument of. */
#define CGR__SITE ((cgr__site){__func__, __FILE__, __LINE__})

#endif /* CGR_RUNTIME_SITE_H */
