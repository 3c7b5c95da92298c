/* cmake --install gives a usable package: a program outside the tree
 * builds against the installed headers and library, shared and static,
 * through find_package(cgr) (tests/install/CMakeLists.txt) and through
 * pkg-config, and runs; the installed libcgr.so needs no CUDA runtime. Each
 * test installs into its own temporary prefix. The consumer is built with this
 * build's C flags, so a sanitizer build's library loads into it. */
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

/* Fails unless `program`'s dynamic section names libcgr exactly when
 * `shared` says it should: a static consumer must carry cgr inside. */
static void expect_links_libcgr(scratch *s, const char *program, int shared) {
  char command[1024];
  snprintf(command, sizeof command, "readelf -d '%s' 2>&1", program);
  must_run(s, "readelf -d", command);
  int names_libcgr = strstr(s->output, "[libcgr.so") != NULL;
  if (names_libcgr != shared)
    fail_msg("%s %s libcgr.so, expected the %s library:\n%s", program,
             names_libcgr ? "needs" : "does not need",
             shared ? "shared" : "static", s->output);
}

/* Configures and builds tests/install against the fresh prefix. */
static void build_cmake_consumers(scratch *s) {
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
  must_run(s, "building the consumers", command);
}

static void test_find_package_gives_a_working_cgr_target(void **state) {
  (void)state;
  scratch *s = install_fresh();
  build_cmake_consumers(s);
  char command[1024], program[512];
  snprintf(program, sizeof program, "%s/build/consumer", s->dir);
  expect_links_libcgr(s, program, 1);
  snprintf(command, sizeof command, "'%s' 2>&1", program);
  must_run(s, "running the consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

static void test_find_package_static_target_links_a_c_program(void **state) {
  (void)state;
  scratch *s = install_fresh();
  build_cmake_consumers(s);
  char command[1024], program[512];
  snprintf(program, sizeof program, "%s/build/consumer_static", s->dir);
  expect_links_libcgr(s, program, 0);
  snprintf(command, sizeof command, "'%s' 2>&1", program);
  must_run(s, "running the static consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

/* The installed cgr.pc, checked for what must not be in it, and the
 * PKG_CONFIG_PATH that finds it. */
static void pkg_config_path(scratch *s, char *path, size_t size) {
  if (system("pkg-config --version >/dev/null 2>&1") != 0)
    cgr_test_skip("pkg-config is not installed");
  snprintf(path, size, "%s/prefix/%s/pkgconfig", s->dir, CGR_INSTALL_LIBDIR);
  char command[1024];
  snprintf(command, sizeof command, "cat '%s/cgr.pc'", path);
  must_run(s, "reading cgr.pc", command);
  const char *forbidden[] = {"rpath", CGR_BINARY_DIR, CGR_SOURCE_DIR,
                             "/usr/local/cuda", "cudart"};
  for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
    if (strstr(s->output, forbidden[i]) != NULL)
      fail_msg("cgr.pc names '%s':\n%s", forbidden[i], s->output);
  snprintf(command, sizeof command,
           "PKG_CONFIG_PATH='%s' pkg-config --modversion cgr 2>&1", path);
  must_run(s, "pkg-config --modversion cgr", command);
  if (strncmp(s->output, CGR_VERSION_STRING, strlen(CGR_VERSION_STRING)) != 0)
    fail_msg("pkg-config says version %s, expected %s", s->output,
             CGR_VERSION_STRING);
}

/* Compiles tests/install/consumer.c with `pkg_flags` (a pkg-config
 * command line) into `program`. */
static void compile_with_pkg_config(scratch *s, const char *pc_path,
                                    const char *pkg_flags,
                                    const char *program) {
  char command[4096];
  snprintf(command, sizeof command,
           "'%s' %s '%s/tests/install/consumer.c' -o '%s' %s "
           "$(PKG_CONFIG_PATH='%s' pkg-config %s cgr) 2>&1",
           CGR_C_COMPILER, CGR_C_FLAGS, CGR_SOURCE_DIR, program,
           CGR_EXE_LINKER_FLAGS, pc_path, pkg_flags);
  must_run(s, "compiling the consumer with pkg-config's flags", command);
}

static void test_pkg_config_gives_working_flags(void **state) {
  (void)state;
  scratch *s = install_fresh();
  char pc_path[512], program[512], command[2048];
  pkg_config_path(s, pc_path, sizeof pc_path);
  snprintf(program, sizeof program, "%s/pc-consumer", s->dir);
  compile_with_pkg_config(s, pc_path, "--cflags --libs", program);
  expect_links_libcgr(s, program, 1);
  /* cgr.pc carries no run path: the program finds libcgr the way the
   * user's own deployment says, here LD_LIBRARY_PATH. */
  snprintf(command, sizeof command, "LD_LIBRARY_PATH='%s/prefix/%s' '%s' 2>&1",
           s->dir, CGR_INSTALL_LIBDIR, program);
  must_run(s, "running the pkg-config consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

static void test_pkg_config_static_links_a_c_program(void **state) {
  (void)state;
  scratch *s = install_fresh();
  char pc_path[512], program[512], command[2048];
  pkg_config_path(s, pc_path, sizeof pc_path);
  /* With libcgr.so beside it the linker would take the shared library:
   * a prefix that holds only libcgr.a proves that the archive links with
   * pkg-config --static's flags and nothing else. */
  snprintf(command, sizeof command, "rm -f '%s/prefix/%s'/libcgr.so* 2>&1",
           s->dir, CGR_INSTALL_LIBDIR);
  must_run(s, "removing the shared library", command);
  snprintf(program, sizeof program, "%s/pc-static-consumer", s->dir);
  compile_with_pkg_config(s, pc_path, "--static --cflags --libs", program);
  expect_links_libcgr(s, program, 0);
  snprintf(command, sizeof command, "'%s' 2>&1", program);
  must_run(s, "running the static pkg-config consumer", command);
  expect_consumer_ran(s);
  remove_scratch(s);
}

/* libcgr.so carries its CUDA runtime inside (CMakeLists.txt: the prelinked
 * object): it must not need libcudart (nor libnccl, which it opens with
 * dlopen) at load time, and it must export only cgr's public names, so
 * that a process with another CUDA runtime (a PyTorch wheel) sees no
 * second copy of cudart's symbols. */
static void test_shared_library_needs_no_cuda_runtime(void **state) {
  (void)state;
  scratch *s = install_fresh();
  char library[512], command[1024];
  snprintf(library, sizeof library, "%s/prefix/%s/libcgr.so", s->dir,
           CGR_INSTALL_LIBDIR);
  snprintf(command, sizeof command, "readelf -d '%s' 2>&1", library);
  must_run(s, "readelf -d libcgr.so", command);
  if (strstr(s->output, "(NEEDED)") == NULL)
    fail_msg("readelf shows no NEEDED entry at all:\n%s", s->output);
  if (strstr(s->output, "libcudart") != NULL ||
      strstr(s->output, "libcuda.so") != NULL)
    fail_msg("libcgr.so needs a CUDA library at load time:\n%s", s->output);
  /* NCCL is opened with dlopen when a group needs it
   * (runtime/cuda/cuda_nccl.c): a single-GPU user never needs it. */
  if (strstr(s->output, "libnccl") != NULL)
    fail_msg("libcgr.so needs libnccl at load time:\n%s", s->output);
  if (strstr(s->output, "RPATH") != NULL || strstr(s->output, "RUNPATH"))
    fail_msg("the installed libcgr.so has a run path:\n%s", s->output);
  /* Every defined dynamic symbol is cgr_*. */
  snprintf(command, sizeof command,
           "nm -D --defined-only '%s' | awk '{print $3}' | "
           "grep -v '^cgr_' 2>&1; exit 0",
           library);
  must_run(s, "nm -D libcgr.so", command);
  if (s->output[0] != '\0')
    fail_msg("libcgr.so exports names that are not cgr's:\n%s", s->output);
  /* Nor does it name an NCCL function, defined or undefined: a call made
   * without the dlopen'd table would bind to whatever NCCL the process has,
   * or fail at load. */
  snprintf(command, sizeof command,
           "nm -D '%s' | awk '{print $NF}' | grep -i 'nccl' 2>&1; exit 0",
           library);
  must_run(s, "nm -D libcgr.so", command);
  if (s->output[0] != '\0')
    fail_msg("libcgr.so's dynamic symbols name NCCL:\n%s", s->output);
  remove_scratch(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_find_package_gives_a_working_cgr_target),
    cmocka_unit_test(test_find_package_static_target_links_a_c_program),
    cmocka_unit_test(test_pkg_config_gives_working_flags),
    cmocka_unit_test(test_pkg_config_static_links_a_c_program),
    cmocka_unit_test(test_shared_library_needs_no_cuda_runtime),
};

CGR_TEST_MAIN(tests)
