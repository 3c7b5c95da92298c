#!/usr/bin/env bash
# The GPU run's rehearsal (issue 16): packages this build tree the way
# profiles/gpu_prepare.sh does, then runs profiles/gpu_run.sh --no-gpu on a
# few tests and checks its verdicts and exit codes:
#   green      every phase passes (the sanitizer is a stand-in): exit 0;
#   skip       a test reports skipped: the tests phase FAILS, exit 1, and
#              the summary names the test;
#   no tool    compute-sanitizer is missing: its phases are NOT RUN, never
#              clean, exit 3;
#   errors     the sanitizer reports errors: FAIL, exit 1;
#   no CUDA    without --no-gpu on a machine with no GPU: "CUDA NOT
#              USABLE", exit 2 (skipped where a GPU is present);
#   replay     the green run's replay phase: bench_replay's rows hold
#              (tests/gpu_run/check_bench_replay.py: every mode, the
#              pipelined ones at 1 graph launch, 0 kernels, 0 copies, at
#              most 1 event call per step) and the summary's headline has
#              the pipelined mode's targets, labelled CPU timings; the
#              check fails a pipelined row that asks for more, or one
#              that is missing;
#   python     the green run's python phase: the pytest suite and the
#              example pass from the folder, bench_python's JSON lines hold
#              (tests/gpu_run/check_bench_python.py) and its headline is in
#              the summary with the PyTorch ratios n/a; a failing pytest
#              test FAILS the phase (exit 1); under the GPU's rule on skips
#              (CGR_GPU_RUN_STRICT_SKIPS=1) a skipped test FAILS it and is
#              listed, a host-only one ("needs the host backend") does not.
# Every run must leave at most 8 files. Exit 0 when every check holds.
#
# Usage: tests/gpu_run/rehearsal.sh BUILD_DIR
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:?usage: rehearsal.sh BUILD_DIR}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cgr-rehearsal.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failures=0

fail() {
  echo "REHEARSAL CHECK FAILED: $*"
  failures=$((failures + 1))
}

if ! "$repo/profiles/gpu_prepare.sh" --package-only --build "$build" \
  --bundle "$scratch/bundle" >"$scratch/prepare.log" 2>&1; then
  cat "$scratch/prepare.log"
  echo "REHEARSAL CHECK FAILED: gpu_prepare.sh --package-only"
  exit 1
fi
tail -n 1 "$scratch/prepare.log"

# rehearse NAME EXPECTED_EXIT [ENV=VALUE...] -- [gpu_run.sh options]: one
# run into $scratch/NAME; checks the exit code and the 8-file limit.
rehearse() {
  local name=$1 expected=$2
  shift 2
  local env=()
  while (($#)) && [[ $1 != -- ]]; do
    env+=("$1")
    shift
  done
  shift
  mkdir -p "$scratch/$name"
  env "${env[@]}" "$repo/profiles/gpu_run.sh" --bundle "$scratch/bundle" \
    --out "$scratch/$name" --smoke --tests '^(fused_copy|feedback)\.' "$@" \
    >"$scratch/$name.log" 2>&1
  local status=$?
  echo "---- $name: exit $status (expected $expected)"
  sed -n '1p' "$scratch/$name/summary.txt" 2>/dev/null
  if ((status != expected)); then
    fail "$name: gpu_run.sh exited $status, expected $expected"
    cat "$scratch/$name.log"
  fi
  local files
  files=$(find "$scratch/$name" -type f | wc -l)
  ((files <= 8)) || fail "$name: $files files in the output, more than 8"
  [[ -f $scratch/$name/summary.txt ]] || fail "$name: no summary.txt"
  [[ -f $scratch/$name/results.tar.gz ]] || fail "$name: no results.tar.gz"
}

# expect NAME REGEX WHAT: the summary of run NAME matches REGEX.
expect() {
  grep -qE "$2" "$scratch/$1/summary.txt" ||
    fail "$1: the summary does not say $3 (/$2/)"
}

stand_in=$here/fake_compute_sanitizer.sh

rehearse green 0 CGR_COMPUTE_SANITIZER="$stand_in" -- --no-gpu
expect green '^cgr GPU run: PASS' "PASS"
expect green '^tests +PASS .*0 failed, 0 skipped' "that every test passed"
expect green '^sanitizer-memcheck-fused_copy +PASS' "memcheck passed"
expect green '^sanitizer-synccheck-fused_copy +PASS' "synccheck passed"
expect green '^decode-double +PASS' "the double-buffered decode check passed"
expect green '^decode-pipelined +PASS' "the pipelined decode check passed"
expect green '^REHEARSAL' "that it was a rehearsal"
expect green '^python-tests +PASS .* 0 failed, 0 errors' "the pytest suite passed"
expect green '^python-example +PASS .*all modes: identical tokens' \
  "the Python example's tokens were identical"
expect green '^bench-python +PASS .*cgr rows \(cpu timings\).*torch rows n/a' \
  "bench_python ran every cgr row, the PyTorch rows n/a"
expect green '^bench_python, median host us per step .*CPU timings' \
  "bench_python's headline, labelled CPU timings"
expect green '^    ratios: n/a \(' "bench_python's ratios n/a with the reason"
tar -tzf "$scratch/green/results.tar.gz" >"$scratch/green.list"
for file in machine.txt replay.jsonl decode.jsonl python.jsonl \
  python-tests.xml python-tests.log python-example.log; do
  grep -q "^results/$file\$" "$scratch/green.list" ||
    fail "green: results.tar.gz has no $file"
done
mkdir -p "$scratch/green-results"
tar -C "$scratch/green-results" -xzf "$scratch/green/results.tar.gz"
python3 "$here/check_bench_python.py" --backend host \
  "$scratch/green-results/results/python.jsonl" ||
  fail "green: python.jsonl does not hold"

# The replay phase: the pipelined rows checked, their targets in the
# headline; the check refuses a pipelined step with a second event call
# or a copy of its own, and results without the pipelined rows.
expect green '^bench-replay-check +PASS .*pipelined rows, each per step 1 graph' \
  "that bench_replay's pipelined rows asked for one graph launch per step"
expect green '^    pipelined, host sources: host .*x the floor.*CPU timings' \
  "the pipelined mode's targets, labelled CPU timings"
replay_jsonl=$scratch/green-results/results/replay.jsonl
python3 "$here/check_bench_replay.py" --backend host "$replay_jsonl" \
  >/dev/null || fail "green: replay.jsonl does not hold"
for doctored in '/"mode":"pipelined"/s/"events_per_step":[0-9.]*/"events_per_step":2.00/' \
  '/"mode":"pipelined_feed"/s/"copies_per_step":[0-9.]*/"copies_per_step":1.00/' \
  '/"mode":"pipelined"/d'; do
  sed "$doctored" "$replay_jsonl" >"$scratch/doctored.jsonl"
  if python3 "$here/check_bench_replay.py" --backend host \
    "$scratch/doctored.jsonl" >/dev/null; then
    fail "check_bench_replay.py passed results doctored with '$doctored'"
  fi
done

# A pytest test that fails, put into the folder for one run.
tests_dir=$scratch/bundle/python/tests
printf '%s\n' 'def test_rehearsal_fails():' \
  '    assert False, "made to fail by the rehearsal"' \
  >"$tests_dir/test_rehearsal_fails.py"
rehearse python-fail 1 CGR_COMPUTE_SANITIZER="$stand_in" -- --no-gpu \
  --only python
rm -f "$tests_dir/test_rehearsal_fails.py"
expect python-fail '^python-tests +FAIL .* 1 failed' \
  "that a failing pytest test fails the phase"

# Skips under the GPU's rule: one made to skip fails the run, a host-only
# one (the suite's host_only fixture says "needs the host backend") not.
printf '%s\n' 'import pytest' '' \
  'def test_rehearsal_skips():' \
  '    pytest.skip("made to skip by the rehearsal")' '' \
  'def test_rehearsal_host_only():' \
  '    pytest.skip("needs the host backend; this run is on cuda")' \
  >"$tests_dir/test_rehearsal_skips.py"
rehearse python-skip 1 CGR_COMPUTE_SANITIZER="$stand_in" \
  CGR_GPU_RUN_STRICT_SKIPS=1 -- --no-gpu --only python
rm -f "$tests_dir/test_rehearsal_skips.py"
expect python-skip '^python-tests +FAIL .*[0-9]+ skipped where CUDA should run' \
  "that a skipped pytest test fails the phase under the GPU's rule"
expect python-skip '^  .*test_rehearsal_skips: made to skip' \
  "which pytest test skipped"
if grep -qE '^python-tests .* ([0-9]+) skipped where' \
  "$scratch/python-skip/summary.txt"; then
  counted=$(sed -n 's/.*, \([0-9]*\) skipped: \([0-9]*\) skipped where.*/\1 \2/p' \
    "$scratch/python-skip/summary.txt")
  read -r all_skips failing_skips <<<"$counted"
  ((all_skips == failing_skips + 1)) ||
    fail "python-skip: the host-only skip was counted against the run ($counted)"
fi

# The first fused_copy test is made to skip (tests/harness.h).
skipped=$(grep -o '^fused_copy\.test_[a-z0-9_]*\.host' \
  "$scratch/bundle/tests.tsv" | head -n 1 | cut -d. -f2)
rehearse skip 1 CGR_COMPUTE_SANITIZER="$stand_in" \
  CGR_TEST_FORCE_SKIP="$skipped" -- --no-gpu --only tests
expect skip '^cgr GPU run: FAIL' "FAIL"
expect skip '^tests +FAIL .*1 skipped' "that the tests phase failed on a skip"
expect skip "^  fused_copy\.$skipped\.host" "which test skipped"

rehearse no-tool 3 CGR_COMPUTE_SANITIZER="$scratch/no/compute-sanitizer" \
  -- --no-gpu --only sanitizers
expect no-tool '^cgr GPU run: INCOMPLETE' "INCOMPLETE"
expect no-tool '^sanitizer-memcheck-fused_copy +NOT RUN' "that memcheck did not run"
if grep -qE '^sanitizer-[a-z_-]+ +PASS' "$scratch/no-tool/summary.txt"; then
  fail "no-tool: a sanitizer that never ran is called clean"
fi

rehearse errors 1 CGR_COMPUTE_SANITIZER="$stand_in" FAKE_SANITIZER_ERRORS=3 \
  -- --no-gpu --only sanitizers
expect errors '^sanitizer-memcheck-fused_copy +FAIL .*3 errors' \
  "that memcheck found 3 errors"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "---- no-cuda: not rehearsed, a GPU is here"
else
  rehearse no-cuda 2 CGR_COMPUTE_SANITIZER="$stand_in" --
  expect no-cuda '^cgr GPU run: CUDA NOT USABLE: ' "CUDA NOT USABLE"
fi

if ((failures > 0)); then
  echo "$failures rehearsal checks failed"
  exit 1
fi
echo "every rehearsal check held"
