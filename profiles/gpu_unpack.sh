#!/usr/bin/env bash
# gpu_unpack.sh: files back from a GPU run (summary.txt, results.tar.gz, as
# profiles/gpu_run.sh leaves them) into profiles/results/<date>-<gpu>/,
# then docs/benchmarks.md regenerated from every results folder. What to
# commit is then that folder and docs/.
#
# Usage: profiles/gpu_unpack.sh DIR   (the folder the files came back in)
# Exit status: 0 unpacked, 1 a step failed, 2 bad usage.
set -euo pipefail

from=${1:-}
if [[ -z $from || ! -f $from/results.tar.gz || ! -f $from/summary.txt ]]; then
  echo "usage: profiles/gpu_unpack.sh DIR (DIR holds summary.txt and" \
    "results.tar.gz)" >&2
  exit 2
fi
from=$(cd "$from" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -C "$scratch" -xzf "$from/results.tar.gz"
machine=$scratch/results/machine.txt
date=$(sed -n 's/^date: \([0-9-]*\)T.*/\1/p' "$machine" | head -n 1)
device=$(sed -n 's/^device: //p' "$machine" | head -n 1 | cut -d, -f1)
case $device in
none*) device=host-rehearsal ;;
esac
slug=$(echo "${device:-unknown}" | tr '[:upper:]' '[:lower:]' |
  tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
target=profiles/results/${date:-undated}-$slug
if [[ -e $target ]]; then
  echo "gpu_unpack.sh: $target exists; move it away first" >&2
  exit 1
fi
mkdir -p "$target"
cp -R "$scratch/results/." "$target/"
cp "$from/summary.txt" "$target/summary.txt"
echo "gpu_unpack.sh: unpacked into $target"
"$(bash profiles/report_python.sh)" profiles/report.py
echo "gpu_unpack.sh: commit $target and docs/ (git add $target docs)"
