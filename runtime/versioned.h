/*
 * The one rule cgr reads every versioned struct by: cgr_config,
 * cgr_batcher_config and cgr_lanes_config (and any struct added later that
 * starts with `size_t size; uint32_t version;`), as NCCL reads its
 * ncclConfig_t and zstd its parameters.
 *
 * Each struct's *_config_init sets `size` and `version` from the header the
 * caller compiled against, and fields are only ever appended, one version
 * at a time. A struct handed to the library is then:
 *   - refused (CGR_E_VERSION) when `size` is larger than the struct this
 *     library knows: the caller was built against a newer header, and the
 *     fields past ours would be dropped without a word;
 *   - refused when `size` is too small to hold a version 1 struct, when
 *     `version` is 0 or newer than this library's, or when `size` is
 *     smaller than the fields of that version;
 *   - otherwise read: the fields of the caller's version, and of any newer
 *     version its size holds whole, over the defaults; every other field
 *     keeps its default.
 * Each refusal's message names the struct, the field (`size` or
 * `version`) and both numbers, the caller's and the library's.
 */
#ifndef CGR_RUNTIME_VERSIONED_H
#define CGR_RUNTIME_VERSIONED_H

#include <stddef.h>
#include <stdint.h>

#include "cgr/cgr.h"
#include "runtime/error.h"

/* What this library knows of one versioned struct. */
typedef struct cgr__versions {
  const char *type; /* "cgr_config": for messages */
  const char *init; /* "cgr_config_init": for messages */
  size_t size;      /* sizeof the struct, this library's layout */
  uint32_t latest;  /* versions 1 to latest are known */
  /* ends[v - 1]: the bytes version v's fields take (the end of its last
   * field), ascending; ends[latest - 1] <= size. */
  const size_t *ends;
} cgr__versions;

/* Where a field ends: the bytes a version whose last field it is takes. */
#define CGR__FIELD_END(type, field)                                            \
  (offsetof(type, field) + sizeof(((type *)0)->field))

/* Compile-time checks of a versioned struct: `size` and `version` lead, as
 * the reader expects, and `ends` (an array) has one entry per version. */
#define CGR__VERSIONED_STRUCT(type, ends, latest)                              \
  _Static_assert(offsetof(type, size) == 0, #type ": size leads");             \
  _Static_assert(offsetof(type, version) == sizeof(size_t),                    \
                 #type ": version follows size");                              \
  _Static_assert(sizeof(((type *)0)->version) == sizeof(uint32_t),             \
                 #type ": version is a uint32_t");                             \
  _Static_assert(sizeof(ends) / sizeof((ends)[0]) == (latest),                 \
                 #type ": one end per version")

/*
 * Reads the caller's struct `in` (named `name` in messages: "config",
 * "config->runtime") into `out`, which holds the defaults (its *_init ran),
 * by the rule above, and sets out's size and version to this library's.
 * CGR_E_VERSION with the message in err (NULL: this thread's create-error)
 * under `func`'s name; out is then unchanged past the defaults.
 */
cgr_status cgr__versioned_read(const cgr__versions *known, const void *in,
                               void *out, cgr__error *err, const char *func,
                               const char *name);

/* cgr_config's versions (runtime/config.c): cgr_lanes_config holds one. */
extern const cgr__versions cgr__config_versions;

#endif /* CGR_RUNTIME_VERSIONED_H */
