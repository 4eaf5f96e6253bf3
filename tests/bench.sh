#!/bin/bash
# tests/bench.sh BUILD_DIR - what `make bench` and `make bench-smoke` run.
#
# Everything runs on this machine, on loopback, in a temporary directory that
# is removed on exit together with every process started here:
#
#   0. Sample: build/tests/bench_decode decodes and folds a fixed sample of
#      load-generator events under callgrind (--toggle-collect on
#      td_codec_decode, td_mcache_delta and td_sigdelta_add): instructions per
#      event of decode and of the signal update, the same on every run. Run
#      natively it also gives the cache's bytes per cached merchant.
#   1. Backlog: td-kafka (embedded Kafka) with enough partitions that nothing
#      ages out of the mock's ~5 MiB per-partition log (checked), filled by
#      td-loadgen: EVENTS events over MERCHANTS Zipf-distributed merchants,
#      the generator's mix of orders, reviews and refunds, lz4.
#   2. Baseline: td-consume (a consumer configured like trustd's that reads
#      every message and does nothing else) reads the whole backlog, five
#      times, each in its own group; the median run counts (the machine may
#      be shared). Rate = messages / (last message - first message), so the
#      group join is left out; CPU from bash's `time`.
#   3. trustd, one worker, own group, against a fresh redis-server (TCP on
#      127.0.0.1, AOF everysec as deploy/ runs it). Rate = events / (time its
#      stored offsets reached the high watermarks - time /metrics first showed
#      a consumed event), polled every POLL_S (200 ms): the partition records
#      trust:part:{topic/p} `committed` read with one EVAL over their known
#      keys, and trustd's /metrics scraped over bash's /dev/tcp. At that
#      moment: trustd CPU (/proc/PID/stat utime+stime), peak RSS (VmHWM),
#      Redis CPU (INFO cpu used_cpu_sys+used_cpu_user, delta since trustd
#      started), Redis commands (INFO commandstats delta, less the harness'
#      own EVAL/INFO and the HGETs inside its EVALs) and round trips
#      (trustd_redis_roundtrips_total).
#   4. Latency: with trustd caught up, td-loadgen produces at half the rate
#      trustd reached (background load) while build/tests/bench_probe
#      produces 20 probe orders per second for its own merchants with
#      event_time = now and polls their as_of_ms in Redis every 2 ms: p50/p99
#      of produce -> visible in Redis (the poll interval bounds the error).
#      The flushes trustd made meanwhile (count, events, duration) are shown
#      beside it, since they explain it.
#   5. The same backlog, a new group, against a 3-master Redis Cluster:
#      its rate, trustd's CPU and the nodes' (INFO cpu, masters and
#      replicas apart, since they started) and the flush steps.
#   6. Instructions: a second td-kafka with a small fixed load
#      (REDIS_CG_EVENTS events over MERCHANTS / 20 merchants), drained by
#      trustd under callgrind into a redis-server under callgrind (Redis'
#      counters zeroed once it is up) in one flush of the whole load, due
#      by count once its last event is read, then stopped with SIGTERM (its
#      shutdown flushes store the offsets and mark the publications; its
#      profile is written as it exits; Redis' is dumped once every offset
#      is stored): Redis' instructions per merchant write (TD.PUT calls,
#      or td_put's GETRANGE) and per event, of which Redis' timer
#      (serverCron), trustd's per event (the whole process: librdkafka,
#      decode, flushes; start-up and shutdown included) and its flusher
#      thread's per write, and their ratio, stable from run to run where CPU
#      seconds are not. Twice: Redis with the trustd module (native
#      commands, the main row) and without it (the Lua function library).
#      The profiles are kept as last-run/redis-callgrind-{native,lua}.out
#      and last-run/trustd-callgrind-{native,lua}.out (callgrind_annotate).
#   7. One real Apache Kafka broker (td-kafka --apache, KRaft, from
#      build/kafka/lib: `make kafka-jars`) with a backlog of APACHE_EVENTS
#      events over APACHE_PARTITIONS partitions per topic: td-consume reads
#      it (median of three runs, each in its own group), then trustd drains
#      it in a new group into the Redis of stage 3, emptied first; their
#      ratio beside the mock's says what a real broker changes. Not in the
#      smoke run (it starts a JVM).
#
# The table goes to stdout and to BUILD_DIR/bench/results.md (smoke:
# results-smoke.md); logs of the run are kept in BUILD_DIR/bench/last-run/.
# Targets are reported, never enforced: the exit status is non-zero only
# when the harness itself (or trustd) breaks.
#
# Settings (environment):
#   TD_BENCH_SMOKE=1          tiny sizes, same code path (make bench-smoke)
#   TD_BENCH_EVENTS           backlog events (2000000; smoke 20000)
#   TD_BENCH_MERCHANTS        merchants (100000; smoke 2000)
#   TD_BENCH_ZIPF             Zipf exponent of merchant popularity (0.8)
#   TD_BENCH_PARTITIONS       partitions per input topic (48; smoke 8)
#   TD_BENCH_SEED             load generator seed (42)
#   TD_BENCH_LATENCY_S        seconds of latency measurement (20; smoke 3)
#   TD_BENCH_LATENCY_RATE     its background rate, events/s (half of
#                             stage 3's), to compare changes at one rate
#   TD_BENCH_SAMPLE_EVENTS    callgrind sample size (20000; smoke 2000)
#   TD_BENCH_SAMPLE_REPS      passes over the sample (5; smoke 1)
#   TD_BENCH_REDIS_AOF        yes|no (yes)
#   TD_BENCH_REDIS_CG_EVENTS  events of the callgrind stage (50000; smoke
#                             2000; 0 skips it)
#   TD_BENCH_POLL_S           seconds between polls of trustd's progress
#                             (0.2; smoke 0.05)
#   TD_BENCH_TRUSTD_ARGS      extra trustd flags, e.g. "--flush-max-events
#                             200000" to try a change
#   TD_BENCH_TIMEOUT_S        longest wait for trustd to catch up (3600;
#                             smoke 40)
#   TD_BENCH_OUT              output directory (BUILD_DIR/bench)
#   TD_BENCH_APACHE           1|0: stage 7 on a real broker (1; smoke 0)
#   TD_BENCH_APACHE_EVENTS    its backlog (500000)
#   TD_BENCH_APACHE_PARTITIONS  its partitions per input topic (8)

# `make` runs this with sh: the script needs bash (/dev/tcp, arrays).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u
export LC_ALL=C

cd "$(dirname "$0")/.." || exit 1
B=${1:-build}
SMOKE=${TD_BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
    d_events=20000 d_merchants=2000 d_parts=8 d_lat=3 d_sample=2000
    d_reps=1 d_timeout=40 d_poll=0.05 d_cg=2000 out_name=results-smoke.md
    d_apache=0
else
    d_events=2000000 d_merchants=100000 d_parts=48 d_lat=20 d_sample=20000
    d_cg=50000
    d_reps=5 d_timeout=3600 d_poll=0.2 out_name=results.md
    d_apache=1
fi
APACHE=${TD_BENCH_APACHE:-$d_apache}
AK_EVENTS=${TD_BENCH_APACHE_EVENTS:-500000}
AK_PARTS=${TD_BENCH_APACHE_PARTITIONS:-8}
EVENTS=${TD_BENCH_EVENTS:-$d_events}
MERCHANTS=${TD_BENCH_MERCHANTS:-$d_merchants}
ZIPF=${TD_BENCH_ZIPF:-0.8}
PARTS=${TD_BENCH_PARTITIONS:-$d_parts}
SEED=${TD_BENCH_SEED:-42}
LAT_S=${TD_BENCH_LATENCY_S:-$d_lat}
SAMPLE=${TD_BENCH_SAMPLE_EVENTS:-$d_sample}
REPS=${TD_BENCH_SAMPLE_REPS:-$d_reps}
AOF=${TD_BENCH_REDIS_AOF:-yes}
TRUSTD_ARGS=${TD_BENCH_TRUSTD_ARGS:-}
TIMEOUT_S=${TD_BENCH_TIMEOUT_S:-$d_timeout}
CG_EVENTS=${TD_BENCH_REDIS_CG_EVENTS:-$d_cg}
OUT=${TD_BENCH_OUT:-$B/bench}
PROBE_RATE=20
# The harness' own polling (redis-cli, bash) competes with trustd for the
# two cores: every 200 ms bounds the end-time error to 0.2 s (under 1 % of a
# full run) at a quarter of the cost of every 50 ms.
POLL_S=${TD_BENCH_POLL_S:-$d_poll}

dir=$(mktemp -d /tmp/trustd-bench.XXXXXX) || exit 1
kafka_pid="" redis_pid="" trustd_pid="" bg_pid="" kafka2_pid="" cg_pid=""
kafka3_pid=""
cluster_pids=()

# Progress goes to the original stderr, also from traps that run while a
# command's stderr is redirected.
exec 9>&2
log() { echo "bench: $*" >&9; }

# Keeps the logs of a failed run, then cleans up (EXIT trap).
die() {
    log "error: $*"
    save_logs
    exit 1
}

save_logs() {
    mkdir -p "$OUT/last-run" 2>/dev/null || return 0
    cp "$dir"/*.log "$dir"/*.out "$dir"/*.txt "$OUT/last-run/" 2>/dev/null
    return 0
}

# Stops one process we started: SIGTERM, up to 20 s, then SIGKILL.
stop_pid() {
    local p=$1 i
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
    for ((i = 0; i < 200; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$bg_pid"
    stop_pid "$trustd_pid"
    stop_pid "$redis_pid"
    stop_pid "$kafka_pid"
    stop_pid "$cg_pid"
    stop_pid "$kafka2_pid"
    stop_pid "$kafka3_pid"
    for p in "${cluster_pids[@]}"; do stop_pid "$p"; done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'log terminated; exit 143' TERM

# Milliseconds since the epoch, into $NOW (no fork).
now() {
    local t=${EPOCHREALTIME/[.,]/}
    NOW=$((10#$t / 1000))
}

# Floating-point arithmetic: calc 'EXPR' prints the value.
calc() { awk "BEGIN { x = $1; print x }"; }
# cg_incl FILE FUNCTION: FUNCTION's inclusive instructions in a callgrind
# profile (0 if absent).
cg_incl() {
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
        awk -v f=":$2 " 'index($0, f) { gsub(",", "", $1); print $1; n = 1; exit }
            END { if (!n) print 0 }'
}
# fmt FORMAT VALUE: printf through awk (handles empty as n/a).
fmt() {
    if [ -z "$2" ] || [ "$2" = "n/a" ]; then echo "n/a"; return; fi
    awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'
}
# Thousands separators for integers.
grp() {
    if [ -z "$1" ] || [ "$1" = "n/a" ]; then echo "n/a"; return; fi
    printf "%s" "$1" | awk '{ n = sprintf("%.0f", $1); s = "";
        while (length(n) > 3) { s = "," substr(n, length(n) - 2) s;
            n = substr(n, 1, length(n) - 3) } print n s }'
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local p i lo=32768 n
    # Below the kernel's ephemeral range: a port no one listens on there
    # can still be taken by an outgoing connection before it is bound.
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    n=$((lo - 20000))
    [ "$n" -ge 1000 ] || n=40000
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % n))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# GET http://127.0.0.1:PORT/PATH, body on stdout.
http_get() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
        timeout 5 cat <&3
    ) 2>/dev/null | tr -d '\r' | sed '1,/^$/d'
}

# One turn of a wait loop for a trustd ($1, its log $2) whose wait started
# at $3 (ms): sets NOW; dies when the wait outlasted TIMEOUT_S or trustd
# exited. $4 names the stage in the message.
trustd_alive() {
    now
    [ $((NOW - $3)) -lt $((TIMEOUT_S * 1000)) ] ||
        die "trustd$4 did not get through within $TIMEOUT_S s"
    kill -0 "$1" 2>/dev/null || die "trustd$4 exited: $(tail -n 5 "$2")"
}

# Waits at most $3 s for the bootstrap address that td-kafka (pid $1,
# output in $dir/$2.out and .log) prints first; sets KADDR. Dies if it
# exits or prints nothing.
kafka_address() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        [ -s "$dir/$2.out" ] && break
        kill -0 "$1" 2>/dev/null ||
            die "td-kafka exited: $(tail -n 3 "$dir/$2.log")"
        sleep 0.05
    done
    KADDR=$(head -n 1 "$dir/$2.out")
    [ -n "$KADDR" ] || die "td-kafka printed no bootstrap address"
}

# Sum of a Prometheus metric (all label sets) in the file $1.
metric() {
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 }
        END { printf "%.0f\n", s }' "$1"
}

# Value of key $2 in a "k=v k=v" line $1.
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }

# Field of an INFO dump file.
info_get() {
    tr -d '\r' <"$1" | awk -F: -v f="$2" '$1 == f { print $2; exit }'
}

# "name calls usec" per command from an INFO commandstats dump.
cmdstats() {
    tr -d '\r' <"$1" | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p'
}

# Process CPU seconds (utime + stime) of PID.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' \
        "/proc/$1/stat"
}

# Its user and system seconds, "U user, S system".
proc_cpu_split() {
    awk -v hz="$(getconf CLK_TCK)" \
        '{ printf "%.2f user, %.2f system\n", $14 / hz, $15 / hz }' "/proc/$1/stat"
}

proc_status_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# ---- 0. preflight ----

for p in trustd trustctl td-kafka td-loadgen td-consume; do
    [ -x "$B/$p" ] || die "$B/$p is missing (run make first)"
done
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null
then
    die "redis-server and redis-cli are needed (make deps)"
fi
make --no-print-directory BUILD="$B" "$B/tests/bench_decode" \
    "$B/tests/bench_probe" >"$dir/build.log" 2>&1 ||
    { cat "$dir/build.log" >&2; die "building the bench helpers failed"; }
mkdir -p "$OUT" || die "cannot create $OUT"

now
t_bench=$NOW
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "$( [ "$SMOKE" = 1 ] && echo "smoke run: " )$EVENTS events," \
    "$MERCHANTS merchants, Zipf $ZIPF, $PARTS partitions per topic; work" \
    "directory $dir"

# ---- 0. the fixed sample: instructions per event ----

"$B/tests/bench_decode" --events "$SAMPLE" --reps "$REPS" \
    --merchants "$MERCHANTS" --zipf-s "$ZIPF" --seed "$SEED" \
    >"$dir/sample.out" 2>"$dir/sample.log" ||
    die "bench_decode failed: $(cat "$dir/sample.log")"
sample_line=$(cat "$dir/sample.out")
bytes_per_merchant=$(kv "$sample_line" bytes_per_merchant)
state_bytes=$(kv "$sample_line" state_bytes_per_merchant)

ins_decode=n/a ins_update=n/a
if command -v valgrind >/dev/null; then
    log "callgrind over $SAMPLE sample events x $REPS"
    valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no \
        --toggle-collect=td_codec_decode --toggle-collect=td_mcache_delta \
        --toggle-collect=td_sigdelta_add --compress-strings=no \
        --compress-pos=no --callgrind-out-file="$dir/callgrind.out" \
        "$B/tests/bench_decode" --events "$SAMPLE" --reps "$REPS" \
        --merchants "$MERCHANTS" --zipf-s "$ZIPF" --seed "$SEED" \
        >"$dir/callgrind.txt" 2>&1 ||
        die "bench_decode under callgrind failed"
    # Inclusive cost of each call made from main(): the line after a
    # calls= line is "<line> <Ir>".
    read -r ins_decode ins_update < <(awk -v n="$((SAMPLE * REPS))" '
        /^fn=/ { fn = substr($0, 4) }
        /^cfn=/ { cfn = substr($0, 5) }
        /^calls=/ { getline; if (fn == "main") inc[cfn] += $2 }
        END { printf "%.0f %.0f\n", inc["td_codec_decode"] / n,
              (inc["td_mcache_delta"] + inc["td_sigdelta_add"]) / n }' \
        "$dir/callgrind.out")
    [ "${ins_decode:-0}" -gt 0 ] 2>/dev/null ||
        die "no td_codec_decode cost in the callgrind output"
else
    log "warning: valgrind is not installed: no instruction counts"
fi

# ---- 1. embedded Kafka and the backlog ----

"$B/td-kafka" --partitions "$PARTS" <&- >"$dir/kafka.out" \
    2>"$dir/kafka.log" &
kafka_pid=$!
kafka_address "$kafka_pid" kafka 10
brokers=$KADDR

# The trustd module: every Redis here loads it (native commands), but the
# Lua row of stage 6.
MODULE=$(cd "$B" && pwd)/trustd_module.so
[ -r "$MODULE" ] || die "no $MODULE (make bins)"

# A fresh redis-server on a free loopback port: retried if another process
# takes the port first; ours only when INFO names our pid.
mkdir -p "$dir/redis"
for ((try = 0; try < 10; try++)); do
    rport=$(free_port) || die "no free TCP port"
    redis-server --bind 127.0.0.1 --port "$rport" --save '' \
        --loadmodule "$MODULE" \
        --appendonly "$AOF" --appendfsync everysec --dir "$dir/redis" \
        --logfile "$dir/redis.log" --daemonize no >/dev/null 2>&1 &
    redis_pid=$!
    ok=0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$redis_pid" 2>/dev/null || break
        if [ "$(rcli info server 2>/dev/null | tr -d '\r' |
            sed -n 's/^process_id://p')" = "$redis_pid" ]; then
            ok=1
            break
        fi
        sleep 0.05
    done
    [ "$ok" = 1 ] && break
    stop_pid "$redis_pid"
    redis_pid=""
done
[ -n "$redis_pid" ] || die "could not start redis-server"
redis_version=$(rcli info server | tr -d '\r' | sed -n 's/^redis_version://p')

log "producing $EVENTS events to $brokers"
"$B/td-loadgen" --brokers "$brokers" --events "$EVENTS" \
    --merchants "$MERCHANTS" --zipf-s "$ZIPF" --seed "$SEED" \
    2>"$dir/loadgen.log" || die "td-loadgen failed: $(tail -n 3 "$dir/loadgen.log")"
mix=$(sed -n 's/^td-loadgen: \(orders=.*\)/\1/p' "$dir/loadgen.log")

# Watermarks of every input partition of the Kafka at $1 (with the Redis on
# port $3): "topic partition low high" lines into the file $2.
watermarks() {
    "$B/trustctl" --redis "127.0.0.1:$3" --brokers "$1" --json offsets \
        >"$dir/offsets.out" 2>"$dir/trustctl.log" || die "trustctl offsets failed"
    tr '{' '\n' <"$dir/offsets.out" | awk '
        /"topic":/ {
            match($0, /"topic":"[^"]*"/); t = substr($0, RSTART + 9, RLENGTH - 10)
            match($0, /"partition":[0-9]+/); p = substr($0, RSTART + 12, RLENGTH - 12)
            match($0, /"low_watermark":-?[0-9]+/); lo = substr($0, RSTART + 16, RLENGTH - 16)
            match($0, /"high_watermark":-?[0-9]+/); hi = substr($0, RSTART + 17, RLENGTH - 17)
            print t, p, lo, hi
        }' >"$2"
}
watermarks "$brokers" "$dir/wm.txt" "$rport"
nparts=$(wc -l <"$dir/wm.txt")
[ "$nparts" -eq $((PARTS * 3)) ] ||
    die "expected $((PARTS * 3)) input partitions, trustctl listed $nparts"
read -r total lost max_part < <(awk '{ t += $4 - $3; l += $3;
    if ($4 > m) m = $4 } END { print t, l, m }' "$dir/wm.txt")
[ "$lost" -eq 0 ] || die "$lost messages aged out of the mock's log" \
    "(hottest partition $max_part): raise TD_BENCH_PARTITIONS or lower" \
    "TD_BENCH_ZIPF"
[ "$total" -eq "$EVENTS" ] || die "the topics hold $total messages, not $EVENTS"
log "backlog: $total messages ($mix), hottest partition $max_part"

# ---- 2. consume-only baseline ----

# Five runs, each in its own group, on this shared machine (single runs
# vary by up to 2x): the median run (by rate) is the baseline, the others
# are shown beside it.
TIMEFORMAT='%3U %3S'
: >"$dir/consume.runs"
for run in 1 2 3 4 5; do
    log "baseline: td-consume, run $run of 5"
    { time "$B/td-consume" --brokers "$brokers" --group "bench-baseline-$run" \
        --expect "$total" >"$dir/consume.out" 2>>"$dir/consume.log"; } \
        2>"$dir/consume.time" ||
        die "td-consume failed: $(cat "$dir/consume.log")"
    line=$(cat "$dir/consume.out")
    [ "$(kv "$line" consumed)" = "$total" ] ||
        die "td-consume read $(kv "$line" consumed) of $total"
    echo "$(kv "$line" eps) $(awk '{ print $1 + $2 }' "$dir/consume.time") $line" \
        >>"$dir/consume.runs"
done
read -r base_eps base_cpu base_line < <(sort -n "$dir/consume.runs" | sed -n 3p)
base_all=$(sort -n "$dir/consume.runs" | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }')

# ---- 3. trustd ----

# The partition record keys and their high watermarks, for one EVAL that
# counts the records whose `committed` reached the watermark (an empty
# partition has no record and counts as reached).
keys=() hws=()
while read -r t p _ hi; do
    keys+=("trust:part:{$t/$p}")
    hws+=("$hi")
done <"$dir/wm.txt"
poll_lua='local n, s = 0, 0
for i, k in ipairs(KEYS) do
  local c = tonumber(redis.call("HGET", k, "committed") or "-1")
  local hw = tonumber(ARGV[i])
  if hw == 0 or c >= hw then n = n + 1 end
  if c > 0 then s = s + c end
end
return {n, s}'
polls=0
poll_committed() {
    polls=$((polls + 1))
    rcli eval "$poll_lua" "${#keys[@]}" "${keys[@]}" "${hws[@]}" |
        tr '\n' ' '
}

rcli info all >"$dir/redis-before.txt"
for ((try = 0; try < 5; try++)); do
    hport=$(free_port) || die "no free TCP port"
    # shellcheck disable=SC2086 # TRUSTD_ARGS is a list of flags
    "$B/trustd" --brokers "$brokers" --redis "127.0.0.1:$rport" \
        --group bench-trustd --http-port "$hport" \
        --model-file schemas/model.conf $TRUSTD_ARGS >"$dir/trustd.log" 2>&1 &
    trustd_pid=$!
    ok=0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$trustd_pid" 2>/dev/null || break
        if [ "$(http_get "$hport" /healthz)" = "ok" ]; then
            ok=1
            break
        fi
        sleep 0.05
    done
    [ "$ok" = 1 ] && break
    wait "$trustd_pid" 2>/dev/null
    trustd_pid=""
    grep -q "cannot listen" "$dir/trustd.log" ||
        die "trustd did not start: $(tail -n 5 "$dir/trustd.log")"
done
[ -n "$trustd_pid" ] || die "trustd found no free HTTP port"
now
t_start=$NOW
log "trustd (pid $trustd_pid, /metrics on 127.0.0.1:$hport) against" \
    "redis $redis_version on 127.0.0.1:$rport"

t_first="" t_done="" t_log=$t_start
while :; do
    trustd_alive "$trustd_pid" "$dir/trustd.log" "$t_start" ""
    if [ -z "$t_first" ]; then
        http_get "$hport" /metrics >"$dir/metrics.txt"
        if [ "$(metric "$dir/metrics.txt" trustd_events_consumed_total)" -gt 0 ]; then
            t_first=$NOW
        fi
    fi
    read -r reached stored < <(poll_committed)
    now
    if [ "${reached:-0}" -eq "$nparts" ]; then
        t_done=$NOW
        break
    fi
    if [ $((NOW - t_log)) -ge 5000 ]; then
        log "trustd: ${stored:-0} of $total events stored"
        t_log=$NOW
    fi
    sleep "$POLL_S"
done
trustd_cpu=$(proc_cpu "$trustd_pid")
trustd_cpu_split=$(proc_cpu_split "$trustd_pid")
trustd_hwm=$(proc_status_kb "$trustd_pid" VmHWM)
rcli info all >"$dir/redis-after.txt"
http_get "$hport" /metrics >"$dir/metrics.txt"
cp "$dir/metrics.txt" "$dir/metrics-done.txt"
[ -n "$t_first" ] || t_first=$t_start
trustd_secs=$(calc "($t_done - $t_first) / 1000")
trustd_eps=$(calc "$total / $trustd_secs")
log "trustd stored all $total events in $trustd_secs s"

redis_cpu() {
    awk '{ v[$1] = $2 } END { printf "%.2f\n", v["used_cpu_sys"] + v["used_cpu_user"] }' \
        < <(tr -d '\r' <"$1" | tr ':' ' ')
}
redis_cpu_s=$(calc "$(redis_cpu "$dir/redis-after.txt") - $(redis_cpu "$dir/redis-before.txt")")
redis_child_s=$(calc "$(info_get "$dir/redis-after.txt" used_cpu_sys_children) + $(info_get "$dir/redis-after.txt" used_cpu_user_children)")

# Commands trustd caused: every command Redis ran meanwhile (those inside
# functions included), less the harness' INFO and EVAL and the HGETs inside
# its EVALs.
join -a 2 -e 0 -o 0,1.2,1.3,2.2,2.3 <(cmdstats "$dir/redis-before.txt" | sort) \
    <(cmdstats "$dir/redis-after.txt" | sort) |
    awk -v evals="$polls" -v k="$nparts" '{
        c = $4 - $2; u = $5 - $3
        if ($1 == "info" || $1 == "eval" || $1 == "ping") next
        if ($1 == "hget") { c -= evals * k }
        if (c > 0) print $1, c, u
    }' | sort -k2,2nr >"$dir/cmds.txt"
cmds_total=$(awk '{ s += $2 } END { print s + 0 }' "$dir/cmds.txt")
fcalls=$(awk '$1 == "fcall" { print $2 }' "$dir/cmds.txt")
fcall_usec=$(awk '$1 == "fcall" { print $3 }' "$dir/cmds.txt")
roundtrips=$(metric "$dir/metrics.txt" trustd_redis_roundtrips_total)
flushes=$(metric "$dir/metrics.txt" trustd_flushes_total)
flush_sum=$(awk '$1 == "trustd_flush_duration_seconds_sum" { print $2 }' \
    "$dir/metrics.txt")
scores=$(metric "$dir/metrics.txt" trustd_scores_published_total)
writes=$(metric "$dir/metrics.txt" trustd_merchant_writes_total)
# Seconds per flush step ("records 0.01 s, merchants 9.2 s, ...").
steps=$(awk '/^trustd_flush_step_seconds_total\{/ {
        match($1, /step="[^"]*"/); st = substr($1, RSTART + 6, RLENGTH - 7)
        printf "%s%s %.2f s", n++ ? ", " : "", st, $2 }' "$dir/metrics.txt")

# ---- 4. latency at half the measured maximum ----

lat_rate=${TD_BENCH_LATENCY_RATE:-$(awk -v r="$trustd_eps" 'BEGIN { r = int(r / 2); print r < 1 ? 1 : r }')}
log "latency: background load at $lat_rate events/s for $LAT_S s, probes" \
    "at $PROBE_RATE/s"
consumed0=$(metric "$dir/metrics.txt" trustd_events_consumed_total)
cp "$dir/metrics.txt" "$dir/metrics-caught-up.txt"
"$B/td-loadgen" --brokers "$brokers" --events 0 --rate "$lat_rate" \
    --duration-s $((LAT_S + 5)) --merchants "$MERCHANTS" --zipf-s "$ZIPF" \
    --seed $((SEED + 1)) 2>"$dir/loadgen-latency.log" &
bg_pid=$!
# The generator first dry-runs to place its event times: start the probes
# once trustd sees its traffic.
for ((i = 0; i < 600; i++)); do
    http_get "$hport" /metrics >"$dir/metrics.txt"
    [ "$(metric "$dir/metrics.txt" trustd_events_consumed_total)" -gt "$consumed0" ] && break
    kill -0 "$bg_pid" 2>/dev/null || die "td-loadgen (background) exited"
    sleep "$POLL_S"
done
"$B/tests/bench_probe" --brokers "$brokers" --redis "127.0.0.1:$rport" \
    --rate "$PROBE_RATE" --duration-s "$LAT_S" --timeout-s 30 \
    >"$dir/probe.out" 2>"$dir/probe.log" ||
    die "bench_probe failed: $(cat "$dir/probe.out" "$dir/probe.log")"
probe_line=$(cat "$dir/probe.out")
for ((i = 0; i < 600; i++)); do
    kill -0 "$bg_pid" 2>/dev/null || break
    sleep 0.1
done
wait "$bg_pid" || die "td-loadgen (background) failed"
bg_pid=""
bg_line=$(sed -n 's/^td-loadgen: \([0-9]* events in .*\)/\1/p' "$dir/loadgen-latency.log")
lat_p50=$(kv "$probe_line" p50_ms)
lat_p99=$(kv "$probe_line" p99_ms)
trustd_hwm2=$(proc_status_kb "$trustd_pid" VmHWM)
http_get "$hport" /metrics >"$dir/metrics-latency.txt"
# Flushes during the latency run: count, mean events and mean duration.
lat_flushes=$(calc "$(metric "$dir/metrics-latency.txt" trustd_flushes_total) - $flushes")
hsum() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }
lat_flush_ms=$(calc "1000 * ($(hsum "$dir/metrics-latency.txt" trustd_flush_duration_seconds_sum) - $flush_sum) / ($lat_flushes > 0 ? $lat_flushes : 1)")
lat_flush_ev=$(calc "($(hsum "$dir/metrics-latency.txt" trustd_batch_events_sum) - $(hsum "$dir/metrics-caught-up.txt" trustd_batch_events_sum)) / ($lat_flushes > 0 ? $lat_flushes : 1)")
stop_pid "$trustd_pid"
trustd_pid=""
now
t_end=$NOW
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Partitions in the watermark file $1 whose stored offset in trustd's
# /metrics dump $2 has not reached the high watermark yet.
partitions_left() {
    awk 'NR == FNR { hw[$1 "/" $2] = $4; next }
        /^trustd_stored_offset\{/ {
            match($0, /topic="[^"]*"/); t = substr($0, RSTART + 7, RLENGTH - 8)
            match($0, /partition="[^"]*"/); p = substr($0, RSTART + 11, RLENGTH - 12)
            if ($2 + 0 >= hw[t "/" p]) done[t "/" p] = 1 }
        END { n = 0; for (k in hw) if (hw[k] > 0 && !(k in done)) n++; print n }' \
        "$1" "$2"
}

# ---- 5. the same backlog against a 3-master Redis Cluster ----
# Six redis-servers (3 masters, 3 replicas: trustd WAITs for a replica in
# cluster mode), a new consumer group, the same topics from the beginning.
# Done when every partition's stored offset (trustd's /metrics) reached the
# backlog's high watermark.
cluster_eps=n/a cluster_ratio=n/a cluster_line=n/a
if [ "${TD_BENCH_CLUSTER:-1}" = 1 ]; then
    port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    # Six consecutive ports whose cluster-bus ports (+10000) are free too;
    # a node that still fails to start (a port taken meanwhile) makes the
    # whole cluster start again elsewhere.
    for ((attempt = 0; attempt < 5; attempt++)); do
        base=""
        for ((try = 0; try < 200; try++)); do
            [ -z "$base" ] || break
            b=$((20000 + RANDOM % 25000))
            ok=1
            for ((i = 0; i < 6; i++)); do
                port_free $((b + i)) && port_free $((b + i + 10000)) || ok=0
            done
            [ "$ok" = 1 ] && base=$b
        done
        [ -n "$base" ] || die "no free ports for a Redis Cluster"
        caddrs=()
        for ((i = 0; i < 6; i++)); do
            p=$((base + i))
            mkdir -p "$dir/cluster/$p"
            redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/cluster/$p" \
                --cluster-enabled yes --cluster-config-file nodes.conf \
                --loadmodule "$MODULE" \
                --cluster-node-timeout 2000 --appendonly "$AOF" \
                --appendfsync everysec --save '' >"$dir/cluster-$p.log" 2>&1 &
            cluster_pids+=("$!")
            caddrs+=("127.0.0.1:$p")
        done
        up=0
        for a in "${caddrs[@]}"; do
            for ((i = 0; i < 200; i++)); do
                if redis-cli -h 127.0.0.1 -p "${a#*:}" ping >/dev/null 2>&1; then
                    up=$((up + 1))
                    break
                fi
                sleep 0.05
            done
        done
        if [ "$up" = 6 ] && redis-cli --cluster create "${caddrs[@]}" \
            --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.log" 2>&1; then
            break
        fi
        for p in "${cluster_pids[@]}"; do stop_pid "$p"; done
        cluster_pids=()
        rm -rf "$dir/cluster"
    done
    [ "${#cluster_pids[@]}" = 6 ] ||
        die "could not start a Redis Cluster: $(tail -n 3 "$dir/cluster-create.log")"
    for a in "${caddrs[@]}"; do
        for ((i = 0; i < 600; i++)); do
            redis-cli -p "${a#*:}" cluster info 2>/dev/null |
                grep -q '^cluster_state:ok' && break
            sleep 0.05
        done
    done
    # Replicas must be online before trustd's WAITs can succeed.
    for a in "${caddrs[@]}"; do
        for ((i = 0; i < 600; i++)); do
            role=$(redis-cli -p "${a#*:}" role 2>/dev/null | head -n 1)
            [ "$role" = slave ] && break
            [ "$(redis-cli -p "${a#*:}" wait 1 100 2>/dev/null)" = 1 ] && break
            sleep 0.05
        done
    done
    hport=$(free_port) || die "no free TCP port"
    # shellcheck disable=SC2086 # TRUSTD_ARGS is a list of flags
    "$B/trustd" --brokers "$brokers" --redis-cluster \
        --redis "${caddrs[0]},${caddrs[1]}" --group bench-cluster \
        --http-port "$hport" --model-file schemas/model.conf $TRUSTD_ARGS \
        >"$dir/trustd-cluster.log" 2>&1 &
    trustd_pid=$!
    now
    t_cstart=$NOW t_cfirst=""
    while :; do
        trustd_alive "$trustd_pid" "$dir/trustd-cluster.log" "$t_cstart" \
            " (cluster)"
        http_get "$hport" /metrics >"$dir/metrics-cluster.txt" 2>/dev/null
        if [ -z "$t_cfirst" ] && [ "$(metric "$dir/metrics-cluster.txt" trustd_events_consumed_total 2>/dev/null || echo 0)" -gt 0 ]; then
            t_cfirst=$NOW
        fi
        left=$(partitions_left "$dir/wm.txt" "$dir/metrics-cluster.txt")
        if [ "$left" = 0 ]; then
            t_cdone=$NOW
            break
        fi
        sleep "$POLL_S"
    done
    [ -n "$t_cfirst" ] || t_cfirst=$t_cstart
    cluster_secs=$(calc "($t_cdone - $t_cfirst) / 1000")
    cluster_eps=$(calc "$total / $cluster_secs")
    cluster_ratio=$(calc "100 * $cluster_eps / $trustd_eps")
    log "trustd on the cluster stored all $total events in $cluster_secs s"
    # Where the time went: CPU of trustd and of the nodes (since they
    # started), the flush steps.
    cluster_trustd_cpu=$(proc_cpu "$trustd_pid")
    cluster_master_cpu=0 cluster_replica_cpu=0
    for a in "${caddrs[@]}"; do
        redis-cli -p "${a#*:}" info all >"$dir/cluster-info-${a#*:}.txt" 2>&1
        c=$(redis_cpu "$dir/cluster-info-${a#*:}.txt")
        if [ "$(info_get "$dir/cluster-info-${a#*:}.txt" role)" = master ]; then
            cluster_master_cpu=$(calc "$cluster_master_cpu + $c")
        else
            cluster_replica_cpu=$(calc "$cluster_replica_cpu + $c")
        fi
    done
    cluster_steps=$(awk '/^trustd_flush_step_seconds_total\{/ {
        match($1, /step="[^"]*"/); st = substr($1, RSTART + 6, RLENGTH - 7)
        printf "%s%s %.2f s", n++ ? ", " : "", st, $2 }' \
        "$dir/metrics-cluster.txt")
    cluster_line="$(grp "$total") events in $cluster_secs s; CPU: trustd"
    cluster_line+=" $cluster_trustd_cpu s, masters $cluster_master_cpu s,"
    cluster_line+=" replicas $cluster_replica_cpu s (since the nodes started);"
    cluster_line+=" flush steps: $cluster_steps"
    stop_pid "$trustd_pid"
    trustd_pid=""
    for p in "${cluster_pids[@]}"; do stop_pid "$p"; done
    cluster_pids=()
    now
    t_end=$NOW
fi

# ---- 6. instructions: Redis per merchant write, trustd per event ----
# CPU seconds on this shared machine vary by a quarter from run to run;
# instruction counts do not. A second embedded Kafka holds a small fixed
# load (CG_EVENTS events over a twentieth of the merchants, the same
# generator and seed), and one trustd under callgrind drains it into a
# fresh redis-server under callgrind, whose counters are zeroed once it is
# up: Redis' instructions per merchant write (td_put calls) and per event,
# trustd's per event, comparable between commits.
# cg_stage PATH: the stage with Redis loading the trustd module (native)
# or not (lua: the function library); sets cg_<measure>_PATH.
cg_stage() {
    local path=$1 modarg=() puts_cmd=td.put
    if [ "$path" = lua ]; then
        puts_cmd=getrange # td_put's first command, once per call
    else
        modarg=(--loadmodule "$MODULE")
    fi
    log "Redis under callgrind ($path): $CG_EVENTS events"
    cgport=$(free_port) || die "no free TCP port"
    rm -rf "$dir/redis-cg" "$dir"/redis-cg.* "$dir"/trustd-cg.[0-9]*
    mkdir -p "$dir/redis-cg"
    valgrind --tool=callgrind --callgrind-out-file="$dir/redis-cg.%p" \
        redis-server --bind 127.0.0.1 --port "$cgport" --save '' \
        "${modarg[@]}" \
        --appendonly "$AOF" --appendfsync everysec --dir "$dir/redis-cg" \
        --logfile "$dir/redis-cg.log" >"$dir/valgrind-cg.log" 2>&1 &
    cg_pid=$!
    for ((i = 0; i < 600; i++)); do
        redis-cli -p "$cgport" ping >/dev/null 2>&1 && break
        kill -0 "$cg_pid" 2>/dev/null || die "redis-server under callgrind exited"
        sleep 0.05
    done
    callgrind_control -z "$cg_pid" >/dev/null 2>&1 ||
        die "callgrind_control could not zero Redis' counters"
    hport=$(free_port) || die "no free TCP port"
    # One flush of the whole load, due by count once its last event is read
    # (the interval is the longest allowed: trustd under callgrind is slow,
    # and a timed flush, or events read while a flush runs, would cut the
    # batches differently on every run), then SIGTERM: the shutdown's
    # flushes store the offsets and mark the publications, and callgrind
    # writes trustd's profile as it exits.
    valgrind --tool=callgrind --callgrind-out-file="$dir/trustd-cg.%p" \
        "$B/trustd" --brokers "$brokers2" --redis "127.0.0.1:$cgport" \
        --group "bench-cg-$path" --http-port "$hport" --flush-max-events "$CG_EVENTS" \
        --flush-interval-ms 600000 --model-file schemas/model.conf \
        >"$dir/trustd-cg.log" 2>&1 &
    trustd_pid=$!
    now
    t_cgstart=$NOW
    while :; do
        trustd_alive "$trustd_pid" "$dir/trustd-cg.log" "$t_cgstart" \
            " (callgrind)"
        http_get "$hport" /metrics >"$dir/metrics-cg.txt" 2>/dev/null
        [ "$(metric "$dir/metrics-cg.txt" trustd_flushes_total)" -ge 1 ] && break
        sleep 0.5
    done
    kill -TERM "$trustd_pid" 2>/dev/null
    for ((i = 0; i < TIMEOUT_S * 10; i++)); do
        kill -0 "$trustd_pid" 2>/dev/null || break
        sleep 0.1
    done
    ! kill -0 "$trustd_pid" 2>/dev/null ||
        die "trustd (callgrind) did not stop within $TIMEOUT_S s"
    wait "$trustd_pid" 2>/dev/null ||
        die "trustd (callgrind) did not stop cleanly: $(tail -n 5 "$dir/trustd-cg.log")"
    trustd_pid=""
    # Dumped before the check below: its SCANs are the harness' work.
    callgrind_control -d "$cg_pid" >/dev/null 2>&1 ||
        die "callgrind_control could not dump Redis' counters"
    "$B/trustctl" --redis "127.0.0.1:$cgport" --brokers "$brokers2" --json \
        offsets >"$dir/offsets-cg.out" 2>>"$dir/trustctl.log" ||
        die "trustctl offsets (callgrind stage) failed"
    ! grep -q '"lag":[1-9]' "$dir/offsets-cg.out" ||
        die "trustd (callgrind) stopped before storing every offset"
    cg_puts=$(redis-cli -p "$cgport" info commandstats | tr -d '\r' |
        sed -n "s/^cmdstat_$puts_cmd:calls=\([0-9]*\),.*/\1/p")
    stop_pid "$cg_pid"
    cg_pid=""
    # Kept in last-run/ for callgrind_annotate.
    cat "$dir"/redis-cg.*.1 >"$dir/redis-callgrind-$path.out" 2>/dev/null
    cat "$dir"/trustd-cg.[0-9]* >"$dir/trustd-callgrind-$path.out" 2>/dev/null
    cg_ins=$(sed -n 's/^summary: //p' "$dir/redis-callgrind-$path.out" | head -n 1)
    cg_tins=$(sed -n 's/^summary: //p' "$dir/trustd-callgrind-$path.out" | head -n 1)
    [ -n "$cg_ins" ] && [ -n "$cg_tins" ] && [ "${cg_puts:-0}" -gt 0 ] ||
        die "no callgrind summary or no merchant writes from Redis ($path)"
    printf -v "cg_puts_$path" %s "$cg_puts"
    printf -v "cg_write_$path" %s "$(calc "$cg_ins / $cg_puts")"
    printf -v "cg_event_$path" %s "$(calc "$cg_ins / $CG_EVENTS")"
    printf -v "cg_tevent_$path" %s "$(calc "$cg_tins / $CG_EVENTS")"
    printf -v "cg_pct_$path" %s "$(calc "100 * $cg_ins / $cg_tins")"
    # trustd's flusher thread per write; Redis' timer (serverCron, a cost
    # per second that callgrind's slowness inflates) per write.
    printf -v "cg_flusher_$path" %s "$(calc "$(cg_incl "$dir/trustd-callgrind-$path.out" flusher_main) / $cg_puts")"
    printf -v "cg_cron_$path" %s "$(calc "$(cg_incl "$dir/redis-callgrind-$path.out" serverCron) / $cg_puts")"
}
for p in native lua; do
    for m in puts write event tevent pct flusher cron; do
        printf -v "cg_${m}_$p" n/a
    done
done
if [ "$CG_EVENTS" -gt 0 ] && command -v valgrind >/dev/null &&
    command -v callgrind_control >/dev/null; then
    # One load for both paths, each read by its own group.
    "$B/td-kafka" --partitions 4 <&- >"$dir/kafka-cg.out" \
        2>"$dir/kafka-cg.log" &
    kafka2_pid=$!
    kafka_address "$kafka2_pid" kafka-cg 10
    brokers2=$KADDR
    "$B/td-loadgen" --brokers "$brokers2" --events "$CG_EVENTS" \
        --merchants $((MERCHANTS / 20 > 0 ? MERCHANTS / 20 : 1)) \
        --zipf-s "$ZIPF" --seed "$SEED" 2>"$dir/loadgen-cg.log" ||
        die "td-loadgen (callgrind load) failed"
    cg_stage native
    cg_stage lua
    stop_pid "$kafka2_pid"
    kafka2_pid=""
    now
    t_end=$NOW
fi

# ---- 7. one real Apache Kafka broker: consume-only and trustd ----
ak_base=n/a ak_trustd=n/a ak_ratio=n/a ak_total=0 ak_secs=n/a
if [ "$APACHE" = 1 ]; then
    log "real Apache Kafka: $AK_EVENTS events, $AK_PARTS partitions per topic"
    "$B/td-kafka" --apache --dir "$dir/apache" --partitions "$AK_PARTS" \
        </dev/null >"$dir/kafka-ak.out" 2>"$dir/kafka-ak.log" &
    kafka3_pid=$!
    kafka_address "$kafka3_pid" kafka-ak 180
    ak_brokers=$KADDR
    ak_version=$(sed -n 's/^td-kafka: Apache Kafka \([^,]*\),.*/\1/p' \
        "$dir/kafka-ak.log")
    "$B/td-loadgen" --brokers "$ak_brokers" --events "$AK_EVENTS" \
        --merchants "$MERCHANTS" --zipf-s "$ZIPF" --seed "$SEED" \
        2>"$dir/loadgen-ak.log" ||
        die "td-loadgen failed: $(tail -n 3 "$dir/loadgen-ak.log")"
    # The same partition names as stage 3 (more of them): its records must
    # go before trustctl lists this broker's partitions.
    rcli flushall >/dev/null || die "FLUSHALL failed"
    watermarks "$ak_brokers" "$dir/wm-ak.txt" "$rport"
    ak_total=$(awk '{ t += $4 - $3 } END { print t + 0 }' "$dir/wm-ak.txt")
    [ "$ak_total" -eq "$AK_EVENTS" ] ||
        die "the real broker holds $ak_total messages, not $AK_EVENTS"
    : >"$dir/consume-ak.runs"
    for run in 1 2 3; do
        log "real broker baseline: td-consume, run $run of 3"
        "$B/td-consume" --brokers "$ak_brokers" --group "bench-ak-$run" \
            --expect "$ak_total" >"$dir/consume-ak.out" \
            2>>"$dir/consume-ak.log" ||
            die "td-consume failed: $(tail -n 3 "$dir/consume-ak.log")"
        kv "$(cat "$dir/consume-ak.out")" eps >>"$dir/consume-ak.runs"
    done
    ak_base=$(sort -n "$dir/consume-ak.runs" | sed -n 2p)
    keys=() hws=()
    while read -r t p _ hi; do
        keys+=("trust:part:{$t/$p}")
        hws+=("$hi")
    done <"$dir/wm-ak.txt"
    hport=$(free_port) || die "no free TCP port"
    # shellcheck disable=SC2086 # TRUSTD_ARGS is a list of flags
    "$B/trustd" --brokers "$ak_brokers" --redis "127.0.0.1:$rport" \
        --group bench-ak --http-port "$hport" \
        --model-file schemas/model.conf $TRUSTD_ARGS >"$dir/trustd-ak.log" 2>&1 &
    trustd_pid=$!
    now
    t_start=$NOW t_first=""
    while :; do
        trustd_alive "$trustd_pid" "$dir/trustd-ak.log" "$t_start" \
            " (real broker)"
        if [ -z "$t_first" ]; then
            http_get "$hport" /metrics >"$dir/metrics-ak.txt"
            [ "$(metric "$dir/metrics-ak.txt" trustd_events_consumed_total)" \
                -gt 0 ] && t_first=$NOW
        fi
        read -r reached _ < <(poll_committed)
        now
        [ "${reached:-0}" -eq "${#keys[@]}" ] && break
        sleep "$POLL_S"
    done
    [ -n "$t_first" ] || t_first=$t_start
    ak_secs=$(calc "($NOW - $t_first) / 1000")
    ak_trustd=$(calc "$ak_total / $ak_secs")
    ak_ratio=$(calc "100 * $ak_trustd / $ak_base")
    log "real broker: td-consume $ak_base events/s, trustd $ak_trustd events/s"
    stop_pid "$trustd_pid"
    trustd_pid=""
    stop_pid "$kafka3_pid"
    kafka3_pid=""
    now
    t_end=$NOW
fi

# ---- the table ----

per_ev() { calc "$1 / $total"; }
ratio=$(calc "100 * $trustd_eps / $base_eps")
redis_pct=$(calc "100 * $redis_cpu_s / $trustd_cpu")
ins_sum=n/a
[ "$ins_decode" != n/a ] && ins_sum=$((ins_decode + ins_update))
verdict() { # value op target
    awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
        if (v == "n/a") { print "n/a"; exit }
        ok = op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0
        print ok ? "met" : "**missed**" }'
}
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- processor 2>/dev/null || rev="$rev + uncommitted changes in processor/"

{
    echo "# trustd benchmark$( [ "$SMOKE" = 1 ] && echo " (smoke: tiny sizes, numbers not meaningful)")"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), took $(( (t_end - t_bench) / 1000 )) s"
    echo "- command: \`$( [ "$SMOKE" = 1 ] && echo "make bench-smoke" || echo "make bench")\`" \
        "(tests/bench.sh $B)$( [ -n "$TRUSTD_ARGS" ] && echo ", trustd $TRUSTD_ARGS")"
    echo "- machine: $(nproc) cores ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
        "$(uname -sr); load average $load_start at start, $load_end at end"
    echo "- build: $rev; redis-server $redis_version (TCP 127.0.0.1, appendonly $AOF)"
    echo "- load: $(grp "$total") events ($mix), $(grp "$MERCHANTS") merchants," \
        "Zipf $ZIPF, lz4, $PARTS partitions per topic (hottest holds $(grp "$max_part"))"
    echo
    echo "| measure | value | target |"
    echo "|---|---|---|"
    echo "| consume-only baseline (td-consume) | $(grp "$base_eps") events/s | |"
    echo "| trustd, one worker | $(grp "$trustd_eps") events/s | |"
    echo "| trustd / baseline | $(fmt '%.1f' "$ratio") % | ≥ 60 %: $(verdict "$ratio" '>=' 60) |"
    echo "| one real Apache Kafka broker$( [ "$APACHE" = 1 ] && echo " ($ak_version, $(grp "$ak_total") events, $AK_PARTS partitions per topic)"): consume-only / trustd | $(grp "$ak_base") / $(grp "$ak_trustd") events/s = $(fmt '%.1f' "$ak_ratio") % | |"
    echo "| trustd, one worker, 3-master Redis Cluster | $(grp "$cluster_eps") events/s ($(fmt '%.0f' "$cluster_ratio") % of single-node) | |"
    echo "| decode, instructions per event | $(grp "$ins_decode") | |"
    echo "| signal update, instructions per event | $(grp "$ins_update") | |"
    echo "| decode + update | $(grp "$ins_sum") | ≤ 8,000: $(verdict "$ins_sum" '<=' 8000) |"
    echo "| Redis commands per event (all, incl. inside functions) | $(fmt '%.2f' "$(per_ev "$cmds_total")") | |"
    echo "| FCALLs per event | $(fmt '%.3f' "$(per_ev "${fcalls:-0}")") | |"
    echo "| Redis round trips per event | $(fmt '%.5f' "$(per_ev "$roundtrips")") ($(grp "$roundtrips") pipelines) | |"
    echo "| Redis CPU / trustd CPU | $(fmt '%.1f' "$redis_cpu_s") s / $(fmt '%.1f' "$trustd_cpu") s = $(fmt '%.0f' "$redis_pct") % | ≤ 25 %: $(verdict "$redis_pct" '<=' 25) |"
    echo "| Redis instructions per merchant write, native module (callgrind, $(grp "$CG_EVENTS") events, $(grp "$cg_puts_native") writes) | $(grp "$cg_write_native") ($(grp "$cg_event_native") per event) | ≤ 60,000 |"
    echo "| the same, Lua function library ($(grp "$cg_puts_lua") writes) | $(grp "$cg_write_lua") ($(grp "$cg_event_lua") per event) | no worse than before |"
    echo "| of which Redis' timer (serverCron: per second, not per write; inflated by callgrind's slowness): native / Lua | $(grp "$cg_cron_native") / $(grp "$cg_cron_lua") per write | |"
    echo "| trustd instructions per event (callgrind, same load, whole process): native / Lua | $(grp "$cg_tevent_native") / $(grp "$cg_tevent_lua") | ≤ 8,000 |"
    echo "| trustd's flusher thread per merchant write (merge, score, format, payloads, protocol, replies, score encoding): native / Lua | $(grp "$cg_flusher_native") / $(grp "$cg_flusher_lua") | ≤ 25,000 |"
    echo "| Redis instructions / trustd instructions (same load): native / Lua | $(fmt '%.0f' "$cg_pct_native") % / $(fmt '%.0f' "$cg_pct_lua") % | |"
    echo "| CPU per event: td-consume / trustd / Redis | $(fmt '%.2f' "$(calc "1e6 * $base_cpu / $total")") / $(fmt '%.2f' "$(calc "1e6 * $trustd_cpu / $total")") / $(fmt '%.2f' "$(calc "1e6 * $redis_cpu_s / $total")") µs | |"
    echo "| event-to-Redis latency p50 / p99 at $(grp "$lat_rate") events/s | $(fmt '%.0f' "$lat_p50") / $(fmt '%.0f' "$lat_p99") ms | |"
    echo "| trustd peak RSS (VmHWM) | $(fmt '%.0f' "$(calc "$trustd_hwm / 1024")") MiB (after the latency run $(fmt '%.0f' "$(calc "$trustd_hwm2 / 1024")") MiB) | |"
    mem_pm=$(calc "$bytes_per_merchant + $state_bytes")
    echo "| memory per cached merchant | $(fmt '%.0f' "$mem_pm") B: deltas $(fmt '%.0f' "$bytes_per_merchant") B + exact state $(fmt '%.0f' "$state_bytes") B (\`max_merchants\` caps both) | ≤ 1,024 B: $(verdict "$mem_pm" '<=' 1024) |"
    echo
    echo "Details:"
    echo
    echo "- baseline (median of 5 runs; rates $base_all events/s): $base_line, CPU $(fmt '%.2f' "$base_cpu") s"
    echo "- trustd: $(grp "$total") events in $trustd_secs s (first consumed event to last offset stored), CPU $trustd_cpu s ($trustd_cpu_split);" \
        "$(grp "$flushes") flushes, $(fmt '%.0f' "$(calc "$total / ($flushes > 0 ? $flushes : 1)")") events and" \
        "$(fmt '%.0f' "$(calc "1000 * ${flush_sum:-0} / ($flushes > 0 ? $flushes : 1)")") ms per flush on average" \
        "($(fmt '%.0f' "$(calc "100 * ${flush_sum:-0} / $trustd_secs")") % of the run spent flushing);" \
        "$(grp "$scores") scores published; $(grp "$writes") merchant writes" \
        "($(fmt '%.1f' "$(calc "$total / ($writes > 0 ? $writes : 1)")") events per write); flush steps: $steps"
    echo "- cluster: $cluster_line"
    echo "- Redis: $(grp "$cmds_total") commands, FCALL $(fmt '%.1f' "$(calc "${fcall_usec:-0} / (${fcalls:-1} > 0 ? ${fcalls:-1} : 1)")") µs per call;" \
        "forked children (AOF rewrite) $(fmt '%.1f' "$redis_child_s") s CPU, not counted above"
    echo "- latency: $probe_line (background: $bg_line);" \
        "$(grp "$lat_flushes") flushes of $(fmt '%.0f' "$lat_flush_ev") events and $(fmt '%.0f' "$lat_flush_ms") ms on average"
    echo "- sample: $sample_line"
    echo
    echo "Redis commands during the trustd run (harness commands removed):"
    echo
    echo "| command | calls | per event | µs per call | seconds (FCALL's include the commands its functions run) |"
    echo "|---|---|---|---|---|"
    while read -r c n u; do
        echo "| $c | $(grp "$n") | $(fmt '%.3f' "$(calc "$n / $total")") |" \
            "$(fmt '%.1f' "$(calc "$u / $n")") | $(fmt '%.1f' "$(calc "$u / 1e6")") |"
    done <"$dir/cmds.txt"
    echo
    echo "How each number is measured: see the header of tests/bench.sh."
} >"$OUT/$out_name"

save_logs
cat "$OUT/$out_name"
log "written to $OUT/$out_name"
exit 0
