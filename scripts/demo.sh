#!/usr/bin/env bash
# The main job on the embedded default: a private redis-server, the bundled Douyin simulator
# and one worker, all on free ports in a temp dir; one simulated room assigned; its events shown
# as they arrive until Ctrl-C (or for DEMO_SECONDS seconds). Everything is cleaned up on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/deps.sh
if [ ! -x build/dylive-connector ] || [ ! -x build/dylive-sim ] || [ ! -x build/dylive-fixture ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j2 >/dev/null

tmp=$(mktemp -d /tmp/dylive-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
live_id=${DEMO_LIVE_ID:-261378947940}
room_id=$((7000000000000000000 + live_id % 1000000000000000000))

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)

build/dylive-fixture --out "$tmp/room.frames" --live-id "$live_id" --room-id "$room_id" \
  --frames 3000 --no-end --seed "$RANDOM" --quiet
build/dylive-sim --port 0 --room "$live_id:$tmp/room.frames,fps=${DEMO_FPS:-4},loop" >"$tmp/sim.port" 2>"$tmp/sim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$tmp/sim.port" 2>/dev/null && break; sleep 0.05; done
sim_port=$(awk '/listening/ {print $2}' "$tmp/sim.port")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

redis_url="redis://127.0.0.1:$redis_port/0"
build/dylive-connector --redis "$redis_url" --douyin-http "http://127.0.0.1:$sim_port" \
  --douyin-ws "ws://127.0.0.1:$sim_port" --admin off --log-format text >"$tmp/worker.log" 2>&1 &
pids+=($!)

echo "dylive demo: redis $redis_url, simulator http://127.0.0.1:$sim_port, worker log $tmp/worker.log"
echo "assigning room $live_id  (LPUSH dylive:assign $live_id) — events of dylive:{$live_id}:events:"
build/dylivectl --redis "$redis_url" assign "$live_id" >/dev/null
tail_cmd=(build/dylivectl --redis "$redis_url" tail "$live_id" --from-start)
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout "$DEMO_SECONDS" "${tail_cmd[@]}" || true
  echo
  build/dylivectl --redis "$redis_url" rooms
else
  "${tail_cmd[@]}"
fi
