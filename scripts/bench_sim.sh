#!/usr/bin/env bash
# Measure how many messages/s dylive-sim pushes to one fast client on loopback.
# usage: scripts/bench_sim.sh [BUILD_DIR] [FRAMES]      (defaults: build, 400000)
#   env FRAMES_FILE=path   use this CONTRACT §5 frames file instead of one built from shared/captures
#   env CAPTURES=dir       where the capture *.bin files are (default ../shared/captures)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
want=${2:-400000}
captures=${CAPTURES:-$here/../shared/captures}
sim=$build/dylive-sim
bench=$build/dylive-sim-bench
[[ -x $sim && -x $bench ]] || { echo "build dylive-sim and dylive-sim-bench first (cmake --build $build --target dylive-sim dylive-sim-bench)" >&2; exit 2; }

tmp=$(mktemp -d)
sim_pid=
cleanup() { [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

frames=${FRAMES_FILE:-}
if [[ -z $frames ]]; then
  # one unit = every capture, each as [u32 BE length][PushFrame]; then 256 copies (looped by the sim)
  unit=$tmp/unit.frames
  : >"$unit"
  for f in "$captures"/pushframe_*.bin; do
    n=$(stat -c %s "$f")
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))" >>"$unit"
    cat "$f" >>"$unit"
  done
  frames=$tmp/bench.frames
  cp "$unit" "$frames"
  for _ in 1 2 3 4 5 6 7 8; do cat "$frames" "$frames" >"$frames.2"; mv "$frames.2" "$frames"; done
fi

live=4242
room=7000000000000004242
"$sim" --room "$live:$frames,loop" --repush 0 --port-file "$tmp/port" >"$tmp/out" 2>"$tmp/err" &
sim_pid=$!
for _ in $(seq 1 500); do [[ -s $tmp/port ]] && break; sleep 0.01; done
port=$(cat "$tmp/port")
echo "frames file: $frames ($(stat -c %s "$frames") bytes); $(grep -m1 'frames,' "$tmp/err" | sed 's/^dylive-sim: //')"
"$bench" --port "$port" --live-id "$live" --room-id "$room" --frames "$want"
