/* Config defaults, older config sizes, validation, environment overrides,
 * and the backend AUTO picks. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void test_config_init_fills_defaults(void **state) {
  (void)state;
  cgr_config config;
  memset(&config, 0x5A, sizeof config);
  assert_int_equal(cgr_config_init(&config), CGR_OK);
  assert_int_equal(config.size, sizeof config);
  assert_int_equal(config.version, CGR_CONFIG_VERSION);
  assert_int_equal(config.backend, CGR_BACKEND_AUTO);
  assert_int_equal(config.device, 0);
  assert_int_equal(config.main_stream_priority, CGR_PRIORITY_HIGH);
  assert_int_equal(config.side_stream_priority, CGR_PRIORITY_NORMAL);
  assert_int_equal(config.nvtx, 1);
  assert_int_equal(config.validate, 0);
}

static void test_config_init_rejects_null(void **state) {
  (void)state;
  assert_int_equal(cgr_config_init(NULL), CGR_E_INVALID_ARGUMENT);
}

static void test_null_config_means_defaults_and_auto(void **state) {
  (void)state;
  char why[256];
  int cuda_usable = cgr__cuda_probe(0, why, sizeof why) == CGR_OK;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(NULL, &rt));
  assert_non_null(rt);
  assert_int_equal(rt->config.nvtx, 1);
  assert_int_equal(rt->config.main_stream_priority, CGR_PRIORITY_HIGH);
  if (cuda_usable) {
    assert_int_equal(cgr_backend(rt), CGR_BACKEND_CUDA);
    assert_string_equal(cgr_backend_name(rt), "cuda");
  } else {
    /* AUTO on a machine without a GPU: the host backend, and it says why. */
    assert_int_equal(cgr_backend(rt), CGR_BACKEND_HOST);
    assert_string_equal(cgr_backend_name(rt), "host");
    assert_non_null(strstr(cgr_backend_reason(rt), "AUTO"));
    assert_non_null(strstr(cgr_backend_reason(rt), why));
  }
  cgr_runtime_destroy(rt);
}

static void test_config_from_older_size_takes_defaults(void **state) {
  (void)state;
  /* A caller compiled when cgr_config ended before `nvtx`: whatever lies
   * past its size is not its data and must not be read. */
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_HOST;
  config.size = offsetof(cgr_config, nvtx);
  config.nvtx = 77;
  config.validate = 99;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  assert_int_equal(rt->config.backend, CGR_BACKEND_HOST);
  assert_int_equal(rt->config.nvtx, 1);
  assert_int_equal(rt->config.validate, 0);
  assert_int_equal(rt->config.size, sizeof(cgr_config));
  cgr_runtime_destroy(rt);
}

static void test_config_too_small_or_too_new_is_rejected(void **state) {
  (void)state;
  cgr_config config;
  cgr_runtime *rt = (cgr_runtime *)&config; /* must come back NULL */
  cgr_config_init(&config);
  config.size = sizeof(size_t);
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt), CGR_E_VERSION);
  assert_null(rt);
  assert_last_error_contains(NULL, "config->size");

  cgr_config_init(&config);
  config.version = CGR_CONFIG_VERSION + 1;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt), CGR_E_VERSION);
  assert_last_error_contains(NULL, "config->version");

  cgr_config_init(&config);
  config.version = 0;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt), CGR_E_VERSION);
}

static void test_config_bad_fields_are_named(void **state) {
  (void)state;
  cgr_config config;
  cgr_runtime *rt = NULL;

  cgr_config_init(&config);
  config.backend = (cgr_backend_kind)7;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->backend");

  cgr_config_init(&config);
  config.device = -1;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->device");

  cgr_config_init(&config);
  config.side_stream_priority = (cgr_stream_priority)5;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->side_stream_priority");

  cgr_config_init(&config);
  config.nvtx = 2;
  assert_cgr_status(NULL, cgr_runtime_create(&config, &rt),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "config->nvtx");
  assert_null(rt);
}

static void test_create_rejects_null_out(void **state) {
  (void)state;
  assert_cgr_status(NULL, cgr_runtime_create(NULL, NULL),
                    CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "'out'");
}

static void test_cuda_without_device_fails_with_reason(void **state) {
  (void)state;
  char why[256];
  if (cgr__cuda_probe(0, why, sizeof why) == CGR_OK)
    cgr_test_skip("a GPU is here: this test is about its absence");
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_CUDA;
  cgr_runtime *rt = NULL;
  cgr_status status = cgr_runtime_create(&config, &rt);
  assert_true(status == CGR_E_NO_DEVICE || status == CGR_E_UNSUPPORTED);
  assert_null(rt);
  /* The message says why: the probe's own reason, never a bare failure. */
  assert_last_error_contains(NULL, why);
  assert_last_error_contains(NULL, "cuda");
}

static void test_environment_overrides_config(void **state) {
  (void)state;
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_CUDA;
  cgr_runtime *rt = NULL;

  setenv("CGR_BACKEND", "host", 1);
  setenv("CGR_NVTX", "0", 1);
  cgr__env_reload();
  cgr_status status = cgr_runtime_create(&config, &rt);
  unsetenv("CGR_BACKEND");
  unsetenv("CGR_NVTX");
  cgr__env_reload();
  assert_cgr_ok(NULL, status);
  assert_int_equal(cgr_backend(rt), CGR_BACKEND_HOST);
  assert_non_null(strstr(cgr_backend_reason(rt), "CGR_BACKEND=host"));
  assert_int_equal(rt->config.nvtx, 0);
  cgr_runtime_destroy(rt);
}

static void test_environment_nonsense_is_rejected(void **state) {
  (void)state;
  cgr_runtime *rt = NULL;
  setenv("CGR_BACKEND", "tpu", 1);
  cgr__env_reload();
  cgr_status status = cgr_runtime_create(NULL, &rt);
  unsetenv("CGR_BACKEND");
  cgr__env_reload();
  assert_int_equal(status, CGR_E_INVALID_ARGUMENT);
  assert_null(rt);
  assert_last_error_contains(NULL, "CGR_BACKEND='tpu'");

  setenv("CGR_DEVICE", "-3", 1);
  cgr__env_reload();
  status = cgr_runtime_create(NULL, &rt);
  unsetenv("CGR_DEVICE");
  cgr__env_reload();
  assert_int_equal(status, CGR_E_INVALID_ARGUMENT);
  assert_last_error_contains(NULL, "CGR_DEVICE");
}

static void test_destroy_null_is_a_no_op(void **state) {
  (void)state;
  cgr_runtime_destroy(NULL);
  assert_string_equal(cgr_backend_name(NULL), "none");
  assert_int_equal(cgr_synchronize(NULL), CGR_E_INVALID_ARGUMENT);
  cgr_counters counters;
  assert_int_equal(cgr_counters_get(NULL, &counters), CGR_E_INVALID_ARGUMENT);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_config_init_fills_defaults),
    cmocka_unit_test(test_config_init_rejects_null),
    cmocka_unit_test(test_null_config_means_defaults_and_auto),
    cmocka_unit_test(test_config_from_older_size_takes_defaults),
    cmocka_unit_test(test_config_too_small_or_too_new_is_rejected),
    cmocka_unit_test(test_config_bad_fields_are_named),
    cmocka_unit_test(test_create_rejects_null_out),
    cmocka_unit_test(test_cuda_without_device_fails_with_reason),
    cmocka_unit_test(test_environment_overrides_config),
    cmocka_unit_test(test_environment_nonsense_is_rejected),
    cmocka_unit_test(test_destroy_null_is_a_no_op),
};

CGR_TEST_MAIN(tests)
