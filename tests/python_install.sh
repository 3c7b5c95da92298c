#!/usr/bin/env bash
# python.pip_install: what docs/python.md promises a newcomer. A fresh
# virtual environment, `pip install` of the source tree (scikit-build-core
# builds libcgr into the package), then, from outside the tree: the
# package's version is the library's, and the example serves its trace on
# the host backend with identical tokens in every mode.
#
# Usage: tests/python_install.sh PYTHON SOURCE_DIR WORK_DIR
# Exit 77 (skipped) when PyPI, where pip fetches the build backend, cannot
# be reached; any other failure fails.
set -euo pipefail
python=$1 source=$2 work=$3

rm -rf "$work"
mkdir -p "$work"
# numpy comes from the interpreter's own packages (the package needs it);
# the build backend comes from PyPI, as for any user.
"$python" -m venv --system-site-packages "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check)
if ! "${pip[@]}" download -q --no-deps -d "$work/probe" \
  'scikit-build-core>=0.10' >"$work/probe.log" 2>&1; then
  echo "python_install: PyPI is out of reach (pip download of" \
    "scikit-build-core failed), so pip cannot fetch the build backend:"
  tail -n 3 "$work/probe.log"
  exit 77
fi

echo "python_install: pip install $source"
start=$(date +%s)
"${pip[@]}" install -q --no-cache-dir "$source" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  exit 1
}
echo "python_install: installed in $(($(date +%s) - start)) s"

cd "$work" # nothing of the source tree on sys.path
unset CGR_LIBRARY PYTHONPATH
"$work/venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import os

import cgr

where = os.path.dirname(cgr.__file__)
assert "site-packages" in where, where
assert os.path.exists(os.path.join(where, "libcgr.so")), where
assert metadata.version("cgr") == cgr.__version__, (
    metadata.version("cgr"), cgr.__version__)
print(f"python_install: cgr {cgr.__version__} from {where}")
PY
"$work/venv/bin/python" "$source/python/examples/decode.py" --backend host |
  tee "$work/example.log"
grep -q "all modes: identical tokens" "$work/example.log"
