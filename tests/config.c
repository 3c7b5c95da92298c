/* Config defaults, older config sizes, validation, environment overrides,
 * and the backend AUTO picks; the one rule every versioned struct
 * (cgr_config, cgr_batcher_config, cgr_lanes_config) is read by. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model.h"

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
  /* A caller compiled against version 1, when cgr_config ended after
   * `validate`: whatever lies past its size is not its data and must not
   * be read. */
  cgr_config config;
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_HOST;
  config.version = 1;
  config.size = offsetof(cgr_config, buckets);
  config.validate = 1;
  config.bucket_count = 99; /* with a NULL list: refused if it were read */
  config.allow_eager = 77;
  config.replay_mode = (cgr_replay_mode)99;
  cgr_runtime *rt = NULL;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  assert_int_equal(rt->config.backend, CGR_BACKEND_HOST);
  assert_int_equal(rt->config.validate, 1);
  assert_int_equal(rt->config.bucket_count, 0);
  assert_int_equal(rt->config.allow_eager, 1);
  assert_int_equal(rt->config.replay_mode, CGR_REPLAY_DOUBLE_BUFFERED);
  assert_int_equal(rt->config.size, sizeof(cgr_config));
  assert_int_equal(rt->config.version, CGR_CONFIG_VERSION);
  cgr_runtime_destroy(rt);

  /* Version 2 ended after `log_user`: replay_mode takes its default. */
  cgr_config_init(&config);
  config.backend = CGR_BACKEND_HOST;
  config.version = 2;
  config.size = offsetof(cgr_config, replay_mode);
  config.lazy_capture = 1;
  config.replay_mode = (cgr_replay_mode)99;
  assert_cgr_ok(NULL, cgr_runtime_create(&config, &rt));
  assert_int_equal(rt->config.lazy_capture, 1);
  assert_int_equal(rt->config.replay_mode, CGR_REPLAY_DOUBLE_BUFFERED);
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

/* ---- one rule for every versioned struct -------------------------------- */

/* How one versioned struct is handed to the library: a creator that takes
 * the struct with the given size and version and returns the status
 * (destroying whatever it made), the struct's name, its size, and the
 * bytes each version's fields take. */
typedef struct versioned {
  const char *type;
  size_t size;
  uint32_t versions;
  size_t ends[4]; /* ends[v - 1]: version v's fields end here */
  /* Creates from the struct with `size` and `version`; returns the status
   * and the message of a failure (in `message`). */
  cgr_status (*create)(size_t size, uint32_t version, char *message,
                       size_t message_size);
} versioned;

#define FIELD_END(type, field)                                                 \
  (offsetof(type, field) + sizeof(((type *)0)->field))

static const uint32_t version_test_buckets[] = {1, 2};

static cgr_status create_runtime_with(size_t size, uint32_t version,
                                      char *message, size_t message_size) {
  cgr_config config;
  cgr_test_config(&config);
  config.size = size;
  config.version = version;
  cgr_runtime *rt = (cgr_runtime *)&config; /* must come back NULL */
  cgr_status status = cgr_runtime_create(&config, &rt);
  snprintf(message, message_size, "%s", cgr_last_error(NULL));
  if (status != CGR_OK)
    assert_null(rt);
  cgr_runtime_destroy(rt);
  return status;
}

static cgr_status build_nothing(void *user, cgr_batch *batch,
                                void *const *requests, uint32_t count) {
  (void)user, (void)batch, (void)requests, (void)count;
  return CGR_E_INTERNAL;
}

static cgr_status finish_nothing(void *user, cgr_runtime *rt,
                                 const cgr_ticket *ticket,
                                 void *const *requests, uint32_t count,
                                 void **results) {
  (void)user, (void)rt, (void)ticket, (void)requests, (void)count;
  (void)results;
  return CGR_E_INTERNAL;
}

static cgr_status create_batcher_with(size_t size, uint32_t version,
                                      char *message, size_t message_size) {
  model m;
  cgr_runtime *rt = model_captured_runtime(version_test_buckets, 2, 0, &m);
  cgr_batcher_config config;
  assert_cgr_ok(rt, cgr_batcher_config_init(&config));
  config.build = build_nothing;
  config.finish = finish_nothing;
  config.size = size;
  config.version = version;
  cgr_batcher *batcher = (cgr_batcher *)&config; /* must come back NULL */
  cgr_status status = cgr_batcher_create(rt, &config, &batcher);
  snprintf(message, message_size, "%s", cgr_last_error(rt));
  if (status != CGR_OK)
    assert_null(batcher);
  cgr_batcher_destroy(batcher);
  cgr_runtime_destroy(rt);
  return status;
}

static cgr_status declare_lane_model(void *user, cgr_runtime *rt, uint32_t lane,
                                     void **lane_user) {
  model *models = user;
  *lane_user = &models[lane];
  return model_try_declare(rt, &models[lane]);
}

/* The lanes' own config, and (runtime_size nonzero) the runtime config it
 * points to with that size. */
static cgr_status create_lanes_with(size_t size, uint32_t version,
                                    size_t runtime_size, char *message,
                                    size_t message_size) {
  static model models[1];
  cgr_config rt_config;
  cgr_test_config(&rt_config);
  rt_config.buckets = version_test_buckets;
  rt_config.bucket_count = 2;
  if (runtime_size != 0)
    rt_config.size = runtime_size;
  cgr_lanes_config config;
  assert_cgr_ok(NULL, cgr_lanes_config_init(&config));
  config.lanes = 1;
  config.runtime = &rt_config;
  config.setup = declare_lane_model;
  config.step = model_step;
  config.user = models;
  config.size = size;
  config.version = version;
  cgr_lanes *lanes = (cgr_lanes *)&config; /* must come back NULL */
  cgr_status status = cgr_lanes_create(&config, &lanes);
  snprintf(message, message_size, "%s", cgr_last_error(NULL));
  if (status != CGR_OK)
    assert_null(lanes);
  cgr_lanes_destroy(lanes);
  return status;
}

static cgr_status create_lanes_struct_with(size_t size, uint32_t version,
                                           char *message, size_t message_size) {
  return create_lanes_with(size, version, 0, message, message_size);
}

static const versioned versioned_structs[] = {
    {"cgr_config",
     sizeof(cgr_config),
     CGR_CONFIG_VERSION,
     {FIELD_END(cgr_config, validate), FIELD_END(cgr_config, log_user),
      FIELD_END(cgr_config, replay_mode), FIELD_END(cgr_config, variant_count)},
     create_runtime_with},
    {"cgr_batcher_config",
     sizeof(cgr_batcher_config),
     CGR_BATCHER_CONFIG_VERSION,
     {FIELD_END(cgr_batcher_config, user)},
     create_batcher_with},
    {"cgr_lanes_config",
     sizeof(cgr_lanes_config),
     CGR_LANES_CONFIG_VERSION,
     {FIELD_END(cgr_lanes_config, user)},
     create_lanes_struct_with},
};

/* Fails unless `message` says `needle`. */
static void expect_says(const versioned *v, const char *what,
                        const char *message, const char *needle) {
  if (strstr(message, needle) == NULL)
    fail_msg("%s, %s: the message \"%s\" does not say \"%s\"", v->type, what,
             message, needle);
}

static void expect_refused(const versioned *v, const char *what, size_t size,
                           uint32_t version) {
  char message[512];
  cgr_status status = v->create(size, version, message, sizeof message);
  if (status != CGR_E_VERSION)
    fail_msg("%s with size %zu, version %u (%s) returned %s, not "
             "CGR_E_VERSION (%s)",
             v->type, size, version, what, cgr_status_name(status), message);
  expect_says(v, what, message, v->type);
}

static void expect_accepted(const versioned *v, const char *what, size_t size,
                            uint32_t version) {
  char message[512];
  cgr_status status = v->create(size, version, message, sizeof message);
  if (status != CGR_OK)
    fail_msg("%s with size %zu, version %u (%s) returned %s: %s", v->type, size,
             version, what, cgr_status_name(status), message);
}

/* Larger than the library knows (a newer header's struct, or garbage):
 * refused, naming the struct and both sizes. */
static void test_every_versioned_struct_refuses_a_size_too_big(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof versioned_structs / sizeof *versioned_structs;
       ++k) {
    const versioned *v = &versioned_structs[k];
    const size_t sizes[] = {v->size + 1, v->size + 8, v->size + 4096, SIZE_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; ++i) {
      expect_refused(v, "too big", sizes[i], v->versions);
      char message[512], given[32], known[32];
      (void)v->create(sizes[i], v->versions, message, sizeof message);
      snprintf(given, sizeof given, "%zu", sizes[i]);
      snprintf(known, sizeof known, "%zu", v->size);
      expect_says(v, "too big", message, "config->size");
      expect_says(v, "too big", message, given);
      expect_says(v, "too big", message, known);
    }
  }
}

/* Smaller than the fields of the version it claims: refused, naming the
 * struct, the version and both sizes. Nothing at all (0, or too small to
 * hold a version) is refused too. */
static void test_every_versioned_struct_refuses_a_size_too_small(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof versioned_structs / sizeof *versioned_structs;
       ++k) {
    const versioned *v = &versioned_structs[k];
    expect_refused(v, "zero", 0, v->versions);
    expect_refused(v, "a bare size", sizeof(size_t), v->versions);
    for (uint32_t version = 1; version <= v->versions; ++version) {
      size_t end = v->ends[version - 1];
      expect_refused(v, "one byte short", end - 1, version);
      char message[512], given[32], needed[32], named[32];
      (void)v->create(end - 1, version, message, sizeof message);
      snprintf(given, sizeof given, "%zu", end - 1);
      snprintf(needed, sizeof needed, "%zu", end);
      snprintf(named, sizeof named, "version %u", version);
      expect_says(v, "too small", message, "config->size");
      expect_says(v, "too small", message, given);
      expect_says(v, "too small", message, needed);
      expect_says(v, "too small", message, named);
    }
  }
}

/* A version this library does not know: refused, naming the struct. */
static void
test_every_versioned_struct_refuses_an_unknown_version(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof versioned_structs / sizeof *versioned_structs;
       ++k) {
    const versioned *v = &versioned_structs[k];
    expect_refused(v, "version 0", v->size, 0);
    expect_refused(v, "a newer version", v->size, v->versions + 1);
    expect_refused(v, "version UINT32_MAX", v->size, UINT32_MAX);
    char message[512];
    (void)v->create(v->size, v->versions + 1, message, sizeof message);
    expect_says(v, "newer version", message, "config->version");
  }
}

/* The right size for each version, as the header of that version made it
 * (its fields, and any tail padding up to the next version's): accepted. */
static void test_every_versioned_struct_accepts_each_version(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof versioned_structs / sizeof *versioned_structs;
       ++k) {
    const versioned *v = &versioned_structs[k];
    expect_accepted(v, "this library's", v->size, v->versions);
    for (uint32_t version = 1; version <= v->versions; ++version) {
      expect_accepted(v, "exactly its fields", v->ends[version - 1], version);
      /* An older version read with a newer size: the fields it covers. */
      expect_accepted(v, "an older version, the full size", v->size, version);
    }
  }
}

/* cgr_lanes_config points to a cgr_config: the same rule, and the message
 * names it as config->runtime. */
static void test_lanes_read_their_runtime_config_by_the_rule(void **state) {
  (void)state;
  char message[512];
  const size_t lanes_size = sizeof(cgr_lanes_config);
  const uint32_t lanes_version = CGR_LANES_CONFIG_VERSION;
  const size_t sizes[] = {sizeof(cgr_config) + 8, SIZE_MAX, sizeof(size_t)};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; ++i) {
    cgr_status status = create_lanes_with(lanes_size, lanes_version, sizes[i],
                                          message, sizeof message);
    if (status != CGR_E_VERSION)
      fail_msg("a runtime config of size %zu returned %s: %s", sizes[i],
               cgr_status_name(status), message);
    if (strstr(message, "config->runtime->size") == NULL ||
        strstr(message, "cgr_config") == NULL)
      fail_msg("the message \"%s\" does not name config->runtime's size and "
               "cgr_config",
               message);
  }
  assert_cgr_ok(NULL,
                create_lanes_with(lanes_size, lanes_version, sizeof(cgr_config),
                                  message, sizeof message));
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
    cmocka_unit_test(test_every_versioned_struct_refuses_a_size_too_big),
    cmocka_unit_test(test_every_versioned_struct_refuses_a_size_too_small),
    cmocka_unit_test(test_every_versioned_struct_refuses_an_unknown_version),
    cmocka_unit_test(test_every_versioned_struct_accepts_each_version),
    cmocka_unit_test(test_lanes_read_their_runtime_config_by_the_rule),
};

CGR_TEST_MAIN(tests)
