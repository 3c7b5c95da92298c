/*
 * The CUDA backend's rules that are pure data, tested without a GPU: the
 * one table of sticky errors that lose the device (runtime/cuda/
 * cuda_errors.h), checked against the CUDA headers' own words, and the
 * reading of the build's architecture list that refuses, at create, a
 * device the build has no code for (runtime/cuda/device_code.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "harness.h"
#include "runtime/cuda/cuda_errors.h"
#include "runtime/cuda/device_code.h"

static int in_table(int error) {
  for (size_t i = 0; i < cgr__cuda_sticky_error_count; ++i)
    if (cgr__cuda_sticky_errors[i].error == error)
      return 1;
  return 0;
}

static void test_every_sticky_error_loses_the_device(void **state) {
  (void)state;
  assert_true(cgr__cuda_sticky_error_count > 0);
  for (size_t i = 0; i < cgr__cuda_sticky_error_count; ++i) {
    const cgr__cuda_sticky_error *sticky = &cgr__cuda_sticky_errors[i];
    /* Whatever the call, and whatever it would report otherwise. */
    if (cgr__cuda_status_of(sticky->error, CGR_E_CUDA) != CGR_E_DEVICE_LOST ||
        cgr__cuda_status_of(sticky->error, CGR_E_CAPTURE) != CGR_E_DEVICE_LOST)
      fail_msg("%s (%d) does not map to CGR_E_DEVICE_LOST", sticky->name,
               sticky->error);
  }
}

static void test_errors_that_keep_the_device_do_not_lose_it(void **state) {
  (void)state;
  static const struct {
    cudaError_t error;
    cgr_status want;
  } cases[] = {
      {cudaSuccess, CGR_OK},
      {cudaErrorMemoryAllocation, CGR_E_DEVICE_OUT_OF_MEMORY},
      {cudaErrorInvalidValue, CGR_E_CUDA},
      {cudaErrorNotReady, CGR_E_NOT_READY},
      {cudaErrorStreamCaptureInvalidated, CGR_E_CAPTURE},
      {cudaErrorLaunchOutOfResources, CGR_E_CUDA},
      {cudaErrorNoKernelImageForDevice, CGR_E_CUDA},
      {cudaErrorSystemNotReady, CGR_E_CUDA},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    cgr_status got = cgr__cuda_status_of((int)cases[i].error, CGR_E_CUDA);
    if (got != cases[i].want)
      fail_msg("cudaError_t %d maps to %s, expected %s", (int)cases[i].error,
               cgr_status_name(got), cgr_status_name(cases[i].want));
    assert_false(cgr__cuda_error_is_sticky((int)cases[i].error));
  }
}

/* The table is the only way to CGR_E_DEVICE_LOST: no error outside it
 * maps there, so the list cannot drift from a second, hand-kept one. */
static void test_only_the_table_loses_the_device(void **state) {
  (void)state;
  for (int error = 0; error <= 1000; ++error) {
    int lost = cgr__cuda_status_of(error, CGR_E_CUDA) == CGR_E_DEVICE_LOST;
    if (lost != in_table(error) || lost != cgr__cuda_error_is_sticky(error))
      fail_msg("cudaError_t %d: lost %d, in the table %d, sticky %d", error,
               lost, in_table(error), cgr__cuda_error_is_sticky(error));
  }
}

/* ---- the table against the CUDA headers ------------------------------ */

/* The errors the table holds beyond what the headers document. */
#define CGR_TEST_CONSERVATIVE_(name) name,
static const int conservative_errors[] = {
    CGR__CUDA_CONSERVATIVE_STICKY_ERRORS(CGR_TEST_CONSERVATIVE_)};
#undef CGR_TEST_CONSERVATIVE_
enum {
  CONSERVATIVE_COUNT =
      sizeof conservative_errors / sizeof conservative_errors[0]
};

static int conservative(int error) {
  for (size_t i = 0; i < CONSERVATIVE_COUNT; ++i)
    if (conservative_errors[i] == error)
      return 1;
  return 0;
}

/* The four the issue names lose the device: ECC and NVLink uncorrectable,
 * unknown, devices unavailable (issue 17, item 4). */
static void test_doubtful_hardware_errors_lose_the_device(void **state) {
  (void)state;
  const int doubtful[] = {cudaErrorECCUncorrectable,
                          cudaErrorNvlinkUncorrectable, cudaErrorUnknown,
                          cudaErrorDevicesUnavailable, cudaErrorContained};
  for (size_t i = 0; i < sizeof doubtful / sizeof doubtful[0]; ++i)
    if (cgr__cuda_status_of(doubtful[i], CGR_E_CUDA) != CGR_E_DEVICE_LOST)
      fail_msg("cudaError_t %d does not lose the device", doubtful[i]);
}

#ifndef CGR_TEST_CUDA_INCLUDE_DIRS
#define CGR_TEST_CUDA_INCLUDE_DIRS ""
#endif

/* driver_types.h of the toolkit the build used (its include folders are
 * separated by ':'), whole, or NULL. */
static char *read_driver_types(char *path, size_t path_size) {
  const char *dirs = CGR_TEST_CUDA_INCLUDE_DIRS;
  while (*dirs != '\0') {
    size_t length = strcspn(dirs, ":");
    snprintf(path, path_size, "%.*s/driver_types.h", (int)length, dirs);
    FILE *file = fopen(path, "rb");
    if (file != NULL) {
      char *text = NULL;
      long size = -1;
      if (fseek(file, 0, SEEK_END) == 0)
        size = ftell(file);
      if (size > 0 && fseek(file, 0, SEEK_SET) == 0 &&
          (text = malloc((size_t)size + 1)) != NULL) {
        size_t got = fread(text, 1, (size_t)size, file);
        text[got] = '\0';
      }
      fclose(file);
      return text;
    }
    dirs += length;
    if (*dirs == ':')
      ++dirs;
  }
  return NULL;
}

/* The comment's words with the " * " of each line and runs of white space
 * squeezed to one space, in place. */
static void squeeze(char *text) {
  char *out = text;
  int space = 0;
  for (const char *in = text; *in != '\0'; ++in) {
    char c = *in;
    if (c == '*' || c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = 1;
      continue;
    }
    if (space && out != text)
      *out++ = ' ';
    space = 0;
    *out++ = c;
  }
  *out = '\0';
}

/*
 * Every enumerator of cudaError whose comment says the process must be
 * terminated and relaunched is in the table, and every entry of the table
 * is one of them: a CUDA release that documents a new sticky error fails
 * this test until the table lists it.
 */
static void test_table_is_what_the_cuda_headers_document(void **state) {
  (void)state;
  char path[4096];
  char *text = read_driver_types(path, sizeof path);
  if (text == NULL) {
    cgr_test_skip("the CUDA toolkit's driver_types.h is not readable here");
    return;
  }
  char *enum_start = strstr(text, "enum __device_builtin__ cudaError");
  assert_non_null(enum_start);
  char *enum_end = strstr(enum_start, "};");
  assert_non_null(enum_end);
  *enum_end = '\0';

  size_t documented = 0;
  char *cursor = enum_start;
  for (;;) {
    char *comment = strstr(cursor, "/**");
    if (comment == NULL)
      break;
    char *comment_end = strstr(comment, "*/");
    assert_non_null(comment_end);
    *comment_end = '\0';
    /* The enumerator the comment documents: "cudaErrorName = value,"
     * (the last one, cudaErrorApiFailureBase, with its comma first). */
    char name[96];
    int value = 0;
    const char *enumerator = comment_end + 2;
    enumerator += strspn(enumerator, " \t\r\n,");
    if (sscanf(enumerator, "%95[A-Za-z0-9_] = %d", name, &value) != 2)
      fail_msg("no enumerator after a comment in %s", path);
    squeeze(comment + 3);
    int sticky = strstr(comment, "must be terminated and relaunched") != NULL;
    if (sticky) {
      ++documented;
      if (!in_table(value))
        fail_msg("%s (%d) is documented as losing the process's CUDA but "
                 "is not in CGR__CUDA_STICKY_ERRORS",
                 name, value);
    } else if (in_table(value) && !conservative(value)) {
      fail_msg("%s (%d) is in CGR__CUDA_STICKY_ERRORS but %s does not "
               "document it as losing the process's CUDA",
               name, value, path);
    }
    cursor = comment_end + 2;
  }
  free(text);
  assert_int_equal(documented + CONSERVATIVE_COUNT,
                   cgr__cuda_sticky_error_count);
}

/* ---- architecture lists ---------------------------------------------- */

static void test_architecture_lists_say_which_devices_run_them(void **state) {
  (void)state;
  static const struct {
    const char *list;
    int major, minor;
    int want;
  } cases[] = {
      /* sm_90 code and compute_90 PTX: 9.x, and later through the JIT. */
      {"90", 9, 0, 1},
      {"90", 10, 0, 1},
      {"90", 12, 0, 1},
      {"90", 8, 9, 0},
      {"90", 8, 0, 0},
      /* Machine code runs within its major version, at its minor or up. */
      {"90-real", 9, 0, 1},
      {"90-real", 10, 0, 0},
      {"80-real", 8, 6, 1},
      {"86-real", 8, 0, 0},
      /* PTX alone: its version and newer. */
      {"90-virtual", 9, 0, 1},
      {"90-virtual", 12, 1, 1},
      {"90-virtual", 8, 9, 0},
      /* Arch-specific code runs on that very version only; family code
       * on its family. */
      {"90a-real", 9, 0, 1},
      {"90a", 10, 0, 0},
      {"100f-real", 10, 3, 1},
      {"103f-real", 10, 0, 0},
      {"100f-real", 12, 0, 0},
      /* Lists, with CMake's ';' or the ',' the build passes. */
      {"80-real;90-real", 9, 0, 1},
      {"80-real,90-real", 8, 9, 1},
      {"75-real,80-real", 9, 0, 0},
      {"75,80,86,89,90,100,120", 12, 1, 1},
      {"120", 12, 0, 1},
      {"120", 10, 0, 0},
      /* What cannot be read leaves the answer to CUDA, unless another
       * entry already runs. */
      {"native", 9, 0, -1},
      {"native;90", 9, 0, 1},
      {"native;90-real", 12, 0, -1},
      {"90-bogus", 9, 0, -1},
      {"", 9, 0, -1},
      {";,", 9, 0, -1},
      {NULL, 9, 0, -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    int got =
        cgr__cuda_code_fits(cases[i].list, cases[i].major, cases[i].minor);
    if (got != cases[i].want)
      fail_msg("\"%s\" on compute capability %d.%d: %d, expected %d",
               cases[i].list ? cases[i].list : "(null)", cases[i].major,
               cases[i].minor, got, cases[i].want);
  }
}

/* The build's CMAKE_CUDA_ARCHITECTURES reached the code and reads: no
 * entry runs on compute capability 1.0, so 0 (not -1) says every entry
 * was understood. */
static void test_build_architectures_are_readable(void **state) {
  (void)state;
  const char *architectures = cgr__cuda_architectures();
  assert_non_null(architectures);
  printf("this build's CUDA architectures: %s\n", architectures);
  if (cgr__cuda_code_fits(architectures, 1, 0) != 0)
    fail_msg("the probe cannot read the build's CUDA architectures \"%s\"",
             architectures);
  cgr__cuda_set_architectures_for_test("10-real");
  assert_string_equal(cgr__cuda_architectures(), "10-real");
  cgr__cuda_set_architectures_for_test(NULL);
  assert_string_equal(cgr__cuda_architectures(), architectures);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_sticky_error_loses_the_device),
    cmocka_unit_test(test_errors_that_keep_the_device_do_not_lose_it),
    cmocka_unit_test(test_only_the_table_loses_the_device),
    cmocka_unit_test(test_doubtful_hardware_errors_lose_the_device),
    cmocka_unit_test(test_table_is_what_the_cuda_headers_document),
    cmocka_unit_test(test_architecture_lists_say_which_devices_run_them),
    cmocka_unit_test(test_build_architectures_are_readable),
};

CGR_TEST_MAIN(tests)
