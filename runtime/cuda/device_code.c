/* Reading the build's CUDA architecture list (device_code.h). */
#include "runtime/cuda/device_code.h"

#include <stddef.h>
#include <string.h>

#ifndef CGR_CUDA_ARCHITECTURES
#error "CGR_CUDA_ARCHITECTURES (the build's CMAKE_CUDA_ARCHITECTURES) is unset"
#endif

static const char *architectures_for_test;

const char *cgr__cuda_architectures(void) {
  return architectures_for_test != NULL ? architectures_for_test
                                        : CGR_CUDA_ARCHITECTURES;
}

void cgr__cuda_set_architectures_for_test(const char *architectures) {
  architectures_for_test = architectures;
}

/* One entry of the list, read. */
typedef struct entry {
  int major;
  int minor;
  char variant; /* '\0', 'a' (this exact device) or 'f' (its family) */
  int sass;     /* machine code */
  int ptx;      /* PTX the driver compiles */
} entry;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads the entry [text, text + length): 1 when it is one, else 0. */
static int read_entry(const char *text, size_t length, entry *out) {
  size_t i = 0;
  int number = 0;
  while (i < length && is_digit(text[i]) && number < 1000)
    number = number * 10 + (text[i++] - '0');
  if (i == 0 || number < 10 || number >= 1000)
    return 0;
  out->major = number / 10;
  out->minor = number % 10;
  out->variant = '\0';
  if (i < length && (text[i] == 'a' || text[i] == 'f'))
    out->variant = text[i++];
  const char *rest = text + i;
  size_t rest_length = length - i;
  out->sass = out->ptx = 1;
  if (rest_length == 0)
    return 1;
  if (rest_length == 5 && memcmp(rest, "-real", 5) == 0) {
    out->ptx = 0;
    return 1;
  }
  if (rest_length == 8 && memcmp(rest, "-virtual", 8) == 0) {
    out->sass = 0;
    return 1;
  }
  return 0;
}

/* Whether the entry's code runs on major.minor. */
static int entry_fits(const entry *e, int major, int minor) {
  if (e->variant == 'a')
    return major == e->major && minor == e->minor;
  if (e->variant == 'f' || e->sass) {
    /* Machine code (and family code) runs within its major version. */
    if (major == e->major && minor >= e->minor)
      return 1;
  }
  if (e->variant == '\0' && e->ptx)
    return major > e->major || (major == e->major && minor >= e->minor);
  return 0;
}

static int is_separator(char c) { return c == ';' || c == ',' || c == ' '; }

int cgr__cuda_code_fits(const char *architectures, int major, int minor) {
  int entries = 0;
  int unreadable = 0;
  const char *p = architectures != NULL ? architectures : "";
  while (*p != '\0') {
    while (is_separator(*p))
      ++p;
    size_t length = 0;
    while (p[length] != '\0' && !is_separator(p[length]))
      ++length;
    if (length == 0)
      break;
    ++entries;
    entry e;
    if (!read_entry(p, length, &e))
      unreadable = 1;
    else if (entry_fits(&e, major, minor))
      return 1;
    p += length;
  }
  /* An empty list says nothing either. */
  return unreadable || entries == 0 ? -1 : 0;
}
