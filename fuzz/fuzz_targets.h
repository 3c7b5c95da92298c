/*
 * The fuzz targets' decoders, shared by the libFuzzer binaries (fuzz/, built
 * with CGR_BUILD_FUZZ and clang) and by tests/fuzz_regressions.c, which
 * replays the seed corpus and every crash ever found through the same code
 * on every test run, with any compiler.
 *
 * Each decoder turns arbitrary bytes into a sequence of cgr calls, checks
 * every returned status against the documented ones and every result
 * against a plain model of what the header promises, and traps
 * (FUZZ_CHECK) on the first difference: libFuzzer reports a trap as a
 * crash, and so does CTest. Plain C11, plus __builtin_trap and the format
 * attribute that gcc and clang both have, so the test builds without
 * clang.
 */
#ifndef CGR_FUZZ_FUZZ_TARGETS_H
#define CGR_FUZZ_FUZZ_TARGETS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cgr/cgr.h"

/* One input each; always 0 (libFuzzer's convention), or a trap. */
int fuzz_copy_plan_one(const uint8_t *data, size_t size);
int fuzz_slots_buckets_one(const uint8_t *data, size_t size);
int fuzz_batch_one(const uint8_t *data, size_t size);

/* The targets keep a host runtime between inputs (creating one per input
 * would dominate the run time); these destroy them, so a test that
 * replays inputs ends with nothing allocated. The next input makes a new
 * one. */
void fuzz_copy_plan_release(void);
void fuzz_batch_release(void);

#ifdef CGR_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

/*
 * Known bugs, found by fuzzing and not fixed yet, get a switch here
 * (FUZZ_KNOWN_BUG_<NAME>, 1 while open): the decoders steer around it so
 * a short fuzz run (CI) stays green, and its regression test in
 * tests/fuzz_regressions.c skips. None is open now.
 */

/* An invariant of the library: a violation is a bug, reported as a crash
 * with the condition and where it was checked. */
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,          \
              __LINE__, #cond);                                                \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

/* As FUZZ_CHECK for a status, printing the library's own message. */
#define FUZZ_CHECK_STATUS(rt, got, want)                                       \
  do {                                                                         \
    cgr_status fuzz_got_ = (got), fuzz_want_ = (want);                         \
    if (fuzz_got_ != fuzz_want_) {                                             \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__,   \
              __LINE__, #got, cgr_status_name(fuzz_got_),                      \
              cgr_status_name(fuzz_want_), cgr_last_error(rt));                \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

/* With CGR_FUZZ_TRACE set in the environment, each decoder prints the
 * calls an input makes and what they returned: how to read a crash input
 * (fuzz/README.md). */
static inline void fuzz_trace(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

static inline void fuzz_trace(const char *format, ...) {
  static int enabled = -1;
  if (enabled < 0)
    enabled = getenv("CGR_FUZZ_TRACE") != NULL;
  if (!enabled)
    return;
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
}

/* ---- reading the input ------------------------------------------------- */

/* The input as a stream of little-endian integers; past its end every
 * read is 0, so any input decodes to a finite, valid call sequence. */
typedef struct fuzz_reader {
  const uint8_t *data;
  size_t size;
  size_t at;
} fuzz_reader;

static inline fuzz_reader fuzz_reader_make(const uint8_t *data, size_t size) {
  fuzz_reader reader = {data, size, 0};
  return reader;
}

static inline int fuzz_more(const fuzz_reader *reader) {
  return reader->at < reader->size;
}

static inline uint8_t fuzz_u8(fuzz_reader *reader) {
  return reader->at < reader->size ? reader->data[reader->at++] : 0;
}

static inline uint16_t fuzz_u16(fuzz_reader *reader) {
  uint16_t low = fuzz_u8(reader);
  return (uint16_t)(low | (uint16_t)fuzz_u8(reader) << 8);
}

static inline uint32_t fuzz_u32(fuzz_reader *reader) {
  uint32_t low = fuzz_u16(reader);
  return low | (uint32_t)fuzz_u16(reader) << 16;
}

static inline uint64_t fuzz_u64(fuzz_reader *reader) {
  uint64_t low = fuzz_u32(reader);
  return low | (uint64_t)fuzz_u32(reader) << 32;
}

/* A value in [0, bound) from one byte (bound <= 256) or two. */
static inline uint32_t fuzz_below(fuzz_reader *reader, uint32_t bound) {
  if (bound == 0)
    return 0;
  return bound <= 256 ? fuzz_u8(reader) % bound : fuzz_u16(reader) % bound;
}

#endif /* CGR_FUZZ_FUZZ_TARGETS_H */
