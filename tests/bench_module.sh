#!/bin/sh
# bench_module.sh - Redis instructions per merchant write and per load,
# native module commands vs the Lua library, under callgrind.
#
# Usage: sh tests/bench_module.sh [build-dir]   (default build; repo root)
#
# One redis-server with the module (appendonly yes, appendfsync everysec,
# as tests/bench.sh runs it) runs under callgrind. build/tests/bench_module
# first writes every merchant once on each path (round 0: the merchants
# exist, the library is loaded), then, with Redis' counters zeroed and
# dumped around each, ROUNDS more rounds of native puts, the same of Lua
# puts (RESTORE of the :next keys + FCALL td_put), and one round of loads
# each (TD.LOAD; the MULTI/EXEC load). Prints Redis instructions per put
# and per load for each path.
#
#   TD_BENCH_MODULE_MERCHANTS  merchants (500)
#   TD_BENCH_MODULE_ROUNDS     measured rounds of puts (4: 2,000 puts)
set -eu

B=${1:-build}
M=${TD_BENCH_MODULE_MERCHANTS:-500}
R=${TD_BENCH_MODULE_ROUNDS:-4}

make --no-print-directory BUILD="$B" "$B/trustd_module.so" \
    "$B/tests/bench_module" >/dev/null
mod=$(cd "$B" && pwd)/trustd_module.so
dir=$(mktemp -d /tmp/td-bench-module.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ -n "${TD_KEEP:-}" ] || rm -rf "$dir"; [ -z "${TD_KEEP:-}" ] || echo "kept $dir"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
    redis-server --bind 127.0.0.1 --port "$port" --save '' \
    --appendonly yes --appendfsync everysec --dir "$dir" \
    --loadmodule "$mod" --logfile "$dir/redis.log" \
    >"$dir/valgrind.log" 2>&1 &
pid=$!
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/valgrind.log"; exit 1; }
    i=$((i + 1))
    [ "$i" -lt 600 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.1
done

drive() { # mode what from rounds
    "$B/tests/bench_module" --port "$port" --mode "$1" --what "$2" \
        --merchants "$M" --from "$3" --rounds "$4" >>"$dir/drive.log"
}
drive native put 0 1
drive lua put 0 1
measure() { # dump-number mode what from rounds: Redis instructions
    n=$1
    shift
    callgrind_control -z "$pid" >/dev/null 2>&1
    drive "$@"
    callgrind_control -d "$pid" >/dev/null 2>&1
    sed -n 's/^summary: //p' "$dir/cg.$pid.$n" | head -n 1
}
put_native=$(measure 1 native put 1 "$R")
put_lua=$(measure 2 lua put 1 "$R")
load_native=$(measure 3 native load 0 1)
load_lua=$(measure 4 lua load 0 1)

puts=$((M * R))
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
cat "$dir/drive.log" | tail -n 4
echo "Redis instructions per merchant put ($puts puts, 1 in 4 with a score):"
echo "  native TD.PUT                      $(per "$put_native" "$puts")"
echo "  Lua RESTORE(s) + FCALL td_put      $(per "$put_lua" "$puts")"
echo "Redis instructions per merchant load ($M loads):"
echo "  native TD.LOAD                     $(per "$load_native" "$M")"
echo "  MULTI GET HGETALL HMGET EXISTS EXEC $(per "$load_lua" "$M")"
