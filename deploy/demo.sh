#!/bin/sh
# deploy/demo.sh BUILD_DIR - what `make demo` runs.
#
# Starts, all on this machine and all in a temporary directory:
#   - td-kafka: the embedded Kafka (librdkafka's mock cluster, loopback
#     only), or with KAFKA=apache (`make demo KAFKA=apache`) a real Apache
#     Kafka broker from build/kafka/lib (`make kafka-jars`)
#   - redis-server on a unix socket, with AOF
#   - trustd, one worker
#   - td-loadgen: realistic traffic (Zipf-distributed merchants, whole order
#     lifecycles, reviews, refunds, a minority of bad merchants)
#   - trustctl serve: the merchant page on loopback, DEMO_PAGE (default
#     127.0.0.1:8080; any free port if that one is taken)
# and shows the best and worst merchants every two seconds. Ctrl-C stops
# everything and removes the directory.
set -u

B=${1:-build}
KAFKA=${KAFKA:-mock}
DEMO_RATE=${DEMO_RATE:-2000}
DEMO_MERCHANTS=${DEMO_MERCHANTS:-2000}
DEMO_PAGE=${DEMO_PAGE:-127.0.0.1:8080}
dir=$(mktemp -d /tmp/trustd-demo.XXXXXX)
pids=""

stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    # Last started first: the load generator and trustd flush to Kafka
    # while it still runs.
    rev=""
    for p in $pids; do rev="$p $rev"; done
    for p in $rev; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$dir"
    exit 0
}
trap stop INT TERM EXIT
# Each process runs in a session of its own (setsid): a Ctrl-C reaches this
# script alone, which stops them in order (stop) instead of all at once,
# when Kafka would go before the others could flush to it.

# Waits until a command succeeds, at most $1 tenths of a second.
wait_for() {
    n=$1
    shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        if [ "$n" -le 0 ]; then
            echo "demo: timed out waiting for: $*" >&2
            return 1
        fi
        sleep 0.1
    done
}

case $KAFKA in
mock) kopts="" kname="embedded Kafka" kwait=100 ;;
apache) kopts="--apache --dir $dir/kafka" kname="Apache Kafka" kwait=1800 ;;
*)
    echo "demo: KAFKA must be mock or apache, not \"$KAFKA\"" >&2
    exit 2
    ;;
esac

echo "demo: working directory $dir"

# shellcheck disable=SC2086 # kopts is a list of words
setsid "$B/td-kafka" --partitions 8 $kopts </dev/null >"$dir/kafka.out" \
    2>"$dir/kafka.log" &
pids="$pids $!"
if ! wait_for "$kwait" grep -q . "$dir/kafka.out"; then
    cat "$dir/kafka.log" >&2
    stop
fi
brokers=$(head -n 1 "$dir/kafka.out")
echo "demo: $kname at $brokers"

setsid redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --dir "$dir" --save '' --appendonly yes >"$dir/redis.log" 2>&1 &
pids="$pids $!"
wait_for 100 redis-cli -s "$dir/redis.sock" ping || stop
echo "demo: redis-server at $dir/redis.sock"

setsid "$B/trustd" --brokers "$brokers" --redis "$dir/redis.sock" --group demo \
    --http-port 0 --model-file schemas/model.conf >"$dir/trustd.log" 2>&1 &
pids="$pids $!"

setsid "$B/td-loadgen" --brokers "$brokers" --rate "$DEMO_RATE" \
    --merchants "$DEMO_MERCHANTS" --seed 42 --events 0 --eps-sim "$DEMO_RATE" \
    >"$dir/loadgen.log" 2>&1 &
pids="$pids $!"
echo "demo: trustd and the load generator ($DEMO_RATE events/s) started;" \
     "logs in $dir"

ctl() {
    "$B/trustctl" --redis "$dir/redis.sock" --brokers "$brokers" "$@" 2>&1
}

# The page, read-only, on loopback only (no token: trustctl serve refuses
# any other address without one).
page_start() {
    setsid "$B/trustctl" --redis "$dir/redis.sock" --listen "$1" serve \
        >"$dir/page.out" 2>"$dir/page.log" &
    page_pid=$!
    wait_for 50 grep -q '^serving ' "$dir/page.out"
}
if ! page_start "$DEMO_PAGE"; then
    kill -TERM "$page_pid" 2>/dev/null
    page_start 127.0.0.1:0 || { cat "$dir/page.log" >&2; stop; }
fi
pids="$pids $page_pid"
page=$(sed -n 's/^serving //p' "$dir/page.out")
echo "demo: the merchant page at $page"

while :; do
    out=$(
        echo "Trust Index demo - $(date '+%H:%M:%S')  (Ctrl-C to stop)"
        echo "The merchant page: $page"
        echo
        echo "Best merchants"
        ctl top 8
        echo
        echo "Worst merchants"
        ctl bottom 8
        echo
        worst=$(ctl --json bottom 1 | sed -n 's/.*"merchant_id":"\([^"]*\)".*/\1/p')
        if [ -n "$worst" ]; then
            echo "Why is $worst at the bottom?"
            ctl get "$worst" | sed -n '1,12p'
        fi
        echo
        ctl offsets | tail -n 1
    )
    clear 2>/dev/null || printf '\033[2J\033[H'
    printf '%s\n' "$out"
    if ! kill -0 $(echo "$pids" | awk '{print $3}') 2>/dev/null; then
        echo "demo: trustd exited; last lines of its log:"
        tail -n 20 "$dir/trustd.log"
        stop
    fi
    sleep 2
done
