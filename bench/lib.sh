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
