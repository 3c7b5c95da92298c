#!/usr/bin/env bash
# gpu_suite.sh: everything a GPU machine is for, in one command.
#
#   1. the machine: GPU, driver, CUDA, clocks, date, commit;
#   2. a Release build with the CUDA backend;
#   3. every test on CUDA (and the host tests, which are quick);
#   4. cgr-decode --check in every mode;
#   5. the benchmarks (JSON lines), the PyTorch peer, cgr-decode per mode;
#   6. the report (tables and plots of this folder, in report/);
#   7. the CUDA tests again under compute-sanitizer: memcheck, racecheck,
#      synccheck, initcheck (with fewer random steps: the tools are slow);
#   8. a summary table, last.
#
# Everything lands in one results folder (default
# profiles/results/<date>-<gpu>/; also copied under $OUT when that is set,
# as the device tool returns it). A phase that fails is recorded and the
# suite goes on; the exit status is 1 when any phase failed. Meant to finish
# within 9 minutes on an H100: each phase has its own time limit.
#
# Usage: profiles/gpu_suite.sh [--results DIR] [--no-gpu] [--jobs N]
#   --no-gpu  run the same flow on the host backend (to test this script on
#             a machine without a GPU; nothing it measures is a GPU number)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

no_gpu=0
results=""
jobs=$(nproc 2>/dev/null || echo 4)
while (($#)); do
  case "$1" in
  --results) results="$2"; shift 2 ;;
  --no-gpu) no_gpu=1; shift ;;
  --jobs) jobs="$2"; shift 2 ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) echo "gpu_suite.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

export PATH="/usr/local/cuda/bin:$PATH"
started=$(date +%s)

# ---- the machine ------------------------------------------------------------

gpu_name="host"
if ((no_gpu == 0)); then
  if ! command -v nvidia-smi >/dev/null 2>&1 ||
    ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_suite.sh: no GPU here (nvidia-smi finds none);" \
      "run with --no-gpu to test the script on the host backend" >&2
    exit 2
  fi
  gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
fi
slug=$(echo "$gpu_name" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' |
  sed 's/^-//; s/-$//')
[[ -n "$results" ]] || results="profiles/results/$(date -u +%Y-%m-%d)-$slug"
mkdir -p "$results"
results=$(cd "$results" && pwd)
summary="$results/summary.txt"
: >"$summary"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -srm), $(nproc) CPUs"
  if ((no_gpu == 0)); then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
    nvidia-smi -q -d CLOCK,PERFORMANCE | sed -n '1,80p'
  else
    echo "gpu: none (--no-gpu: host backend, CPU timings)"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  command -v compute-sanitizer >/dev/null &&
    compute-sanitizer --version | head -n 2
} >"$results/machine.txt" 2>&1
cat "$results/machine.txt"

failures=0
# The whole suite stays within this many seconds (9 minutes on an H100):
# a phase gets at most what is left, and once less than 20 s is left the
# remaining phases are recorded as skipped.
budget=${CGR_SUITE_BUDGET:-540}

# phase NAME LIMIT_SECONDS COMMAND...: runs it, logs it, records the result.
phase() {
  local name="$1" limit="$2"
  shift 2
  local log="$results/$name.log" begin end status
  begin=$(date +%s)
  local left=$((budget - (begin - started)))
  if ((left < 20)); then
    printf '%-34s %-10s %5ss\n' "$name" "SKIPPED" 0 >>"$summary"
    echo "==== $name: skipped, the time budget is spent"
    return 0
  fi
  ((limit > left)) && limit=$left
  printf '\n==== %s (limit %ss) ====\n' "$name" "$limit"
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  status=$?
  end=$(date +%s)
  tail -n 15 "$log"
  local verdict="pass"
  if ((status == 124 || status == 137)); then
    verdict="TIMEOUT"
  elif ((status == 77)); then
    verdict="skipped" # the phase said it cannot run here (exit 77)
  elif ((status != 0)); then
    verdict="FAIL($status)"
  fi
  [[ "$verdict" == pass || "$verdict" == skipped ]] ||
    failures=$((failures + 1))
  printf '%-34s %-10s %5ss\n' "$name" "$verdict" "$((end - begin))" >>"$summary"
  return 0
}

backend=cuda
((no_gpu)) && backend=host

# ---- build --------------------------------------------------------------------

build="$repo/build/gpu-suite"
phase build 240 bash -c "
  cmake -S '$repo' -B '$build' -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCGR_WITH_CUDA=$( ((no_gpu)) && echo AUTO || echo ON) -DCGR_BUILD_TESTS=ON &&
  cmake --build '$build' -j $jobs"
if [[ ! -x "$build/cgr-decode" ]]; then
  echo "gpu_suite.sh: the build failed; see $results/build.log" >&2
  cat "$summary"
  exit 1
fi
"$build/cgr-info" --backend "$backend" >"$results/cgr-info.txt" 2>&1

# ---- tests ----------------------------------------------------------------------

# On a GPU the CUDA tests are the point (CI runs the host tests on every
# change); without one the host tests stand in.
if ((no_gpu)); then
  phase tests-host 240 ctest --test-dir "$build" -L host -j "$jobs" --output-on-failure
else
  phase tests-cuda 240 ctest --test-dir "$build" -L cuda -j 2 --output-on-failure
fi

# ---- cgr-decode --check in every mode ----------------------------------------

small="--layers 2 --hidden 128 --heads 4 --head-dim 32 --mlp 256 --vocab 2048"
phase decode-check 150 bash -c "
  status=0
  for mode in eager naive fused double ingraph; do
    echo \"--- \$mode\"
    '$build/cgr-decode' --backend $backend --mode \$mode --check --quiet \
      --json --requests 400 --steps 1000 $small || status=1
  done
  for mode in naive double; do
    echo \"--- default model, \$mode\"
    '$build/cgr-decode' --backend $backend --mode \$mode --check \
      --no-reference --quiet --json || status=1
  done
  exit \$status"
grep -h '^{' "$results/decode-check.log" >"$results/decode.jsonl" 2>/dev/null

# ---- benchmarks -------------------------------------------------------------------

quick=""
((no_gpu)) && quick="--quick"
phase bench-fused-copy 150 "$build/profiles/bench_fused_copy" \
  --backend "$backend" $quick --out "$results/fused_copy.jsonl"
if [[ -x "$build/profiles/bench_replay" ]]; then
  replay_steps="--steps 2000"
  ((no_gpu)) && replay_steps="--quick"
  phase bench-replay 150 "$build/profiles/bench_replay" \
    --backend "$backend" $replay_steps --out "$results/replay.jsonl"
fi
# The host backend runs the capture warm-ups on the CPU: the small model.
phase bench-capture 90 "$build/profiles/bench_capture" \
  --backend "$backend" $quick --out "$results/capture.jsonl"
phase bench-streams 90 "$build/profiles/bench_streams" \
  --backend "$backend" $quick --out "$results/streams.jsonl"
phase bench-batcher 90 "$build/profiles/bench_batcher" \
  --backend "$backend" $quick --out "$results/batcher.jsonl"
phase bench-lanes 90 "$build/profiles/bench_lanes" \
  --backend "$backend" $quick --out "$results/lanes.jsonl"
# The PyTorch peer: exit 77 (no PyTorch with CUDA here) shows as skipped.
if ((no_gpu == 0)); then
  phase torch-replay 120 python3 "$repo/peers/torch_replay.py" --steps 2000 \
    --out "$results/torch_replay.jsonl"
fi

for mode in naive fused double ingraph; do
  phase "decode-$mode" 40 bash -c "'$build/cgr-decode' --backend $backend \
    --mode $mode --quiet --json >>'$results/decode_modes.jsonl'"
done

# ---- the report --------------------------------------------------------------------
# Tables and plots of this folder alone, inside it; the committed
# docs/benchmarks.md is regenerated from every folder with profiles/report.py.
report_python=python3
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then
    report_python=$candidate
    break
  fi
done
phase report 60 "$report_python" "$repo/profiles/report.py" "$results" \
  --docs "$results/report"

# ---- compute-sanitizer --------------------------------------------------------
# The engine's test binaries on CUDA, with fewer random steps: every tool
# checks each access and runs tens of times slower.
sanitized=(runtime streams capture fused_copy buckets_slots step_capture
  replay feedback batcher lanes)
if ((no_gpu == 0)) && command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck synccheck initcheck; do
    phase "sanitizer-$tool" 120 bash -c "
      status=0
      for t in ${sanitized[*]}; do
        echo \"--- \$t\"
        CGR_TEST_STEPS=200 CGR_TEST_BATCHER_REQUESTS=500 compute-sanitizer --tool $tool --error-exitcode 99 \
          --print-limit 20 '$build/tests/test_'\$t --backend cuda || status=1
      done
      exit \$status"
  done
elif ((no_gpu == 0)); then
  echo "compute-sanitizer not found: sanitizer phases skipped" | tee -a "$summary"
fi

# ---- summary ----------------------------------------------------------------------

if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
  cp -r "$results" "$OUT/" 2>/dev/null || true
fi
{
  echo
  echo "==== summary: $gpu_name, $(($(date +%s) - started)) s, results in $results"
  cat "$summary"
  if [[ -s "$results/decode.jsonl" ]]; then
    echo "cgr-decode --check verdicts:"
    sed -E 's/.*"mode":"([a-z_]+)".*"check":"([a-zA-Z]+)".*"mismatched_steps":([0-9]+).*/  \1: \2, \3 mismatched steps/' \
      "$results/decode.jsonl"
  fi
  echo "failures: $failures"
} | tee "$results/summary-final.txt"
((failures == 0))
