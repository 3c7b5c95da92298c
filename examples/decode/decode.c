/*
 * cgr-decode: a complete decode loop on cgr. A small transformer with
 * random weights serves a seeded trace of requests over a paged KV cache;
 * decode steps replay CUDA graphs (or the host backend's), prompts prefill
 * eagerly, sampled tokens flow back on the device; with --spec K each
 * decode step verifies K draft tokens per request (speculative decoding,
 * the same tokens in fewer steps); --mode pipelined schedules each decode
 * step before the one before it launches. Prints throughput, latency, capture
 * cost, memory, and with --check a verdict against eager steps and the
 * plain-C reference.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cgr/cgr.h>

#include "model.h"
#include "serve.h"

typedef struct options {
  cgr_backend_kind backend;
  cgr_replay_mode mode;
  dec_config model;
  dec_trace_config trace;
  int32_t max_seq; /* tokens */
  int32_t tp;      /* ranks of the tensor-parallel group (1: one runtime) */
  int32_t spec;    /* draft tokens per verify step (0: plain decoding) */
  /* One rank per process: this process's rank and the group's id
   * (--rank, --group-id or CGR_GROUP_RANK, CGR_GROUP_ID); id NULL: every
   * rank in this process. */
  int32_t rank;
  const char *group_id;
  /* --group-id-file, CGR_GROUP_ID_FILE: rank 0 makes the id and writes it
   * there, the other ranks read it. */
  const char *group_id_file;
  int check, json, progress, no_reference;
  int late_ends; /* --late-ends (pipelined) */
} options;

static void usage(FILE *to) {
  fprintf(
      to,
      "usage: cgr-decode [options]\n"
      "  --mode eager|naive|fused|double|ingraph|pipelined  replay mode\n"
      "                   (double); pipelined schedules step n + 1 before\n"
      "                   step n launches (one runtime, no --spec)\n"
      "  --late-ends      with --mode pipelined: keep each request in the\n"
      "                   step after its last, as a loop that learns a\n"
      "                   request's end from its tokens must; the host\n"
      "                   discards the token it reads there\n"
      "  --tp N           tensor parallel over N ranks, 1, 2, 4 or 8 (1):\n"
      "                   N GPUs over NCCL, or N host devices\n"
      "  --rank R --group-id-file F  one rank per process: this process\n"
      "                   is rank R of --tp N; rank 0 makes the group's id\n"
      "                   and writes it to F, the others read it (or\n"
      "                   --group-id ID; CGR_GROUP_RANK, CGR_GROUP_ID_FILE,\n"
      "                   CGR_GROUP_ID; scripts/tp_launch.sh starts them)\n"
      "  --spec K         speculative decoding: an n-gram draft of K\n"
      "                   tokens, 1 to 8, verified in one step of K + 1\n"
      "                   tokens per request, greedy acceptance (0: off)\n"
      "  --backend auto|cuda|host   (auto)\n"
      "  --steps N        decode steps at most (0: until the trace ends)\n"
      "  --requests N     requests in the trace (64)\n"
      "  --max-batch N    requests decoding at once, 1-256 (16)\n"
      "  --prompt N       prompt lengths 1..N (16)\n"
      "  --new N          generated tokens per request 1..N (32)\n"
      "  --seed N         trace and weights seed (1)\n"
      "  --check          compare every step with an eager run (on one\n"
      "                   runtime, also with --tp), and tokens with the\n"
      "                   plain-C reference (small models)\n"
      "  --no-reference   with --check, skip the plain-C reference\n"
      "  --json           one JSON object instead of the report\n"
      "  --quiet          no progress lines\n"
      "  --layers N --hidden N --heads N --head-dim N --mlp N --vocab N\n"
      "  --dtype fp32|bf16  matmul weights, accumulated in fp32 (fp32)\n"
      "  --pages N        KV pages of 16 tokens (1024)\n"
      "  --max-seq N      longest sequence in tokens (512)\n");
}

static int parse_int(const char *text, long min, long max, long *out) {
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < min || value > max)
    return 0;
  *out = value;
  return 1;
}

/* Indexed by cgr_replay_mode. */
static const char *const mode_names[] = {"naive",   "fused", "double",
                                         "ingraph", "eager", "pipelined"};
#define MODE_COUNT (sizeof mode_names / sizeof mode_names[0])

static int parse_options(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  dec_config_default(&o->model);
  o->backend = CGR_BACKEND_AUTO;
  o->mode = CGR_REPLAY_DOUBLE_BUFFERED;
  o->progress = 1;
  o->max_seq = 512;
  o->tp = 1;
  int rank_given = 0;
  o->trace = (dec_trace_config){.requests = 64,
                                .max_prompt = 16,
                                .max_new = 32,
                                .max_batch = 16,
                                .max_steps = 0,
                                .seed = 1};
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    long n = 0;
    if (strcmp(arg, "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(arg, "--check") == 0) {
      o->check = 1;
      continue;
    } else if (strcmp(arg, "--json") == 0) {
      o->json = 1;
      continue;
    } else if (strcmp(arg, "--no-reference") == 0) {
      o->no_reference = 1;
      continue;
    } else if (strcmp(arg, "--quiet") == 0) {
      o->progress = 0;
      continue;
    } else if (strcmp(arg, "--late-ends") == 0) {
      o->late_ends = 1;
      continue;
    }
    if (value == NULL) {
      fprintf(stderr, "cgr-decode: %s needs a value\n", arg);
      return 0;
    }
    ++i;
    if (strcmp(arg, "--rank") == 0)
      rank_given = 1;
    if (strcmp(arg, "--mode") == 0) {
      int found = 0;
      for (size_t m = 0; m < MODE_COUNT; ++m)
        if (strcmp(value, mode_names[m]) == 0) {
          o->mode = (cgr_replay_mode)m;
          found = 1;
        }
      if (!found) {
        fprintf(stderr,
                "cgr-decode: --mode %s: not eager, naive, fused, "
                "double, ingraph or pipelined\n",
                value);
        return 0;
      }
      continue;
    }
    if (strcmp(arg, "--dtype") == 0) {
      if (strcmp(value, "fp32") == 0)
        o->model.dtype = DEC_FP32;
      else if (strcmp(value, "bf16") == 0)
        o->model.dtype = DEC_BF16;
      else {
        fprintf(stderr, "cgr-decode: --dtype %s: not fp32 or bf16\n", value);
        return 0;
      }
      continue;
    }
    if (strcmp(arg, "--group-id") == 0) {
      o->group_id = value;
      continue;
    }
    if (strcmp(arg, "--group-id-file") == 0) {
      o->group_id_file = value;
      continue;
    }
    if (strcmp(arg, "--backend") == 0) {
      if (strcmp(value, "auto") == 0)
        o->backend = CGR_BACKEND_AUTO;
      else if (strcmp(value, "cuda") == 0)
        o->backend = CGR_BACKEND_CUDA;
      else if (strcmp(value, "host") == 0)
        o->backend = CGR_BACKEND_HOST;
      else {
        fprintf(stderr, "cgr-decode: --backend %s: not auto, cuda or host\n",
                value);
        return 0;
      }
      continue;
    }
    struct {
      const char *name;
      long min, max;
      int32_t *field32;
      int64_t *field64;
      uint64_t *field_u64;
    } ints[] = {
        {"--steps", 0, 100000000, NULL, &o->trace.max_steps, NULL},
        {"--requests", 0, 1000000, &o->trace.requests, NULL, NULL},
        {"--max-batch", 1, 256, &o->trace.max_batch, NULL, NULL},
        {"--prompt", 1, 4096, &o->trace.max_prompt, NULL, NULL},
        {"--new", 1, 4096, &o->trace.max_new, NULL, NULL},
        {"--seed", 0, 1L << 30, NULL, NULL, &o->trace.seed},
        {"--layers", 0, 256, &o->model.layers, NULL, NULL},
        {"--hidden", 1, 1 << 16, &o->model.hidden, NULL, NULL},
        {"--heads", 1, 1024, &o->model.heads, NULL, NULL},
        {"--head-dim", 1, 1024, &o->model.head_dim, NULL, NULL},
        {"--mlp", 1, 1 << 18, &o->model.mlp, NULL, NULL},
        {"--vocab", 2, 1 << 20, &o->model.vocab, NULL, NULL},
        {"--pages", 2, 1 << 24, &o->model.pages, NULL, NULL},
        {"--max-seq", 1, 1 << 20, &o->max_seq, NULL, NULL},
        {"--tp", 1, CGR_GROUP_MAX_RANKS, &o->tp, NULL, NULL},
        {"--rank", 0, CGR_GROUP_MAX_RANKS - 1, &o->rank, NULL, NULL},
        {"--spec", 0, DEC_MAX_SPEC, &o->spec, NULL, NULL},
    };
    int matched = 0;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; ++k) {
      if (strcmp(arg, ints[k].name) != 0)
        continue;
      matched = 1;
      if (!parse_int(value, ints[k].min, ints[k].max, &n)) {
        fprintf(stderr,
                "cgr-decode: %s %s: expected an integer from %ld to "
                "%ld\n",
                arg, value, ints[k].min, ints[k].max);
        return 0;
      }
      if (ints[k].field32 != NULL)
        *ints[k].field32 = (int32_t)n;
      else if (ints[k].field64 != NULL)
        *ints[k].field64 = n;
      else
        *ints[k].field_u64 = (uint64_t)n;
    }
    if (!matched) {
      fprintf(stderr, "cgr-decode: unknown option %s\n", arg);
      return 0;
    }
  }
  /* A launcher hands each process its rank and the id in the
   * environment. */
  const char *env_id = getenv("CGR_GROUP_ID");
  const char *env_rank = getenv("CGR_GROUP_RANK");
  const char *env_file = getenv("CGR_GROUP_ID_FILE");
  if (o->group_id == NULL && o->group_id_file == NULL && env_id != NULL &&
      env_id[0] != '\0')
    o->group_id = env_id;
  if (o->group_id == NULL && o->group_id_file == NULL && env_file != NULL &&
      env_file[0] != '\0')
    o->group_id_file = env_file;
  int joined = o->group_id != NULL || o->group_id_file != NULL;
  if (joined && env_rank != NULL && !rank_given) {
    long n = 0;
    if (!parse_int(env_rank, 0, CGR_GROUP_MAX_RANKS - 1, &n)) {
      fprintf(stderr, "cgr-decode: CGR_GROUP_RANK=%s: expected 0 to %d\n",
              env_rank, CGR_GROUP_MAX_RANKS - 1);
      return 0;
    }
    o->rank = (int32_t)n;
  }
  if (rank_given && !joined) {
    fprintf(stderr, "cgr-decode: --rank needs --group-id-file or --group-id "
                    "(one rank per process)\n");
    return 0;
  }
  const char *env_world = getenv("CGR_GROUP_WORLD");
  if (joined && env_world != NULL && atol(env_world) != o->tp) {
    fprintf(stderr,
            "cgr-decode: --tp %d, but the launcher started a group of %s "
            "ranks (CGR_GROUP_WORLD)\n",
            o->tp, env_world);
    return 0;
  }
  if (joined && (o->tp < 2 || o->rank >= o->tp)) {
    fprintf(stderr,
            "cgr-decode: a group id needs --tp 2 or more and --rank below "
            "it (--tp %d, --rank %d)\n",
            o->tp, o->rank);
    return 0;
  }
  /* --max-seq is given in tokens; the page table holds pages. */
  o->model.pages_per_seq =
      (o->max_seq + o->model.page_size - 1) / o->model.page_size;
  o->model.seed = o->trace.seed;
  return 1;
}

/* NULL when the pipelined mode (or its --late-ends) fits the other
 * options, else a sentence saying why not. */
static const char *pipelined_problem(const options *o) {
  if (o->mode != CGR_REPLAY_PIPELINED)
    return o->late_ends ? "--late-ends needs --mode pipelined" : NULL;
  if (o->tp > 1)
    return "--mode pipelined does not support --tp over 1 yet: a group's "
           "ranks have no pipelined replay (cgr_group_*); use another --mode";
  if (o->spec > 0)
    return "--mode pipelined does not support --spec yet: a verify step's "
           "accepted tokens decide the next step's rows, which this mode "
           "builds before the step runs; use another --mode";
  return NULL;
}

/* ---- runtime, model, capture ------------------------------------------------
 */

/* The buckets a batch of at most max_batch requests uses: the serving
 * engines' list (1, 2, 4, 8, then every 8), cut at max_batch. */
static size_t buckets_for(int32_t max_batch, uint32_t *out) {
  size_t n = 0;
  for (uint32_t b = 1; b <= 8 && (int32_t)b < max_batch; b *= 2)
    out[n++] = b;
  for (uint32_t b = 16; (int32_t)b < max_batch; b += 8)
    out[n++] = b;
  out[n++] = (uint32_t)max_batch;
  return n;
}

/* One runtime, or a tensor-parallel group of them. */
typedef struct engine {
  cgr_runtime *rt;  /* the runtime, or the group's rank 0 */
  cgr_group *group; /* --tp over 1 */
  int32_t ranks;
  dec_model models[CGR_GROUP_MAX_RANKS]; /* rank r's share (all of it: 1) */
  int has_model;
  double capture_ms;
} engine;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The group of --tp ranks, each with the runtime config, and the model
 * split over it. */
static cgr_status group_open(engine *e, int32_t tp, const options *o,
                             const cgr_config *config, char *why,
                             size_t why_size) {
  cgr_group_config group;
  cgr_group_config_init(&group);
  group.ranks = tp;
  group.runtime = config;
  if (o->group_id != NULL) {
    /* This process holds one rank of tp. */
    group.ranks = 1;
    group.world_ranks = tp;
    group.world_rank = o->rank;
    group.id = o->group_id;
  }
  cgr_status status = cgr_group_create(&group, &e->group);
  if (status != CGR_OK) {
    snprintf(why, why_size, "%s", cgr_group_last_error(NULL));
    return status;
  }
  e->rt = cgr_group_runtime(e->group, 0);
  e->ranks = cgr_group_ranks(e->group);
  status =
      dec_model_create_group(e->group, &o->model, e->models, why, why_size);
  e->has_model = status == CGR_OK;
  return status;
}

static int engine_open(engine *e, const options *o, int32_t tp,
                       cgr_replay_mode mode, const uint32_t *buckets,
                       size_t bucket_count) {
  memset(e, 0, sizeof *e);
  cgr_config config;
  cgr_config_init(&config);
  /* --spec: a graph per bucket for plain steps (prefill, whose every
   * prompt token is a request of one token) and one for verify steps of
   * K + 1 tokens per request. */
  uint32_t tokens_per_request[2] = {1, (uint32_t)o->spec + 1};
  if (o->spec > 0) {
    config.tokens_per_request = tokens_per_request;
    config.tokens_per_request_count = 2;
  }
  config.backend = o->backend;
  config.buckets = buckets;
  config.bucket_count = bucket_count;
  config.replay_mode = mode;
  config.validate = o->check;
  char why[512] = "";
  cgr_status status;
  if (tp > 1) {
    status = group_open(e, tp, o, &config, why, sizeof why);
  } else {
    e->ranks = 1;
    status = cgr_runtime_create(&config, &e->rt);
    if (status != CGR_OK) {
      snprintf(why, sizeof why, "%s", cgr_last_error(NULL));
    } else {
      status =
          dec_model_create(e->rt, &o->model, &e->models[0], why, sizeof why);
      e->has_model = status == CGR_OK;
    }
  }
  if (status != CGR_OK) {
    fprintf(stderr, "cgr-decode: %s: %s\n", cgr_status_name(status), why);
    return 0;
  }
  double start = now_ms();
  status = e->group != NULL ? cgr_group_capture(e->group, dec_step, e->models)
                            : cgr_capture(e->rt, dec_step, &e->models[0]);
  e->capture_ms = now_ms() - start;
  if (status != CGR_OK) {
    fprintf(stderr, "cgr-decode: capture: %s: %s\n", cgr_status_name(status),
            e->group != NULL ? cgr_group_last_error(e->group)
                             : cgr_last_error(e->rt));
    return 0;
  }
  return 1;
}

static void engine_close(engine *e) {
  /* The graphs read the model's memory: the runtimes go first. */
  if (e->group != NULL) {
    cgr_group_destroy(e->group); /* waits for every rank's work */
    if (e->has_model)
      dec_model_destroy_group(e->models, e->ranks);
  } else {
    cgr_runtime *rt = e->rt;
    if (rt != NULL)
      cgr_synchronize(rt);
    cgr_runtime_destroy(rt);
    if (e->has_model)
      dec_model_destroy(&e->models[0]);
  }
  e->rt = NULL;
  e->group = NULL;
}

/* --check's verdict on the steps. With --tp over 1 on CUDA the group sums
 * in NCCL's order, not the check model's: a near tie may flip a token now
 * and then (the check follows the group's tokens, so a flip does not
 * cascade), but a wrong split flips most of them. Everywhere else, the
 * host backend's group included, every step must match. */
static int steps_agree(const options *o, const engine *e,
                       const dec_run_stats *stats) {
  if (stats->mismatched_steps == 0)
    return 1;
  return o->tp > 1 && cgr_backend(e->rt) == CGR_BACKEND_CUDA &&
         stats->mismatched_tokens * 20 <= stats->compared_tokens;
}

static int check_passed(const options *o, const engine *e,
                        const dec_run_stats *stats) {
  return steps_agree(o, e, stats) &&
         (stats->reference_tokens < 0 || stats->reference_mismatches == 0);
}

/* ---- the group's id across processes ----------------------------------------
 */

/*
 * --group-id-file: rank 0 makes the id in this process, which lives on
 * while the ranks join (on CUDA NCCL's bootstrap root runs in the process
 * that made the id: an id made by a process that has exited cannot be
 * joined), and writes it whole (a temporary file, renamed); the other
 * ranks wait for the file, 60 s at most, and read it. A file left by an
 * earlier run would be read as this one's: the launcher removes it first.
 */
static int id_from_file(const options *o, char *id, size_t size) {
  const char *path = o->group_id_file;
  if (o->rank == 0) {
    cgr_status status = cgr_group_id_create(o->backend, id, size);
    if (status != CGR_OK) {
      fprintf(stderr, "cgr-decode: making the group's id: %s: %s\n",
              cgr_status_name(status), cgr_group_last_error(NULL));
      return 0;
    }
    char temporary[4096];
    snprintf(temporary, sizeof temporary, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(temporary, "w");
    int ok = f != NULL && fprintf(f, "%s\n", id) > 0;
    if (f != NULL)
      ok = fclose(f) == 0 && ok;
    if (!ok || rename(temporary, path) != 0) {
      fprintf(stderr, "cgr-decode: writing the group's id to %s failed\n",
              path);
      remove(temporary);
      return 0;
    }
    return 1;
  }
  double start = now_ms();
  for (;;) {
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      int read = fgets(id, (int)size, f) != NULL;
      fclose(f);
      id[strcspn(id, "\r\n")] = '\0';
      if (read && id[0] != '\0')
        return 1;
    }
    if (now_ms() - start > 60000.0) {
      fprintf(stderr,
              "cgr-decode: rank %d: no group id in %s after 60 s (rank 0 "
              "writes it)\n",
              o->rank, path);
      return 0;
    }
    struct timespec pause = {0, 10000000L};
    nanosleep(&pause, NULL);
  }
}

/* ---- report
 * -------------------------------------------------------------------- */

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(double *sorted, int64_t n, double p) {
  if (n == 0)
    return 0.0;
  int64_t i = (int64_t)(p * (double)(n - 1) + 0.5);
  return sorted[i];
}

static const char *mode_label(cgr_replay_mode mode) {
  static const char *const labels[] = {"naive",    "fused", "double_buffered",
                                       "in_graph", "eager", "pipelined"};
  return labels[mode];
}

static void report(const options *o, const engine *e,
                   const dec_run_stats *stats, int reference_run) {
  cgr_capture_stats capture;
  cgr_capture_stats_get(e->rt, &capture);
  int64_t n = stats->decode_steps;
  double *sorted = malloc((size_t)(n ? n : 1) * sizeof(double));
  if (sorted != NULL && n > 0) {
    memcpy(sorted, stats->step_ms, (size_t)n * sizeof(double));
    qsort(sorted, (size_t)n, sizeof(double), by_value);
  }
  double p50 = sorted ? percentile(sorted, n, 0.5) : 0.0;
  double p99 = sorted ? percentile(sorted, n, 0.99) : 0.0;
  free(sorted);
  /* GPU time of the decode steps (CUDA events; graph steps only). */
  int64_t g = stats->gpu_steps;
  double gpu_p50 = -1.0, gpu_p99 = -1.0;
  if (g > 0) {
    qsort(stats->gpu_step_ms, (size_t)g, sizeof(double), by_value);
    gpu_p50 = percentile(stats->gpu_step_ms, g, 0.5);
    gpu_p99 = percentile(stats->gpu_step_ms, g, 0.99);
  }
  double tokens_per_s =
      stats->seconds > 0 ? (double)stats->tokens / stats->seconds : 0.0;
  int on_host = cgr_backend(e->rt) == CGR_BACKEND_HOST;
  const dec_config *c = &o->model;
  double mean = n > 0 ? 1.0 / (double)n : 0.0;
  const char *verdict = !o->check                   ? "not run"
                        : check_passed(o, e, stats) ? "pass"
                                                    : "FAIL";
  const dec_model *model = &e->models[0];
  /* --spec: drafts the model agreed with, and tokens per request per
   * step (1 without a draft). */
  double acceptance = stats->drafted > 0 ? (double)stats->accepted_drafts /
                                               (double)stats->drafted
                                         : 0.0;
  double per_step = stats->request_steps > 0 ? (double)stats->decode_tokens /
                                                   (double)stats->request_steps
                                             : 0.0;
  if (o->json) {
    printf("{\"program\":\"cgr-decode\",\"cgr\":\"%s\",\"backend\":\"%s\","
           "\"backend_reason\":\"%s\",\"timing\":\"%s\",\"mode\":\"%s\",\"tp\":"
           "%d,\"rank\":%d,"
           "\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"head_dim\":%d,"
           "\"mlp\":%d,\"vocab\":%d,\"dtype\":\"%s\",\"requests\":%d,"
           "\"max_batch\":%d,"
           "\"seed\":%llu,\"decode_steps\":%lld,\"prefill_steps\":%lld,"
           "\"tokens\":%lld,\"seconds\":%.3f,\"tokens_per_s\":%.2f,"
           "\"step_p50_ms\":%.4f,\"step_p99_ms\":%.4f,\"prepare_ms\":%.4f,"
           "\"replay_ms\":%.4f,\"rest_ms\":%.4f,\"host_waits\":%lld,"
           "\"graph_launches\":%lld,\"other_launches\":%lld,"
           "\"capturing_launches\":%lld,\"runs\":%lld,"
           "\"discarded_tokens\":%lld,"
           "\"gpu_step_p50_ms\":%.4f,\"gpu_step_p99_ms\":%.4f,"
           "\"buckets\":%llu,\"graphs\":%llu,\"capture_ms\":%.1f,"
           "\"arena_bytes\":%llu,\"slot_bytes\":%llu,\"weight_bytes\":%zu,"
           "\"kv_bytes\":%zu,\"token_hash\":\"%016llx\",\"check\":\"%s\","
           "\"checked_steps\":%lld,\"mismatched_steps\":%lld,"
           "\"compared_tokens\":%lld,\"mismatched_tokens\":%lld,"
           "\"max_logit_diff\":%g,\"reference_tokens\":%lld,"
           "\"reference_mismatches\":%lld,\"spec\":%d,\"drafted\":%lld,"
           "\"accepted_drafts\":%lld,\"acceptance_rate\":%.4f,"
           "\"tokens_per_request_step\":%.4f}\n",
           cgr_version_string(), cgr_backend_name(e->rt),
           cgr_backend_reason(e->rt), on_host ? "cpu" : "gpu",
           mode_label(o->mode), o->tp, o->group_id != NULL ? o->rank : 0,
           c->layers, c->hidden, c->heads, c->head_dim, c->mlp, c->vocab,
           dec_dtype_name(c->dtype), o->trace.requests, o->trace.max_batch,
           (unsigned long long)o->trace.seed, (long long)n,
           (long long)stats->prefill_steps, (long long)stats->tokens,
           stats->seconds, tokens_per_s, p50, p99, stats->prepare_ms * mean,
           stats->replay_ms * mean, stats->rest_ms * mean,
           (long long)stats->host_waits, (long long)stats->graph_launches,
           (long long)stats->other_launches,
           (long long)stats->capturing_launches, (long long)stats->runs,
           (long long)stats->discarded_tokens, gpu_p50, gpu_p99,
           (unsigned long long)capture.buckets,
           (unsigned long long)capture.graphs, e->capture_ms,
           (unsigned long long)capture.arena_bytes,
           (unsigned long long)capture.slot_bytes, model->weight_bytes,
           2 * model->cache_bytes, (unsigned long long)stats->token_hash,
           verdict, (long long)stats->checked_steps,
           (long long)stats->mismatched_steps,
           (long long)stats->compared_tokens,
           (long long)stats->mismatched_tokens, (double)stats->max_logit_diff,
           (long long)stats->reference_tokens,
           (long long)stats->reference_mismatches, o->spec,
           (long long)stats->drafted, (long long)stats->accepted_drafts,
           acceptance, per_step);
    return;
  }
  printf("cgr-decode %s: backend %s (%s)\n", cgr_version_string(),
         cgr_backend_name(e->rt), cgr_backend_reason(e->rt));
  if (on_host)
    printf("  no GPU in use: the host backend runs the same engine on CPU "
           "threads; every time below is a CPU time\n");
  printf("model: %d layers, hidden %d, %d heads x %d, MLP %d, vocab %d, "
         "%s weights; KV cache %d pages x %d tokens\n",
         c->layers, c->hidden, c->heads, c->head_dim, c->mlp, c->vocab,
         dec_dtype_name(c->dtype), c->pages, c->page_size);
  if (o->tp > 1)
    printf("tensor parallel: %d ranks (%s), each with %d of %d heads and "
           "%d of %d MLP columns; one all-reduce after attention and one "
           "after the MLP per layer; memory below is per rank%s\n",
           o->tp,
           cgr_backend(e->rt) == CGR_BACKEND_CUDA
               ? "one GPU each, over NCCL"
               : "host devices over the host communicator",
           c->heads / o->tp, c->heads, c->mlp / o->tp, c->mlp,
           o->group_id != NULL ? "; one rank per process, this one's below"
                               : "");
  printf("trace: %d requests, prompts 1-%d, new tokens 1-%d, batch up to %d, "
         "seed %llu; mode %s\n",
         o->trace.requests, o->trace.max_prompt, o->trace.max_new,
         o->trace.max_batch, (unsigned long long)o->trace.seed,
         mode_label(o->mode));
  if (o->spec > 0)
    printf("capture: %llu buckets x 2 keys (1 and %d tokens per request) x 2 "
           "sets = %llu graphs in %.1f ms\n",
           (unsigned long long)capture.buckets, o->spec + 1,
           (unsigned long long)capture.graphs, e->capture_ms);
  else
    printf("capture: %llu buckets x 2 sets = %llu graphs in %.1f ms\n",
           (unsigned long long)capture.buckets,
           (unsigned long long)capture.graphs, e->capture_ms);
  printf("memory: arena %.2f MiB (shared by all buckets), slots %.2f MiB, "
         "weights %.2f MiB, KV cache %.2f MiB\n",
         (double)capture.arena_bytes / 1048576.0,
         (double)capture.slot_bytes / 1048576.0,
         (double)model->weight_bytes / 1048576.0,
         2.0 * (double)model->cache_bytes / 1048576.0);
  printf("served: %lld decode steps, %lld prefill steps, %lld tokens in "
         "%.2f s: %.1f tokens/s\n",
         (long long)n, (long long)stats->prefill_steps,
         (long long)stats->tokens, stats->seconds, tokens_per_s);
  printf("decode step (host clock): p50 %.3f ms, p99 %.3f ms; mean prepare "
         "%.3f ms, replay %.3f ms, rest %.3f ms; the host waited for the "
         "device %lld times (before prefills%s)\n",
         p50, p99, stats->prepare_ms * mean, stats->replay_ms * mean,
         stats->rest_ms * mean, (long long)stats->host_waits,
         o->spec > 0 ? "; and after every verify step: its acceptance "
                       "decides the next step's tokens"
         : o->mode == CGR_REPLAY_IN_GRAPH
             ? "; in-graph mode takes no feedback: each step's tokens are "
               "read before the next"
             : "");
  printf("launches%s: the decode steps made %lld graph launches and %lld "
         "other kernel launches, copies and memsets, besides %lld launches "
         "that captured a graph first\n",
         o->tp > 1 ? " (rank 0's)" : "", (long long)stats->graph_launches,
         (long long)stats->other_launches,
         (long long)stats->capturing_launches);
  if (o->mode == CGR_REPLAY_PIPELINED)
    printf("pipelined: %lld runs of steps, each step staged before the one "
           "before it launched (a run's first step loads by a copy, the "
           "others inside the graph before them); a run ends before each "
           "admission; %lld tokens read past their request's end, "
           "discarded%s\n",
           (long long)stats->runs, (long long)stats->discarded_tokens,
           o->late_ends ? " (--late-ends)" : "");
  if (g > 0)
    printf("decode step (GPU events on the main stream, graph steps): p50 "
           "%.3f ms, p99 %.3f ms\n",
           gpu_p50, gpu_p99);
  else if (!on_host)
    printf("decode step (GPU events): not measured\n");
  if (o->spec > 0)
    printf("speculative: --spec %d, an n-gram draft verified in steps of %d "
           "tokens per request: %lld of %lld draft tokens accepted (%.1f%%), "
           "%.2f tokens per request per step\n",
           o->spec, o->spec + 1, (long long)stats->accepted_drafts,
           (long long)stats->drafted, 100.0 * acceptance, per_step);
  printf("tokens: hash %016llx (every --mode and --spec must give the "
         "same)\n",
         (unsigned long long)stats->token_hash);
  if (o->check)
    printf("check: %s: %lld steps compared with eager runs, %lld "
           "mismatched, max logit difference %g; plain-C reference: %s\n",
           verdict, (long long)stats->checked_steps,
           (long long)stats->mismatched_steps, (double)stats->max_logit_diff,
           reference_run ? (stats->reference_mismatches == 0 ? "tokens equal"
                                                             : "tokens DIFFER")
                         : (o->no_reference ? "skipped (--no-reference)"
                                            : "skipped (model too large)"));
  else
    printf("check: not run (--check compares every step with an eager run)\n");
}

/* The plain-C reference recomputes every token: only small models. */
static int small_model(const dec_config *c) {
  return (int64_t)c->layers * c->hidden * (c->hidden + c->mlp) <= 4000000 &&
         c->vocab <= 8192;
}

int main(int argc, char **argv) {
  options o;
  if (!parse_options(argc, argv, &o)) {
    usage(stderr);
    return 2;
  }
  const char *problem = dec_config_problem(&o.model);
  if (problem != NULL) {
    fprintf(stderr, "cgr-decode: %s\n", problem);
    return 2;
  }
  uint32_t buckets[64];
  size_t bucket_count = buckets_for(o.trace.max_batch, buckets);
  problem = dec_tp_problem(&o.model, o.tp);
  if (problem == NULL)
    problem = pipelined_problem(&o);
  if (problem != NULL) {
    fprintf(stderr, "cgr-decode: %s\n", problem);
    return 2;
  }
  static char id[CGR_GROUP_ID_MAX];
  if (o.group_id == NULL && o.group_id_file != NULL) {
    if (!id_from_file(&o, id, sizeof id))
      return 1;
    o.group_id = id;
  }
  /* Static: each holds a model per rank. */
  static engine main_engine, check_engine;
  int ok = engine_open(&main_engine, &o, o.tp, o.mode, buckets, bucket_count);
  int checking = ok && o.check;
  /* The check model is one runtime, eager, whatever --tp says. */
  if (checking)
    ok = engine_open(&check_engine, &o, 1, CGR_REPLAY_EAGER, buckets,
                     bucket_count);
  int status = 1;
  if (ok) {
    dec_run_stats stats;
    char why[512];
    int reference = checking && !o.no_reference && small_model(&o.model);
    cgr_status served =
        dec_serve(&main_engine.models[0],
                  checking ? &check_engine.models[0] : NULL, reference,
                  &o.trace, o.mode, o.spec, o.late_ends, o.progress && !o.json,
                  &stats, why, sizeof why);
    if (served != CGR_OK) {
      fprintf(stderr, "cgr-decode: %s: %s\n", cgr_status_name(served), why);
      status = served == CGR_E_INVALID_ARGUMENT ? 2 : 1;
    } else {
      report(&o, &main_engine, &stats, reference);
      status = o.check && !check_passed(&o, &main_engine, &stats) ? 1 : 0;
    }
    dec_run_stats_free(&stats);
  }
  if (checking)
    engine_close(&check_engine);
  engine_close(&main_engine);
  return status;
}
