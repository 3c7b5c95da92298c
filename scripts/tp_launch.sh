#!/usr/bin/env bash
# Starts the processes of one cgr group across processes on this machine:
# one process per rank, each told its rank and where the group's id is in
# the environment (CGR_GROUP_RANK, CGR_GROUP_ID_FILE; cgr-decode reads
# both), and on CUDA its own GPU (CGR_DEVICE: the rank's index on this
# machine). Rank 0's process makes the id and writes it to the file; the
# others wait for it and read it. (On CUDA the id must be made by a
# process that lives while the ranks join: NCCL's bootstrap root runs in
# it. Rank 0's process does.)
#
#   scripts/tp_launch.sh [options] N -- COMMAND [ARGS...]
#
# runs COMMAND N times, ranks FIRST to FIRST + N - 1 of a group of WORLD
# ranks (by default FIRST 0 and WORLD N: the whole group here), waits for
# all of them, and prints each rank's output after it, prefixed with
# "[rank R] ". When a rank fails, or the launcher is interrupted, the
# others are stopped at once (they would otherwise wait for it until the
# group's timeout). The exit status is 0 when every rank exited 0, else
# the first failing rank's.
#
# Options:
#   --world W       the group's rank count across every machine (N)
#   --first R       the rank of this machine's first process (0)
#   --id-file FILE  where rank 0 writes the id (a new temporary file
#                   by default). Several machines: a file every machine
#                   reads (a shared folder); the launcher whose ranks
#                   include 0 removes it before starting, so start that
#                   one first
#   --out DIR       rank R's output also in DIR/rank-R.log
#
# With CGR_GROUP_ID set and no --id-file, that id is handed on instead (the
# caller made it, and keeps its maker alive).
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
out=""
while (($#)); do
  case $1 in
  --world | --first | --id-file | --out)
    (($# >= 2)) || die "$1 needs a value"
    case $1 in
    --world) world=$2 ;;
    --first) first=$2 ;;
    --id-file) id_file=$2 ;;
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

logs=$(mktemp -d "${TMPDIR:-/tmp}/tp_launch.XXXXXX") || die "no temp folder"
if [[ -n $out ]]; then
  mkdir -p "$out" || die "cannot make $out"
fi

# The id: rank 0's process writes it to the file, the others read it; or
# the caller's CGR_GROUP_ID, handed on.
id_env=()
if [[ -n $id_file || -z ${CGR_GROUP_ID:-} ]]; then
  id_file=${id_file:-$logs/group-id}
  # A file from an earlier run would be read as this group's id.
  ((first == 0)) && rm -f "$id_file"
  id_env=(CGR_GROUP_ID_FILE="$id_file" CGR_GROUP_ID=)
fi

pids=()
ranks=()
running=()
stop() {
  local i
  for i in "${!pids[@]}"; do
    ((running[i])) && kill "${pids[i]}" 2>/dev/null
  done
}
trap 'stop; rm -rf "$logs"; exit 130' INT
trap 'stop; rm -rf "$logs"; exit 143' TERM HUP
trap 'rm -rf "$logs"' EXIT
for ((i = 0; i < count; i++)); do
  rank=$((first + i))
  env "${id_env[@]}" CGR_GROUP_RANK=$rank CGR_GROUP_WORLD=$world \
    CGR_DEVICE=$i "$@" >"$logs/rank-$rank.log" 2>&1 </dev/null &
  pids+=($!)
  ranks+=("$rank")
  running+=(1)
done

status=0
failed=""
left=$count
# Polled, not `wait -n -p` (bash 5.1): any bash 4 will do.
while ((left > 0)); do
  for i in "${!pids[@]}"; do
    ((running[i])) || continue
    kill -0 "${pids[i]}" 2>/dev/null && continue
    wait "${pids[i]}"
    code=$?
    running[i]=0
    ((left--))
    if ((code != 0 && status == 0)); then
      status=$code
      failed=${ranks[i]}
      # The others would wait for this rank until the group's timeout.
      stop
    fi
  done
  ((left > 0)) && sleep 0.05
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
