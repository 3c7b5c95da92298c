/* The plain-C reference of the example model (model.h): one request's
 * forward without cgr, token by token, in the same float operations and
 * order as the host kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"

int dec_reference_init(dec_reference *ref, const dec_config *config,
                       const dec_weights *weights, int32_t capacity) {
  memset(ref, 0, sizeof *ref);
  ref->config = config;
  ref->weights = weights;
  ref->capacity = capacity;
  size_t floats = (size_t)config->layers * capacity * config->hidden;
  ref->k = calloc(floats, sizeof(float));
  ref->v = calloc(floats, sizeof(float));
  return ref->k != NULL && ref->v != NULL;
}

void dec_reference_free(dec_reference *ref) {
  free(ref->k);
  free(ref->v);
  ref->k = ref->v = NULL;
}

/*
 * One token of one request, without cgr: the same host functions the host
 * backend runs as kernels, called directly on one row, with the request's
 * own contiguous cache (page i of the sequence is page i of the cache).
 */
int32_t dec_reference_step(dec_reference *ref, int32_t token, float *logits) {
  const dec_config *c = ref->config;
  const dec_weights *w = ref->weights;
  int32_t h = c->hidden, position = ref->length;
  int32_t pages = (ref->capacity + c->page_size - 1) / c->page_size;
  float *hidden = malloc((size_t)h * 4), *x = malloc((size_t)h * 4),
        *qkv = malloc((size_t)3 * h * 4), *attn = malloc((size_t)h * 4),
        *gate_up = malloc((size_t)2 * c->mlp * 4),
        *act = malloc((size_t)c->mlp * 4),
        *scores = malloc((size_t)ref->capacity * c->heads * 4),
        *own_logits = malloc((size_t)c->vocab * 4);
  int32_t *table = malloc((size_t)pages * sizeof(int32_t));
  int32_t next = -1;
  if (!hidden || !x || !qkv || !attn || !gate_up || !act || !scores ||
      !own_logits || !table || position >= ref->capacity)
    goto done;
  for (int32_t p = 0; p < pages; ++p)
    table[p] = p;
  int32_t seq_len = position + 1, cu_k[2] = {0, position + 1}, cu_q[2] = {0, 1},
          out_loc = position;
  dec_embed_args embed = {&token, w->embedding, hidden, 1, h, c->vocab};
  dec_host_embed(&embed);
  for (int32_t l = 0; l < c->layers; ++l) {
    const dec_layer *lw = &w->layers[l];
    float *k = ref->k + (size_t)l * ref->capacity * h;
    float *v = ref->v + (size_t)l * ref->capacity * h;
    dec_rmsnorm_args n1 = {hidden, lw->attn_norm, x, 1, h, c->eps};
    dec_host_rmsnorm(&n1);
    dec_matmul_args m1 = {x, lw->wqkv, qkv, 1, h, 3 * h, 0, 1};
    dec_host_matmul(&m1);
    dec_rope_args rope = {qkv, &position, 1, c->heads, c->head_dim, c->theta};
    dec_host_rope(&rope);
    dec_kv_write_args kv = {qkv,         &out_loc,     k,    v, 1, c->heads,
                            c->head_dim, c->page_size, pages};
    dec_host_kv_write(&kv);
    dec_attention_args a = {qkv,
                            table,
                            &seq_len,
                            cu_k,
                            cu_q,
                            k,
                            v,
                            scores,
                            attn,
                            1,
                            c->heads,
                            c->head_dim,
                            c->page_size,
                            pages,
                            1.0f / sqrtf((float)c->head_dim),
                            1};
    dec_host_attention(&a);
    dec_matmul_args m2 = {attn, lw->wo, hidden, 1, h, h, 1, DEC_SUM_BLOCKS};
    dec_host_matmul(&m2);
    dec_rmsnorm_args n2 = {hidden, lw->mlp_norm, x, 1, h, c->eps};
    dec_host_rmsnorm(&n2);
    dec_matmul_args m3 = {x, lw->w_gate_up, gate_up, 1, h, 2 * c->mlp, 0, 1};
    dec_host_matmul(&m3);
    dec_swiglu_args sw = {gate_up, act, 1, c->mlp};
    dec_host_swiglu(&sw);
    dec_matmul_args m4 = {act,    lw->w_down, hidden, 1,
                          c->mlp, h,          1,      DEC_SUM_BLOCKS};
    dec_host_matmul(&m4);
  }
  dec_rmsnorm_args nf = {hidden, w->final_norm, x, 1, h, c->eps};
  dec_host_rmsnorm(&nf);
  dec_matmul_args head = {x, w->lm_head, own_logits, 1, h, c->vocab, 0, 1};
  dec_host_matmul(&head);
  dec_argmax_args argmax = {own_logits, &next, 1, c->vocab};
  dec_host_argmax(&argmax);
  if (logits != NULL)
    memcpy(logits, own_logits, (size_t)c->vocab * 4);
  ref->length++;
done:
  free(hidden);
  free(x);
  free(qkv);
  free(attn);
  free(gate_up);
  free(act);
  free(scores);
  free(own_logits);
  free(table);
  return next;
}
