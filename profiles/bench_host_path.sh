#!/usr/bin/env bash
# bench_host_path.sh: cgr's own work per decode step, in instructions that
# callgrind counts (issue 23). Instruction counts do not depend on how
# busy the machine is: the same binary gives the same numbers, within the
# few instructions "Run to run" below explains, so they can hold a budget
# in CI where a timing would flake. They are not timings.
#
# What runs: profiles/bench_host_path of a Release build, on the host
# backend, once per configuration (mode naive, fused, double, ingraph,
# pipelined; feedback off and on, but not in ingraph; source host and
# pinned: 18 runs, --jobs at a time) under
#   valgrind --tool=callgrind --toggle-collect=bench_host_path_step
# so that only the calls inside that function are counted: one step's
# cgr_batch_begin, its slot calls and its cgr_replay (or cgr_replay_ahead),
# --steps of them after the program's warm-up. Only the calling thread is
# counted (callgrind keeps collection per thread): the host backend's
# worker threads, which play the GPU, are not.
#
# How the count is split, per configuration, from callgrind_annotate's
# exclusive costs and its caller tree (--tree=caller --inclusive=yes,
# which gives the inclusive cost of every caller -> callee call):
#   total    the inclusive cost of bench_host_path_step (all that was
#            counted), per step;
#   backend  the host backend's own work: every function defined in the
#            objects of runtime/host/*.c and kernels/host/*.c (their names
#            read with nm from the build's object files) is the backend's
#            (a name also defined elsewhere in the binary stops the
#            script: callgrind_annotate could not tell the two apart).
#            Its cost is the inclusive cost of each call from a function
#            outside the backend into one inside it: the backend table's
#            entry points as cgr's dispatch (runtime/backend.c) calls them,
#            and any backend function cgr calls directly. Everything under
#            such a call counts, libc and pthread calls and cgr helpers the
#            backend calls back included (cgr__malloc_at for a host op);
#            a backend function calling another is not counted twice.
#            Where the caller itself runs partly under the backend (a libc
#            function both sides call), only its share outside counts;
#   harness  bench_host_path_step's own instructions (its loop over the
#            slots), which are neither cgr's nor the backend's;
#   cgr own  total - backend - harness: what cgr itself spends, its libc
#            calls (malloc, qsort, memcpy, locks) included.
# The top five of cgr's own are its functions by exclusive cost, the
# libc functions it calls among them: a function that runs both for cgr
# and under the backend (pthread_mutex_lock, malloc) counts here with the
# share of its callers' cost that is cgr's (callgrind records a call
# graph one caller deep, so that share is spread in proportion to the
# call costs); those shares add up to cgr own, and the script says so
# when they do not (within 1%).
#
# Run to run: cgr's own functions count the same every time. The libc
# calls that both cgr and the backend make (malloc, pthread) and the
# backend's wake-ups of its worker threads cost what the state those
# threads left behind makes them cost, so the backend's count moves by a
# few percent between runs and cgr's own by a few instructions per step
# (within 0.5%); with no allocation and no lock left on cgr's path (the
# budget's rule) cgr's own count is exact.
#
# Output: a table on stdout, and the same as JSON lines (a meta line, then
# one line per configuration) in --out FILE. Exit 0; 1 when a run failed
# or, with --budget N, when any configuration's cgr own per step is over
# N (every mode measured is a graph mode); 2 on bad usage or a missing
# tool or build.
#
# Usage: profiles/bench_host_path.sh [--build DIR] [--out FILE]
#            [--budget N] [--steps N] [--jobs N] [--keep]
#   --build DIR   a Release build tree with profiles/bench_host_path
#                 (default build/default)
#   --out FILE    the JSON lines (default DIR/bench_host_path.jsonl)
#   --budget N    exit 1 when a configuration's cgr own per step is over N
#   --steps N     counted steps per configuration (default 2000)
#   --jobs N      runs at a time (default: the CPUs)
#   --keep        keep the callgrind files (the folder is printed)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$repo/build/default"
out=""
budget=""
steps=2000
jobs="$(nproc 2>/dev/null || echo 2)"
keep=0

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

fail_usage() {
  echo "bench_host_path.sh: $1" >&2
  exit 2
}

# An option given as "--name value" needs its value.
take_value() {
  [[ $# -ge 2 && -n "$2" ]] || fail_usage "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
  --build | --out | --budget | --steps | --jobs)
    take_value "$@"
    name="${1#--}"
    value="$2"
    shift 2
    ;;
  --build=* | --out=* | --budget=* | --steps=* | --jobs=*)
    name="${1%%=*}"
    name="${name#--}"
    value="${1#*=}"
    shift
    ;;
  --keep) keep=1; shift; continue ;;
  -h | --help) usage; exit 0 ;;
  *)
    echo "bench_host_path.sh: unknown option '$1'" >&2
    usage >&2
    exit 2
    ;;
  esac
  case "$name" in
  build) build="$value" ;;
  out) out="$value" ;;
  *)
    [[ "$value" =~ ^[0-9]+$ && "$value" -gt 0 ]] ||
      fail_usage "--$name must be a whole number above 0, not '$value'"
    printf -v "$name" '%s' "$value"
    ;;
  esac
done

for tool in valgrind callgrind_annotate nm python3; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail_usage "$tool is missing (valgrind: apt-get install valgrind)"
done
[[ -d "$build" ]] || fail_usage "no build tree at '$build'"
build="$(cd "$build" && pwd)"
binary="$build/profiles/bench_host_path"
[[ -x "$binary" ]] || fail_usage "no $binary: build the target bench_host_path"
build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)"
[[ "$build_type" == "Release" ]] ||
  fail_usage "$build is a '${build_type:-unknown}' build: the budget is for Release"
[[ -n "$out" ]] || out="$build/bench_host_path.jsonl"

work="$(mktemp -d "${TMPDIR:-/tmp}/cgr-host-path.XXXXXX")"
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
  if [[ "$keep" -eq 1 ]]; then
    echo "bench_host_path.sh: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# The backend's function names, from its objects (static ones and GCC's
# .constprop/.isra/.part/.cold copies included), and every function name
# the binary defines, to find a backend name that is not the backend's
# alone (a static function of the same name elsewhere would be merged
# with it by callgrind_annotate, which has no file names in a Release
# build).
text_symbols() {
  nm --defined-only "$@" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[tTiW]$/ { print $3 }'
}
mapfile -t backend_objects < <(find "$build" -name '*.o' \
  \( -path '*/runtime/host/*' -o -path '*/kernels/host/*' \) | sort)
[[ ${#backend_objects[@]} -gt 0 ]] ||
  fail_usage "no object files of runtime/host/ or kernels/host/ under $build"
text_symbols "${backend_objects[@]}" | sort -u >"$work/backend.names"
text_symbols "$binary" | sed 's/^__cgr_private_//' | sort >"$work/binary.names"

# One run: the program under callgrind, then the two views of its counts.
# cgr's environment overrides would change what is counted (CGR_BACKEND
# wins over --backend, CGR_FAULT arms fault plans): the host backend and
# the defaults, whatever the caller's environment says.
run_config() {
  local mode="$1" feedback="$2" source="$3"
  local name="$mode-$feedback-$source" rc=0
  env -u CGR_DEVICE -u CGR_NVTX -u CGR_FAULT CGR_BACKEND=host \
    valgrind --tool=callgrind --toggle-collect=bench_host_path_step \
    --callgrind-out-file="$work/$name.callgrind" \
    "$binary" --backend host --mode "$mode" --feedback "$feedback" \
    --source "$source" --steps "$steps" >"$work/$name.log" 2>&1 || rc=$?
  if [[ "$rc" -eq 0 ]]; then
    callgrind_annotate --auto=no --threshold=100 --inclusive=no \
      "$work/$name.callgrind" >"$work/$name.exclusive" &&
      callgrind_annotate --auto=no --threshold=100 --inclusive=yes \
        --tree=caller "$work/$name.callgrind" >"$work/$name.tree" || rc=$?
  fi
  echo "$rc" >"$work/$name.status"
}

configs=()
for mode in naive fused double ingraph pipelined; do
  for feedback in off on; do
    [[ "$mode" == ingraph && "$feedback" == on ]] && continue
    for source in host pinned; do
      configs+=("$mode $feedback $source")
    done
  done
done

began=$SECONDS
echo "bench_host_path.sh: ${#configs[@]} runs of $steps steps under callgrind, $jobs at a time"
for config in "${configs[@]}"; do
  while [[ "$(jobs -rp | wc -l)" -ge "$jobs" ]]; do
    wait -n || true
  done
  # shellcheck disable=SC2086 # three words: mode, feedback, source
  run_config $config &
done
wait

failed=0
for config in "${configs[@]}"; do
  name="${config// /-}"
  if [[ "$(cat "$work/$name.status" 2>/dev/null)" != 0 ]]; then
    echo "bench_host_path.sh: the run $name failed; its output:" >&2
    cat "$work/$name.log" >&2
    failed=1
  fi
done
[[ "$failed" -eq 0 ]] || exit 1

valgrind_version="$(valgrind --version)"
status=0
python3 - "$work" "$out" "$steps" "${budget:-0}" "$valgrind_version" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "${configs[@]}" <<'PY' || status=$?
import json
import re
import sys
from collections import defaultdict

work, out_path, steps, budget, valgrind, date, cpus = sys.argv[1:8]
configs = [c.split() for c in sys.argv[8:]]
steps, budget = int(steps), int(budget)
COUNTED = "bench_host_path_step"

backend = set(open(f"{work}/backend.names").read().split())
defined = defaultdict(int)
for name in open(f"{work}/binary.names").read().split():
    defined[name] += 1
shared = sorted(n for n in backend if defined[n] > 1)
if shared:
    sys.exit("bench_host_path.sh: these names are defined in the backend and "
             "elsewhere, so callgrind cannot tell them apart: "
             + ", ".join(shared))

LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(?:([<*>])\s+)?(.*?)\s*$")


def function(text):
    """The function a callgrind_annotate line names, one name for all its
    entries: no object, call count, file, recursion depth or the private
    prefix a CUDA build's prelinked object gives static names."""
    text = re.sub(r" \[[^\]]*\]$", "", text)
    text = re.sub(r" \([\d,]+x\)$", "", text)
    name = text.rsplit(":", 1)[-1]
    name = re.sub(r"'\d+$", "", name)
    prefix = "__cgr_private_"
    return name[len(prefix):] if name.startswith(prefix) else name


def shown(name):
    return re.sub(r"@.*$", "", name)


def read_exclusive(path):
    total, exclusive = 0, defaultdict(int)
    for line in open(path):
        m = LINE.match(line)
        if not m:
            continue
        cost = int(m.group(1).replace(",", ""))
        if m.group(3) == "PROGRAM TOTALS":
            total = cost
        else:
            exclusive[function(m.group(3))] += cost
    return total, exclusive


def read_calls(path):
    """caller -> callee inclusive call costs, from the caller tree."""
    calls, pending = defaultdict(int), []
    for line in open(path):
        m = LINE.match(line)
        if not m:
            pending = []
            continue
        cost, mark = int(m.group(1).replace(",", "")), m.group(2)
        if mark == "<":
            pending.append((function(m.group(3)), cost))
        elif mark == "*":
            callee = function(m.group(3))
            for caller, call_cost in pending:
                if caller != callee:
                    calls[(caller, callee)] += call_cost
            pending = []
    return calls


def under_backend(calls):
    """Per function, the share of its cost that runs under the backend: 1
    for the backend's own, else its callers' shares weighted by the cost
    of their calls (a fixed point: the call graph may have cycles)."""
    callers = defaultdict(list)
    for (caller, callee), cost in calls.items():
        callers[callee].append((caller, cost))
    share = defaultdict(float)
    for name in backend:
        share[name] = 1.0
    for _ in range(100):
        moved = False
        for callee, incoming in callers.items():
            if callee in backend:
                continue
            weight = sum(cost for _, cost in incoming)
            value = sum(cost * share[c] for c, cost in incoming) / weight
            if abs(value - share[callee]) > 1e-12:
                share[callee], moved = value, True
        if not moved:
            break
    return share


def analyse(mode, feedback, source):
    name = f"{mode}-{feedback}-{source}"
    total, exclusive = read_exclusive(f"{work}/{name}.exclusive")
    calls = read_calls(f"{work}/{name}.tree")
    if total == 0 or exclusive.get(COUNTED, 0) == 0:
        sys.exit(f"bench_host_path.sh: {name}: nothing counted inside "
                 f"{COUNTED} (was it inlined, renamed or folded?)")
    share = under_backend(calls)
    entries = defaultdict(float)
    for (caller, callee), cost in calls.items():
        if callee in backend and caller not in backend:
            entries[callee] += cost * (1.0 - share[caller])
    backend_cost = sum(entries.values())
    harness = exclusive[COUNTED]
    own = total - backend_cost - harness
    functions = defaultdict(float)
    for fn, cost in exclusive.items():
        if fn not in backend and fn != COUNTED:
            functions[shown(fn)] += cost * (1.0 - share[fn])
    spread = sum(functions.values())
    if abs(spread - own) > 0.01 * max(own, 1):
        print(f"bench_host_path.sh: {name}: cgr's functions add up to "
              f"{spread / steps:.0f} per step, not {own / steps:.0f}",
              file=sys.stderr)

    def top(costs):
        ranked = sorted(costs.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return [{"function": shown(f), "per_step": round(c / steps)}
                for f, c in ranked]

    return {"bench": "host_path_instructions", "mode": mode,
            "feedback": feedback == "on", "source": source, "steps": steps,
            "total_per_step": round(total / steps),
            "backend_per_step": round(backend_cost / steps),
            "harness_per_step": round(harness / steps),
            "cgr_own_per_step": round(own / steps),
            "cgr_own_top": top(functions), "backend_top": top(entries)}


rows = [analyse(*c) for c in configs]
with open(out_path, "w") as out:
    meta = {"kind": "meta", "bench": "host_path_instructions",
            "counts": "instructions (callgrind Ir), not timings",
            "backend": "host", "build_type": "Release",
            "valgrind": valgrind, "date": date,
            "cpus": int(cpus), "steps": steps,
            "counted_function": COUNTED}
    out.write(json.dumps(meta) + "\n")
    for row in rows:
        out.write(json.dumps(row) + "\n")

header = ("mode", "feedback", "source", "total/step", "backend/step",
          "cgr own/step", "top 5 of cgr's own (exclusive instructions/step)")
print(f"  {header[0]:<9}  {header[1]:<8}  {header[2]:<6}  {header[3]:>10}  "
      f"{header[4]:>12}  {header[5]:>12}  {header[6]}")
for r in rows:
    top = ", ".join(f"{t['function']} {t['per_step']}" for t in r["cgr_own_top"])
    print(f"  {r['mode']:<9}  {'on' if r['feedback'] else 'off':<8}  "
          f"{r['source']:<6}  {r['total_per_step']:>10,}  "
          f"{r['backend_per_step']:>12,}  {r['cgr_own_per_step']:>12,}  {top}")
print(f"instruction counts (callgrind Ir) per step on the host backend, "
      f"{steps} steps per configuration, {valgrind}; "
      f"bench_host_path_step's own loop (harness) left out; JSON lines in "
      f"{out_path}")
over = [r for r in rows if budget and r["cgr_own_per_step"] > budget]
for r in over:
    print(f"OVER BUDGET: {r['mode']}, feedback "
          f"{'on' if r['feedback'] else 'off'}, {r['source']} source: cgr's "
          f"own {r['cgr_own_per_step']:,} instructions per step > {budget:,}")
if budget and not over:
    print(f"every configuration within the budget of {budget:,} instructions "
          f"per step")
sys.exit(1 if over else 0)
PY
echo "bench_host_path.sh: finished in $((SECONDS - began)) s"
exit "$status"
