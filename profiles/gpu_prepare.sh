#!/usr/bin/env bash
# gpu_prepare.sh: build here, without a GPU, everything the GPU run needs,
# into one folder that travels to the GPU machine (profiles/gpu_run.sh runs
# it there; docs/profiling.md has the remote call).
#
# The GPU machine is bare: no compiler run, no network, no cmocka. So the
# folder holds a Release build with the CUDA backend (sm_90 machine code
# plus compute_90 PTX), stripped: cgr-info, cgr-decode, libcgr.so, every
# test binary and benchmark, libcmocka beside them, every binary with an
# $ORIGIN run path, and tests.tsv, the test list with paths relative to the
# folder (CTest's own files name this machine's paths). Beside them the
# Python side, as it was when libcgr.so was built (the binding refuses a
# library whose structs differ): python/cgr, python/tests, python/examples
# and profiles/bench_python.py, sources only (and include/cgr, which the
# suite checks the binding's structs against), run there with
# CGR_LIBRARY=<folder>/libcgr.so and PYTHONPATH=<folder>/python. Nothing in
# it depends on where it lies.
#
# Usage: profiles/gpu_prepare.sh [--bundle DIR] [--build DIR] [--host-only]
#                                [--package-only]
#   --bundle DIR    the folder that travels (default build/gpu; build/ is
#                   ignored by git, so it goes with `carry`)
#   --build DIR     the CMake build tree (default build/gpu-build)
#   --host-only     build without the CUDA backend (a machine without nvcc:
#                   the folder can then only rehearse, gpu_run.sh --no-gpu)
#   --package-only  package the build tree as it is, without configuring or
#                   building it (the rehearsal test packages its own build)
# Exit status: 0 ready, 1 a step failed, 2 bad usage.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

bundle=build/gpu
build=build/gpu-build
cuda=ON
package_only=0
while (($#)); do
  case $1 in
  --bundle) bundle=$2; shift 2 ;;
  --build) build=$2; shift 2 ;;
  --host-only) cuda=OFF; shift ;;
  --package-only) package_only=1; shift ;;
  -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_prepare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
# The largest folder the device tool carries well beside the working tree:
# the tool carries 64 MiB in all, the folder and the working tree (about 4
# MiB) together, and some room is kept for the tree to grow. (48 MiB until
# the pipelined mode's test binaries took the folder to 53 MiB: each test
# binary links cgr, device code and static cudart, about 1.4 MiB;
# compressed fatbins bring it back to 47 MiB.)
limit_mib=52

say() { echo "gpu_prepare.sh: $*"; }

if ((package_only == 0)); then
  bash scripts/deps.sh test
  # The run path is relative ($ORIGIN): libcgr.so beside cgr-decode, one
  # level up from tests/ and profiles/, and lib/ (libcmocka) one level up.
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCGR_WITH_CUDA="$cuda" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCGR_BUILD_TESTS=ON -DCGR_BUILD_EXAMPLES=ON -DCGR_BUILD_PROFILES=ON \
    -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON \
    "-DCMAKE_BUILD_RPATH=\$ORIGIN/lib;\$ORIGIN/../lib"
  cmake --build "$build"
fi
build=$(cd "$build" && pwd)
for needed in cgr-info cgr-decode libcgr.so tests/test_replay; do
  if [[ ! -e $build/$needed ]]; then
    say "$build has no $needed: build it first (without --package-only)" >&2
    exit 1
  fi
done

rm -rf "$bundle"
mkdir -p "$bundle/tests" "$bundle/profiles" "$bundle/lib"
bundle=$(cd "$bundle" && pwd)

cp -P "$build"/libcgr.so* "$bundle/"
cp "$build/cgr-info" "$build/cgr-decode" "$bundle/"
# Test binaries with CUDA tests (host-only binaries stay here: CI runs
# them on every change).
for program in $(ctest --test-dir "$build" -N -L cuda |
  sed -n 's/^ *Test *#[0-9]*: \([a-z0-9_]*\)\..*/\1/p' | sort -u); do
  if [[ -f $build/tests/test_$program ]]; then
    cp "$build/tests/test_$program" "$bundle/tests/"
  fi
done
if compgen -G "$build/profiles/bench_*" >/dev/null; then
  find "$build/profiles" -maxdepth 1 -name 'bench_*' -type f -perm -u+x \
    -exec cp {} "$bundle/profiles/" \;
fi

# The shared libraries a bare CUDA machine lacks: cmocka (the tests).
cmocka=$(ldd "$build/tests/test_replay" | awk '/libcmocka/ {print $3}')
if [[ -z $cmocka || ! -e $cmocka ]]; then
  say "cannot find the libcmocka the tests link" >&2
  exit 1
fi
cp -L "$cmocka" "$bundle/lib/"

# Symbols are not needed there; the folder's size is.
find "$bundle" -type f \( -perm -u+x -o -name '*.so*' \) \
  -exec strip --strip-unneeded {} + 2>/dev/null || true

# The Python side (after the strip: these are sources): the package, its
# tests and examples, and bench_python.py, in the repository's layout so
# that each finds the others as it does here. No caches, no library built
# into the tree by an earlier `pip install -e`: libcgr.so is the bundle's.
for part in cgr tests examples; do
  if [[ ! -d $repo/python/$part ]]; then
    say "python/$part is missing" >&2
    exit 1
  fi
  mkdir -p "$bundle/python/$part"
  (cd "$repo/python/$part" && find . -name '*.py' -type f -not -path '*/__pycache__/*' \
    -exec cp --parents {} "$bundle/python/$part/" \;)
done
cp "$repo/profiles/bench_python.py" "$repo/profiles/bench_python_peers.py" \
  "$bundle/profiles/"
# The public headers: the suite checks ctypes' structs against them.
mkdir -p "$bundle/include"
cp -R "$repo/include/cgr" "$bundle/include/"

# The test list: NAME, TIMEOUT, then the command, one field per argument,
# with the build tree's paths made relative to the folder. Only tests whose
# program is one of the test binaries travel (docs, peers and install
# tests need this machine's tools).
ctest --test-dir "$build" --show-only=json-v1 >"$bundle/ctest.json"
python3 - "$build" "$bundle/ctest.json" "$bundle" >"$bundle/tests.tsv" <<'EOF'
import json, os, sys
build, listing, bundle = sys.argv[1], sys.argv[2], sys.argv[3]
for test in json.load(open(listing))["tests"]:
    command = test.get("command") or []
    if not command or not command[0].startswith(build + "/tests/test_"):
        continue
    if not os.path.exists(os.path.join(bundle, command[0][len(build) + 1:])):
        continue
    timeout = 300
    for prop in test.get("properties", []):
        if prop["name"] == "TIMEOUT":
            timeout = int(float(prop["value"]))
    program = command[0][len(build) + 1:]
    print("\t".join([test["name"], str(timeout), program] + command[1:]))
EOF
rm -f "$bundle/ctest.json"

# Every binary must find what it needs without this machine's paths.
missing=$(cd "$bundle" && for f in cgr-info cgr-decode tests/test_* profiles/*; do
  [[ -f $f ]] || continue
  env -u LD_LIBRARY_PATH ldd "$f" 2>/dev/null | grep 'not found' |
    sed "s|^|$f: |"
done || true)
if [[ -n $missing ]]; then
  say "binaries that would not load there:" >&2
  echo "$missing" >&2
  exit 1
fi
if grep -rqa -- "$build/" "$bundle/tests.tsv"; then
  say "tests.tsv still names $build" >&2
  exit 1
fi

{
  echo "prepared: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "cuda backend: $cuda"
  if [[ $cuda == ON ]]; then
    echo "nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
    echo "architectures: sm_90 + compute_90 PTX"
  fi
  echo "tests: $(wc -l <"$bundle/tests.tsv")"
  echo "python: cgr $(find "$bundle/python/cgr" -name '*.py' | wc -l) files," \
    "tests $(find "$bundle/python/tests" -name '*.py' | wc -l)," \
    "examples $(find "$bundle/python/examples" -name '*.py' | wc -l)," \
    "profiles/bench_python.py, bench_python_peers.py"
} >"$bundle/manifest.txt"

size_kib=$(du -sk "$bundle" | cut -f1)
size_mib=$(((size_kib + 1023) / 1024))
say "$bundle: $size_mib MiB ($(find "$bundle" -type f | wc -l) files," \
  "$(wc -l <"$bundle/tests.tsv") tests), limit $limit_mib MiB"
if ((size_mib > limit_mib)); then
  say "the folder is over $limit_mib MiB" >&2
  exit 1
fi
