#!/usr/bin/env bash
# Scaling curves for docs/benchmarks.md, each point on a fresh release broker:
#   queues       throughput for 1..10,000 queues, one producer and one consumer each (past 1,000
#                queues the producers and consumers are spread over 100 connections each)
#   sizes        throughput against the message size
#   connections  memory per idle connection (up to 50,000; raises the fd limit and, as root,
#                the ephemeral port range)
#   idle-queues  100,000 idle queues: declare rate and memory per queue, durable and not
#   backlog      a persistent backlog of BACKLOG (default 10M) x 1 KiB: fill, restart (time to the
#                first message), drain; RSS and disk use sampled every 5 s
#   paging       1,000 durable queues filled with persistent 1 KiB messages past the broker's
#                memory limit, then drained while producers keep publishing (churn); ROUNDS times
#                (default 10) on one broker, each round checked to drain everything
# Opt-in benchmarks, not tests.
#   crates/perf/scaling.sh [queues|sizes|connections|idle-queues|backlog|paging ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release -q --manifest-path "$root/Cargo.toml" -p warren-server -p warren-perf
warren="$root/target/release/warren"
perf="$root/target/release/warren-perf"
port=5781
uri="amqp://guest:guest@127.0.0.1:$port/%2f"
data=$(mktemp -d)
pid=

ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
start() {
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"/*
  "$warren" --data-dir "$data" --amqp-listen 127.0.0.1:$port --mgmt-listen 127.0.0.1:15781 2>>"$data.log" &
  pid=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
rss_mib() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$pid/status" 2>/dev/null; }
# Every 5 s: seconds, broker RSS (MiB), data directory size (MiB).
sampler() {
  local t0=$SECONDS
  while sleep 5; do
    echo "  sample t=$((SECONDS - t0))s rss_mib=$(rss_mib) disk_mib=$(du -sm "$1" 2>/dev/null | cut -f1)"
  done
}
trap 'stop; rm -rf "$data"' EXIT
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

what=("$@"); [ ${#what[@]} -gt 0 ] || what=(queues sizes connections)
for w in "${what[@]}"; do
  case $w in
    queues)
      echo "queues producers consumers consume_rate p50_us p99_us"
      echo "(rss_mib: the broker's RSS at the end of the run)"
      for n in 1 10 100 1000 10000; do
        start
        c=$n; [ $n -le 1000 ] || c=100
        r=$("$perf" --uri "$uri" --queues $n --producers $c --consumers $c --time 8 --quiet 2>/dev/null | grep '^RESULT')
        echo "$n $c $c $(field "$r" consume_rate) $(field "$r" p50_us) $(field "$r" p99_us) rss_mib=$(rss_mib)"
        stop
      done ;;
    idle-queues)
      for durable in "" --durable; do
        start
        "$perf" --uri "$uri" --declare-only --queues 100000 --producers 8 $durable --broker-pid "$pid" --time 3 2>/dev/null | grep '^RESULT'
        stop
      done ;;
    paging)
      start
      for round in $(seq 1 "${ROUNDS:-10}"); do
        # 1,000 producers x 300 x 1 KiB = 300 MB, past the 256 MiB memory_limit: most of it pages.
        f=$("$perf" --uri "$uri" --queue paging --queues 1000 --durable --persistent --size 1024 \
          --producers 1000 --consumers 0 --confirm 50 --count 300 --quiet 2>/dev/null | grep '^RESULT' || true)
        # Drain with 1,000 consumers while 100 producers keep publishing to the same queues.
        d=$("$perf" --uri "$uri" --queue paging --queues 1000 --durable --persistent --size 1024 \
          --producers 100 --consumers 1000 --confirm 50 --count 1000 --quiet 2>/dev/null | grep '^RESULT' || true)
        left=$("$perf" --uri "$uri" --queue paging --queues 1000 --drain --consumers 100 --quiet 2>/dev/null | grep '^RESULT' || true)
        echo "round $round: fill[$(field "$f" published) published $(field "$f" confirmed) confirmed]" \
          "churn[$(field "$d" published) published $(field "$d" consumed) consumed]" \
          "drain[$(field "$left" consumed) left over] rss_mib=$(rss_mib)"
      done
      stop ;;
    backlog)
      n=${BACKLOG:-10000000}
      start
      sampler "$data" & spid=$!
      echo "fill: $n persistent 1 KiB messages, 4 producers with confirms, no consumer"
      "$perf" --uri "$uri" --queue backlog --durable --persistent --size 1024 --producers 4 --consumers 0 \
        --confirm 2000 --count $((n / 4)) --quiet 2>/dev/null | grep '^RESULT'
      kill $spid; stop
      t0=$(date +%s.%N)
      KEEP_DATA=1 start
      sampler "$data" & spid=$!
      # Time from starting the process on the full data directory to the first message delivered.
      python3 - "$port" "$t0" <<'PY'
import pika, sys, time
port, t0 = int(sys.argv[1]), float(sys.argv[2])
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
ch = c.channel()
while ch.basic_get("backlog", auto_ack=False)[0] is None:
    time.sleep(0.01)
print(f"restart: first message {time.time() - t0:.2f} s after the broker was started")
c.close()
PY
      "$perf" --uri "$uri" --queue backlog --drain --consumers 4 --quiet 2>/dev/null | grep '^RESULT'
      kill $spid
      stop ;;
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
      # 50,000 connections from one address need more than the default 28,000 ephemeral ports.
      sysctl -qw net.ipv4.ip_local_port_range="1024 65535" 2>/dev/null || true
      for n in 1000 10000 50000; do
        start
        r=$("$perf" --uri "$uri" --connections $n --broker-pid "$pid" --time 3 2>/dev/null | grep '^RESULT')
        echo "$n $(field "$r" open_rate) $(field "$r" kib_per_conn)"
        stop
      done ;;
  esac
done
