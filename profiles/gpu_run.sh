#!/usr/bin/env bash
# gpu_run.sh: the GPU run, from the folder gpu_prepare.sh made, in one
# command on a bare GPU machine (no compiler, no network, no cmocka). It
# never calls itself green when CUDA did not really run.
#
# Phases, in order, each with its own time limit (all within 8 minutes on
# an H100):
#   1. probe: nvidia-smi, the driver against the CUDA runtime cgr carries,
#      `cgr-info --backend cuda`; if CUDA is unusable, stop at once:
#      "CUDA NOT USABLE: <reason>", exit 2;
#   2. tests: every CUDA test; a test that skips FAILS the run, unless it
#      says it needs more GPUs than the machine has (a group's) (a skip on a
#      GPU means CUDA did not run it), and the summary lists it;
#   3. python: the Python package from the folder (CGR_LIBRARY=its
#      libcgr.so, PYTHONPATH=its python/): the pytest suite on CUDA
#      (python/tests/ctest_run.py --backend cuda, PyTorch's tests with it)
#      and python/examples/decode.py --backend cuda, which must print "all
#      modes: identical tokens". A pytest skip FAILS the run on a GPU, as a
#      C test's does, except a test the suite skips as host-only ("needs
#      the host backend"): the summary lists every skip. Under --no-gpu both
#      run on the host backend, where the CUDA and PyTorch tests skip: the
#      count is in the verdict, and only failures fail;
#   4. sanitizers: compute-sanitizer memcheck on the fused-copy, capture,
#      replay and feedback tests, racecheck and synccheck on the fused-copy
#      test; a sanitizer that cannot start is "NOT RUN", never clean;
#   5. decode: `cgr-decode --check --json` in every mode (eager, naive,
#      fused, double, ingraph, pipelined), small model;
#   6. replay: `bench_replay --quick` (every replay mode, the pipelined
#      one and its _feed row included), its rows checked by
#      tests/gpu_run/check_bench_replay.py (every mode of every
#      configuration; a pipelined step asks for 1 graph launch, 0 kernels,
#      0 copies, at most 1 event call), `peers/torch_replay.py --quick` and
#      `profiles/bench_python.py` (--quick under --smoke), the same sizes in
#      the same run; bench_python's PyTorch rows are required on a GPU
#      (n/a there is NOT RUN), n/a under --no-gpu;
#   7. with the time left: bench_fused_copy, bench_capture, bench_lanes,
#      bench_tp (its default: one rank, on one GPU), bench_streams,
#      bench_batcher, --quick each (not required: a phase the budget leaves
#      out is n/a).
#
# Output, in DIR (at most 8 files): summary.txt (every phase's verdict
# first, then the headline numbers, bench_python's two ratios and the
# pipelined mode's two targets among them)
# and results.tar.gz (machine.txt, every log, the JSON lines, the pytest
# suite's python-tests.xml; unpack it into profiles/results/<date>-<gpu>/
# and profiles/report.py reads it).
#
# Usage: profiles/gpu_run.sh [--bundle DIR] [--out DIR] [--no-gpu]
#                            [--tests REGEX] [--budget SECONDS]
#   --bundle DIR   what gpu_prepare.sh made (default build/gpu of this
#                  repository; relative paths are from the current directory)
#   --out DIR      where the files go (default $OUT, else
#                  build/gpu-results of this repository)
#   --no-gpu       the rehearsal: every phase's logic on the host backend
#                  (its numbers are CPU timings and say nothing of a GPU);
#                  the PyTorch peer and bench_python's PyTorch rows are not
#                  applicable there
#   --tests REGEX  only the tests whose CTest name matches (rehearsals)
#   --smoke        phases 4 to 7 on their smallest inputs (rehearsals)
#   --only LIST    after the probe, only these phases (comma-separated:
#                  tests, python, sanitizers, decode, replay, benches); the
#                  others are n/a (rehearsals)
#   --budget S     the whole run's time limit (default 480)
# Environment: CGR_COMPUTE_SANITIZER (default compute-sanitizer) names the
# sanitizer; the rehearsal test gives it a stand-in. CGR_GPU_RUN_STRICT_SKIPS=1
# (rehearsals) holds pytest skips to the GPU's rule under --no-gpu too.
#
# Exit status: 0 every phase passed; 1 a phase failed or timed out (a
# pytest failure, error or skip on a GPU, the example's tokens differing,
# bench_python's or bench_replay's rows incomplete or wrong, a pipelined
# step asking for more than its one graph launch); 2 CUDA is not usable
# (phase 1) or bad usage; 3 nothing failed but a required phase did not
# run (a sanitizer that could not start, the peer or bench_python's
# PyTorch rows without PyTorch on a GPU).
set -uo pipefail

caller=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# A path given relative to where the caller stands.
from_caller() {
  case $1 in
  /*) echo "$1" ;;
  *) echo "$caller/$1" ;;
  esac
}

bundle=build/gpu
out=${OUT:-}
no_gpu=0
tests_regex=""
budget=480
smoke=0
only=""
while (($#)); do
  case $1 in
  --bundle) bundle=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --no-gpu) no_gpu=1; shift ;;
  --tests) tests_regex=$2; shift 2 ;;
  --budget) budget=$2; shift 2 ;;
  --smoke) smoke=1; shift ;;
  --only) only=$2; shift 2 ;;
  -h | --help) sed -n '2,74p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_run.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ -n $out ]] || out=$repo/build/gpu-results
[[ $bundle == build/gpu ]] && bundle=$repo/build/gpu
bundle=$(from_caller "$bundle")
out=$(from_caller "$out")
if [[ ! -f $bundle/tests.tsv || ! -x $bundle/cgr-info ]]; then
  echo "gpu_run.sh: $bundle is not a prepared folder" \
    "(run profiles/gpu_prepare.sh here first)" >&2
  exit 2
fi
bundle=$(cd "$bundle" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-run.XXXXXX")
results=$work/results
mkdir -p "$results/tests"
verdicts=$work/verdicts
: >"$verdicts"
sanitizer=${CGR_COMPUTE_SANITIZER:-compute-sanitizer}
[[ $sanitizer == */* ]] && sanitizer=$(from_caller "$sanitizer")
backend=cuda
((no_gpu)) && backend=host
# A pytest skip fails on a GPU; on the host backend the CUDA and PyTorch
# tests skip by design, unless a rehearsal asks for the GPU's rule.
strict_skips=1
((no_gpu)) && [[ ${CGR_GPU_RUN_STRICT_SKIPS:-0} != 1 ]] && strict_skips=0
# The environment must not choose the backend for us.
unset CGR_BACKEND CGR_DEVICE
# Tests find the source tree (report.py) and a Python with matplotlib.
export CGR_TEST_SOURCE_DIR=$repo CGR_TEST_BUILD_DIR=$bundle
CGR_TEST_PYTHON=$(bash "$repo/profiles/report_python.sh")
export CGR_TEST_PYTHON
# The Python phases run on the first Python that has what they import:
# PyTorch too where one has it (a GPU machine's), else numpy and pytest
# (Debian's python3 here, when python3 on PATH lacks them).
python_bin=$(bash "$repo/profiles/report_python.sh" torch numpy pytest)
if ! "$python_bin" -c 'import torch, numpy, pytest' >/dev/null 2>&1; then
  python_bin=$(bash "$repo/profiles/report_python.sh" numpy pytest)
fi
# NCCL for the group tests and bench_tp (libcgr opens it at run time): the
# loader's, else the nvidia-nccl-cu13 wheel's, which a GPU machine's
# PyTorch carries.
if [[ -z ${CGR_NCCL_LIBRARY:-} ]] &&
  ! ldconfig -p 2>/dev/null | grep -q 'libnccl\.so\.2'; then
  wheel_nccl=$("$python_bin" -c 'import os, nvidia.nccl as m
d = os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0]
print(os.path.join(d, "lib", "libnccl.so.2"))' 2>/dev/null)
  if [[ -n $wheel_nccl && -f $wheel_nccl ]]; then
    export CGR_NCCL_LIBRARY=$wheel_nccl
  fi
fi
export PATH="$PATH:/usr/local/cuda/bin"
# The Python side runs from the folder: its package against its libcgr.so.
python_env=(env CGR_LIBRARY="$bundle/libcgr.so" PYTHONPATH="$bundle/python"
  PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1)
grid=--quick
((smoke)) && grid=--smoke
jobs=$(nproc 2>/dev/null || echo 2)
((jobs > 8)) && jobs=8

# wanted PHASE: 0 when --only names it or there is no --only.
wanted() {
  [[ -z $only || ",$only," == *",$1,"* ]]
}

elapsed() { echo $(($(date +%s) - started)); }
left() { echo $((budget - $(elapsed))); }

# verdict PHASE VERDICT SECONDS [DETAIL]: one line of the summary.
# VERDICT is PASS, FAIL, TIMEOUT, NOT RUN, or n/a (not applicable here).
verdict() {
  printf '%-30s %-8s %5ss  %s\n' "$1" "$2" "$3" "${4:-}" >>"$verdicts"
  printf '==== %s: %s (%ss) %s\n' "$1" "$2" "$3" "${4:-}"
}

# limit SECONDS: the phase's own limit, or what is left of the budget.
limit() {
  local l
  l=$(left)
  ((l < $1)) && echo "$l" || echo "$1"
}

finish() {
  local status=0
  grep -qE '^[^ ]+ +(FAIL|TIMEOUT)' "$verdicts" && status=1
  if ((status == 0)) && grep -qE '^[^ ]+ +NOT RUN' "$verdicts"; then
    status=3
  fi
  local word=PASS
  ((status == 1)) && word=FAIL
  ((status == 3)) && word="INCOMPLETE (a required phase did not run)"
  ((status == 2)) && word="CUDA NOT USABLE"
  write_summary "$word" "${1:-}"
  tar -C "$work" -czf "$out/results.tar.gz" results
  rm -rf "$work"
  local files
  files=$(find "$out" -type f | wc -l)
  if ((files > 8)); then
    echo "gpu_run.sh: $out holds $files files; the device tool brings back 8" >&2
    status=1
  fi
  cat "$out/summary.txt"
  exit "$status"
}

write_summary() {
  {
    echo "cgr GPU run: $1"
    [[ -n ${2:-} ]] && echo "$2"
    if ((no_gpu)); then
      echo "REHEARSAL (--no-gpu): the host backend ran every phase; its" \
        "numbers are CPU timings and say nothing of a GPU"
    fi
    echo "device: $(sed -n 's/^device: //p' "$results/machine.txt" 2>/dev/null |
      head -n 1)"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed) s"
    echo
    echo "phase                          verdict   time  detail"
    cat "$verdicts"
    if [[ -s $results/skipped-tests.txt ]]; then
      echo
      echo "tests that skipped (each fails the run, those needing more GPUs aside):"
      sed 's/^/  /' "$results/skipped-tests.txt"
    fi
    if [[ -s $results/failed-tests.txt ]]; then
      echo
      echo "tests that failed:"
      sed 's/^/  /' "$results/failed-tests.txt"
    fi
    if [[ -s $results/python-skipped.txt ]]; then
      echo
      if ((strict_skips == 0)); then
        echo "python tests that skipped (the host backend: not failures here):"
      else
        echo "python tests that skipped (each fails the run, host-only ones aside):"
      fi
      head -n 30 "$results/python-skipped.txt" | sed 's/^/  /'
      local more
      more=$(($(wc -l <"$results/python-skipped.txt") - 30))
      ((more > 0)) && echo "  ... and $more more (python-skipped.txt)"
    fi
    if [[ -s $results/probe-passed ]]; then
      echo
      python3 "$repo/profiles/gpu_summary.py" "$results" 2>&1 ||
        echo "(no headline numbers: profiles/gpu_summary.py could not run)"
    fi
  } >"$out/summary.txt"
}

# ---- 1. probe -------------------------------------------------------------

phase_start=$(date +%s)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(sed -n 's/^commit: //p' "$bundle/manifest.txt")" \
    "(prepared $(sed -n 's/^prepared: //p' "$bundle/manifest.txt"))"
  runtime=$(sed -n 's/^nvcc: //p' "$bundle/manifest.txt")
  [[ -n $runtime ]] && echo "CUDA runtime linked into cgr: release $runtime"
  echo "host: $(uname -srm), $(nproc) CPUs"
} >"$results/machine.txt"
probe_detail=""
if ((no_gpu == 0)); then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    probe_detail="nvidia-smi not found"
  elif ! nvidia-smi -L >>"$results/machine.txt" 2>&1; then
    probe_detail="nvidia-smi -L failed: $(tail -n 1 "$results/machine.txt")"
  else
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader |
      head -n 1)
    driver_cuda=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' |
      head -n 1)
    echo "device: $gpu, driver $driver (CUDA $driver_cuda)" >>"$results/machine.txt"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
      --format=csv >>"$results/machine.txt" 2>&1
    nvidia-smi -q -d CLOCK,PERFORMANCE >>"$results/machine.txt" 2>&1
  fi
else
  echo "device: none (--no-gpu rehearsal: host backend, CPU timings)" \
    >>"$results/machine.txt"
fi
command -v "$sanitizer" >/dev/null 2>&1 &&
  "$sanitizer" --version 2>&1 | head -n 2 >>"$results/machine.txt"
# cgr's own probe names the cause (no driver, a driver too old for the
# runtime cgr carries, no device, no code for this GPU): ask it even when
# nvidia-smi already failed.
timeout 30 "$bundle/cgr-info" --backend "$backend" >"$results/cgr-info.txt" 2>&1
info_status=$?
timeout 30 "$bundle/cgr-info" --backend "$backend" --json \
  >"$results/cgr-info.json" 2>/dev/null
cat "$results/cgr-info.txt" >>"$results/machine.txt"
if ((info_status != 0)); then
  [[ -n $probe_detail ]] && probe_detail+="; "
  probe_detail+="cgr-info --backend $backend: $(tail -n 1 "$results/cgr-info.txt")"
fi
if [[ -n $probe_detail ]]; then
  verdict probe FAIL "$(($(date +%s) - phase_start))" "$probe_detail"
  status_line="CUDA NOT USABLE: $probe_detail"
  ((no_gpu)) && status_line="HOST BACKEND NOT USABLE: $probe_detail"
  write_summary "$status_line"
  tar -C "$work" -czf "$out/results.tar.gz" results
  rm -rf "$work"
  cat "$out/summary.txt"
  exit 2
fi
((no_gpu == 0)) && echo "device: $gpu" >>"$results/machine.txt"
echo "probe passed" >"$results/probe-passed"
verdict probe PASS "$(($(date +%s) - phase_start))" \
  "$(sed -n 's/^device: *//p' "$results/cgr-info.txt" | head -n 1)"

# ---- phase helpers ------------------------------------------------------------

# run_test N: runs line N of selected.tsv (NAME, TIMEOUT, PROGRAM, ARGS...)
# from the bundle and writes "NAME STATUS SECONDS" to its .status file.
run_test() {
  local fields
  IFS=$'\t' read -r -a fields < <(sed -n "$1p" "$selected_list")
  local name=${fields[0]} limit=${fields[1]} program=${fields[2]}
  ((limit > tests_limit)) && limit=$tests_limit
  local begin status
  begin=$(date +%s)
  (cd "$bundle" && timeout --kill-after=5 "$limit" "./$program" \
    "${fields[@]:3}") >"$results/tests/$name.log" 2>&1
  status=$?
  echo "$name $status $(($(date +%s) - begin))" \
    >"$results/tests/$name.status"
}

# sanitize TOOL TEST LIMIT: one compute-sanitizer run of a whole test
# binary. Clean only when the tool itself says "ERROR SUMMARY: 0 errors"
# and the tests passed; a tool that cannot start is NOT RUN.
sanitize() {
  local tool=$1 test=$2 lim=$3 name="sanitizer-$1-$2"
  local log=$results/$name.log begin status seconds errors
  begin=$(date +%s)
  if ! command -v "$sanitizer" >/dev/null 2>&1; then
    verdict "$name" "NOT RUN" 0 "$sanitizer not found"
    return
  fi
  if ((lim < 10)); then
    verdict "$name" "NOT RUN" 0 "the time budget is spent"
    return
  fi
  # Fewer random steps: every access is checked, tens of times slower.
  (cd "$bundle" && CGR_TEST_STEPS=200 timeout --kill-after=10 "$lim" \
    "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
    "./tests/test_$test" --backend "$backend") >"$log" 2>&1
  status=$?
  seconds=$(($(date +%s) - begin))
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$log" |
    tail -n 1)
  if ((status == 124 || status == 137)); then
    verdict "$name" TIMEOUT "$seconds" "over ${lim} s"
  elif [[ -z $errors ]]; then
    verdict "$name" "NOT RUN" "$seconds" \
      "no ERROR SUMMARY from $tool (exit $status): $(tail -n 1 "$log" | cut -c1-100)"
  elif ((errors > 0 || status == 99)); then
    verdict "$name" FAIL "$seconds" "$errors errors"
  elif ((status == 77)); then
    verdict "$name" "NOT RUN" "$seconds" "every test skipped under the tool"
  elif ((status != 0)); then
    verdict "$name" FAIL "$seconds" "0 sanitizer errors, tests exit $status"
  else
    verdict "$name" PASS "$seconds" "0 errors"
  fi
}

# bounded NAME LIMIT REQUIRED COMMAND...: a benchmark, run from the bundle.
# Exit 77 (cannot run here) is NOT RUN when REQUIRED is 1, n/a otherwise.
bounded() {
  local name=$1 lim=$2 required=$3
  shift 3
  local begin status seconds absent=n/a
  ((required)) && absent="NOT RUN"
  begin=$(date +%s)
  if ((lim < 10)); then
    verdict "$name" "$absent" 0 "the time budget is spent"
    return
  fi
  (cd "$bundle" && timeout --kill-after=10 "$lim" "$@") \
    >"$results/$name.log" 2>&1
  status=$?
  seconds=$(($(date +%s) - begin))
  case $status in
  0) verdict "$name" PASS "$seconds" ;;
  77)
    verdict "$name" "$absent" "$seconds" \
      "$(tail -n 1 "$results/$name.log" | cut -c1-100)"
    ;;
  124 | 137) verdict "$name" TIMEOUT "$seconds" "over ${lim} s" ;;
  *)
    verdict "$name" FAIL "$seconds" \
      "exit $status: $(tail -n 1 "$results/$name.log" | cut -c1-100)"
    ;;
  esac
}

# ---- 2. tests -----------------------------------------------------------------

phase_tests() {
  local phase_start passed=0 skipped=0 failed=0 fields name code seconds
  local more_gpus=0 why
  phase_start=$(date +%s)
  selected_list=$work/selected.tsv
  awk -F'\t' -v suffix=".$backend" -v regex="$tests_regex" '
    substr($1, length($1) - length(suffix) + 1) == suffix &&
    (regex == "" || $1 ~ regex)' "$bundle/tests.tsv" >"$selected_list"
  local selected
  selected=$(wc -l <"$selected_list")
  tests_limit=$(limit 150)
  export -f run_test
  export bundle results selected_list tests_limit
  if ((selected == 0)); then
    verdict tests FAIL 0 "no $backend test matched"
    return
  fi
  seq 1 "$selected" | timeout --kill-after=10 "$tests_limit" \
    xargs -P "$jobs" -I{} bash -c 'run_test {}'
  : >"$results/skipped-tests.txt"
  : >"$results/failed-tests.txt"
  while IFS=$'\t' read -r -a fields; do
    name=${fields[0]}
    if [[ ! -f $results/tests/$name.status ]]; then
      failed=$((failed + 1))
      echo "$name (did not finish within the phase's ${tests_limit} s)" \
        >>"$results/failed-tests.txt"
      continue
    fi
    read -r _ code seconds <"$results/tests/$name.status"
    case $code in
    0) passed=$((passed + 1)) ;;
    77)
      why=$(grep -m1 -i 'skip' "$results/tests/$name.log" | cut -c1-160)
      # A test of a group of N GPUs on a machine with fewer is not this
      # machine's to run: listed, not a failure.
      if [[ $why =~ needs\ [0-9]+\ GPUs ]]; then
        more_gpus=$((more_gpus + 1))
        echo "$name: $why (n/a: this machine has fewer GPUs)" \
          >>"$results/skipped-tests.txt"
      else
        skipped=$((skipped + 1))
        echo "$name: $why" >>"$results/skipped-tests.txt"
      fi
      ;;
    124 | 137)
      failed=$((failed + 1))
      echo "$name (timed out after ${seconds} s)" >>"$results/failed-tests.txt"
      ;;
    *)
      failed=$((failed + 1))
      echo "$name (exit $code)" >>"$results/failed-tests.txt"
      ;;
    esac
  done <"$selected_list"
  local detail="$passed passed, $failed failed, $skipped skipped of $selected $backend tests"
  ((more_gpus > 0)) &&
    detail+="; $more_gpus need more GPUs than this machine has (n/a)"
  if ((failed + skipped > 0)); then
    verdict tests FAIL "$(($(date +%s) - phase_start))" "$detail"
  else
    verdict tests PASS "$(($(date +%s) - phase_start))" "$detail"
  fi
}

# ---- 3. the Python package: the pytest suite and the example -------------------

# junit_counts XML LISTING: "TESTS FAILED ERRORS SKIPPED HOST_ONLY" from the
# suite's JUnit file (TESTS -1 when there is none), every skip into LISTING.
junit_counts() {
  python3 - "$1" "$2" <<'EOF'
import sys
import xml.etree.ElementTree as ET

path, listing = sys.argv[1], sys.argv[2]
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError):
    print("-1 0 0 0 0")
    sys.exit(0)
tests = failed = errors = 0
skips = []
for case in root.iter("testcase"):
    tests += 1
    failed += case.find("failure") is not None
    errors += case.find("error") is not None
    skip = case.find("skipped")
    if skip is not None:
        name = case.get("classname", "") + "::" + case.get("name", "")
        skips.append((name, " ".join(skip.get("message", "").split())))
# The suite's host_only fixture: not applicable on CUDA, like a C test
# registered for the host backend only.
host_only = sum("needs the host backend" in message for _, message in skips)
with open(listing, "w", encoding="utf-8") as f:
    for name, message in skips:
        f.write(f"{name}: {message[:160]}\n")
print(tests, failed, errors, len(skips), host_only)
EOF
}

phase_python() {
  local begin lim status seconds xml=$results/python-tests.xml
  local tests failed errors skipped host_only passed detail
  if [[ ! -f $bundle/python/tests/ctest_run.py ]]; then
    verdict python-tests FAIL 0 "the folder has no python/ (prepare it again)"
    return
  fi
  begin=$(date +%s)
  lim=$(limit 150)
  (cd "$bundle" && timeout --kill-after=10 "$lim" "${python_env[@]}" \
    "$python_bin" python/tests/ctest_run.py --backend "$backend" \
    --junitxml="$xml") >"$results/python-tests.log" 2>&1
  status=$?
  seconds=$(($(date +%s) - begin))
  read -r tests failed errors skipped host_only \
    < <(junit_counts "$xml" "$results/python-skipped.txt")
  passed=$((tests - failed - errors - skipped))
  ((passed < 0)) && passed=0
  detail="$passed passed, $failed failed, $errors errors, $skipped skipped"
  if ((status == 124 || status == 137)); then
    verdict python-tests TIMEOUT "$seconds" "over ${lim} s"
  elif ((status == 77)); then
    verdict python-tests FAIL "$seconds" \
      "the suite skipped: $(tail -n 1 "$results/python-tests.log" | cut -c1-100)"
  elif ((tests < 0)); then
    verdict python-tests FAIL "$seconds" \
      "exit $status, no results: $(tail -n 1 "$results/python-tests.log" | cut -c1-100)"
  elif ((status != 0 || failed + errors > 0 || tests == 0)); then
    verdict python-tests FAIL "$seconds" "exit $status: $detail"
  elif ((strict_skips == 0)); then
    verdict python-tests PASS "$seconds" \
      "$detail (host backend: the CUDA and PyTorch tests skip)"
  elif ((skipped > host_only)); then
    verdict python-tests FAIL "$seconds" \
      "$detail: $((skipped - host_only)) skipped where CUDA should run them"
  else
    verdict python-tests PASS "$seconds" \
      "$detail on $backend ($host_only host-only, n/a here)"
  fi

  begin=$(date +%s)
  lim=$(limit 90)
  (cd "$bundle" && timeout --kill-after=10 "$lim" "${python_env[@]}" \
    "$python_bin" python/examples/decode.py --backend "$backend") \
    >"$results/python-example.log" 2>&1
  status=$?
  seconds=$(($(date +%s) - begin))
  if ((status == 124 || status == 137)); then
    verdict python-example TIMEOUT "$seconds" "over ${lim} s"
  elif ((status == 0)) &&
    grep -q '^all modes: identical tokens' "$results/python-example.log"; then
    verdict python-example PASS "$seconds" \
      "$backend: all modes: identical tokens"
  else
    verdict python-example FAIL "$seconds" \
      "exit $status: $(tail -n 1 "$results/python-example.log" | cut -c1-100)"
  fi
}

# ---- 4. sanitizers ------------------------------------------------------------

phase_sanitizers() {
  local t
  for t in fused_copy capture replay feedback; do
    sanitize memcheck "$t" "$(limit 45)"
  done
  sanitize racecheck fused_copy "$(limit 45)"
  sanitize synccheck fused_copy "$(limit 45)"
}

# ---- 5. cgr-decode --check in every mode ----------------------------------------

phase_decode() {
  local small=(--layers 2 --hidden 128 --heads 4 --head-dim 32 --mlp 256
    --vocab 2048)
  local steps=1000 mode begin lim status seconds check
  ((no_gpu)) && steps=200
  ((smoke)) && steps=20
  for mode in eager naive fused double ingraph pipelined; do
    begin=$(date +%s)
    lim=$(limit 30)
    timeout --kill-after=10 "$lim" "$bundle/cgr-decode" --backend "$backend" \
      --mode "$mode" --check --quiet --json --requests 200 \
      --steps "$steps" "${small[@]}" \
      >"$results/decode-$mode.json" 2>"$results/decode-$mode.log"
    status=$?
    seconds=$(($(date +%s) - begin))
    check=$(sed -n 's/.*"check":"\([a-zA-Z ]*\)".*/\1/p' \
      "$results/decode-$mode.json")
    cat "$results/decode-$mode.json" >>"$results/decode.jsonl"
    if ((status == 124 || status == 137)); then
      verdict "decode-$mode" TIMEOUT "$seconds" "over ${lim} s"
    elif ((status != 0)); then
      verdict "decode-$mode" FAIL "$seconds" \
        "exit $status, check: ${check:-none}: $(tail -n 1 "$results/decode-$mode.log" | cut -c1-100)"
    else
      verdict "decode-$mode" PASS "$seconds" "check: ${check:-none}"
    fi
  done
}

# ---- 6. bench_replay, the PyTorch peer and bench_python, the same sizes ----------

# bench_python: the benchmark from the folder, then its JSON lines checked
# (tests/gpu_run/check_bench_python.py): every cgr row, a headline per
# batch, and on a GPU the PyTorch rows and both ratios (their absence there
# is NOT RUN, like the peer's).
run_bench_python() {
  local begin lim status seconds check check_status grid_python=()
  local jsonl=$results/python.jsonl require=(--require-torch)
  ((smoke)) && grid_python=(--quick)
  ((no_gpu)) && require=()
  lim=$(limit 120)
  if ((lim < 10)); then
    verdict bench-python "NOT RUN" 0 "the time budget is spent"
    return
  fi
  begin=$(date +%s)
  (cd "$bundle" && timeout --kill-after=10 "$lim" "${python_env[@]}" \
    "$python_bin" profiles/bench_python.py --backend "$backend" \
    "${grid_python[@]}" --out "$jsonl") >"$results/bench-python.log" 2>&1
  status=$?
  seconds=$(($(date +%s) - begin))
  case $status in
  0) ;;
  77)
    verdict bench-python "NOT RUN" "$seconds" \
      "$(tail -n 1 "$results/bench-python.log" | cut -c1-100)"
    return
    ;;
  124 | 137)
    verdict bench-python TIMEOUT "$seconds" "over ${lim} s"
    return
    ;;
  *)
    verdict bench-python FAIL "$seconds" \
      "exit $status: $(tail -n 1 "$results/bench-python.log" | cut -c1-100)"
    return
    ;;
  esac
  check=$("$python_bin" "$repo/tests/gpu_run/check_bench_python.py" \
    --backend "$backend" "${require[@]}" "$jsonl" 2>&1)
  check_status=$?
  check=$(tail -n 1 <<<"$check")
  case $check_status in
  0) verdict bench-python PASS "$seconds" "${check#bench_python check: }" ;;
  3) verdict bench-python "NOT RUN" "$seconds" "${check#bench_python check: }" ;;
  *) verdict bench-python FAIL "$seconds" "$check" ;;
  esac
}

# check_bench_replay: bench_replay's rows, the pipelined mode's backend
# calls among them (its timing targets are in the headline numbers).
check_bench_replay() {
  local jsonl=$results/replay.jsonl check status
  if [[ ! -s $jsonl ]]; then
    verdict bench-replay-check n/a 0 "no replay.jsonl (see bench-replay)"
    return
  fi
  check=$(python3 "$repo/tests/gpu_run/check_bench_replay.py" \
    --backend "$backend" "$jsonl" 2>&1)
  status=$?
  check=$(tail -n 1 <<<"$check")
  if ((status == 0)); then
    verdict bench-replay-check PASS 0 "${check#bench_replay check: }"
  else
    verdict bench-replay-check FAIL 0 "${check#bench_replay check: }"
  fi
}

phase_replay() {
  bounded bench-replay "$(limit 90)" 1 ./profiles/bench_replay \
    --backend "$backend" "$grid" --out "$results/replay.jsonl"
  check_bench_replay
  if ((no_gpu)); then
    verdict torch-replay n/a 0 "--no-gpu: the peer needs PyTorch on a GPU"
  else
    bounded torch-replay "$(limit 90)" 1 env PYTHONUNBUFFERED=1 "$python_bin" \
      "$repo/peers/torch_replay.py" --quick \
      --out "$results/torch_replay.jsonl"
  fi
  run_bench_python
}

# ---- 7. with the time left --------------------------------------------------------

phase_benches() {
  local bench
  for bench in fused_copy capture lanes tp streams batcher; do
    bounded "bench-${bench//_/-}" "$(limit 60)" 0 "./profiles/bench_$bench" \
      --backend "$backend" "$grid" --out "$results/$bench.jsonl"
  done
}

# ---- the run ----------------------------------------------------------------------

for phase in tests python sanitizers decode replay benches; do
  if wanted "$phase"; then
    "phase_$phase"
  else
    verdict "$phase" n/a 0 "not in --only $only"
  fi
done
finish
