/*
 * bench_tp's groups and their steps, through the public API only: the
 * example model's kernels (examples/decode/kernels.h, each a cgr_kernel
 * with a CUDA launcher and a host twin) and the group's collectives.
 *
 * A layer is rmsnorm, the up projection (column-parallel: this rank's
 * 2 * mlp / ranks columns of gate and up), swiglu, the down projection
 * (row-parallel: this rank's mlp / ranks rows), and the all-reduce of the
 * down projection's [rows x hidden] fp32 partial sums. Every layer uses
 * the same weights: the outside group's compute piece is one graph that
 * every layer replays, so the inside graph reads the same weights too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_tp.h"
#include "kernels.h"

int tp_fail_group(cgr_group *group, cgr_status status, const char *what) {
  fprintf(stderr, "bench_tp: %s failed: %s: %s\n", what,
          cgr_status_name(status), cgr_group_last_error(group));
  return -1;
}

static int fail_rank(cgr_runtime *rt, cgr_status status, const char *what) {
  fprintf(stderr, "bench_tp: %s failed: %s: %s\n", what,
          cgr_status_name(status), cgr_last_error(rt));
  return -1;
}

#define CHECK_RT(rt, call, what)                                               \
  do {                                                                         \
    cgr_status check_status_ = (call);                                         \
    if (check_status_ != CGR_OK)                                               \
      return fail_rank((rt), check_status_, (what));                           \
  } while (0)

int32_t tp_token(const tp_shape *shape, long step, uint32_t row) {
  return (int32_t)(((unsigned long)step * 31u + row * 17u + 5u) %
                   (unsigned long)shape->vocab);
}

/* ---- the step ------------------------------------------------------------ */

static cgr_status launch(cgr_step *step, const cgr_kernel *kernel,
                         const void *args) {
  return cgr_step_launch(step, kernel, args);
}

/* One layer's compute: hidden -> partial, this rank's share of the down
 * projection (the all-reduce sums the shares). */
static cgr_status layer_compute(cgr_step *step, const tp_group *g,
                                const float *hidden, float *partial,
                                int32_t rows) {
  const tp_shape *s = g->shape;
  const tp_rank *w = &g->rank[cgr_step_rank(step)];
  int32_t shard = s->mlp / s->ranks;
  void *normed = NULL, *gate_up = NULL, *act = NULL;
  cgr_status status =
      cgr_step_scratch(step, (size_t)rows * (size_t)s->hidden * 4, 0, &normed);
  if (status == CGR_OK)
    status =
        cgr_step_scratch(step, (size_t)rows * (size_t)shard * 8, 0, &gate_up);
  if (status == CGR_OK)
    status = cgr_step_scratch(step, (size_t)rows * (size_t)shard * 4, 0, &act);
  if (status != CGR_OK)
    return status;
  /* Designated initializers: a field the example's kernels append later
   * keeps its default, 0. */
  dec_rmsnorm_args norm = {.x = hidden,
                           .w = w->norm,
                           .y = normed,
                           .rows = rows,
                           .dim = s->hidden,
                           .eps = 1e-5f};
  dec_matmul_args up = {.x = normed,
                        .w = w->up,
                        .y = gate_up,
                        .rows = rows,
                        .in = s->hidden,
                        .out = 2 * shard};
  dec_swiglu_args swiglu = {.gate_up = gate_up,
                            .out = act,
                            .rows = rows,
                            .mlp = shard};
  dec_matmul_args down = {.x = act,
                          .w = w->down,
                          .y = partial,
                          .rows = rows,
                          .in = shard,
                          .out = s->hidden};
  status = launch(step, &dec_kernel_rmsnorm, &norm);
  if (status == CGR_OK)
    status = launch(step, &dec_kernel_matmul, &up);
  if (status == CGR_OK)
    status = launch(step, &dec_kernel_swiglu, &swiglu);
  if (status == CGR_OK)
    status = launch(step, &dec_kernel_matmul, &down);
  return status;
}

static cgr_status embed(cgr_step *step, const tp_group *g, float *hidden,
                        int32_t rows) {
  const tp_shape *s = g->shape;
  dec_embed_args args = {.ids = cgr_step_slot(step, g->tok),
                         .table = g->rank[cgr_step_rank(step)].table,
                         .h = hidden,
                         .rows = rows,
                         .hidden = s->hidden,
                         .vocab = s->vocab};
  return launch(step, &dec_kernel_embed, &args);
}

static cgr_status argmax(cgr_step *step, const tp_group *g, const float *hidden,
                         int32_t rows) {
  dec_argmax_args args = {.logits = hidden,
                          .ids = cgr_step_slot(step, g->next),
                          .rows = rows,
                          .vocab = g->shape->hidden};
  return launch(step, &dec_kernel_argmax, &args);
}

static cgr_status all_reduce(cgr_step *step, const tp_group *g, float *send,
                             float *recv, int32_t rows) {
  return cgr_step_all_reduce(step, send, recv,
                             (size_t)rows * (size_t)g->shape->hidden,
                             CGR_DTYPE_FLOAT32, CGR_REDUCE_SUM);
}

/* Inside: the whole step, every all-reduce in its graph. */
static cgr_status inside_step(cgr_step *step, void *user) {
  const tp_group *g = user;
  int32_t rows = (int32_t)cgr_step_padded_batch(step);
  size_t bytes = (size_t)rows * (size_t)g->shape->hidden * 4;
  void *hidden = NULL, *partial = NULL;
  cgr_status status = cgr_step_scratch(step, bytes, 0, &hidden);
  if (status == CGR_OK)
    status = cgr_step_scratch(step, bytes, 0, &partial);
  if (status == CGR_OK)
    status = embed(step, g, hidden, rows);
  for (int32_t l = 0; l < g->shape->layers && status == CGR_OK; ++l) {
    status = layer_compute(step, g, hidden, partial, rows);
    if (status == CGR_OK)
      status = all_reduce(step, g, partial, hidden, rows);
  }
  if (status == CGR_OK)
    status = argmax(step, g, hidden, rows);
  return status;
}

/* Outside: what g->phase says. The pieces hand the activations over in
 * the rank's own device buffers, as vLLM's pieces share static buffers.
 * The capture's runs are TP_PHASE_LAYER, so the graph is one layer's
 * compute; the eager runs do the rest. */
static cgr_status outside_step(cgr_step *step, void *user) {
  const tp_group *g = user;
  const tp_rank *r = &g->rank[cgr_step_rank(step)];
  int32_t rows = (int32_t)cgr_step_padded_batch(step);
  switch (g->phase) {
  case TP_PHASE_LAYER:
    return layer_compute(step, g, r->hidden, r->partial, rows);
  case TP_PHASE_EMBED:
    return embed(step, g, r->hidden, rows);
  case TP_PHASE_REDUCE:
  case TP_PHASE_REDUCE_LAST:
    break;
  }
  cgr_status status = all_reduce(step, g, r->partial, r->hidden, rows);
  if (status == CGR_OK && g->phase == TP_PHASE_REDUCE_LAST)
    status = argmax(step, g, r->hidden, rows);
  if (status == CGR_OK && g->phase == TP_PHASE_REDUCE_LAST)
    status = embed(step, g, r->hidden, rows);
  return status;
}

/* ---- weights --------------------------------------------------------------
 */

/* Deterministic values in [-scale, scale): the same for a (rank, what,
 * index) on both groups. */
static void fill(float *dst, size_t count, unsigned seed, float scale) {
  uint64_t state = 0x9E3779B97F4A7C15ull * (seed + 1u);
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t bits = (uint32_t)(state >> 40); /* 24 bits */
    dst[i] = ((float)bits / 8388608.0f - 1.0f) * scale;
  }
}

static int upload(cgr_runtime *rt, float **out, size_t count, unsigned seed,
                  float scale, float offset) {
  float *host = malloc(count * sizeof *host);
  if (host == NULL) {
    fprintf(stderr, "bench_tp: out of host memory for the weights\n");
    return -1;
  }
  fill(host, count, seed, scale);
  for (size_t i = 0; i < count; ++i)
    host[i] += offset;
  cgr_status status = cgr_device_alloc(rt, count * sizeof *host, (void **)out);
  if (status == CGR_OK)
    status = cgr_memcpy(rt, *out, host, count * sizeof *host);
  free(host);
  CHECK_RT(rt, status, "uploading the weights (cgr_device_alloc, cgr_memcpy)");
  return 0;
}

static int rank_weights(tp_group *g, int rank) {
  const tp_shape *s = g->shape;
  cgr_runtime *rt = cgr_group_runtime(g->group, rank);
  tp_rank *w = &g->rank[rank];
  size_t hidden = (size_t)s->hidden, shard = (size_t)(s->mlp / s->ranks);
  unsigned seed = (unsigned)rank * 8u;
  if (upload(rt, &w->table, (size_t)s->vocab * hidden, 0, 1.0f, 0.0f) != 0 ||
      upload(rt, &w->norm, hidden, 1, 0.1f, 1.0f) != 0 ||
      upload(rt, &w->up, hidden * 2 * shard, seed + 2, 1.0f / (float)s->hidden,
             0.0f) != 0 ||
      upload(rt, &w->down, shard * hidden, seed + 3, 1.0f / (float)s->mlp,
             0.0f) != 0)
    return -1;
  if (!g->outside)
    return 0;
  size_t rows = s->sizes[s->size_count - 1];
  CHECK_RT(rt, cgr_device_alloc(rt, rows * hidden * 4, (void **)&w->hidden),
           "cgr_device_alloc (hidden)");
  CHECK_RT(rt, cgr_device_alloc(rt, rows * hidden * 4, (void **)&w->partial),
           "cgr_device_alloc (partial)");
  return 0;
}

/* ---- the group ----------------------------------------------------------- */

int tp_group_open(tp_group *g, const tp_shape *shape, cgr_backend_kind backend,
                  int outside) {
  memset(g, 0, sizeof *g);
  g->name = outside ? "outside" : "inside";
  g->outside = outside;
  g->shape = shape;
  cgr_config runtime;
  TP_CHECK_GROUP(NULL, cgr_config_init(&runtime), "cgr_config_init");
  runtime.backend = backend;
  runtime.buckets = shape->sizes;
  runtime.bucket_count = shape->size_count;
  cgr_group_config config;
  TP_CHECK_GROUP(NULL, cgr_group_config_init(&config), "cgr_group_config_init");
  config.ranks = shape->ranks;
  config.runtime = &runtime;
  cgr_status status = cgr_group_create(&config, &g->group);
  if (status == CGR_E_UNSUPPORTED) {
    /* A CUDA build whose NCCL cannot be loaded: even one rank's group has
     * a communicator. */
    tp_fail_group(NULL, status, "cgr_group_create");
    return TP_NOT_RUN;
  }
  TP_CHECK_GROUP(NULL, status, "cgr_group_create");
  cgr_slot_desc desc;
  TP_CHECK_GROUP(g->group,
                 cgr_slot_desc_init(&desc, "tok", CGR_SLOT_ROWS, 4, 1),
                 "cgr_slot_desc_init");
  TP_CHECK_GROUP(g->group, cgr_group_slot_declare(g->group, &desc, &g->tok),
                 "cgr_group_slot_declare (tok)");
  TP_CHECK_GROUP(g->group,
                 cgr_slot_desc_init(&desc, "next", CGR_SLOT_OUTPUT, 4, 1),
                 "cgr_slot_desc_init");
  TP_CHECK_GROUP(g->group, cgr_group_slot_declare(g->group, &desc, &g->next),
                 "cgr_group_slot_declare (next)");
  for (int r = 0; r < shape->ranks; ++r)
    if (rank_weights(g, r) != 0)
      return -1;
  g->phase = TP_PHASE_LAYER;
  TP_CHECK_GROUP(g->group,
                 cgr_group_capture(g->group,
                                   outside ? outside_step : inside_step, g),
                 "cgr_group_capture");
  return 0;
}

void tp_group_close(tp_group *g) {
  if (g->group == NULL)
    return;
  for (int r = 0; r < g->shape->ranks; ++r) {
    cgr_runtime *rt = cgr_group_runtime(g->group, r);
    float *buffers[] = {g->rank[r].table,  g->rank[r].norm,
                        g->rank[r].up,     g->rank[r].down,
                        g->rank[r].hidden, g->rank[r].partial};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
      if (cgr_device_free(rt, buffers[i]) != CGR_OK)
        fprintf(stderr, "bench_tp: cgr_device_free failed: %s\n",
                cgr_last_error(rt));
  }
  cgr_group_destroy(g->group);
  g->group = NULL;
}

/* ---- steps --------------------------------------------------------------- */

/* The batches of one cgr step with `batch` rows: every rank's tok is the
 * tokens of `step` (from pageable host memory, as a serving loop gives
 * them), or, with `unchanged`, what the set already holds. */
static int begin(tp_group *g, uint32_t batch, long step, int unchanged,
                 cgr_batch **batches) {
  int32_t tokens[4096];
  for (uint32_t j = 0; j < batch; ++j)
    tokens[j] = tp_token(g->shape, step, j);
  TP_CHECK_GROUP(g->group, cgr_group_batch_begin(g->group, batch, batches),
                 "cgr_group_batch_begin");
  for (int r = 0; r < g->shape->ranks; ++r) {
    cgr_status status = unchanged ? cgr_batch_unchanged(batches[r], g->tok)
                                  : CGR_E_INVALID_STATE;
    /* cgr_batch_unchanged leaves the slot to give when it refuses. */
    if (status != CGR_OK)
      status = cgr_batch_input(batches[r], g->tok, CGR_SOURCE_HOST, tokens,
                               (size_t)batch * 4);
    if (status != CGR_OK) {
      cgr_group_batch_discard(g->group, batches);
      return fail_rank(cgr_group_runtime(g->group, r), status,
                       "cgr_batch_input (tok)");
    }
  }
  return 0;
}

static int replay(tp_group *g, cgr_batch **batches, cgr_ticket *ticket) {
  TP_CHECK_GROUP(g->group, cgr_group_replay(g->group, batches, ticket),
                 "cgr_group_replay");
  g->next_step = ticket->step + 1;
  return 0;
}

int tp_inside_step(tp_group *g, uint32_t batch, long step, cgr_ticket *ticket) {
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  if (begin(g, batch, step, 0, batches) != 0)
    return -1;
  return replay(g, batches, ticket);
}

static int set_mode(tp_group *g, cgr_replay_mode mode) {
  TP_CHECK_GROUP(g->group, cgr_group_set_replay_mode(g->group, mode),
                 "cgr_group_set_replay_mode");
  return 0;
}

/* One eager step doing `phase`, with the tokens of `step`. */
static int eager(tp_group *g, tp_phase phase, uint32_t batch, long step,
                 cgr_ticket *ticket) {
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  g->phase = phase;
  if (set_mode(g, CGR_REPLAY_EAGER) != 0 ||
      begin(g, batch, step, 0, batches) != 0 || replay(g, batches, ticket) != 0)
    return -1;
  return 0;
}

int tp_outside_prime(tp_group *g, uint32_t batch) {
  cgr_ticket ticket;
  return eager(g, TP_PHASE_EMBED, batch, 0, &ticket);
}

/* A compute piece: the graph ignores tok, so a set that holds this batch
 * size's load is given as unchanged (nothing copied). */
static int piece(tp_group *g, uint32_t batch, long step) {
  cgr_batch *batches[CGR_GROUP_MAX_RANKS];
  cgr_ticket ticket;
  int set = (int)(g->next_step % 2);
  g->phase = TP_PHASE_LAYER;
  if (set_mode(g, CGR_REPLAY_DOUBLE_BUFFERED) != 0 ||
      begin(g, batch, step, g->loaded[set] == batch, batches) != 0 ||
      replay(g, batches, &ticket) != 0)
    return -1;
  g->loaded[ticket.set] = batch;
  return 0;
}

int tp_outside_step(tp_group *g, uint32_t batch, long step,
                    cgr_ticket *ticket) {
  int32_t layers = g->shape->layers;
  for (int32_t l = 0; l < layers; ++l) {
    tp_phase phase = l == layers - 1 ? TP_PHASE_REDUCE_LAST : TP_PHASE_REDUCE;
    if (piece(g, batch, step) != 0 ||
        eager(g, phase, batch, step + 1, ticket) != 0)
      return -1;
  }
  return 0;
}

int tp_read_next(tp_group *g, const cgr_ticket *ticket, uint32_t batch,
                 int32_t *out) {
  cgr_runtime *rt = cgr_group_runtime(g->group, 0);
  void *device = NULL;
  CHECK_RT(rt, cgr_output(rt, ticket, g->next, &device), "cgr_output (next)");
  CHECK_RT(rt, cgr_memcpy(rt, out, device, (size_t)batch * 4),
           "cgr_memcpy (next)");
  return 0;
}
