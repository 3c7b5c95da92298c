#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The message of this thread's last failed cgr_runtime_create(): there is no
 * runtime yet to hold it. Thread-local, so no thread sees another's. */
static _Thread_local char thread_message[CGR__ERROR_MESSAGE_SIZE];
static _Thread_local int thread_cuda_error;

cgr_status cgr__error_init(cgr__error *err) {
  memset(err->message, 0, sizeof err->message);
  err->cuda_error = 0;
  if (pthread_mutex_init(&err->lock, NULL) != 0)
    return CGR_E_SYSTEM;
  return CGR_OK;
}

void cgr__error_fini(cgr__error *err) { pthread_mutex_destroy(&err->lock); }

/* Writes "func: message" into buffer, cutting the message to fit. */
static void format_message(char *buffer, size_t size, const char *func,
                           const char *format, va_list args) {
  int prefix = snprintf(buffer, size, "%s: ", func);
  if (prefix < 0 || (size_t)prefix >= size)
    return;
  vsnprintf(buffer + prefix, size - (size_t)prefix, format, args);
}

static void record(cgr__error *err, int cuda_error, const char *func,
                   const char *format, va_list args) {
  if (err == NULL) {
    format_message(thread_message, sizeof thread_message, func, format, args);
    thread_cuda_error = cuda_error;
    return;
  }
  pthread_mutex_lock(&err->lock);
  format_message(err->message, sizeof err->message, func, format, args);
  err->cuda_error = cuda_error;
  pthread_mutex_unlock(&err->lock);
}

cgr_status cgr__fail(cgr__error *err, cgr_status status, const char *func,
                     const char *format, ...) {
  va_list args;
  va_start(args, format);
  record(err, 0, func, format, args);
  va_end(args);
  return status;
}

cgr_status cgr__fail_cuda(cgr__error *err, cgr_status status, int cuda_error,
                          const char *func, const char *format, ...) {
  va_list args;
  va_start(args, format);
  record(err, cuda_error, func, format, args);
  va_end(args);
  return status;
}

void cgr__error_clear(cgr__error *err) {
  pthread_mutex_lock(&err->lock);
  err->message[0] = '\0';
  err->cuda_error = 0;
  pthread_mutex_unlock(&err->lock);
}

void cgr__error_publish_thread(const cgr__error *err) {
  memcpy(thread_message, err->message, sizeof thread_message);
  thread_message[sizeof thread_message - 1] = '\0';
  thread_cuda_error = err->cuda_error;
}

const char *cgr__thread_error_message(void) { return thread_message; }
int cgr__thread_error_cuda(void) { return thread_cuda_error; }
