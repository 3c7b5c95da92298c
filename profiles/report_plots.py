"""The report's PNG plots (profiles/report.py draws them into
docs/benchmarks/ with matplotlib's Agg backend)."""

import os


class Plots:
    """PNG plots with matplotlib's Agg backend, into DOCS/benchmarks/."""

    def __init__(self, docs):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        self.plt = plt
        self.dir = os.path.join(docs, "benchmarks")
        os.makedirs(self.dir, exist_ok=True)

    def _save(self, fig, res, what):
        name = f"{res.name}-{what}.png"
        fig.tight_layout()
        fig.savefig(os.path.join(self.dir, name), dpi=100)
        self.plt.close(fig)
        return f"benchmarks/{name}"

    def _title(self, res, what):
        m = res.describe()
        unit = "GPU" if res.is_gpu() else "CPU timings, host backend"
        return f"{what}: {m['device'] or 'unknown'}, {m['date'] or ''} ({unit})"

    def replay(self, res, configs, by, modes, source):
        fig, ax = self.plt.subplots(figsize=(max(8, len(configs) * 0.9), 4.5))
        width = 0.8 / max(1, len(modes))
        for i, m in enumerate(modes):
            xs = [j + i * width for j in range(len(configs))]
            ys = [by[c + (source, m)]["host_us_median"]
                  if c + (source, m) in by else 0 for c in configs]
            ax.bar(xs, ys, width, label=m)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(configs))])
        ax.set_xticklabels([f"b{c[0]} w{c[1]}\ng{c[2]}" for c in configs],
                           fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("host us per step (median)")
        ax.set_title(self._title(res, f"replay, inputs from {source} memory"),
                     fontsize=9)
        ax.legend(fontsize=7, ncol=4)
        return self._save(fig, res, "replay")

    def fused_copy(self, res, rows):
        series = {}
        for r in rows:
            if r["config"] != "copy" or r["src"] != "device":
                continue
            series.setdefault((r["method"], r["ops"]), []).append(
                (r["total_bytes"], r["median_us"]))
        if not series:
            return None
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        for (method, ops), points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points],
                    marker="o", label=f"{method}, {ops} ops")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bytes per plan")
        ax.set_ylabel("median us per plan")
        ax.set_title(self._title(res, "fused copy"), fontsize=9)
        ax.legend(fontsize=6)
        return self._save(fig, res, "fused-copy")

    def capture(self, res, rows):
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        buckets = [r["bucket"] for r in rows]
        ax.plot(buckets, [r["wall_ms"] for r in rows], marker="o",
                label="cgr_capture_bucket (warm-up included)")
        ax.plot(buckets, [sum(r["capture_ms"]) + sum(r["instantiate_ms"])
                          for r in rows], marker="s",
                label="2 captures + 2 instantiates")
        ax.set_xlabel("bucket (padded batch)")
        ax.set_ylabel("ms")
        ax.set_title(self._title(res, "capture"), fontsize=9)
        ax.legend(fontsize=7)
        return self._save(fig, res, "capture")

    def batcher(self, res, rows):
        points = sorted((r["achieved_rps"], r["latency_us_p50"],
                         r["latency_us_p99"]) for r in rows)
        if not points:
            return None
        fig, ax = self.plt.subplots(figsize=(7, 4.5))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                label="p50")
        ax.plot([p[0] for p in points], [p[2] for p in points], marker="s",
                label="p99")
        ax.set_yscale("log")
        ax.set_xlabel("achieved requests/s")
        ax.set_ylabel("latency us (submit to end)")
        ax.set_title(self._title(res, "batcher"), fontsize=9)
        ax.legend(fontsize=7)
        return self._save(fig, res, "batcher")

    def streams(self, res, configs, by, methods):
        sizes = sorted({c[1] for c in configs})
        fig, axes = self.plt.subplots(1, len(sizes),
                                      figsize=(4 * len(sizes), 4),
                                      squeeze=False)
        for ax, size in zip(axes[0], sizes):
            ns = sorted({c[0] for c in configs if c[1] == size})
            for m in methods:
                ys = [by[(n, size, m)].get("speedup_vs_sequential", 0)
                      if (n, size, m) in by else 0 for n in ns]
                ax.plot(ns, ys, marker="o", label=m)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("N items")
            ax.set_ylabel("speedup over sequential")
            ax.set_title(f"{size} floats per item", fontsize=8)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(self._title(res, "per-item updates"), fontsize=9)
        return self._save(fig, res, "streams")
