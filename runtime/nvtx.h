/*
 * NVTX in cgr's own domain ("cgr"), with registered strings so a range costs
 * no string hashing. With CGR_WITH_NVTX=OFF everything here compiles to
 * nothing; with it on and no tool attached, a range costs one load.
 */
#ifndef CGR_RUNTIME_NVTX_H
#define CGR_RUNTIME_NVTX_H

#include <stdatomic.h>
#include <stdint.h>

/* X(NAME, message shown on the timeline) */
#define CGR__NVTX_RANGE_LIST(X)                                                \
  X(CREATE, "cgr create")                                                      \
  X(CAPTURE, "cgr capture")                                                    \
  X(INSTANTIATE, "cgr instantiate")                                            \
  X(PREPARE, "cgr prepare")                                                    \
  X(REPLAY, "cgr replay")                                                      \
  X(EAGER, "cgr eager step")                                                   \
  X(BATCH_COLLECT, "cgr batch collect")                                        \
  X(BATCH_RUN, "cgr batch run")                                                \
  X(WAIT, "cgr wait")

/* The X-macro expansion confuses clang-format's indentation here. */
/* clang-format off */
typedef enum cgr__nvtx_range {
#define CGR__NVTX_ENUM_(name, message) CGR__NVTX_##name,
  CGR__NVTX_RANGE_LIST(CGR__NVTX_ENUM_)
#undef CGR__NVTX_ENUM_
  CGR__NVTX_RANGE_COUNT
} cgr__nvtx_range;
/* clang-format on */

#ifdef CGR_HAVE_NVTX
/* Push a range with a 64-bit payload (the batch or bucket size). */
void cgr__nvtx_push(cgr__nvtx_range range, uint64_t payload);
void cgr__nvtx_pop(void);
/* Names the calling OS thread on the timeline. */
void cgr__nvtx_name_thread(const char *name);
/* Names a cudaStream_t (passed as void *); no-op in a build without CUDA. */
void cgr__nvtx_name_cuda_stream(void *cuda_stream, const char *name);
/* 1 when a tool that records NVTX ranges is attached: Nsight Systems and
 * Nsight Compute load theirs through NVTX_INJECTION64_PATH. With none,
 * NVTX's calls do nothing, so cgr skips them and their setup (a pthread
 * once, the attributes) on the step's path: one load (issue 23). */
extern _Atomic int cgr__nvtx_tool_; /* -1 until looked up */
int cgr__nvtx_detect(void);
static inline int cgr__nvtx_live(void) {
  int tool = atomic_load_explicit(&cgr__nvtx_tool_, memory_order_relaxed);
  return tool >= 0 ? tool : cgr__nvtx_detect();
}
#define CGR__NVTX_PUSH(enabled, range, payload)                                \
  do {                                                                         \
    if ((enabled) && cgr__nvtx_live())                                         \
      cgr__nvtx_push((range), (uint64_t)(payload));                            \
  } while (0)
#define CGR__NVTX_POP(enabled)                                                 \
  do {                                                                         \
    if ((enabled) && cgr__nvtx_live())                                         \
      cgr__nvtx_pop();                                                         \
  } while (0)
#else
#define cgr__nvtx_name_thread(name) ((void)(name))
#define cgr__nvtx_name_cuda_stream(stream, name) ((void)(stream), (void)(name))
#define CGR__NVTX_PUSH(enabled, range, payload) ((void)(enabled))
#define CGR__NVTX_POP(enabled) ((void)(enabled))
#endif

#endif /* CGR_RUNTIME_NVTX_H */
