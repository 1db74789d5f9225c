#!/bin/sh
# Runs every unit test binary and every CLI test script, counts "ok"/"FAIL"
# lines, and prints "N passed, N failed" last. BIN: the tools' folder;
# UNIT_DIR: the unit test binaries.
BIN=${BIN:-bin}
UNIT_DIR=${UNIT_DIR:-build/tests}
export BIN
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$UNIT_DIR"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -E '^(ok|FAIL) ' >>"$log"
    if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^FAIL '; then
        echo "FAIL $(basename "$t") (exit $rc)" | tee -a "$log"
    fi
done
for t in tests/cli/test_*.sh; do
    out=$(sh "$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -E '^(ok|FAIL) ' >>"$log"
    if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^FAIL '; then
        echo "FAIL $(basename "$t") (exit $rc)" | tee -a "$log"
    fi
done
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^FAIL ' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
