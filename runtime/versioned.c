#include "runtime/versioned.h"

#include <assert.h>
#include <string.h>

/* Where every versioned struct keeps its size and version. */
typedef struct versioned_head {
  size_t size;
  uint32_t version;
} versioned_head;

cgr_status cgr__versioned_read(const cgr__versions *known, const void *in,
                               void *out, cgr__error *err, const char *func,
                               const char *name) {
  assert(known->latest >= 1 && known->ends[known->latest - 1] <= known->size);
  /* Read through memcpy: `in` is a cgr_config or a cgr_lanes_config, never
   * a versioned_head. */
  size_t size;
  memcpy(&size, (const char *)in + offsetof(versioned_head, size), sizeof size);
  if (size > known->size)
    return cgr__fail(err, CGR_E_VERSION, func,
                     "%s->size is %zu, larger than the %s this library knows "
                     "(%zu bytes, version %u): was the caller built against "
                     "a newer cgr header? Build it against this library's, "
                     "and fill the struct with %s()",
                     name, size, known->type, known->size, known->latest,
                     known->init);
  if (size < known->ends[0])
    return cgr__fail(err, CGR_E_VERSION, func,
                     "%s->size is %zu, smaller than any %s (version 1 takes "
                     "%zu bytes): was it filled by %s()?",
                     name, size, known->type, known->ends[0], known->init);
  uint32_t version;
  memcpy(&version, (const char *)in + offsetof(versioned_head, version),
         sizeof version);
  if (version == 0 || version > known->latest)
    return cgr__fail(err, CGR_E_VERSION, func,
                     "%s->version is %u; this library knows %s versions 1 to "
                     "%u: was it filled by %s()?",
                     name, version, known->type, known->latest, known->init);
  if (size < known->ends[version - 1])
    return cgr__fail(err, CGR_E_VERSION, func,
                     "%s->size is %zu, too small for %s version %u (%zu "
                     "bytes): was it filled by %s()?",
                     name, size, known->type, version, known->ends[version - 1],
                     known->init);

  /* The caller's version's fields, and those of any newer version its size
   * holds whole; a field cut by the size is not read. */
  size_t covered = known->ends[version - 1];
  for (uint32_t v = version; v < known->latest; ++v)
    if (known->ends[v] <= size)
      covered = known->ends[v];
  memcpy(out, in, covered);
  const versioned_head head = {known->size, known->latest};
  memcpy((char *)out + offsetof(versioned_head, size), &head.size,
         sizeof head.size);
  memcpy((char *)out + offsetof(versioned_head, version), &head.version,
         sizeof head.version);
  return CGR_OK;
}
