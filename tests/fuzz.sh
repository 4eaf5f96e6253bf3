#!/bin/sh
# fuzz.sh - build and run the codec fuzzer (tests/fuzz_decode.c), then
# the Redis module's argument parser (tests/fuzz_module_args.c).
#
# Usage: sh tests/fuzz.sh [seconds]     (default 60; run from the repo root)
# The module fuzzer runs $FUZZ_MODULE_SECONDS more (default 12), from
# seeds written here into build-fuzz/module-corpus; a crash is saved under
# build-fuzz/crashes/ too (reproduce: build-fuzz/fuzz_module_args <file>;
# the regression test goes to tests/test_module.c).
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

# shellcheck disable=SC2086
$cc $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -o "$out/fuzz_module_args" tests/fuzz_module_args.c \
    processor/module/args.c processor/rdump.c processor/pack.c

"$out/fuzz_decode" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="$out/decode.dict" \
    -artifact_prefix="$out/crashes/" "$out/corpus"

# Seeds: argument vectors separated by NUL bytes, as the target reads them.
mc="$out/module-corpus"
mkdir -p "$mc"
printf 'TD.PUT\0s\0w\0g\0c\0h\0\0VVVVVVVVblob\0001\0t/0\0005\0009\0\0P' \
    > "$mc/put"
printf 'TD.PUT\0s\0w\0g\0c\0h\0EEEEEEEE\0VVVVVVVV\0000\0007\0000.5\0002' \
    > "$mc/put-mark"
printf '\0001700000000000\0P\0003\0Q\0HHHHHHHH' >> "$mc/put-mark"
# TD.PUT's <meta> alone (the target also reads the whole input as one):
# expected, 1 source, no mark; and with a mark, a score version and a head.
printf '\010EEEEEEEE\0011\003t/0\0015\0019\000' > "$mc/meta"
printf '\010EEEEEEEE\0010\0017\0030.5\0012\0151700000000000\000' \
    > "$mc/meta-mark"
printf '\010HHHHHHHH' >> "$mc/meta-mark"
printf 'TD.SCORE\0c\0h\0HHHHHHHH\0score\0000.5' > "$mc/score"
printf 'TD.PART\0r\0CLAIM\0007' > "$mc/claim"
printf 'TD.PART\0r\0SET\0003\00010\00012\00010\00012' > "$mc/set"
exec "$out/fuzz_module_args" -max_total_time="${FUZZ_MODULE_SECONDS:-12}" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/" "$mc"
