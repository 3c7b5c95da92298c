#!/usr/bin/env bash
# scripts/deps.sh: make sure what cgr needs is on this machine.
#
# Usage: scripts/deps.sh [main|test|ci]
#
#   main  building cgr and running the main job (the example decode loop and
#         the replay benchmark): CMake, Ninja, a C compiler.
#   test  main, plus what the test suite needs: cmocka, pkg-config (the
#         installed-package tests), Python 3 with matplotlib (the benchmark
#         report's tests), numpy, pytest and venv (the Python package's
#         tests; `pip install .` fetches its build backend from PyPI).
#   ci    test, plus what .ci/run needs beyond the tests: clang and its
#         sanitizer runtimes (libFuzzer) for the fuzz targets, valgrind
#         (callgrind) for the host path's instruction budget.
#
# Every README command and .ci/run begins here, and this file holds the one
# list of packages. The script is idempotent: when everything is present it
# changes nothing and returns at once. When something is missing it installs
# it with apt-get if it runs as root or has password-less sudo; otherwise it
# prints the exact install line and exits 1. The CUDA toolkit is optional and
# never installed here: without it only the host backend is built, and the
# script says so.
set -euo pipefail

role=${1:-test}
case $role in
main | test | ci) ;;
-h | --help)
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
*)
  echo "deps.sh: unknown role '$role' (main, test or ci)" >&2
  exit 2
  ;;
esac

# ---- the list ---------------------------------------------------------------
# Debian package | the first role that needs it | how to tell it is present.
# A probe is a shell command; it must be cheap (this runs before every build).
packages=(
  "cmake|main|command -v cmake"
  "ninja-build|main|command -v ninja"
  "gcc|main|command -v gcc"
  # Only a Recommends of gcc: without it --no-install-recommends gives a
  # compiler with no C library headers.
  "libc6-dev|main|test -e /usr/include/stdio.h"
  "libcmocka-dev|test|test -e /usr/include/cmocka.h"
  "pkg-config|test|command -v pkg-config"
  "python3|test|command -v python3"
  "python3-matplotlib|test|have_module matplotlib"
  "python3-numpy|test|have_module numpy"
  "python3-pytest|test|have_module pytest"
  "python3-venv|test|have_module ensurepip"
  "clang|ci|command -v clang"
  # callgrind counts cgr's own instructions per step (issue 23's budget).
  "valgrind|ci|command -v callgrind_annotate"
  # libFuzzer and clang's sanitizer runtimes are only recommended by clang.
  "libclang-rt-dev|ci|have_libfuzzer"
)

# Debian's python3 has the module (the tests look there when the first
# python3 on PATH lacks it).
have_module() {
  local python
  for python in /usr/bin/python3; do
    if command -v "$python" >/dev/null 2>&1 &&
      "$python" -c "import $1" >/dev/null 2>&1; then
      return 0
    fi
  done
  return 1
}

have_libfuzzer() {
  compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a' \
    >/dev/null
}

rank() {
  case $1 in
  main) echo 1 ;;
  test) echo 2 ;;
  ci) echo 3 ;;
  esac
}

missing=()
for entry in "${packages[@]}"; do
  IFS='|' read -r package needed_by probe <<<"$entry"
  if (($(rank "$needed_by") > $(rank "$role"))); then
    continue
  fi
  if ! eval "$probe" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

cuda_note() {
  local nvcc=""
  if command -v nvcc >/dev/null 2>&1; then
    nvcc=$(command -v nvcc)
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc=/usr/local/cuda/bin/nvcc
  fi
  if [[ -n $nvcc ]]; then
    echo "deps.sh: CUDA toolkit: $nvcc ($("$nvcc" --version |
      sed -n 's/.*release \([0-9.]*\).*/\1/p')): the CUDA backend is built too"
  else
    echo "deps.sh: no CUDA toolkit (nvcc): only the host backend is built," \
      "and cgr runs its engine on CPU threads"
  fi
}

if ((${#missing[@]} == 0)); then
  echo "deps.sh: everything '$role' needs is present"
  cuda_note
  exit 0
fi

install_line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "deps.sh: '$role' needs packages that are not installed:" \
      "${missing[*]}" >&2
    echo "deps.sh: not root and no password-less sudo; install them with:" >&2
    echo "  sudo sh -c '$install_line'" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: '$role' needs (Debian names): ${missing[*]}" >&2
  echo "deps.sh: no apt-get here; install their equivalents with this" \
    "system's package manager" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
cuda_note
