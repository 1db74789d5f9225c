# bench/lib.sh: sourced by the benchmark scripts before they change to the
# repository root: relative paths given by the user (PYTHON) made absolute
# first, die, and the load average (other work on the machine disturbs timings).
here=$(pwd)
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$here" "$1" ;; esac; }
[ -n "${PYTHON:-}" ] && case $PYTHON in */*) PYTHON=$(abs "$PYTHON") ;; esac
die() { echo "bench: $*" >&2; exit 1; }
# "1/5/15 min, running/total"
load_average() { cut -d ' ' -f 1-4 /proc/loadavg 2>/dev/null || echo '?'; }
warn_if_loaded() {
    case $1 in [1-9]*|0.[5-9]*) echo "bench: warning: load average $1 before starting; other work will disturb the timings" >&2 ;; esac
}
# need_tools TOOL...: each built in $BIN
need_tools() { for t; do [ -x "$BIN/$t" ] || die "$BIN/$t is missing (run make)"; done; }
# need_python MODULE...: $PYTHON imports them all
need_python() {
    "$PYTHON" -c "import $(echo "$@" | tr ' ' ',')" 2>/dev/null || die "$PYTHON cannot import $* (set PYTHON)"
}
# need_numbers VAR...: each a whole number; need_positive: and at least 1
need_numbers() { for n; do eval "v=\$$n"; case $v in ''|*[!0-9]*) die "$n wants a number, not '$v'" ;; esac; done; }
need_positive() { need_numbers "$@"; for n; do eval "v=\$$n"; [ "$v" -ge 1 ] || die "$n wants at least 1"; done; }
# start_clock, then clock_line at the end: the script's wall time and the
# load average before and after
start_clock() { T0=$(date +%s); LOAD0=$(load_average); warn_if_loaded "$LOAD0"; }
clock_line() {
    echo "wall time of this script $(( $(date +%s) - T0 )) s; load average (1/5/15 min, running/total) before $LOAD0, after $(load_average)"
}
# the machine in one line: architecture, CPUs, CPU model, memory, kernel
machine_line() {
    cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
    mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null)
    echo "machine: $(uname -m), $(getconf _NPROCESSORS_ONLN) online CPU(s), ${cpu:-unknown CPU}, ${mem:-? memory}; $(uname -sr)"
    # the kernels pp's CPU backend runs (pp-train --version's BLAS line)
    blas=$("${BIN:-bin}/pp-train" --version 2>/dev/null | sed -n 's/^BLAS: //p')
    [ -n "$blas" ] && echo "blas: $blas"
    return 0
}
