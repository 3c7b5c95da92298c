#!/usr/bin/env bash
# nsight.sh: the three profiles worth taking of cgr on a GPU machine.
#
#   1. nsys: a timeline of cgr-decode limited to the NVTX range of the
#      replays (domain "cgr", range "cgr replay"), so the file holds decode
#      steps and not the model's setup;
#   2. nsys with --cuda-graph-trace=node: the same, each graph node shown;
#   3. ncu: the fused copy kernel in detail (memory throughput, occupancy).
#
# Reports land in the output folder (default profiles/results/nsight-<date>/).
# A missing tool is said and skipped; the script goes on with the rest.
# docs/profiling.md says how to read each report.
#
# Usage: profiles/nsight.sh [--build DIR] [--out DIR] [--mode MODE]
#   --mode MODE   cgr-decode's replay mode: naive, fused, double (the
#                 default), ingraph or pipelined
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build="build/default"
out="profiles/results/nsight-$(date -u +%Y-%m-%d)"
mode="double"
while (($#)); do
  case "$1" in
  --build) build="$2"; shift 2 ;;
  --out) out="$2"; shift 2 ;;
  --mode) mode="$2"; shift 2 ;;
  -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "nsight.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export PATH="/usr/local/cuda/bin:$PATH"
mkdir -p "$out"
decode="$build/cgr-decode"
bench="$build/profiles/bench_fused_copy"
for program in "$decode" "$bench"; do
  if [[ ! -x "$program" ]]; then
    echo "nsight.sh: $program is not built (cmake --build --preset default)" >&2
    exit 2
  fi
done
status=0
# A short run: enough steps to see the steady state.
decode_args=(--backend cuda --mode "$mode" --quiet --requests 32 --new 32)

if command -v nsys >/dev/null 2>&1; then
  echo "== nsys: timeline of the replays"
  nsys profile --trace=cuda,nvtx,osrt --sample=none --force-overwrite=true \
    --capture-range=nvtx --nvtx-capture='cgr replay@cgr' \
    --capture-range-end=repeat-shutdown:200 \
    -o "$out/decode-$mode" "$decode" "${decode_args[@]}" || status=1
  echo "== nsys: graph nodes"
  nsys profile --trace=cuda,nvtx --sample=none --force-overwrite=true \
    --cuda-graph-trace=node \
    -o "$out/decode-$mode-nodes" "$decode" "${decode_args[@]}" || status=1
  nsys stats --report cuda_api_sum,cuda_gpu_kern_sum,nvtx_sum \
    "$out/decode-$mode.nsys-rep" >"$out/decode-$mode-stats.txt" 2>&1 || true
else
  echo "nsys: not installed; the timelines are skipped"
fi

if command -v ncu >/dev/null 2>&1; then
  echo "== ncu: the fused copy kernel"
  ncu --kernel-name regex:fused_copy --launch-skip 20 --launch-count 6 \
    --set full --force-overwrite -o "$out/fused_copy" \
    "$bench" --backend cuda --quick --json >/dev/null || status=1
else
  echo "ncu: not installed; the kernel profile is skipped"
fi
echo "reports in $out"
exit $status
