#!/bin/sh
# fuzz.sh - build and run the codec fuzzer (tests/fuzz_decode.c).
#
# Usage: sh tests/fuzz.sh [seconds]     (default 60; run from the repo root)
#
# Builds fuzz_decode with clang -fsanitize=fuzzer,address,undefined and the
# seed writer (tests/fuzz_seeds.c) into build-fuzz/, writes valid messages of
# every schema into build-fuzz/corpus (kept between runs, so coverage
# accumulates) plus a dictionary of the schema headers, then fuzzes for the
# given time. A crash, leak or failed invariant stops the run with the input
# saved under build-fuzz/crashes/; reproduce it with
#   build-fuzz/fuzz_decode build-fuzz/crashes/<file>
# and turn it into a regression test in tests/test_codec.c.
set -eu

secs=${1:-60}
out=build-fuzz
cc=${FUZZ_CC:-clang}

mkdir -p "$out/gen" "$out/corpus" "$out/crashes"
sh tests/gen_schemas.sh schemas > "$out/gen/schemas_gen.c"

cflags="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror"
cflags="$cflags -fno-omit-frame-pointer -Iprocessor -Itests -I$out/gen"
src="processor/codec.c processor/fingerprint.c processor/dlq_reason.c"
src="$src $out/gen/schemas_gen.c tests/fuzz_ids.c"
libs=$(pkg-config --libs avro-c jansson 2>/dev/null || echo -lavro -ljansson)

# shellcheck disable=SC2086 # word splitting of the flag lists is intended
$cc $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -o "$out/fuzz_decode" tests/fuzz_decode.c $src $libs -lm
# shellcheck disable=SC2086
$cc $cflags -fsanitize=address,undefined -fno-sanitize-recover=all \
    -o "$out/fuzz_seeds" tests/fuzz_seeds.c $src $libs -lm

"$out/fuzz_seeds" "$out/corpus" "$out/decode.dict"

exec "$out/fuzz_decode" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="$out/decode.dict" \
    -artifact_prefix="$out/crashes/" "$out/corpus"
