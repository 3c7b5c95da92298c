/* Statuses: pinned values, names and messages generated from one list. */
#include <string.h>

#include "harness.h"

static void test_status_values_are_pinned(void **state) {
  (void)state;
  /* These numbers are ABI: a change here breaks every caller compiled
   * against an older header. */
  assert_int_equal(CGR_OK, 0);
  assert_int_equal(CGR_E_INVALID_ARGUMENT, -1);
  assert_int_equal(CGR_E_INVALID_STATE, -2);
  assert_int_equal(CGR_E_OUT_OF_MEMORY, -3);
  assert_int_equal(CGR_E_DEVICE_OUT_OF_MEMORY, -4);
  assert_int_equal(CGR_E_NO_DEVICE, -5);
  assert_int_equal(CGR_E_CUDA, -6);
  assert_int_equal(CGR_E_CAPTURE, -7);
  assert_int_equal(CGR_E_UNSUPPORTED, -8);
  assert_int_equal(CGR_E_VERSION, -9);
  assert_int_equal(CGR_E_SYSTEM, -10);
  assert_int_equal(CGR_E_BATCH_TOO_LARGE, -11);
  assert_int_equal(CGR_E_BUSY, -12);
  assert_int_equal(CGR_E_TIMEOUT, -13);
  assert_int_equal(CGR_E_NOT_READY, -14);
  assert_int_equal(CGR_E_INTERNAL, -15);
}

static void test_status_names_round_trip(void **state) {
  (void)state;
#define CHECK_NAME(name, value, message)                                       \
  assert_string_equal(cgr_status_name(CGR_##name), "CGR_" #name);              \
  assert_string_equal(cgr_status_str(CGR_##name), message);
  CGR_STATUS_LIST(CHECK_NAME)
#undef CHECK_NAME
}

static void test_status_values_and_messages_are_unique(void **state) {
  (void)state;
  static const int values[] = {
#define VALUE(name, value, message) value,
      CGR_STATUS_LIST(VALUE)
#undef VALUE
  };
  static const char *const messages[] = {
#define MESSAGE(name, value, message) message,
      CGR_STATUS_LIST(MESSAGE)
#undef MESSAGE
  };
  size_t count = sizeof values / sizeof values[0];
  assert_true(count >= 15);
  for (size_t i = 0; i < count; ++i) {
    if (i > 0)
      assert_true(values[i] < 0); /* every error is negative */
    assert_true(strlen(messages[i]) > 0);
    for (size_t j = i + 1; j < count; ++j) {
      assert_int_not_equal(values[i], values[j]);
      assert_string_not_equal(messages[i], messages[j]);
    }
  }
}

static void test_unknown_status_has_a_name(void **state) {
  (void)state;
  assert_string_equal(cgr_status_name((cgr_status)-9999), "CGR_E_UNKNOWN");
  assert_string_equal(cgr_status_str((cgr_status)12345), "unknown status");
}

static void test_version_matches_header(void **state) {
  (void)state;
  assert_string_equal(cgr_version_string(), CGR_VERSION_STRING);
  assert_int_equal(cgr_version_number(), CGR_VERSION_NUMBER);
  assert_int_equal(CGR_VERSION_NUMBER, CGR_VERSION_MAJOR * 10000 +
                                           CGR_VERSION_MINOR * 100 +
                                           CGR_VERSION_PATCH);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_status_values_are_pinned),
    cmocka_unit_test(test_status_names_round_trip),
    cmocka_unit_test(test_status_values_and_messages_are_unique),
    cmocka_unit_test(test_unknown_status_has_a_name),
    cmocka_unit_test(test_version_matches_header),
};

CGR_TEST_MAIN(tests)
