#!/bin/sh
# Runs each fuzzer given as an argument for FUZZ_SECONDS (default 60) from its
# seed corpus (tests/fuzz/corpus/NAME, copied so the tree stays clean) and
# prints "ok NAME" or "FAIL NAME" for each, then "N passed, N failed".
secs=${FUZZ_SECONDS:-60}
pass=0
fail=0
for f in "$@"; do
    name=$(basename "$f")
    work=build/fuzz/$name.corpus
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
    if "$f" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix=build/fuzz/"$name"- "$work" >build/fuzz/"$name".log 2>&1; then
        echo "ok $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' build/fuzz/"$name".log | grep -o '[0-9]*$') runs in ${secs}s)"
        pass=$((pass + 1))
    else
        echo "FAIL $name (see build/fuzz/$name.log)"
        tail -n 30 build/fuzz/"$name".log
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
