/*
 * cgr-info: which cgr is linked, which backend it picks and why, and what
 * that backend runs on.
 *
 * It uses only the public header, the way a decode loop would, so it is also
 * the smallest check that an installed cgr links and starts.
 *
 * Exit status: 0 on success, 1 when cgr fails (the status name and cgr's own
 * message go to stderr), 2 on a bad command line.
 */
#include <cgr/cgr.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_CGR_FAILED 1
#define EXIT_USAGE 2

typedef struct options {
  int backend_given;
  cgr_backend_kind backend;
  int device_given;
  int device;
  int json;
  int group_id;
} options;

static void print_usage(FILE *stream) {
  fputs("usage: cgr-info [--backend auto|cuda|host] [--device N] [--json]\n"
        "       cgr-info --group-id [--backend auto|cuda|host]\n"
        "       cgr-info --help\n"
        "\n"
        "Prints the cgr version, the backend cgr picks and why, and the\n"
        "device it runs on.\n"
        "\n"
        "  --backend KIND  auto (default): CUDA when a GPU and driver are\n"
        "                  usable, else the host backend; cuda: CUDA or fail;\n"
        "                  host: the host backend (CPU threads)\n"
        "  --device N      CUDA device ordinal (default 0)\n"
        "  --json          print one JSON object instead of text\n"
        "  --group-id      print a new id for a group across processes\n"
        "                  (cgr_group_id_create) and nothing else: hand it\n"
        "                  to every process of the group (host backend\n"
        "                  only: a CUDA id must come from rank 0's process)\n"
        "  --help          print this help and exit\n"
        "\n"
        "The environment variables CGR_BACKEND, CGR_DEVICE and CGR_NVTX win\n"
        "over the options above.\n"
        "\n"
        "Exit status: 0 success, 1 cgr failed, 2 bad command line.\n",
        stream);
}

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(format_index, first_argument)                              \
  __attribute__((format(printf, format_index, first_argument)))
#else
#define PRINTF_LIKE(format_index, first_argument)
#endif

/* Prints "cgr-info: <message>" and the usage to stderr; returns EXIT_USAGE. */
static int usage_error(const char *format, ...) PRINTF_LIKE(1, 2);

static int usage_error(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("cgr-info: ", stderr);
  vfprintf(stderr, format, args);
  va_end(args);
  fputs("\n\n", stderr);
  print_usage(stderr);
  return EXIT_USAGE;
}

static int parse_backend(const char *text, cgr_backend_kind *out) {
  if (strcmp(text, "auto") == 0)
    *out = CGR_BACKEND_AUTO;
  else if (strcmp(text, "cuda") == 0)
    *out = CGR_BACKEND_CUDA;
  else if (strcmp(text, "host") == 0)
    *out = CGR_BACKEND_HOST;
  else
    return 0;
  return 1;
}

static int parse_device(const char *text, int *out) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < 0 || value > INT_MAX)
    return 0;
  *out = (int)value;
  return 1;
}

/* The value of option `name`, given as "--name value" or "--name=value".
 * Returns NULL when argv[*index] is not this option; *missing is set when it
 * is but has no value. Advances *index past a separate value. */
static const char *option_value(const char *name, int argc, char **argv,
                                int *index, int *missing) {
  const char *arg = argv[*index];
  size_t length = strlen(name);
  *missing = 0;
  if (strncmp(arg, name, length) != 0)
    return NULL;
  if (arg[length] == '=')
    return arg + length + 1;
  if (arg[length] != '\0')
    return NULL;
  if (*index + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  *index += 1;
  return argv[*index];
}

/* Returns -1 when the options are good and the program should go on, else
 * the exit status. */
static int parse_options(int argc, char **argv, options *opts) {
  memset(opts, 0, sizeof *opts);
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    const char *value;
    int missing;

    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      print_usage(stdout);
      return EXIT_SUCCESS;
    }
    if (strcmp(arg, "--json") == 0) {
      opts->json = 1;
      continue;
    }
    if (strcmp(arg, "--group-id") == 0) {
      opts->group_id = 1;
      continue;
    }
    value = option_value("--backend", argc, argv, &i, &missing);
    if (missing)
      return usage_error("option '%s' needs a value", "--backend");
    if (value != NULL) {
      if (!parse_backend(value, &opts->backend))
        return usage_error("--backend '%s' is not auto, cuda or host", value);
      opts->backend_given = 1;
      continue;
    }
    value = option_value("--device", argc, argv, &i, &missing);
    if (missing)
      return usage_error("option '%s' needs a value", "--device");
    if (value != NULL) {
      if (!parse_device(value, &opts->device))
        return usage_error("--device '%s' is not a device ordinal (0, 1, ...)",
                           value);
      opts->device_given = 1;
      continue;
    }
    if (arg[0] == '-')
      return usage_error("unknown option '%s'", arg);
    return usage_error("unexpected argument '%s'", arg);
  }
  return -1;
}

/* Writes text as a JSON string, quotes included. */
static void print_json_string(const char *text) {
  putchar('"');
  for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; ++c) {
    switch (*c) {
    case '"':
      fputs("\\\"", stdout);
      break;
    case '\\':
      fputs("\\\\", stdout);
      break;
    case '\n':
      fputs("\\n", stdout);
      break;
    case '\t':
      fputs("\\t", stdout);
      break;
    default:
      if (*c < 0x20)
        printf("\\u%04x", (unsigned)*c);
      else
        putchar(*c);
    }
  }
  putchar('"');
}

/* CUDA encodes versions as 1000 * major + 10 * minor (13000 is 13.0). */
static void print_cuda_version(const char *label, int version) {
  if (version <= 0)
    printf("  %-20s unknown\n", label);
  else
    printf("  %-20s CUDA %d.%d (%d)\n", label, version / 1000,
           (version % 1000) / 10, version);
}

static void print_text(const cgr_runtime *rt, const cgr_device_info *info) {
  printf("cgr %s (header %s)\n", cgr_version_string(), CGR_VERSION_STRING);
  printf("backend: %s\n", cgr_backend_name(rt));
  printf("reason:  %s\n", cgr_backend_reason(rt));
  if (cgr_backend(rt) == CGR_BACKEND_HOST) {
    printf("device:  no GPU: host backend (CPU threads)\n");
    printf("  %-20s %s\n", "name:", info->name);
    printf("  %-20s %d\n", "CPUs:", info->multiprocessors);
    return;
  }
  double gib = (double)info->global_memory / (1024.0 * 1024.0 * 1024.0);
  printf("device:  CUDA device %d\n", info->ordinal);
  printf("  %-20s %s\n", "name:", info->name);
  printf("  %-20s %d.%d\n", "compute capability:", info->compute_major,
         info->compute_minor);
  printf("  %-20s %d\n", "multiprocessors:", info->multiprocessors);
  printf("  %-20s %.1f GiB (%llu bytes)\n", "global memory:", gib,
         (unsigned long long)info->global_memory);
  print_cuda_version("driver supports:", info->driver_version);
  print_cuda_version("runtime:", info->runtime_version);
  printf("  %-20s %d (low) to %d (high)\n",
         "stream priorities:", info->stream_priority_low,
         info->stream_priority_high);
}

static void print_json(const cgr_runtime *rt, const cgr_device_info *info) {
  printf("{\"version\":{\"library\":");
  print_json_string(cgr_version_string());
  printf(",\"header\":");
  print_json_string(CGR_VERSION_STRING);
  printf(",\"match\":%s}",
         cgr_version_number() == CGR_VERSION_NUMBER ? "true" : "false");
  printf(",\"backend\":");
  print_json_string(cgr_backend_name(rt));
  printf(",\"reason\":");
  print_json_string(cgr_backend_reason(rt));
  printf(",\"device\":{\"gpu\":%s,\"name\":",
         cgr_backend(rt) == CGR_BACKEND_CUDA ? "true" : "false");
  print_json_string(info->name);
  printf(",\"ordinal\":%d,\"compute_major\":%d,\"compute_minor\":%d"
         ",\"multiprocessors\":%d,\"global_memory\":%llu"
         ",\"driver_version\":%d,\"runtime_version\":%d"
         ",\"stream_priority_low\":%d,\"stream_priority_high\":%d}}\n",
         info->ordinal, info->compute_major, info->compute_minor,
         info->multiprocessors, (unsigned long long)info->global_memory,
         info->driver_version, info->runtime_version, info->stream_priority_low,
         info->stream_priority_high);
}

int main(int argc, char **argv) {
  options opts;
  int exit_status = parse_options(argc, argv, &opts);
  if (exit_status >= 0)
    return exit_status;

  /* A program built against one header and run with another library is the
   * first thing to rule out when anything below looks wrong. */
  if (cgr_version_number() != CGR_VERSION_NUMBER)
    fprintf(stderr,
            "cgr-info: warning: built with cgr %s headers but running "
            "with library %s\n",
            CGR_VERSION_STRING, cgr_version_string());

  if (opts.group_id) {
    /* The backend a group here would run on, as cgr_runtime_create picks
     * it. */
    cgr_backend_kind backend =
        opts.backend_given ? opts.backend : CGR_BACKEND_AUTO;
    if (backend == CGR_BACKEND_AUTO) {
      cgr_config probe;
      cgr_config_init(&probe);
      cgr_runtime *rt = NULL;
      if (cgr_runtime_create(&probe, &rt) != CGR_OK) {
        fprintf(stderr, "cgr-info: %s\n", cgr_last_error(NULL));
        return EXIT_CGR_FAILED;
      }
      backend = cgr_backend(rt);
      cgr_runtime_destroy(rt);
    }
    if (backend == CGR_BACKEND_CUDA) {
      fprintf(stderr,
              "cgr-info: --group-id: a CUDA group's id must be made by a "
              "process that lives while the ranks join (NCCL's bootstrap "
              "root runs in it), and cgr-info exits at once: make it in rank "
              "0's process (cgr_group_id_create; cgr-decode "
              "--group-id-file, scripts/tp_launch.sh)\n");
      return EXIT_CGR_FAILED;
    }
    char id[CGR_GROUP_ID_MAX];
    cgr_status made = cgr_group_id_create(backend, id, sizeof id);
    if (made != CGR_OK) {
      fprintf(stderr, "cgr-info: %s: %s\n", cgr_status_name(made),
              cgr_group_last_error(NULL));
      return EXIT_CGR_FAILED;
    }
    printf("%s\n", id);
    return EXIT_SUCCESS;
  }

  cgr_config config;
  cgr_status status = cgr_config_init(&config);
  if (status != CGR_OK) {
    fprintf(stderr, "cgr-info: %s: cgr_config_init failed\n",
            cgr_status_name(status));
    return EXIT_CGR_FAILED;
  }
  if (opts.backend_given)
    config.backend = opts.backend;
  if (opts.device_given)
    config.device = opts.device;

  cgr_runtime *rt = NULL;
  status = cgr_runtime_create(&config, &rt);
  if (status != CGR_OK) {
    fprintf(stderr, "cgr-info: %s: %s\n", cgr_status_name(status),
            cgr_last_error(NULL));
    return EXIT_CGR_FAILED;
  }

  cgr_device_info info;
  status = cgr_device_info_get(rt, &info);
  if (status != CGR_OK) {
    fprintf(stderr, "cgr-info: %s: %s\n", cgr_status_name(status),
            cgr_last_error(rt));
    cgr_runtime_destroy(rt);
    return EXIT_CGR_FAILED;
  }

  if (opts.json)
    print_json(rt, &info);
  else
    print_text(rt, &info);
  cgr_runtime_destroy(rt);

  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "cgr-info: writing to stdout failed\n");
    return EXIT_CGR_FAILED;
  }
  return EXIT_SUCCESS;
}
