"""A small decoder with a paged KV cache, in numpy and in PyTorch.

The same shape as cgr-decode's model (docs/decode.md), smaller: token and
position embeddings, LAYERS layers of RMSNorm, attention over a paged KV
cache (pages of PAGE tokens; page 0 is the dummy page padded rows write
to), a ReLU MLP, and a greedy argmax over the vocabulary. The step reads
the slots a serving engine passes: input_ids, positions, seq_lens,
cu_seqlens_k, cu_seqlens_q, out_loc, page_table; it writes logits and
next_ids. Both compute in float32, but not bit for bit alike (numpy's and
cuBLAS's sums differ), so each backend is checked only against itself:
the host backend against the numpy model run without cgr, CUDA against
the same torch step replayed the mini-sglang way.
"""

import numpy as np

HIDDEN, HEADS, VOCAB, LAYERS = 64, 4, 256, 2
PAGE, MAX_PAGES, PAGES = 4, 8, 257  # 256 usable pages + the dummy page 0
HEAD = HIDDEN // HEADS
SLOTS_PER_ROW = MAX_PAGES * PAGE


def weights(seed=1):
    """Random float32 weights, scaled so activations stay near 1."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    out = {"emb": w(VOCAB, HIDDEN), "pos_emb": w(PAGE * MAX_PAGES, HIDDEN),
           "head": w(HIDDEN, VOCAB)}
    for layer in range(LAYERS):
        out[f"wqkv{layer}"] = w(HIDDEN, 3 * HIDDEN)
        out[f"wo{layer}"] = w(HIDDEN, HIDDEN)
        out[f"w1_{layer}"] = w(HIDDEN, 4 * HIDDEN)
        out[f"w2_{layer}"] = w(4 * HIDDEN, HIDDEN)
    return out


def declare(rt, dtype_int32=np.int32, dtype_float32=np.float32):
    """Declares the model's slots on a cgr.Runtime; returns them by name."""
    s = {}
    s["input_ids"] = rt.declare("input_ids", "rows", dtype_int32, pad_value=0,
                                valid=(0, VOCAB - 1))
    s["positions"] = rt.declare("positions", "rows", dtype_int32, pad_value=0)
    s["seq_lens"] = rt.declare("seq_lens", "rows", dtype_int32, pad_value=0)
    s["cu_seqlens_k"] = rt.declare("cu_seqlens_k", "prefix", dtype_int32)
    s["cu_seqlens_q"] = rt.declare("cu_seqlens_q", "constant", dtype_int32,
                                   extra_elems=1)
    # Padded rows write their K and V into the dummy page 0.
    s["out_loc"] = rt.declare("out_loc", "rows", dtype_int32, pad_value=0,
                              valid=(0, PAGES * PAGE - 1))
    s["page_table"] = rt.declare("page_table", "rows", dtype_int32, MAX_PAGES,
                                 pad_value=0, valid=(0, PAGES - 1))
    s["logits"] = rt.declare("logits", "output", dtype_float32, VOCAB)
    s["next_ids"] = rt.declare("next_ids", "output", dtype_int32)
    rt.feed(s["next_ids"], s["input_ids"])
    return s


INPUTS = ("positions", "seq_lens", "cu_seqlens_k", "out_loc", "page_table")


# ---- numpy --------------------------------------------------------------------


def _rmsnorm(x):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)


def step_numpy(w, cache_k, cache_v, t):
    """One step on numpy arrays; `t` maps slot names to this run's arrays
    (views of cgr's buffers); writes t["logits"] and t["next_ids"]."""
    ids, pos = t["input_ids"], t["positions"]
    rows = ids.shape[0]
    x = w["emb"][ids] + w["pos_emb"][pos]
    slots = (t["page_table"][:, :, None] * PAGE + np.arange(PAGE)).reshape(
        rows, SLOTS_PER_ROW)
    live = np.arange(SLOTS_PER_ROW)[None, :] < t["seq_lens"][:, None]
    for layer in range(LAYERS):
        qkv = _rmsnorm(x) @ w[f"wqkv{layer}"]
        q, k, v = np.split(qkv, 3, axis=-1)
        cache_k[layer, t["out_loc"]] = k
        cache_v[layer, t["out_loc"]] = v
        keys = cache_k[layer][slots].reshape(rows, SLOTS_PER_ROW, HEADS, HEAD)
        vals = cache_v[layer][slots].reshape(rows, SLOTS_PER_ROW, HEADS, HEAD)
        qh = q.reshape(rows, HEADS, HEAD)
        score = np.einsum("rhd,rshd->rhs", qh, keys) / np.float32(np.sqrt(HEAD))
        score = np.where(live[:, None, :], score, np.float32(-1e30))
        score = np.exp(score - score.max(-1, keepdims=True))
        score = score * live[:, None, :]
        prob = score / np.maximum(score.sum(-1, keepdims=True), np.float32(1e-30))
        attn = np.einsum("rhs,rshd->rhd", prob, vals).reshape(rows, HIDDEN)
        x = x + attn @ w[f"wo{layer}"]
        x = x + np.maximum(_rmsnorm(x) @ w[f"w1_{layer}"], 0) @ w[f"w2_{layer}"]
    logits = (_rmsnorm(x) @ w["head"]).astype(np.float32)
    t["logits"][...] = logits
    t["next_ids"][...] = logits.argmax(-1).astype(np.int32)


# ---- PyTorch ------------------------------------------------------------------


def step_torch(w, cache_k, cache_v, t):
    """The same step on torch tensors (CUDA): capture-safe, no host sync."""
    import torch

    ids, pos = t["input_ids"].long(), t["positions"].long()
    rows = ids.shape[0]
    x = w["emb"][ids] + w["pos_emb"][pos]
    ar_page = torch.arange(PAGE, device=ids.device)
    slots = (t["page_table"].long()[:, :, None] * PAGE + ar_page).reshape(
        rows, SLOTS_PER_ROW)
    ar_slot = torch.arange(SLOTS_PER_ROW, device=ids.device)
    live = ar_slot[None, :] < t["seq_lens"].long()[:, None]
    out_loc = t["out_loc"].long()

    def rmsnorm(v):
        return v * torch.rsqrt((v * v).mean(-1, keepdim=True) + 1e-6)

    for layer in range(LAYERS):
        qkv = rmsnorm(x) @ w[f"wqkv{layer}"]
        q, k, v = qkv.split(HIDDEN, dim=-1)
        cache_k[layer].index_copy_(0, out_loc, k)
        cache_v[layer].index_copy_(0, out_loc, v)
        keys = cache_k[layer][slots].reshape(rows, SLOTS_PER_ROW, HEADS, HEAD)
        vals = cache_v[layer][slots].reshape(rows, SLOTS_PER_ROW, HEADS, HEAD)
        qh = q.reshape(rows, HEADS, HEAD)
        score = torch.einsum("rhd,rshd->rhs", qh, keys) / HEAD ** 0.5
        score = torch.where(live[:, None, :], score, torch.full_like(score, -1e30))
        score = torch.exp(score - score.amax(-1, keepdim=True))
        score = score * live[:, None, :]
        prob = score / score.sum(-1, keepdim=True).clamp_min(1e-30)
        attn = torch.einsum("rhs,rshd->rhd", prob, vals).reshape(rows, HIDDEN)
        x = x + attn @ w[f"wo{layer}"]
        x = x + torch.relu(rmsnorm(x) @ w[f"w1_{layer}"]) @ w[f"w2_{layer}"]
    logits = rmsnorm(x) @ w["head"]
    t["logits"].copy_(logits)
    t["next_ids"].copy_(logits.argmax(-1).to(torch.int32))


# ---- the serving trace ------------------------------------------------------------


class Trace:
    """A seeded trace of requests: each has a prompt token and a number of
    new tokens; requests join as rows free up. `batches()` yields, per step,
    the rows (request ids) and their host metadata; the page allocator
    reserves each request's pages on admission (page 0 is never given)."""

    def __init__(self, requests=24, max_batch=8, max_new=20, seed=3):
        rng = np.random.default_rng(seed)
        self.prompt = rng.integers(1, VOCAB, requests).astype(np.int32)
        self.new = rng.integers(2, max_new + 1, requests)
        self.max_batch = max_batch
        self.requests = requests

    def steps(self):
        """Per step: (request ids in row order, positions, seq_lens,
        cu_seqlens_k, out_loc, page_table); the first step of a request
        feeds its prompt token at position 0."""
        waiting = list(range(self.requests))
        running, length = [], {}
        free_pages = list(range(1, PAGES))
        pages = {}
        while waiting or running:
            while waiting and len(running) < self.max_batch:
                r = waiting.pop(0)
                pages[r] = [free_pages.pop(0) for _ in range(MAX_PAGES)]
                running.append(r)
                length[r] = 0
            pos = np.array([length[r] for r in running], np.int32)
            table = np.array([pages[r] for r in running], np.int32)
            out_loc = (table[np.arange(len(running)), pos // PAGE] * PAGE
                       + pos % PAGE).astype(np.int32)
            seq = (pos + 1).astype(np.int32)
            cu = np.concatenate([[0], np.cumsum(seq)]).astype(np.int32)
            yield list(running), {"positions": pos, "seq_lens": seq,
                                  "cu_seqlens_k": cu, "out_loc": out_loc,
                                  "page_table": table}
            for r in list(running):
                length[r] += 1
                if length[r] >= self.new[r]:
                    running.remove(r)
                    free_pages.extend(pages.pop(r))
