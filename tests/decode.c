/* cgr-decode, run as a user runs it: the host step equals the plain-C
 * reference; --check finds zero mismatches over 2,000 steps in every mode;
 * every mode gives the same tokens, and so does --tp 2 and 4 (tensor
 * parallel, checked against one runtime) and --spec 1 and 3 (speculative
 * decoding); --mode pipelined schedules a step ahead with one graph launch
 * per step, in runs that end at admissions, and discards tokens read past
 * a request's end; bad options and impossible configurations fail
 * clearly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef CGR_DECODE_PATH
#error "CGR_DECODE_PATH must name cgr-decode, relative to the build tree"
#endif

/* A small model: the plain-C reference checks it, and it runs fast. */
#define SMALL                                                                  \
  "--layers 2 --hidden 64 --heads 4 --head-dim 16 --mlp 96 --vocab 512 "

typedef struct result {
  int exit_code;
  char output[16384];
} result;

/* Runs cgr-decode with `args` on the backend under test; stdout and stderr
 * together in r->output. */
static void run_decode(const char *args, result *r) {
  char decode[4096], command[6144];
  cgr_test_build_path(decode, sizeof decode, CGR_DECODE_PATH);
  if (access(decode, X_OK) != 0)
    fail_msg("no cgr-decode at %s: set CGR_TEST_BUILD_DIR", decode);
  snprintf(command, sizeof command, "'%s' --backend %s %s 2>&1", decode,
           cgr_test_backend == CGR_BACKEND_CUDA ? "cuda" : "host", args);
  FILE *pipe = popen(command, "r");
  assert_non_null(pipe);
  /* Read to the end, keeping the first 16 KiB: a child left blocked on a
   * full pipe would never exit. */
  size_t n = fread(r->output, 1, sizeof r->output - 1, pipe);
  r->output[n] = '\0';
  char drain[4096];
  while (fread(drain, 1, sizeof drain, pipe) > 0)
    ;
  int status = pclose(pipe);
  r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The value of "key":... in a JSON line, as text. */
static void json_field(const char *json, const char *key, char *out,
                       size_t size) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"%s\":", key);
  const char *at = strstr(json, needle);
  if (at == NULL)
    fail_msg("no \"%s\" in: %s", key, json);
  at += strlen(needle);
  if (*at == '"')
    ++at;
  size_t i = 0;
  while (at[i] != '\0' && at[i] != '"' && at[i] != ',' && at[i] != '}' &&
         i + 1 < size) {
    out[i] = at[i];
    ++i;
  }
  out[i] = '\0';
}

static void expect_pass(const result *r) {
  if (r->exit_code != 0)
    fail_msg("cgr-decode exited %d:\n%s", r->exit_code, r->output);
  char check[32];
  json_field(r->output, "check", check, sizeof check);
  assert_string_equal(check, "pass");
}

/* More than `at_least` tokens compared with the plain-C reference: equal on
 * the host (the same float operations); on CUDA, which sums in another
 * order, a near tie may flip a token now and then (each token is compared
 * from the same inputs, so flips do not cascade), but a wrong kernel flips
 * most of them. */
static void expect_reference(const char *tokens, const char *mismatches,
                             long at_least) {
  assert_true(atol(tokens) > at_least);
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_string_equal(mismatches, "0");
  else if (atol(mismatches) * 20 > atol(tokens))
    fail_msg("%s of %s tokens differ from the plain-C reference on CUDA",
             mismatches, tokens);
}

static void test_host_step_equals_the_plain_c_reference(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const shapes[] = {
      SMALL "--seed 1",
      SMALL "--seed 2 --max-batch 5",
      "--layers 1 --hidden 32 --heads 2 --head-dim 16 --mlp 40 --vocab 300 "
      "--seed 3 --max-batch 12 --prompt 20 --new 40 --max-seq 80",
      "--layers 3 --hidden 48 --heads 3 --head-dim 16 --mlp 64 --vocab 1000 "
      "--seed 4",
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
    char args[512];
    snprintf(args, sizeof args, "%s --requests 16 --check --json", shapes[i]);
    result r;
    run_decode(args, &r);
    expect_pass(&r);
    char tokens[32], mismatches[32];
    json_field(r.output, "reference_tokens", tokens, sizeof tokens);
    json_field(r.output, "reference_mismatches", mismatches, sizeof mismatches);
    expect_reference(tokens, mismatches, 16);
  }
}

/* bf16 matmul weights: the host copy holds the same bf16 values, so the
 * host step still equals the plain-C reference token for token. Long
 * requests: weights left unrounded on the host flip a few tokens in a run
 * this long, too few to show in a short one. */
static void test_bf16_weights_match_the_reference(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const shapes[] = {
      SMALL "--seed 1",
      SMALL "--seed 2 --max-batch 5 --mode fused",
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
    char args[512];
    snprintf(args, sizeof args,
             "%s --dtype bf16 --requests 64 --new 64 --max-seq 96 --check "
             "--json --quiet",
             shapes[i]);
    result r;
    run_decode(args, &r);
    expect_pass(&r);
    char dtype[32], weight_bytes[32], tokens[32], mismatches[32];
    json_field(r.output, "dtype", dtype, sizeof dtype);
    json_field(r.output, "weight_bytes", weight_bytes, sizeof weight_bytes);
    json_field(r.output, "reference_tokens", tokens, sizeof tokens);
    json_field(r.output, "reference_mismatches", mismatches, sizeof mismatches);
    assert_string_equal(dtype, "bf16");
    /* SMALL in bytes: the fp32 embedding (512 x 64) and norms (5 x 64),
     * 4 bytes each, and the bf16 matmul weights, 2 bytes each: 2 layers of
     * 64 x 192 + 64 x 64 + 64 x 192 + 96 x 64, and 64 x 512 for lm_head. */
    assert_int_equal(atol(weight_bytes),
                     4 * (512 * 64 + 5 * 64) +
                         2 * (2 * (64 * 192 + 64 * 64 + 64 * 192 + 96 * 64) +
                              64 * 512));
    expect_reference(tokens, mismatches, 1000);
  }
}

static void test_check_over_2000_steps_in_every_mode(void **state) {
  (void)cgr_test_runtime(state);
  /* CGR_TEST_DECODE_STEPS shortens the run under the sanitizers. */
  const char *override = getenv("CGR_TEST_DECODE_STEPS");
  long steps = override ? atol(override) : 2000;
  if (steps <= 0)
    steps = 2000;
  static const char *const modes[] = {"eager",  "naive",   "fused",
                                      "double", "ingraph", "pipelined"};
  char first_hash[32] = "";
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; ++m) {
    char args[512];
    snprintf(args, sizeof args,
             SMALL "--requests 3000 --max-batch 8 --steps %ld --mode %s "
                   "--check --no-reference --json --quiet",
             steps, modes[m]);
    result r;
    run_decode(args, &r);
    expect_pass(&r);
    char done[32], mismatched[32], hash[32];
    json_field(r.output, "decode_steps", done, sizeof done);
    json_field(r.output, "mismatched_steps", mismatched, sizeof mismatched);
    json_field(r.output, "token_hash", hash, sizeof hash);
    assert_int_equal(atol(done), steps);
    assert_string_equal(mismatched, "0");
    /* Every mode samples the same tokens. */
    if (m == 0)
      snprintf(first_hash, sizeof first_hash, "%s", hash);
    else if (strcmp(hash, first_hash) != 0)
      fail_msg("--mode %s gave tokens %s, eager gave %s", modes[m], hash,
               first_hash);
  }
}

/* --tp N needs N devices: on CUDA, N GPUs (skipped with fewer); the host
 * backend has as many host devices as asked for. */
static int have_devices(int count) {
  if (cgr_test_backend != CGR_BACKEND_CUDA)
    return 1;
  cgr_config config;
  cgr_test_config(&config);
  config.device = count - 1;
  cgr_runtime *rt = NULL;
  if (cgr_runtime_create(&config, &rt) != CGR_OK) {
    char why[128];
    snprintf(why, sizeof why, "--tp %d needs %d GPUs", count, count);
    cgr_test_skip(why);
    return 0;
  }
  cgr_runtime_destroy(rt);
  return 1;
}

/* Runs `args` --tp `tp` and returns its token hash in `hash`; with --check
 * in args, the run must pass it; with `steps` over 0, it must run that many
 * decode steps. */
static void run_tp(const char *args, int tp, long steps, char *hash,
                   size_t size) {
  char command[640];
  snprintf(command, sizeof command, "%s --tp %d --json --quiet", args, tp);
  result r;
  run_decode(command, &r);
  if (strstr(args, "--check") != NULL) {
    expect_pass(&r);
    /* The host backend's group computes the very floats of one runtime:
     * equal logits, not only equal tokens (a sum split in another order
     * flips no token in a run this short, but moves logits). */
    char diff[32];
    json_field(r.output, "max_logit_diff", diff, sizeof diff);
    if (cgr_test_backend == CGR_BACKEND_HOST && atof(diff) != 0.0)
      fail_msg("cgr-decode %s: logits differ from one runtime's by %s", command,
               diff);
  } else if (r.exit_code != 0)
    fail_msg("cgr-decode %s exited %d:\n%s", command, r.exit_code, r.output);
  char ranks[16];
  json_field(r.output, "tp", ranks, sizeof ranks);
  assert_int_equal(atol(ranks), tp);
  if (steps > 0) {
    char done[32];
    json_field(r.output, "decode_steps", done, sizeof done);
    assert_int_equal(atol(done), steps);
  }
  json_field(r.output, "token_hash", hash, size);
}

/* The token hashes of --tp 1 and --tp `tp`: the same on the host backend
 * (the split sums the same floats, DEC_SUM_BLOCKS); on CUDA NCCL sums in
 * its own order and --check's rule for near ties (in cgr-decode) decides. */
static void expect_same_tokens(const char *args, int tp, const char *one,
                               const char *many) {
  if (cgr_test_backend == CGR_BACKEND_HOST && strcmp(one, many) != 0)
    fail_msg("%s: --tp %d gave tokens %s, --tp 1 gave %s", args, tp, many, one);
}

/* A group of 2 and of 4 ranks, every mode, fp32 and bf16 weights: --check
 * compares every step with one runtime and the plain-C reference, and the
 * tokens are those of --tp 1. */
static void test_tensor_parallel_gives_the_tokens_of_one_runtime(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const shapes[] = {
      SMALL "--seed 1 --requests 16",
      SMALL "--seed 2 --max-batch 5 --requests 16",
      SMALL "--seed 3 --requests 16 --dtype bf16",
  };
  static const char *const modes[] = {"eager", "naive", "fused", "double",
                                      "ingraph"};
  static const int ranks[] = {2, 4};
  for (size_t t = 0; t < 2; ++t)
    if (!have_devices(ranks[t]))
      return;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
    char args[512], one[32], many[32];
    snprintf(args, sizeof args, "%s --check", shapes[i]);
    run_tp(args, 1, 0, one, sizeof one);
    for (size_t t = 0; t < 2; ++t)
      for (size_t m = 0; m < 5; ++m) {
        /* Every mode with 2 ranks and the first shape; the default and
         * eager with 4 and for the others. */
        if ((ranks[t] == 4 || i > 0) && m != 0 && m != 3)
          continue;
        char with_mode[600];
        snprintf(with_mode, sizeof with_mode, "%s --mode %s", args, modes[m]);
        run_tp(with_mode, ranks[t], 0, many, sizeof many);
        expect_same_tokens(with_mode, ranks[t], one, many);
      }
  }
}

/* 10,000 decode steps of --tp 2 (checked step by step against one runtime)
 * and of --tp 4 give the tokens of --tp 1. CGR_TEST_DECODE_STEPS shortens
 * the run under the sanitizers (twice its value). */
static void test_tensor_parallel_10000_steps_equal_one_runtime(void **state) {
  (void)cgr_test_runtime(state);
  if (!have_devices(4))
    return;
  const char *override = getenv("CGR_TEST_DECODE_STEPS");
  long steps =
      override != NULL && atol(override) > 0 ? 2 * atol(override) : 10000;
  char args[512], one[32], many[32];
  snprintf(args, sizeof args,
           SMALL "--requests 20000 --max-batch 8 --new 12 --prompt 4 "
                 "--max-seq 32 --steps %ld",
           steps);
  run_tp(args, 1, steps, one, sizeof one);
  char checked[600];
  snprintf(checked, sizeof checked, "%s --check --no-reference", args);
  run_tp(checked, 2, steps, many, sizeof many);
  expect_same_tokens(checked, 2, one, many);
  char fused[600];
  snprintf(fused, sizeof fused, "%s --mode fused", args);
  run_tp(fused, 4, steps, many, sizeof many);
  expect_same_tokens(fused, 4, one, many);
}

/* One process per rank, started by scripts/tp_launch.sh (a new id, each
 * process's rank in its environment), --check in validation mode (every
 * replay's batch size compared across the processes): every process
 * passes and samples the tokens of --tp 1. */
static void test_tensor_parallel_across_processes(void **state) {
  (void)cgr_test_runtime(state);
  if (!have_devices(4))
    return;
  char decode[4096], script[4096], folder[] = "/tmp/cgr-tp-XXXXXX";
  cgr_test_build_path(decode, sizeof decode, CGR_DECODE_PATH);
  cgr_test_source_path(script, sizeof script, "scripts/tp_launch.sh");
  assert_non_null(mkdtemp(folder));
  const char *backend = cgr_test_backend == CGR_BACKEND_CUDA ? "cuda" : "host";
  char one[32];
  run_tp(SMALL "--requests 16 --check", 1, 0, one, sizeof one);
  static const struct {
    int ranks;
    const char *mode;
  } runs[] = {{2, "double"}, {4, "fused"}, {2, "eager"}};
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; ++i) {
    char command[16384];
    snprintf(command, sizeof command,
             "bash '%s' --out '%s' %d -- '%s' --backend %s " SMALL
             "--requests 16 --check --json --quiet --tp %d --mode %s 2>&1",
             script, folder, runs[i].ranks, decode, backend, runs[i].ranks,
             runs[i].mode);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    char output[16384];
    size_t n = fread(output, 1, sizeof output - 1, pipe);
    output[n] = '\0';
    char drain[4096];
    while (fread(drain, 1, sizeof drain, pipe) > 0)
      ;
    int status = pclose(pipe);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("%s\nexited %d:\n%s", command, status, output);
    for (int rank = 0; rank < runs[i].ranks; ++rank) {
      char path[4200];
      snprintf(path, sizeof path, "%s/rank-%d.log", folder, rank);
      FILE *log = fopen(path, "r");
      assert_non_null(log);
      result r;
      n = fread(r.output, 1, sizeof r.output - 1, log);
      r.output[n] = '\0';
      fclose(log);
      r.exit_code = 0;
      expect_pass(&r);
      char field[32], many[32];
      json_field(r.output, "rank", field, sizeof field);
      assert_int_equal(atol(field), rank);
      json_field(r.output, "max_logit_diff", field, sizeof field);
      if (cgr_test_backend == CGR_BACKEND_HOST && atof(field) != 0.0)
        fail_msg("rank %d of --tp %d: logits differ by %s", rank, runs[i].ranks,
                 field);
      json_field(r.output, "token_hash", many, sizeof many);
      expect_same_tokens(command, runs[i].ranks, one, many);
      remove(path);
    }
  }
  rmdir(folder);
}

static void test_bad_options_fail_clearly(void **state) {
  (void)cgr_test_runtime(state);
  static const struct {
    const char *args;
    const char *says;
  } cases[] = {
      {"--mode warp", "not eager, naive, fused, double, ingraph or pipelined"},
      {"--mode pipelined --tp 2",
       "--mode pipelined does not support --tp over 1 yet"},
      {"--mode pipelined --tp 4 --rank 1 --group-id host:/x",
       "--mode pipelined does not support --tp over 1 yet"},
      {"--mode pipelined --spec 3", "--mode pipelined does not support --spec"},
      {"--late-ends", "--late-ends needs --mode pipelined"},
      {"--mode fused --late-ends", "--late-ends needs --mode pipelined"},
      {"--layers 0", "--layers must be at least 1"},
      {"--hidden 100 --heads 3 --head-dim 16", "--hidden must equal"},
      {"--max-batch 0", "--max-batch 0: expected an integer from 1"},
      {"--steps", "--steps needs a value"},
      {"--frobnicate 3", "unknown option --frobnicate"},
      {"--dtype fp8", "--dtype fp8: not fp32 or bf16"},
      {SMALL "--pages 3 --prompt 40 --new 40", "KV cache is too small"},
      {SMALL "--max-seq 32 --prompt 40 --new 40", "raise --max-seq"},
      {"--tp 3", "--tp must be 1, 2, 4 or 8"},
      {"--tp 2 --rank 1", "--rank needs --group-id-file or --group-id"},
      {"--tp 2 --rank 2 --group-id host:/x", "--rank below it"},
      {"--tp 9", "--tp 9: expected an integer from 1 to 8"},
      {SMALL "--tp 8", "--tp must divide --heads"},
      {"--layers 1 --hidden 36 --heads 2 --head-dim 18 --mlp 40 --tp 2",
       "multiples of 8"},
      {"--spec 9", "--spec 9: expected an integer from 0 to 8"},
      {"--spec -1", "--spec -1: expected an integer from 0 to 8"},
      {"--spec two", "--spec two: expected an integer"},
      {"--spec", "--spec needs a value"},
      /* 16 + 16 tokens fit 2 pages; the 8 drafts of a verify step do not. */
      {SMALL "--max-seq 32 --prompt 16 --new 16 --spec 8",
       "room for the drafts of --spec"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    result r;
    run_decode(cases[i].args, &r);
    if (r.exit_code != 2)
      fail_msg("'%s' exited %d, not 2:\n%s", cases[i].args, r.exit_code,
               r.output);
    if (strstr(r.output, cases[i].says) == NULL)
      fail_msg("'%s' did not say \"%s\":\n%s", cases[i].args, cases[i].says,
               r.output);
  }
}

static void test_default_run_reports_everything(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_decode(SMALL "--quiet", &r);
  if (r.exit_code != 0)
    fail_msg("cgr-decode exited %d:\n%s", r.exit_code, r.output);
  static const char *const lines[] = {"backend",       "tokens/s", "p50",
                                      "p99",           "capture:", "memory:",
                                      "check: not run"};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; ++i)
    if (strstr(r.output, lines[i]) == NULL)
      fail_msg("the report lacks \"%s\":\n%s", lines[i], r.output);
  if (cgr_test_backend == CGR_BACKEND_HOST)
    assert_non_null(strstr(r.output, "CPU time"));
}

/* A JSON field as a number. */
static double json_number(const char *json, const char *key) {
  char text[64];
  json_field(json, key, text, sizeof text);
  return atof(text);
}

/* A --mode pipelined run, with --check passing: one graph launch per
 * decode step, and nothing else launched but the copy that loads each
 * run's first step (a head and a tail at most); the launches that
 * captured a graph variant first (lazily) are counted apart. Runs of
 * several steps: the steps were staged ahead. */
static void expect_pipelined(const char *args, const result *r) {
  expect_pass(r);
  char mode[32];
  json_field(r->output, "mode", mode, sizeof mode);
  assert_string_equal(mode, "pipelined");
  double steps = json_number(r->output, "decode_steps");
  double graphs = json_number(r->output, "graph_launches");
  double capturing = json_number(r->output, "capturing_launches");
  double other = json_number(r->output, "other_launches");
  double runs = json_number(r->output, "runs");
  if (graphs + capturing != steps || graphs < steps / 2)
    fail_msg("%s: %g graph launches and %g capturing ones for %g steps", args,
             graphs, capturing, steps);
  if (!(runs >= 1) || other > 2 * runs)
    fail_msg("%s: %g launches besides the graphs in %g runs", args, other,
             runs);
  if (!(runs < steps))
    fail_msg("%s: %g runs for %g steps: nothing was staged ahead", args, runs,
             steps);
}

/* The keys of a run that every mode must agree on. */
static void expect_same_run(const char *args, const result *r,
                            const result *other) {
  static const char *const keys[] = {"token_hash", "decode_steps",
                                     "prefill_steps", "tokens"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k) {
    char mine[32], theirs[32];
    json_field(r->output, keys[k], mine, sizeof mine);
    json_field(other->output, keys[k], theirs, sizeof theirs);
    if (strcmp(mine, theirs) != 0)
      fail_msg("%s: %s %s, the default mode's %s", args, keys[k], mine, theirs);
  }
}

/* --mode pipelined over the shapes and seeds of the reference test gives
 * the default mode's tokens, steps and prefills, with --check passing
 * (every step equal to an eager run of the rows it was staged with, every
 * token equal to the plain-C reference's); the double-buffered mode, for
 * contrast, launches a copy per step besides its graph. */
static void test_pipelined_gives_the_tokens_of_the_other_modes(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const shapes[] = {
      SMALL "--seed 1",
      SMALL "--seed 2 --max-batch 5",
      "--layers 1 --hidden 32 --heads 2 --head-dim 16 --mlp 40 --vocab 300 "
      "--seed 3 --max-batch 12 --prompt 20 --new 40 --max-seq 80",
      "--layers 3 --hidden 48 --heads 3 --head-dim 16 --mlp 64 --vocab 1000 "
      "--seed 4",
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
    char args[512], pipelined[600];
    snprintf(args, sizeof args, "%s --requests 16 --check --json --quiet",
             shapes[i]);
    snprintf(pipelined, sizeof pipelined, "%s --mode pipelined", args);
    result plain, r;
    run_decode(args, &plain);
    expect_pass(&plain);
    run_decode(pipelined, &r);
    expect_pipelined(pipelined, &r);
    expect_same_run(pipelined, &r, &plain);
    char mismatches[32];
    json_field(r.output, "reference_mismatches", mismatches, sizeof mismatches);
    assert_string_equal(mismatches, "0");
    if (!(json_number(plain.output, "other_launches") >=
          json_number(plain.output, "decode_steps")))
      fail_msg("%s: the double-buffered mode launched no copy per step:\n%s",
               args, plain.output);
  }
}

/* Many short requests through a small batch: nearly every step finishes
 * a request and admits the next, so runs end and start all the time (a
 * prefill cannot run while a step is staged). The tokens, steps and
 * prefills are the default mode's, also when --steps cuts the trace, and
 * every admission starts a run. In the last trace the KV cache (11 pages
 * of 16 tokens) admits, not the batch: a run must end where the pages the
 * pending step's last tokens give back let the next request in. */
static void test_pipelined_runs_end_at_every_admission(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const shapes[] = {
      SMALL "--requests 300 --max-batch 4 --new 6 --prompt 4 --max-seq 16",
      SMALL "--requests 3000 --max-batch 8 --new 12 --prompt 4 --max-seq 32 "
            "--steps 400 --seed 5",
      SMALL "--requests 3000 --max-batch 8 --new 24 --prompt 8 --max-seq 32 "
            "--pages 12 --steps 400 --seed 6",
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
    char args[512], pipelined[600];
    snprintf(args, sizeof args, "%s --check --no-reference --json --quiet",
             shapes[i]);
    snprintf(pipelined, sizeof pipelined, "%s --mode pipelined", args);
    result plain, r;
    run_decode(args, &plain);
    expect_pass(&plain);
    run_decode(pipelined, &r);
    expect_pipelined(pipelined, &r);
    expect_same_run(pipelined, &r, &plain);
    double runs = json_number(r.output, "runs");
    double prefills = json_number(r.output, "prefill_steps");
    if (runs != prefills || runs < 50)
      fail_msg("%s: %g runs for %g prefills", pipelined, runs, prefills);
  }
}

/* --late-ends keeps each request in the step after its last, as a loop
 * that learns a request's end from its tokens has it staged: the host
 * reads a token for it there and discards it. The tokens, their count and
 * the steps are those of the run without it, and --check passes (the
 * plain-C reference sees no token past an end). */
static void test_pipelined_discards_tokens_past_a_requests_end(void **state) {
  (void)cgr_test_runtime(state);
  char args[512], late[600];
  snprintf(args, sizeof args,
           SMALL "--requests 48 --max-batch 6 --new 20 --mode pipelined "
                 "--check --json --quiet");
  snprintf(late, sizeof late, "%s --late-ends", args);
  result plain, r;
  run_decode(args, &plain);
  expect_pipelined(args, &plain);
  assert_int_equal((long)json_number(plain.output, "discarded_tokens"), 0);
  run_decode(late, &r);
  expect_pipelined(late, &r);
  expect_same_run(late, &r, &plain);
  if (!(json_number(r.output, "discarded_tokens") > 0))
    fail_msg("%s discarded no token:\n%s", late, r.output);
  char mismatches[32];
  json_field(r.output, "reference_mismatches", mismatches, sizeof mismatches);
  assert_string_equal(mismatches, "0");
  /* The riders are rows the steps compared with the check model's. */
  if (!(json_number(r.output, "compared_tokens") >
        json_number(plain.output, "compared_tokens")))
    fail_msg("%s compared no more rows than without it", late);
}

/*
 * Greedy speculative decoding makes exactly the tokens of plain greedy
 * decoding: for 3 seeds, --spec 1 and 3 in every mode give the token hash
 * of the run without --spec, with --check passing (every verify step
 * equal to an eager run of it, every accepted token equal to the plain-C
 * reference's). The acceptance rate is a rate, a request gains at least a
 * token per step, and somewhere a draft is accepted (so the steps did
 * take several tokens at once). Long requests: a greedy random model
 * repeats itself only after a while, and the n-gram draft needs that.
 */
static void test_spec_gives_the_tokens_of_plain_decoding(void **state) {
  (void)cgr_test_runtime(state);
  static const char *const modes[] = {"double", "ingraph", "eager", "naive",
                                      "fused"};
  static const int drafts[] = {1, 3};
  /* Under the sanitizers (CGR_TEST_DECODE_STEPS set), one seed (the one
   * with eager fallbacks) and three modes: the whole grid takes over five
   * minutes under ThreadSanitizer. */
  int sanitized = getenv("CGR_TEST_DECODE_STEPS") != NULL;
  size_t mode_count = sanitized ? 3 : sizeof modes / sizeof modes[0];
  double best_per_step = 0.0;
  for (int seed = sanitized ? 2 : 1; seed <= (sanitized ? 2 : 3); ++seed) {
    char base[512], args[640], plain[32], hash[32];
    snprintf(base, sizeof base,
             SMALL "--seed %d --requests 12 --new 96 --max-seq 128 %s--check "
                   "--json --quiet",
             seed, seed == 2 ? "--max-batch 5 " : "");
    result r;
    run_decode(base, &r);
    expect_pass(&r);
    json_field(r.output, "token_hash", plain, sizeof plain);
    double plain_steps = json_number(r.output, "decode_steps");
    for (size_t k = 0; k < sizeof drafts / sizeof drafts[0]; ++k)
      for (size_t m = 0; m < mode_count; ++m) {
        snprintf(args, sizeof args, "%s --spec %d --mode %s", base, drafts[k],
                 modes[m]);
        run_decode(args, &r);
        expect_pass(&r);
        json_field(r.output, "token_hash", hash, sizeof hash);
        if (strcmp(hash, plain) != 0)
          fail_msg("%s gave tokens %s, without --spec %s", args, hash, plain);
        assert_int_equal((long)json_number(r.output, "spec"), drafts[k]);
        assert_int_equal((long)json_number(r.output, "mismatched_steps"), 0);
        double rate = json_number(r.output, "acceptance_rate");
        double per_step = json_number(r.output, "tokens_per_request_step");
        if (!(rate >= 0.0 && rate <= 1.0) || !(per_step >= 1.0))
          fail_msg("%s: acceptance rate %g, %g tokens per request per step",
                   args, rate, per_step);
        if (json_number(r.output, "decode_steps") > plain_steps)
          fail_msg("%s took more decode steps than plain decoding (%g)", args,
                   plain_steps);
        if (per_step > best_per_step)
          best_per_step = per_step;
      }
  }
  if (!(best_per_step > 1.0))
    fail_msg("no --spec run accepted a draft token");
}

/* --spec with --tp: every rank replays the verify step's key, and the
 * tokens are one runtime's. */
static void test_spec_with_tensor_parallel_gives_the_same_tokens(void **state) {
  (void)cgr_test_runtime(state);
  char base[512], args[640], plain[32], hash[32];
  snprintf(base, sizeof base,
           SMALL "--requests 8 --new 64 --max-seq 96 --check --json --quiet");
  result r;
  run_decode(base, &r);
  expect_pass(&r);
  json_field(r.output, "token_hash", plain, sizeof plain);
  static const char *const runs[] = {"--tp 2 --spec 3",
                                     "--tp 2 --spec 2 --mode fused",
                                     "--tp 4 --spec 1 --mode ingraph"};
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; ++i) {
    snprintf(args, sizeof args, "%s %s", base, runs[i]);
    run_decode(args, &r);
    expect_pass(&r);
    json_field(r.output, "token_hash", hash, sizeof hash);
    if (strcmp(hash, plain) != 0)
      fail_msg("%s gave tokens %s, one runtime %s", args, hash, plain);
  }
}

/* The report says what --spec did: the draft, the acceptance, the tokens
 * per step, and the graphs of both keys. */
static void test_spec_reports_acceptance(void **state) {
  (void)cgr_test_runtime(state);
  result r;
  run_decode(SMALL "--requests 8 --new 64 --max-seq 96 --spec 3 --quiet", &r);
  if (r.exit_code != 0)
    fail_msg("cgr-decode exited %d:\n%s", r.exit_code, r.output);
  static const char *const lines[] = {
      "speculative: --spec 3", "draft tokens accepted",
      "tokens per request per step", "1 and 4 tokens per request",
      "every --mode and --spec must give the same"};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; ++i)
    if (strstr(r.output, lines[i]) == NULL)
      fail_msg("the report lacks \"%s\":\n%s", lines[i], r.output);
}

static const struct CMUnitTest tests[] = {
    RUNTIME_TEST(test_host_step_equals_the_plain_c_reference),
    RUNTIME_TEST(test_bf16_weights_match_the_reference),
    RUNTIME_TEST(test_check_over_2000_steps_in_every_mode),
    RUNTIME_TEST(test_pipelined_gives_the_tokens_of_the_other_modes),
    RUNTIME_TEST(test_pipelined_runs_end_at_every_admission),
    RUNTIME_TEST(test_pipelined_discards_tokens_past_a_requests_end),
    RUNTIME_TEST(test_tensor_parallel_gives_the_tokens_of_one_runtime),
    RUNTIME_TEST(test_tensor_parallel_10000_steps_equal_one_runtime),
    RUNTIME_TEST(test_tensor_parallel_across_processes),
    RUNTIME_TEST(test_spec_gives_the_tokens_of_plain_decoding),
    RUNTIME_TEST(test_spec_reports_acceptance),
    RUNTIME_TEST(test_spec_with_tensor_parallel_gives_the_same_tokens),
    RUNTIME_TEST(test_bad_options_fail_clearly),
    RUNTIME_TEST(test_default_run_reports_everything),
};

CGR_TEST_MAIN(tests)
