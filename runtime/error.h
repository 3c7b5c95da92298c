/*
 * Error reporting: a message per runtime, never a process-wide buffer.
 *
 * Every failure path writes one message that names the function, the bad
 * argument or the failing CUDA call, and (for CUDA) the error string; the raw
 * cudaError_t is kept beside it. The check macros propagate a status and
 * never abort.
 */
#ifndef CGR_RUNTIME_ERROR_H
#define CGR_RUNTIME_ERROR_H

#include <pthread.h>
#include <stddef.h>

#include "cgr/cgr.h"

#define CGR__ERROR_MESSAGE_SIZE 512

/* A refusal's path, with its checks and messages, kept out of line so
 * the step's path around it stays a leaf (issue 23's budget). */
#if defined(__GNUC__) || defined(__clang__)
#define CGR__COLD __attribute__((noinline, cold))
#else
#define CGR__COLD
#endif
/* A step-path helper kept out of line, so that the loop calling it for
 * its rarer cases keeps its registers. */
#if defined(__GNUC__) || defined(__clang__)
#define CGR__NOINLINE __attribute__((noinline))
#else
#define CGR__NOINLINE
#endif
/* A step-path helper inlined wherever it is called, even where the
 * compiler would keep one copy out of line (a call per slot costs more
 * than the copies' size). */
#if defined(__GNUC__) || defined(__clang__)
#define CGR__HOT_INLINE inline __attribute__((always_inline))
#else
#define CGR__HOT_INLINE inline
#endif

typedef struct cgr__error {
  pthread_mutex_t lock; /* several threads may fail on one runtime */
  char message[CGR__ERROR_MESSAGE_SIZE];
  int cuda_error; /* raw cudaError_t of the last CUDA failure, else 0 */
} cgr__error;

cgr_status cgr__error_init(cgr__error *err);
void cgr__error_fini(cgr__error *err);

/* Records "func: <formatted>" and returns status, so callers can write
 * `return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__, "...", ...)`.
 * err may be NULL: the message then goes to this thread's create-error. */
cgr_status cgr__fail(cgr__error *err, cgr_status status, const char *func,
                     const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* As cgr__fail, and keeps cuda_error as the raw CUDA error. */
cgr_status cgr__fail_cuda(cgr__error *err, cgr_status status, int cuda_error,
                          const char *func, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

/* Clears the message and the CUDA error. */
void cgr__error_clear(cgr__error *err);

/* Copies err's message and CUDA error into this thread's create-error slot
 * (read with cgr_last_error(NULL)). */
void cgr__error_publish_thread(const cgr__error *err);

/* This thread's create-error slot. */
const char *cgr__thread_error_message(void);
int cgr__thread_error_cuda(void);

/* Returns argument `name` is NULL: a status with a message, never a crash. */
#define CGR__CHECK_ARG(err, cond, name)                                        \
  do {                                                                         \
    if (!(cond))                                                               \
      return cgr__fail((err), CGR_E_INVALID_ARGUMENT, __func__,                \
                       "invalid argument '%s'", (name));                       \
  } while (0)

/* Propagates a failed status to the caller. */
#define CGR__CHECK(call)                                                       \
  do {                                                                         \
    cgr_status cgr__check_status_ = (call);                                    \
    if (cgr__check_status_ != CGR_OK)                                          \
      return cgr__check_status_;                                               \
  } while (0)

/* Stores a failed status in `status` and jumps to `label` (one cleanup path
 * per function). */
#define CGR__CHECK_GOTO(call, status, label)                                   \
  do {                                                                         \
    (status) = (call);                                                         \
    if ((status) != CGR_OK)                                                    \
      goto label;                                                              \
  } while (0)

#endif /* CGR_RUNTIME_ERROR_H */
