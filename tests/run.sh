#!/bin/sh
# Runs every unit test binary and every CLI test script, counts "ok"/"FAIL"
# lines, and prints "N passed, N failed" last. BIN: the tools' folder;
# UNIT_DIR: the unit test binaries.
BIN=${BIN:-bin}
UNIT_DIR=${UNIT_DIR:-build/tests}
export BIN UNIT_DIR
log=$(mktemp)
# the tools' cache of model digests (pp-train, pp-merge) in a folder of the run's own
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
trap 'rm -f "$log"; rm -rf "$XDG_CACHE_HOME"' EXIT
# run NAME COMMAND...: its ok/FAIL lines count; a crash without a FAIL line is one
run() {
    name=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -E '^(ok|FAIL) ' >>"$log"
    if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^FAIL '; then
        echo "FAIL $name (exit $rc)" | tee -a "$log"
    fi
}
for t in "$UNIT_DIR"/test_*; do
    [ -x "$t" ] && run "$(basename "$t")" "$t"
done
for t in tests/cli/test_*.sh; do
    run "$(basename "$t")" sh "$t"
done
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^FAIL ' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
