#!/usr/bin/env bash
# kernel_report.sh: what the compiler made of cgr's CUDA kernels. Needs no
# GPU.
#
#   1. Compiles kernels/fused_copy.cu, basic.cu and sched_update.cu for one
#      architecture with ptxas -v and prints, per entry function, registers,
#      stack frame and spill stores/loads. Any spill or stack frame fails
#      the report: these kernels are meant to live in registers.
#   2. When cuobjdump and nvdisasm are at hand (PATH, NVDISASM_PATH, or
#      fetched once with pip into a cache), dumps the SASS and counts the
#      memory instructions of each fused_copy instantiation. No LDG.E.128 or
#      no STG.E.128 fails the report: the 16-byte vector path must exist.
#
# Prints a markdown summary on stdout (docs/kernels.md quotes it). Exit 0
# when everything passed, 1 when a check failed, 2 on bad usage or a
# failed compile.
#
# Usage: profiles/kernel_report.sh [--arch sm_90] [--no-fetch]
#                                  [--require-sass] [--keep]
# Environment: NVCC (compiler; default: PATH, then /usr/local/cuda/bin/nvcc),
#   CGR_CUDA_TOOLS (where fetched tools are kept; default
#   ${XDG_CACHE_HOME:-$HOME/.cache}/cgr/cuda-tools).
set -euo pipefail

arch=sm_90
fetch=1
require_sass=0
keep=0

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
  --arch)
    [[ $# -ge 2 ]] || { echo "kernel_report: --arch needs a value" >&2; exit 2; }
    arch="$2"
    shift 2
    ;;
  --arch=*) arch="${1#--arch=}"; shift ;;
  --no-fetch) fetch=0; shift ;;
  --require-sass) require_sass=1; shift ;;
  --keep) keep=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *)
    echo "kernel_report: unknown option '$1'" >&2
    usage >&2
    exit 2
    ;;
  esac
done
if [[ ! "$arch" =~ ^sm_[0-9]+[a-z]?$ ]]; then
  echo "kernel_report: --arch must look like sm_90, not '$arch'" >&2
  exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sources=(kernels/fused_copy.cu kernels/basic.cu kernels/sched_update.cu)

nvcc="${NVCC:-}"
if [[ -z "$nvcc" ]]; then
  if command -v nvcc >/dev/null 2>&1; then
    nvcc="$(command -v nvcc)"
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc=/usr/local/cuda/bin/nvcc
  else
    echo "kernel_report: no nvcc (set NVCC or put the CUDA toolkit on PATH)" >&2
    exit 2
  fi
fi
nvcc_release="$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\), \(V[0-9.]*\).*/\1 (\2)/p')"
nvcc_major_minor="${nvcc_release%% *}"
nvcc_major="${nvcc_major_minor%%.*}"

work="$(mktemp -d "${TMPDIR:-/tmp}/cgr-kernel-report.XXXXXX")"
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
  if [[ "$keep" -eq 1 ]]; then
    echo "kernel_report: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

demangle() {
  # Short, readable kernel names: no anonymous namespace, no parameters.
  if command -v c++filt >/dev/null 2>&1; then
    c++filt | sed -e 's/(anonymous namespace):://g' -e 's/^void //' \
      -e 's/(.*)$//'
  else
    cat
  fi
}

flags=(-arch="$arch" -O3 -std=c++17 -I"$repo" -I"$repo/include" -Xptxas -v -c)
failed=0

# ---- 1. ptxas resource usage ------------------------------------------------

: >"$work/resources.tsv"
for source in "${sources[@]}"; do
  name="$(basename "$source" .cu)"
  if ! "$nvcc" "${flags[@]}" "$repo/$source" -o "$work/$name.o" \
    >"$work/$name.ptxas" 2>&1; then
    cat "$work/$name.ptxas" >&2
    echo "kernel_report: nvcc failed on $source" >&2
    exit 2
  fi
  # "Compiling entry function 'X'" opens an entry; "Function properties
  # for X" and "Used N registers" belong to the entry being compiled.
  awk -v source="$source" '
    /Compiling entry function/ {
      match($0, /\x27[^\x27]+\x27/)
      entry = substr($0, RSTART + 1, RLENGTH - 2)
      order[++count] = entry
      next
    }
    /Function properties for/ { props = $NF; next }
    /bytes stack frame/ {
      if (props == entry) {
        stack[entry] = $1; stores[entry] = $5; loads[entry] = $9
      }
      next
    }
    /Used [0-9]+ registers/ {
      for (i = 1; i <= NF; ++i) if ($(i + 1) ~ /^registers/) regs[entry] = $i
      next
    }
    END {
      for (i = 1; i <= count; ++i) {
        e = order[i]
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", source, e, regs[e], \
          (e in stack ? stack[e] : "?"), (e in stores ? stores[e] : "?"), \
          (e in loads ? loads[e] : "?")
      }
    }' "$work/$name.ptxas" >>"$work/resources.tsv"
done

echo "## Kernel resource report"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- nvcc: release ${nvcc_release} (\`$nvcc\`)"
echo "- command: \`nvcc -arch=$arch -O3 -std=c++17 -I<repo> -I<repo>/include -Xptxas -v -c <file>.cu\`"
echo
echo "### ptxas (registers, stack, spills per entry function)"
echo
echo "| source | kernel | registers | stack frame | spill stores | spill loads |"
echo "|---|---|---:|---:|---:|---:|"
while IFS=$'\t' read -r source mangled regs stack stores loads; do
  kernel="$(printf '%s\n' "$mangled" | demangle)"
  verdict=""
  if [[ "$stack" != 0 || "$stores" != 0 || "$loads" != 0 ]]; then
    verdict=" **FAIL**"
    failed=1
  fi
  echo "| \`$source\` | \`$kernel\` | $regs | $stack | $stores | $loads$verdict |"
done <"$work/resources.tsv"
if [[ ! -s "$work/resources.tsv" ]]; then
  echo "| (no entry functions found in the ptxas output) | | | | | |"
  failed=1
fi
echo
if [[ "$failed" -eq 0 ]]; then
  echo "No entry function spills or uses a stack frame."
else
  echo "**FAIL**: a kernel spills, has a stack frame, or ptxas said nothing."
fi
echo

# ---- 2. SASS ------------------------------------------------------------------

find_tools() {
  # Sets cuobjdump and nvdisasm (PATH, NVDISASM_PATH, next to nvcc, or in
  # the fetched cache), or returns 1.
  local dir candidate
  cuobjdump="$(command -v cuobjdump || true)"
  nvdisasm="$(command -v nvdisasm || true)"
  if [[ -z "$nvdisasm" && -n "${NVDISASM_PATH:-}" ]]; then
    for candidate in "$NVDISASM_PATH" "$NVDISASM_PATH/nvdisasm"; do
      [[ -f "$candidate" && -x "$candidate" ]] && nvdisasm="$candidate"
    done
  fi
  for dir in "$(dirname "$nvcc")" "$tools"; do
    [[ -d "$dir" ]] || continue
    [[ -z "$cuobjdump" ]] &&
      cuobjdump="$(find "$dir" -name cuobjdump -type f -perm -u+x 2>/dev/null | head -n1)"
    [[ -z "$nvdisasm" ]] &&
      nvdisasm="$(find "$dir" -name nvdisasm -type f -perm -u+x 2>/dev/null | head -n1)"
  done
  [[ -n "$cuobjdump" && -n "$nvdisasm" ]]
}

fetch_tools() {
  # The wheels NVIDIA publishes on PyPI; the same major version as nvcc,
  # the same minor too when it exists.
  local wheels="$tools/wheels" wheel pinned="==${nvcc_major_minor}.*"
  local ranged=">=${nvcc_major},<$((nvcc_major + 1))"
  mkdir -p "$wheels"
  echo "kernel_report: fetching cuobjdump and nvdisasm into $tools" >&2
  if ! python3 -m pip download --quiet --no-deps -d "$wheels" \
    "nvidia-cuda-cuobjdump$pinned" "nvidia-cuda-nvdisasm$pinned" >&2 2>/dev/null; then
    python3 -m pip download --quiet --no-deps -d "$wheels" \
      "nvidia-cuda-cuobjdump$ranged" "nvidia-cuda-nvdisasm$ranged" >&2 || return 1
  fi
  for wheel in "$wheels"/*.whl; do
    python3 -m zipfile -e "$wheel" "$tools/unpacked" || return 1
  done
  # zipfile does not keep the executable bit.
  find "$tools/unpacked" -path '*/bin/*' -type f -exec chmod u+x {} +
}

tools="${CGR_CUDA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cgr/cuda-tools}"
cuobjdump=""
nvdisasm=""
have_tools=0
if find_tools; then
  have_tools=1
elif [[ "$fetch" -eq 1 ]] && command -v python3 >/dev/null 2>&1 &&
  fetch_tools && find_tools; then
  have_tools=1
fi

echo "### SASS (memory instructions per fused_copy instantiation)"
echo
if [[ "$have_tools" -eq 0 ]]; then
  echo "Skipped: cuobjdump/nvdisasm not found and not fetched" \
    "(put them on PATH, or allow the pip fetch)."
  if [[ "$require_sass" -eq 1 ]]; then
    echo
    echo "**FAIL**: --require-sass and no SASS."
    failed=1
  fi
else
  cuobjdump_version="$("$cuobjdump" --version | sed -n 's/.*release \([0-9.]*\), \(V[0-9.]*\).*/\1 (\2)/p')"
  echo "- cuobjdump: release ${cuobjdump_version} (\`$cuobjdump\`)"
  echo "- command: \`cuobjdump -sass fused_copy.o\`"
  echo
  # cuobjdump runs nvdisasm: found through PATH or NVDISASM_PATH.
  PATH="$(dirname "$nvdisasm"):$PATH" NVDISASM_PATH="$nvdisasm" \
    "$cuobjdump" -sass "$work/fused_copy.o" >"$work/fused_copy.sass"
  awk '
    /Function : / { fn = $NF; order[++count] = fn; next }
    fn == "" { next }
    {
      # The opcode: first token that is not a predicate or address.
      line = $0
      sub(/^[ \t]*\/\*[0-9a-f]+\*\/[ \t]*/, "", line)
      sub(/^@!?U?P[0-9T]+[ \t]+/, "", line)
      split(line, word, /[ \t;]+/)
      op = word[1]
      if (op == "LDG.E.128") ldg128[fn]++
      else if (op == "STG.E.128") stg128[fn]++
      else if (op ~ /^LDG\./) ldg_other[fn]++
      else if (op ~ /^STG\./) stg_other[fn]++
      else if (op ~ /^LDC/ && line ~ /c\[0x0\]\[R[0-9]+/) ldc_indexed[fn]++
      else if (op ~ /^(LDL|STL)/) local_mem[fn]++
    }
    END {
      for (i = 1; i <= count; ++i) {
        f = order[i]
        printf "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", f, ldg128[f], stg128[f], \
          ldg_other[f], stg_other[f], ldc_indexed[f], local_mem[f]
      }
    }' "$work/fused_copy.sass" >"$work/sass.tsv"
  echo "| kernel | LDG.E.128 | STG.E.128 | other LDG | other STG | indexed LDC | LDL/STL |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  instantiations=0
  while IFS=$'\t' read -r mangled ldg stg ldg_o stg_o ldc_n local_n; do
    kernel="$(printf '%s\n' "$mangled" | demangle)"
    # Both entry points: the by-value fused_copy<N> and plan_load (the
    # plan read from a pinned area), which share the per-tile code.
    [[ "$kernel" == *fused_copy* || "$kernel" == *plan_load* ]] || continue
    instantiations=$((instantiations + 1))
    verdict=""
    if [[ "$ldg" -eq 0 || "$stg" -eq 0 || "$local_n" -ne 0 ]]; then
      verdict=" **FAIL**"
      failed=1
    fi
    echo "| \`$kernel\` | $ldg | $stg | $ldg_o | $stg_o | $ldc_n | $local_n$verdict |"
  done <"$work/sass.tsv"
  echo
  if [[ "$instantiations" -eq 0 ]]; then
    echo "**FAIL**: no fused_copy function in the SASS."
    failed=1
  else
    echo "LDG.E.128/STG.E.128: the 16-byte vector path (COPY body, FILL" \
      "body, GATHER of 16-byte elements). Other LDG/STG: heads, tails, the" \
      "4- and 1-byte paths and the gather index. Indexed LDC" \
      "(\`c[0x0][Rn+...]\`): descriptor fields read in place from the" \
      "__grid_constant__ parameter by a computed operation index, with no" \
      "copy to local memory (LDL/STL must be 0)."
  fi
fi
echo
if [[ "$failed" -eq 0 ]]; then
  echo "**Result: PASS**"
else
  echo "**Result: FAIL**"
fi
exit "$failed"
