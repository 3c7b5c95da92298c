#!/usr/bin/env bash
# Starts the processes of one cgr group across processes on this machine:
# one process per rank, each told its rank and the group's id in the
# environment (CGR_GROUP_RANK, CGR_GROUP_ID; cgr-decode reads both), and on
# CUDA its own GPU (CGR_DEVICE: the rank's index on this machine).
#
#   scripts/tp_launch.sh [options] N -- COMMAND [ARGS...]
#
# runs COMMAND N times, ranks FIRST to FIRST + N - 1 of a group of WORLD
# ranks (by default FIRST 0 and WORLD N: the whole group here), waits for
# all of them, and prints each rank's output after it, prefixed with
# "[rank R] ". When a rank fails the others are stopped at once (they
# would otherwise wait for it until the group's timeout). The exit status
# is 0 when every rank exited 0, else the first failing rank's.
#
# Options:
#   --world W       the group's rank count across every machine (N)
#   --first R       the rank of this machine's first process (0)
#   --id-file FILE  the group's id: read from FILE when it exists, else
#                   made here and written to FILE (make it on rank 0's
#                   machine, copy it to the others before they start)
#   --backend B     auto, cuda or host: the backend the id is made for
#                   (auto)
#   --out DIR       rank R's output also in DIR/rank-R.log
#
# Without --id-file the id is CGR_GROUP_ID when set, else a new one. The
# id is made by cgr-info --group-id: $CGR_INFO, else cgr-info on PATH,
# else build/default/cgr-info of this repository.
#
# Two machines, 2 GPUs each, a group of 4 (docs/tensor-parallel.md):
#   on A: scripts/tp_launch.sh --world 4 --id-file /shared/id 2 -- \
#           cgr-decode --tp 4 ...
#   on B: scripts/tp_launch.sh --world 4 --first 2 --id-file /shared/id 2 \
#           -- cgr-decode --tp 4 ...
set -uo pipefail

die() {
  echo "tp_launch.sh: $*" >&2
  exit 2
}

world=""
first=0
id_file=""
backend=auto
out=""
while (($#)); do
  case $1 in
  --world | --first | --id-file | --backend | --out)
    (($# >= 2)) || die "$1 needs a value"
    case $1 in
    --world) world=$2 ;;
    --first) first=$2 ;;
    --id-file) id_file=$2 ;;
    --backend) backend=$2 ;;
    --out) out=$2 ;;
    esac
    shift 2
    ;;
  -h | --help)
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  --) die "the rank count N comes before --" ;;
  *) break ;;
  esac
done
(($# >= 3)) && [[ $2 == -- ]] ||
  die "usage: tp_launch.sh [options] N -- COMMAND [ARGS...] (--help)"
count=$1
shift 2
[[ $count =~ ^[1-9][0-9]*$ ]] || die "N is '$count', not a rank count"
world=${world:-$count}
[[ $world =~ ^[1-9][0-9]*$ && $first =~ ^[0-9]+$ ]] ||
  die "--world '$world' and --first '$first' must be numbers"
((first + count <= world)) ||
  die "ranks $first to $((first + count - 1)) are not all below --world $world"
case $backend in auto | cuda | host) ;; *) die "--backend '$backend'" ;; esac

cgr_info() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ -n ${CGR_INFO:-} ]]; then
    echo "$CGR_INFO"
  elif command -v cgr-info >/dev/null 2>&1; then
    command -v cgr-info
  elif [[ -x $here/build/default/cgr-info ]]; then
    echo "$here/build/default/cgr-info"
  else
    die "no cgr-info to make the group's id (set CGR_INFO, or build it)"
  fi
}

make_id() {
  "$(cgr_info)" --group-id --backend "$backend" ||
    die "cgr-info --group-id --backend $backend failed"
}

if [[ -n $id_file ]]; then
  if [[ -s $id_file ]]; then
    id=$(<"$id_file")
  else
    id=$(make_id) || exit 2
    # Written whole, then renamed: a reader never sees half an id.
    printf '%s\n' "$id" >"$id_file.tmp.$$" && mv "$id_file.tmp.$$" "$id_file" ||
      die "cannot write $id_file"
  fi
elif [[ -n ${CGR_GROUP_ID:-} ]]; then
  id=$CGR_GROUP_ID
else
  id=$(make_id) || exit 2
fi
[[ -n $id ]] || die "the group's id is empty"

logs=$(mktemp -d "${TMPDIR:-/tmp}/tp_launch.XXXXXX") || die "no temp folder"
trap 'rm -rf "$logs"' EXIT
if [[ -n $out ]]; then
  mkdir -p "$out" || die "cannot make $out"
fi

declare -A rank_of
pids=()
for ((i = 0; i < count; i++)); do
  rank=$((first + i))
  CGR_GROUP_ID=$id CGR_GROUP_RANK=$rank CGR_GROUP_WORLD=$world \
    CGR_DEVICE=$i \
    "$@" >"$logs/rank-$rank.log" 2>&1 </dev/null &
  pids+=($!)
  rank_of[$!]=$rank
done

status=0
failed=""
left=${#pids[@]}
while ((left > 0)); do
  wait -n -p done_pid
  code=$?
  ((left--))
  if ((code != 0 && status == 0)); then
    status=$code
    failed=${rank_of[$done_pid]:-?}
    # The others would wait for this rank until the group's timeout.
    kill "${pids[@]}" 2>/dev/null
  fi
done

for ((i = 0; i < count; i++)); do
  rank=$((first + i))
  sed "s/^/[rank $rank] /" "$logs/rank-$rank.log"
  if [[ -n $out ]]; then
    cp "$logs/rank-$rank.log" "$out/rank-$rank.log"
  fi
done
if ((status != 0)); then
  echo "tp_launch.sh: rank $failed exited $status; the other ranks were" \
    "stopped" >&2
fi
exit "$status"
