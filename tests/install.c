/* cmake --install gives a usable package: a program outside the tree
 * builds against the installed headers and library through
 * find_package(cgr) (tests/install/CMakeLists.txt) and through pkg-config,
 * and runs. Each test installs into its own temporary prefix. The
 * consumer is built with this build's C flags, so a sanitizer build's
 * library loads into it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#if !defined(CGR_CMAKE) || !defined(CGR_BINARY_DIR) ||                         \
    !defined(CGR_SOURCE_DIR) || !defined(CGR_C_COMPILER) ||                    \
    !defined(CGR_C_FLAGS) || !defined(CGR_EXE_LINKER_FLAGS) ||                 \
    !defined(CGR_GENERATOR) || !defined(CGR_INSTALL_LIBDIR)
#error "tests/CMakeLists.txt defines the build's paths and flags"
#endif

/* Runs `command` through the shell, output into `output` (cut to size);
 * returns its exit status, or -1. */
static int run(const char *command, char *output, size_t size) {
  FILE *pipe = popen(command, "r");
  if (pipe == NULL)
    return -1;
  size_t length = 0;
  output[0] = '\0';
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) {
    size_t room = size - 1 - length;
    /* Keep the end: that is where a failure says why. */
    if (n > room) {
      size_t drop = n - room < length ? n - room : length;
      memmove(output, output + drop, length - drop);
      length -= drop;
      room = size - 1 - length;
    }
    memcpy(output + length, chunk, n < room ? n : room);
    length += n < room ? n : room;
    output[length] = '\0';
  }
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct scratch {
  char dir[256];
  char output[16384];
} scratch;

static void must_run(scratch *s, const char *what, const char *command) {
  int status = run(command, s->output, sizeof s->output);
  if (status != 0)
    fail_msg("%s failed (exit %d):\n%s\ncommand: %s", what, status, s->output,
             command);
}

/* A fresh temporary prefix with cgr installed in it. */
static scratch *install_fresh(void) {
  scratch *s = calloc(1, sizeof *s);
  assert_non_null(s);
  snprintf(s->dir, sizeof s->dir, "%s/cgr-install-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(s->dir));
  char command[2048];
  snprintf(command, sizeof command,
           "'%s' --install '%s' --prefix '%s/prefix' 2>&1", CGR_CMAKE,
           CGR_BINARY_DIR, s->dir);
  must_run(s, "cmake --install", command);
  return s;
}

static void remove_scratch(scratch *s) {
  char command[512];
  snprintf(command, sizeof command, "rm -rf '%s'", s->dir);
  if (system(command) != 0)
    fprintf(stderr, "could not remove %s\n", s->dir);
  free(s);
}

static void expect_consumer_ran(scratch *s) {
  if (strstr(s->output, "consumer ok " CGR_VERSION_STRING " host") == NULL)
    fail_msg("the consumer did not say it ran:\n%s", s->output);
}

static void test_find_package_gives_a_working_cgr_target(void **state) {
  (void)state;
  scratch *s = install_fresh();
  char command[4096];
  snprintf(command, sizeof command,
           "'%s' -S '%s/tests/install' -B '%s/build' -G '%s' "
           "-DCMAKE_PREFIX_PATH='%s/prefix' -DCMAKE_C_COMPILER='%s' "
           "-DCMAKE_C_FLAGS='%s' -DCMAKE_EXE_LINKER_FLAGS='%s' 2>&1",
           CGR_CMAKE, CGR_SOURCE_DIR, s->dir, CGR_GENERATOR, s->dir,
           CGR_C_COMPILER, CGR_C_FLAGS, CGR_EXE_LINKER_FLAGS);
  must_run(s, "configuring the consumer (find_package(cgr))", command);
  snprintf(command, sizeof command, "'%s' --build '%s/build' 2>&1", CGR_CMAKE,
           s->dir);
  must_run(s, "building the consumer", command);
  snprintf(command, sizeof command, "'%s/build/consumer' 2>&1", s->dir);
  must_run(s, "running the consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

static void test_pkg_config_gives_working_flags(void **state) {
  (void)state;
  if (system("pkg-config --version >/dev/null 2>&1") != 0)
    cgr_test_skip("pkg-config is not installed");
  scratch *s = install_fresh();
  char pc_path[512], command[4096];
  snprintf(pc_path, sizeof pc_path, "%s/prefix/%s/pkgconfig", s->dir,
           CGR_INSTALL_LIBDIR);
  snprintf(command, sizeof command,
           "PKG_CONFIG_PATH='%s' pkg-config --modversion cgr 2>&1", pc_path);
  must_run(s, "pkg-config --modversion cgr", command);
  if (strncmp(s->output, CGR_VERSION_STRING, strlen(CGR_VERSION_STRING)) != 0)
    fail_msg("pkg-config says version %s, expected %s", s->output,
             CGR_VERSION_STRING);
  snprintf(command, sizeof command,
           "'%s' %s '%s/tests/install/consumer.c' -o '%s/pc-consumer' %s "
           "$(PKG_CONFIG_PATH='%s' pkg-config --cflags --libs cgr) 2>&1",
           CGR_C_COMPILER, CGR_C_FLAGS, CGR_SOURCE_DIR, s->dir,
           CGR_EXE_LINKER_FLAGS, pc_path);
  must_run(s, "compiling the consumer with pkg-config's flags", command);
  snprintf(command, sizeof command, "'%s/pc-consumer' 2>&1", s->dir);
  must_run(s, "running the pkg-config consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_find_package_gives_a_working_cgr_target),
    cmocka_unit_test(test_pkg_config_gives_working_flags),
};

CGR_TEST_MAIN(tests)
