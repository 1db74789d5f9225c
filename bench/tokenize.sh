#!/bin/sh
# bench/tokenize.sh: tokenizer throughput, pp next to Python sentencepiece.
#
#   pp:    bin/pp-format DATA | bin/pp-tokenize -t TOKENIZER -o OUT
#   peer:  bench/peer.py: json.loads each line, same template, batch
#          sp.encode(list) on prompts and responses, BOS+prompt+response+EOS
#          into flat numpy arrays (see the docstring there)
#
# Both are timed as whole processes (wall clock, start to exit): interpreter
# start, imports, tokenizer load, reading, encoding, building the ids; pp also
# compresses and writes its dataset. MB = 10^6 input bytes of the JSONL file.
# An untimed pass first checks that both produce the same token counts (and
# the same ids) and warms the page cache; then RUNS timed runs of each,
# alternating pp / peer; medians are reported.
#
# Environment: TOKENIZER (default ../shared/models/llama2-tokenizer/tokenizer.model),
# PYTHON for the peer (default /opt/ppvenv/bin/python if present, else python3),
# RUNS (5), BENCH_MB (50), BENCH_SEED (20240601), BENCH_RARE (0: the fraction
# of words that are random pseudo-words; 0.3 defeats word caches), PP_THREADS and PEER_THREADS
# (default: all CPUs, each tool's own default), BIN (bin).
# The corpus is generated once by bench/gen.py (python3, standard library) and
# cached as build/bench/qa-*.jsonl, keyed by size, seed and gen.py's checksum.
set -eu

. "$(dirname "$0")/lib.sh"
[ -n "${TOKENIZER:-}" ] && TOKENIZER=$(abs "$TOKENIZER")
cd "$(dirname "$0")/.."

TOKENIZER=${TOKENIZER:-../shared/models/llama2-tokenizer/tokenizer.model}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /opt/ppvenv/bin/python ]; then PYTHON=/opt/ppvenv/bin/python; else PYTHON=python3; fi
fi
RUNS=${RUNS:-5}
BENCH_MB=${BENCH_MB:-50}
BENCH_SEED=${BENCH_SEED:-20240601}
BENCH_RARE=${BENCH_RARE:-0}
PP_THREADS=${PP_THREADS:-}
PEER_THREADS=${PEER_THREADS:--1}
BIN=${BIN:-bin}
W=build/bench

command -v python3 >/dev/null 2>&1 || die "python3 is needed"
command -v zstd >/dev/null 2>&1 || die "the zstd CLI is needed (to check pp's dataset)"
for t in pp-format pp-tokenize; do
    [ -x "$BIN/$t" ] || die "$BIN/$t is missing (run make)"
done
[ -r "$TOKENIZER" ] || die "no tokenizer at $TOKENIZER (set TOKENIZER)"
case $RUNS in ''|*[!0-9]*|0) die "RUNS wants a positive number, not '$RUNS'" ;; esac
mkdir -p "$W"

# ---- the corpus, generated once
sum=$(cksum < bench/gen.py | cut -d ' ' -f 1)
DATA=$W/qa-${BENCH_MB}MB-seed$BENCH_SEED-rare$BENCH_RARE-$sum.jsonl
if [ ! -s "$DATA" ]; then
    echo "bench: generating $DATA (${BENCH_MB} MB, seed $BENCH_SEED)"
    python3 bench/gen.py "$DATA" "$((BENCH_MB * 1000000))" "$BENCH_SEED" "$BENCH_RARE" | sed 's/^/bench: /'
fi
BYTES=$(wc -c < "$DATA" | tr -d ' ')
RECORDS=$(grep -c . "$DATA")
echo "bench: corpus $DATA: $BYTES bytes, $RECORDS records"

# ---- the peer, if it can run
PEER=1
if ! "$PYTHON" -c 'import sentencepiece, numpy' >/dev/null 2>&1; then
    PEER=0
    echo "bench: peer unavailable: $PYTHON cannot import sentencepiece and numpy;" \
         "reporting pp alone (set PYTHON to an interpreter that has them)"
fi

OUT=$W/pp.tok
ST=$W/pp-format.status
PP_T=$W/times.pp
PEER_T=$W/times.peer
PEER_JSON=$W/peer.json
rm -f "$PP_T" "$PEER_T" "$ST"

# pp's pipeline; pp-format's own failure is caught through $ST (no pipefail in sh).
PIPE='st=$1; shift
{ "$1" -q "$2" || echo "$?" > "$st"; } | "$3" $6 -t "$4" -o "$5"'
pp_args() { # pp-tokenize flags: $1 = -q or -v
    echo "$1${PP_THREADS:+ -j $PP_THREADS}"
}
pp_failed() {
    [ -s "$ST" ] || return 1
    echo "bench: pp-format failed (exit $(cat "$ST"))" >&2
    return 0
}

# ---- untimed pass: counts must agree (also warms the page cache)
echo "bench: checking token counts (untimed pass)"
sh -c "$PIPE" sh "$ST" "$BIN/pp-format" "$DATA" "$BIN/pp-tokenize" "$TOKENIZER" "$OUT" \
    "$(pp_args -v)" 2> "$W/pp.stderr" || { cat "$W/pp.stderr" >&2; die "pp failed"; }
if pp_failed; then cat "$W/pp.stderr" >&2; exit 1; fi
summary=$(grep 'records, .* tokens' "$W/pp.stderr" | tail -n 1) || true
stinfo=$(zstd -dc "$OUT" | python3 bench/util.py stinfo) || die "cannot read pp's dataset $OUT"
peer=""
if [ "$PEER" = 1 ]; then
    "$PYTHON" bench/peer.py --digest --threads "$PEER_THREADS" "$DATA" "$TOKENIZER" > "$PEER_JSON" \
        || die "the peer failed"
    peer=$(cat "$PEER_JSON")
fi
python3 bench/util.py check "$stinfo" "$summary" "$peer"

# ---- timed runs, alternating
if [ "$PEER" = 1 ]; then echo "bench: $RUNS timed runs of each, alternating pp / peer"
else echo "bench: $RUNS timed runs of pp"; fi
i=1
while [ "$i" -le "$RUNS" ]; do
    python3 bench/util.py time "$PP_T" -- sh -c "$PIPE" sh "$ST" "$BIN/pp-format" "$DATA" \
        "$BIN/pp-tokenize" "$TOKENIZER" "$OUT" "$(pp_args -q)" || die "pp failed"
    pp_failed && exit 1
    line="pp $(tail -n 1 "$PP_T" | awk '{printf "%.2f", $1}')s"
    if [ "$PEER" = 1 ]; then
        python3 bench/util.py time "$PEER_T" -- "$PYTHON" bench/peer.py --threads "$PEER_THREADS" \
            "$DATA" "$TOKENIZER" > "$PEER_JSON" || die "the peer failed"
        line="$line, peer $(tail -n 1 "$PEER_T" | awk '{printf "%.2f", $1}')s"
    fi
    echo "bench: run $i/$RUNS: $line"
    i=$((i + 1))
done

# ---- the report
ncpu=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
online=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo "$ncpu")
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
if [ -n "$PP_THREADS" ]; then how="-j $PP_THREADS"; else how="default: online CPUs"; fi
pp_threads="pp-tokenize ${PP_THREADS:-$online} encoding thread(s) ($how) + pp-format 1 thread, in a pipe"
if [ "$PEER" = 1 ]; then
    peer_info=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));
print("python sentencepiece %s, sp.encode(list) num_threads=%d -> %d thread(s); json/template/numpy on 1 thread"
      % (d["sentencepiece"], d["num_threads_arg"], d["threads"]))' "$PEER_JSON")
    pyver=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')
    peer_label="python sentencepiece $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sentencepiece"])' "$PEER_JSON")"
else
    peer_info="python sentencepiece: unavailable"
    pyver=""
fi
echo
python3 bench/util.py report "$BYTES" "$RECORDS" "$PP_T" "$( [ "$PEER" = 1 ] && echo "$PEER_T" || echo -)" \
    "pp" "${peer_label:-python sentencepiece}"
echo "machine: $(uname -m), nproc $ncpu, ${cpu:-unknown CPU}; median of $RUNS runs, $BENCH_MB MB corpus, rare-word fraction $BENCH_RARE"
echo "threads: $pp_threads; $peer_info${pyver:+ (Python $pyver)}"
