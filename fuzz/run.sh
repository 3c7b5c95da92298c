#!/usr/bin/env bash
# Runs each libFuzzer target of a build for a while; builds nothing.
#
#   fuzz/run.sh BUILD_DIR [SECONDS] [ARTIFACTS_DIR]
#
# BUILD_DIR is a tree configured with the 'fuzz' preset (build/fuzz).
# Each target fuzzes SECONDS (default 30) from a copy of its seed corpus in
# fuzz/corpus/<target>, so the inputs it finds never land in the
# repository. A crash, leak, timeout or memory blow-up stops that target;
# its input goes to ARTIFACTS_DIR/<target>/ (default BUILD_DIR/fuzz-artifacts)
# beside the target's full log. Prints one summary line per target and
# exits 1 if any target failed. fuzz/README.md says how to turn a crash
# into a regression test.
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [SECONDS] [ARTIFACTS_DIR]" >&2
  exit 2
}

[[ $# -ge 1 && $# -le 3 ]] || usage
build=$1
seconds=${2:-30}
artifacts=${3:-$build/fuzz-artifacts}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets=(copy_plan slots_buckets batch)

for target in "${targets[@]}"; do
  if [[ ! -x $build/fuzz/fuzz_$target ]]; then
    echo "error: $build/fuzz/fuzz_$target not found: configure and build" \
      "the 'fuzz' preset first (cmake --preset fuzz &&" \
      "cmake --build --preset fuzz)" >&2
    exit 2
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

# libFuzzer's defaults stop at the first ASan report or leak; UBSan stops
# too (-fno-sanitize-recover), and should print where.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

failed=0
summary=()
for target in "${targets[@]}"; do
  corpus=$work/$target
  mkdir -p "$corpus" "$artifacts/$target"
  cp "$root/fuzz/corpus/$target/"* "$corpus/"
  log=$artifacts/$target.log
  echo "fuzz_$target: ${seconds} s from $(find "$corpus" -type f | wc -l) seeds" \
    "(log: $log)"
  status=0
  "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target/" "$corpus" >"$log" 2>&1 ||
    status=$?
  # The last status line: "#runs DONE cov: N ft: N corp: N/size ...".
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  if ((status == 0)); then
    result=ok
  else
    result="FAILED (exit $status)"
    failed=1
    echo "---- fuzz_$target failed; the end of its log:"
    tail -n 60 "$log"
    echo "---- inputs saved in $artifacts/$target/:"
    ls "$artifacts/$target/" || true
  fi
  summary+=("$(printf '%-22s %-18s runs %-9s exec/s %-6s cov %-5s ft %-6s corpus %s' \
    "fuzz_$target" "$result" "${runs:-?}" "${speed:-?}" "${cov:-?}" \
    "${features:-?}" "${corp:-?}")")
done

echo
echo "fuzz summary (${seconds} s each):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
