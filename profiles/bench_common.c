#include "bench_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cgr/cgr.h"

double bench_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_percentiles(const double *samples, long n, double *scratch,
                       double *median, int percent, double *at_percent) {
  *median = 0.0;
  if (at_percent != NULL)
    *at_percent = 0.0;
  if (n <= 0)
    return;
  memcpy(scratch, samples, (size_t)n * sizeof *samples);
  qsort(scratch, (size_t)n, sizeof *scratch, compare_doubles);
  *median = n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
  if (at_percent != NULL) {
    long rank = (percent * n + 99) / 100; /* ceil(percent% of n) */
    *at_percent = scratch[rank > 0 ? rank - 1 : 0];
  }
}

void bench_json_quote(char *out, size_t size, const char *s) {
  size_t n = 0;
  if (size < 3)
    return;
  out[n++] = '"';
  for (; *s != '\0' && n + 8 < size; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n++] = '"';
  out[n] = '\0';
}

/* mkdir -p of path's directory part; a failure surfaces at fopen. */
static void make_parent_dirs(const char *path) {
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path);
  for (char *slash = strchr(copy + 1, '/'); slash != NULL;
       slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(copy, 0777) != 0 && errno != EEXIST)
      return;
    *slash = '/';
  }
}

/* ---- command line -------------------------------------------------------- */

void bench_usage_common(FILE *to, const char *quick, const char *smoke) {
  fprintf(to,
          "  --backend B    auto (default), cuda or host; CGR_BACKEND wins\n"
          "  --quick        %s\n"
          "  --smoke        %s\n"
          "  --json         JSON lines on stdout instead of the table: a "
          "meta line,\n"
          "                 then one line per configuration\n"
          "  --out FILE     the JSON lines to FILE (directories made); the "
          "table\n"
          "                 still goes to stdout\n"
          "  --help         this text\n"
          "An option's value is given as '--name value' or "
          "'--name=value'.\n",
          quick, smoke);
}

const char *bench_grid_name(bench_grid grid) {
  return grid == BENCH_GRID_SMOKE   ? "smoke"
         : grid == BENCH_GRID_QUICK ? "quick"
                                    : "full";
}

static int takes_value(const bench_cli *cli, const char *name) {
  if (strcmp(name, "--backend") == 0 || strcmp(name, "--out") == 0)
    return 1;
  for (const char *const *v = cli->valued; v != NULL && *v != NULL; ++v)
    if (strcmp(name, *v) == 0)
      return 1;
  return 0;
}

/* Splits argv[*i] into `a`, taking its value (from "=value" or the next
 * argument, *i moved past it). Returns BENCH_ARG_OK or BENCH_ARG_USAGE. */
static int split_arg(const bench_cli *cli, int argc, char **argv, int *i,
                     bench_arg *a) {
  a->program = cli->program;
  a->arg = argv[*i];
  a->value = NULL;
  const char *eq = strchr(a->arg, '=');
  size_t length = eq != NULL ? (size_t)(eq - a->arg) : strlen(a->arg);
  if (length >= sizeof a->name)
    length = sizeof a->name - 1;
  memcpy(a->name, a->arg, length);
  a->name[length] = '\0';
  if (takes_value(cli, a->name)) {
    if (eq != NULL)
      a->value = eq + 1;
    else if (*i + 1 < argc)
      a->value = argv[++*i];
    else {
      fprintf(stderr, "%s: %s needs a value\n", a->program, a->name);
      return BENCH_ARG_USAGE;
    }
  } else if (eq != NULL) {
    fprintf(stderr, "%s: %s takes no value\n", a->program, a->name);
    return BENCH_ARG_USAGE;
  }
  return BENCH_ARG_OK;
}

static int parse_backend(const bench_arg *a, cgr_backend_kind *out) {
  if (strcmp(a->value, "auto") == 0)
    *out = CGR_BACKEND_AUTO;
  else if (strcmp(a->value, "cuda") == 0)
    *out = CGR_BACKEND_CUDA;
  else if (strcmp(a->value, "host") == 0)
    *out = CGR_BACKEND_HOST;
  else {
    fprintf(stderr, "%s: --backend must be auto, cuda or host, not '%s'\n",
            a->program, a->value);
    return BENCH_ARG_USAGE;
  }
  return BENCH_ARG_OK;
}

/* The shared options; BENCH_ARG_UNKNOWN for any other. */
static int common_option(const bench_arg *a, bench_options *opt) {
  if (strcmp(a->name, "--quick") == 0) {
    opt->grid = BENCH_GRID_QUICK;
  } else if (strcmp(a->name, "--smoke") == 0) {
    opt->grid = BENCH_GRID_SMOKE;
  } else if (strcmp(a->name, "--json") == 0) {
    opt->json = 1;
  } else if (strcmp(a->name, "--out") == 0) {
    if (*a->value == '\0') {
      fprintf(stderr, "%s: --out needs a file name\n", a->program);
      return BENCH_ARG_USAGE;
    }
    opt->out_path = a->value;
  } else if (strcmp(a->name, "--backend") == 0) {
    return parse_backend(a, &opt->backend);
  } else {
    return BENCH_ARG_UNKNOWN;
  }
  return BENCH_ARG_OK;
}

/* BENCH_ARG_OK, BENCH_ARG_USAGE, or 1 for --help. */
static int parse_all(const bench_cli *cli, int argc, char **argv,
                     bench_options *common, void *user) {
  for (int i = 1; i < argc; ++i) {
    bench_arg a;
    int rc = split_arg(cli, argc, argv, &i, &a);
    if (rc != BENCH_ARG_OK)
      return rc;
    if (strcmp(a.name, "--help") == 0 || strcmp(a.name, "-h") == 0)
      return 1;
    rc = common_option(&a, common);
    if (rc == BENCH_ARG_UNKNOWN)
      rc = cli->own_option != NULL ? cli->own_option(&a, user)
                                   : BENCH_ARG_UNKNOWN;
    if (rc == BENCH_ARG_UNKNOWN)
      rc = bench_unknown_option(&a);
    if (rc != BENCH_ARG_OK)
      return rc;
  }
  return BENCH_ARG_OK;
}

int bench_parse_args(const bench_cli *cli, int argc, char **argv,
                     bench_options *common, void *user) {
  memset(common, 0, sizeof *common);
  common->backend = CGR_BACKEND_AUTO;
  common->grid = BENCH_GRID_FULL;
  int rc = parse_all(cli, argc, argv, common, user);
  if (rc == BENCH_ARG_OK)
    return -1;
  if (rc == 1) {
    cli->usage(stdout);
    return BENCH_EXIT_OK;
  }
  cli->usage(stderr);
  return BENCH_EXIT_USAGE;
}

int bench_parse_long(const bench_arg *a, long min, long max, long *out) {
  char *stop = NULL;
  errno = 0;
  long n = strtol(a->value, &stop, 10);
  if (errno != 0 || stop == a->value || *stop != '\0' || n < min || n > max) {
    fprintf(stderr, "%s: %s must be a whole number from %ld to %ld, not '%s'\n",
            a->program, a->name, min, max, a->value);
    return BENCH_ARG_USAGE;
  }
  *out = n;
  return BENCH_ARG_OK;
}

int bench_parse_double(const bench_arg *a, double min, double max,
                       double *out) {
  char *stop = NULL;
  errno = 0;
  double x = strtod(a->value, &stop);
  if (errno != 0 || stop == a->value || *stop != '\0' || !(x >= min) ||
      !(x <= max)) {
    fprintf(stderr, "%s: %s must be a number from %g to %g, not '%s'\n",
            a->program, a->name, min, max, a->value);
    return BENCH_ARG_USAGE;
  }
  *out = x;
  return BENCH_ARG_OK;
}

int bench_unknown_option(const bench_arg *a) {
  fprintf(stderr, "%s: unknown option '%s'\n", a->program, a->arg);
  return BENCH_ARG_USAGE;
}

/* ---- the JSON lines ------------------------------------------------------ */

int bench_output_open(bench_output *out, const char *program,
                      const bench_options *options) {
  memset(out, 0, sizeof *out);
  out->program = program;
  out->path = options->out_path;
  out->to_stdout = options->json;
  if (out->path == NULL)
    return 0;
  make_parent_dirs(out->path);
  out->file = fopen(out->path, "w");
  if (out->file == NULL) {
    fprintf(stderr, "%s: cannot write '%s': %s\n", program, out->path,
            strerror(errno));
    return -1;
  }
  return 0;
}

void bench_emit(bench_output *out, const char *line) {
  if (out->to_stdout) {
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
  if (out->file != NULL) {
    fputs(line, out->file);
    fputc('\n', out->file);
  }
}

int bench_output_close(bench_output *out) {
  FILE *file = out->file;
  out->file = NULL;
  if (file != NULL && fclose(file) != 0) {
    fprintf(stderr, "%s: writing '%s' failed\n", out->program, out->path);
    return -1;
  }
  return 0;
}

/* ---- the table ----------------------------------------------------------- */

void bench_columns_init(bench_columns *columns, int count,
                        const char *const *names, int min_width) {
  int max = (int)(sizeof columns->names / sizeof columns->names[0]);
  columns->count = count < max ? count : max;
  for (int i = 0; i < columns->count; ++i) {
    int length = (int)strlen(names[i]);
    columns->names[i] = names[i];
    columns->widths[i] = length > min_width ? length : min_width;
  }
}

void bench_cell_text(const bench_columns *columns, int column,
                     const char *text) {
  if (column == 0)
    printf("  %-*s", columns->widths[0], text);
  else
    printf("  %*s", columns->widths[column], text);
}

void bench_cell_number(const bench_columns *columns, int column, double value,
                       int digits) {
  char text[64];
  snprintf(text, sizeof text, "%.*f", digits, value);
  bench_cell_text(columns, column, text);
}

void bench_row_end(void) { putchar('\n'); }

void bench_columns_header(const bench_columns *columns) {
  for (int i = 0; i < columns->count; ++i)
    bench_cell_text(columns, i, columns->names[i]);
  bench_row_end();
}

void bench_device_header(char *out, size_t size, const char *field, int cuda) {
  snprintf(out, size, cuda ? "%s" : "%s(cpu)", field);
}

void bench_format_bytes(char *out, size_t size, unsigned long long bytes) {
  const unsigned long long kib = 1024, mib = kib * kib;
  if (bytes >= mib && bytes % mib == 0)
    snprintf(out, size, "%llu MiB", bytes / mib);
  else if (bytes >= mib)
    snprintf(out, size, "%.1f MiB", (double)bytes / (double)mib);
  else if (bytes >= kib && bytes % kib == 0)
    snprintf(out, size, "%llu KiB", bytes / kib);
  else if (bytes >= kib)
    snprintf(out, size, "%.1f KiB", (double)bytes / (double)kib);
  else
    snprintf(out, size, "%llu B", bytes);
}

/* ---- the meta line ------------------------------------------------------- */

void bench_meta_read(cgr_runtime *rt, const char *bench, bench_meta *meta) {
  memset(meta, 0, sizeof *meta);
  snprintf(meta->bench, sizeof meta->bench, "%s", bench);
  meta->cuda = cgr_backend(rt) == CGR_BACKEND_CUDA;
  meta->note = meta->cuda ? "" : BENCH_HOST_NOTE_JSON;
  snprintf(meta->backend_name, sizeof meta->backend_name, "%s",
           cgr_backend_name(rt));
  snprintf(meta->reason, sizeof meta->reason, "%s", cgr_backend_reason(rt));
  bench_json_quote(meta->reason_json, sizeof meta->reason_json, meta->reason);

  cgr_device_info info;
  if (cgr_device_info_get(rt, &info) != CGR_OK)
    snprintf(info.name, sizeof info.name, "unknown");
  meta->multiprocessors = info.multiprocessors;
  snprintf(meta->device, sizeof meta->device, "%s", info.name);
  char device[300], date[32];
  time_t now = time(NULL);
  struct tm utc;
  gmtime_r(&now, &utc);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  bench_json_quote(device, sizeof device, info.name);
  snprintf(meta->fields, sizeof meta->fields,
           "\"kind\":\"meta\",\"bench\":\"%s\",\"backend\":\"%s\","
           "\"timing\":\"%s\",\"device\":%s,\"compute_capability\":\"%d.%d\","
           "\"driver_version\":%d,\"runtime_version\":%d,"
           "\"cgr_version\":\"%s\",\"date\":\"%s\"",
           bench, meta->backend_name, meta->cuda ? "gpu" : "cpu", device,
           info.compute_major, info.compute_minor, info.driver_version,
           info.runtime_version, cgr_version_string(), date);
}

int bench_meta_probe(const char *program, cgr_backend_kind backend,
                     const char *bench, bench_meta *meta) {
  cgr_config config;
  cgr_runtime *rt = NULL;
  cgr_status status = cgr_config_init(&config);
  if (status != CGR_OK)
    return bench_fail_call(program, NULL, status, "cgr_config_init");
  config.backend = backend;
  status = cgr_runtime_create(&config, &rt);
  if (status != CGR_OK)
    return bench_fail_call(program, NULL, status, "cgr_runtime_create");
  bench_meta_read(rt, bench, meta);
  cgr_runtime_destroy(rt);
  return 0;
}

void bench_print_start(const bench_meta *meta, const bench_options *options) {
  fprintf(options->json ? stderr : stdout,
          "bench_%s: %s grid on %s, %s backend (%s)\n", meta->bench,
          bench_grid_name(options->grid), meta->device, meta->backend_name,
          meta->reason);
}

void bench_print_end(int cuda, const char *host_sentence, double began_us) {
  printf("finished in %.1f s\n", (bench_now_us() - began_us) / 1e6);
  if (cuda)
    return;
  if (host_sentence != NULL)
    printf("%s; %s; %s.\n", BENCH_HOST_NOTE_HEAD, host_sentence,
           BENCH_HOST_NOTE_TAIL);
  else
    printf("%s.\n", BENCH_HOST_NOTE_TEXT);
}

int bench_fail_call(const char *program, cgr_runtime *rt, cgr_status status,
                    const char *what) {
  fprintf(stderr, "%s: %s failed: %s: %s\n", program, what,
          cgr_status_name(status), cgr_last_error(rt));
  return -1;
}
