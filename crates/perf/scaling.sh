#!/usr/bin/env bash
# Scaling curves for docs/benchmarks.md: throughput against the number of queues and the message
# size, and memory per idle connection, each on a fresh release broker.
#   crates/perf/scaling.sh [queues|sizes|connections ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release -q --manifest-path "$root/Cargo.toml" -p warren-server -p warren-perf
warren="$root/target/release/warren"
perf="$root/target/release/warren-perf"
port=5781
uri="amqp://guest:guest@127.0.0.1:$port/%2f"
data=$(mktemp -d)
pid=

start() {
  rm -rf "$data"/*
  "$warren" --data-dir "$data" --amqp-listen 127.0.0.1:$port --mgmt-listen 127.0.0.1:15781 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
trap 'stop; rm -rf "$data"' EXIT
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

what=("$@"); [ ${#what[@]} -gt 0 ] || what=(queues sizes connections)
for w in "${what[@]}"; do
  case $w in
    queues)
      echo "queues producers consumers consume_rate p50_us p99_us"
      for n in 1 10 100 1000; do
        start
        r=$("$perf" --uri "$uri" --queues $n --producers $n --consumers $n --time 8 --quiet 2>/dev/null | grep '^RESULT')
        echo "$n $n $n $(field "$r" consume_rate) $(field "$r" p50_us) $(field "$r" p99_us)"
        stop
      done ;;
    sizes)
      echo "size consume_rate MiB_per_s"
      for s in 16 128 1024 16384 65536 262144 1048576; do
        start
        r=$("$perf" --uri "$uri" --size $s --time 6 --quiet 2>/dev/null | grep '^RESULT')
        c=$(field "$r" consume_rate)
        echo "$s $c $(python3 -c "print(round($c*$s/1048576, 1))")"
        stop
      done ;;
    connections)
      echo "connections open_rate kib_per_conn"
      for n in 1000 10000; do
        start
        r=$("$perf" --uri "$uri" --connections $n --broker-pid "$pid" --time 3 2>/dev/null | grep '^RESULT')
        echo "$n $(field "$r" open_rate) $(field "$r" kib_per_conn)"
        stop
      done ;;
  esac
done
