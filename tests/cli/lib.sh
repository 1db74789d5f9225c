# lib.sh: helpers for the CLI tests, sourced by tests/cli/test_*.sh.
# Each case prints "ok NAME" or "FAIL NAME" (tests/run.sh counts them).
BIN=${BIN:-bin}
TOK=../shared/models/llama2-tokenizer/tokenizer.model
T=$(mktemp -d /tmp/pp-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT

# expect NAME RC STDERR_REGEX COMMAND: runs COMMAND with sh, checks its exit
# status and that stderr matches the extended regex ('' matches anything,
# '^$' demands silence).
expect() {
    name=$1 want=$2 pat=$3
    shift 3
    sh -c "$*" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want"; sed 's/^/  | /' "$T/err" | head -5; return
    fi
    if [ "$pat" = '^$' ]; then
        if [ -s "$T/err" ]; then echo "FAIL $name: stderr is not empty"; sed 's/^/  | /' "$T/err" | head -5; return; fi
    elif [ -n "$pat" ] && ! grep -Eq -- "$pat" "$T/err"; then
        echo "FAIL $name: stderr does not match /$pat/"; sed 's/^/  | /' "$T/err" | head -5; return
    fi
    echo "ok $name"
}

# check NAME COMMAND: passes when COMMAND (run with sh) succeeds.
check() {
    name=$1
    shift
    if sh -c "$*" >"$T/check.out" 2>&1; then echo "ok $name"; else echo "FAIL $name"; sed 's/^/  | /' "$T/check.out" | head -5; fi
}
