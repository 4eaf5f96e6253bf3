#!/bin/sh
# Runs each test binary given as an argument, prints its output, and ends with
# one summary line "N passed, N failed". Exits non-zero if any test failed.
passed=0; failed=0; failed_names=""
for t in "$@"; do
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failed_names="$failed_names $(basename "$t")"
    fi
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
