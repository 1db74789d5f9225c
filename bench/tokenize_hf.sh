#!/bin/sh
# bench/tokenize_hf.sh: pp-tokenize with a Hugging Face tokenizer.json, next to
# the `tokenizers` library through Python, at 1 and 2 threads.
#
#   pp:    bin/pp-tokenize -q -t DIR -j N DATA.jsonl -o OUT
#   peer:  bench/peer_tokenize_hf.py run: Tokenizer.from_file, json.loads each
#          line, encode_batch(prompts) and encode_batch(responses) (rayon pool
#          of RAYON_NUM_THREADS=N threads), pp's ids around each record, flat
#          numpy arrays (see the docstring there)
#
# Both are timed as whole processes (wall clock, start to exit): interpreter
# start, imports, tokenizer load, reading, encoding, building the ids; pp also
# compresses and writes its dataset. MB = 10^6 input bytes of the JSONL file
# (pp-format's {"prompt", "response"} records). An untimed pass first checks
# that pp and tokenizers give the same ids for every record (and warms the page
# cache); then, for each thread count, RUNS timed runs of each, alternating pp /
# peer; medians are reported.
#
# The input is made by `peer_tokenize_hf.py gen` (python3, standard library)
# from data/pride_prejudice_ift.json and data/corpus/*.md, repeated, with a
# fraction BENCH_RARE of the words rewritten so that a word cache cannot make
# BPE trivial; cached as build/bench/hf-*.jsonl.
#
# Environment: TOKENIZER_DIR (default tests/fixtures/tokenizer/smollm2): a
# directory holding tokenizer.json or tokenizer.json.zst (and optionally
# tokenizer_config.json), copied to build/bench/hftok-NAME/ so that both tools
# read the same plain file; PYTHON for the peer (default /opt/ppvenv/bin/python
# if present, else python3; needs tokenizers and numpy); RUNS (3), BENCH_MB
# (50), BENCH_SEED (20240601), BENCH_RARE (0.1), THREADS ("1 2"), BIN (bin),
# PEER_API (encode_batch; encode_batch_fast skips the offsets the peer never uses).
set -eu

. "$(dirname "$0")/lib.sh"
[ -n "${TOKENIZER_DIR:-}" ] && TOKENIZER_DIR=$(abs "$TOKENIZER_DIR")
cd "$(dirname "$0")/.."

TOKENIZER_DIR=${TOKENIZER_DIR:-tests/fixtures/tokenizer/smollm2}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /opt/ppvenv/bin/python ]; then PYTHON=/opt/ppvenv/bin/python; else PYTHON=python3; fi
fi
RUNS=${RUNS:-3}
BENCH_MB=${BENCH_MB:-50}
BENCH_SEED=${BENCH_SEED:-20240601}
BENCH_RARE=${BENCH_RARE:-0.1}
THREADS=${THREADS:-1 2}
BIN=${BIN:-bin}
PEER_API=${PEER_API:-encode_batch}
W=build/bench
PEER_PY=bench/peer_tokenize_hf.py

command -v python3 >/dev/null 2>&1 || die "python3 is needed"
command -v zstd >/dev/null 2>&1 || die "the zstd CLI is needed"
need_tools pp-tokenize
need_positive RUNS BENCH_MB
for n in $THREADS; do case $n in ''|*[!0-9]*|0) die "THREADS wants positive numbers, not '$n'" ;; esac; done
start_clock
mkdir -p "$W"

# ---- the tokenizer: a plain tokenizer.json both tools read
[ -d "$TOKENIZER_DIR" ] || die "no directory $TOKENIZER_DIR: set TOKENIZER_DIR to a directory holding a" \
    "Hugging Face tokenizer.json (or tokenizer.json.zst), e.g. tests/fixtures/tokenizer/smollm2 (made by" \
    "tests/fixtures/gen_tokenizers.py)"
TOK=$W/hftok-$(basename "$TOKENIZER_DIR")
rm -rf "$TOK"
mkdir -p "$TOK"
if [ -f "$TOKENIZER_DIR/tokenizer.json" ]; then
    cp "$TOKENIZER_DIR/tokenizer.json" "$TOK/"
elif [ -f "$TOKENIZER_DIR/tokenizer.json.zst" ]; then
    zstd -dqf "$TOKENIZER_DIR/tokenizer.json.zst" -o "$TOK/tokenizer.json"
else
    die "$TOKENIZER_DIR holds no tokenizer.json or tokenizer.json.zst (set TOKENIZER_DIR)"
fi
[ -f "$TOKENIZER_DIR/tokenizer_config.json" ] && cp "$TOKENIZER_DIR/tokenizer_config.json" "$TOK/"

# ---- the corpus, generated once
sum=$(cksum < "$PEER_PY" | cut -d ' ' -f 1)
DATA=$W/hf-${BENCH_MB}MB-seed$BENCH_SEED-rare$BENCH_RARE-$sum.jsonl
if [ ! -s "$DATA" ]; then
    echo "bench: generating $DATA (${BENCH_MB} MB, seed $BENCH_SEED, rare-word fraction $BENCH_RARE)"
    python3 "$PEER_PY" gen "$DATA" "$((BENCH_MB * 1000000))" "$BENCH_SEED" "$BENCH_RARE" | sed 's/^/bench: /'
fi
BYTES=$(wc -c < "$DATA" | tr -d ' ')
RECORDS=$(grep -c . "$DATA")
echo "bench: corpus $DATA: $BYTES bytes, $RECORDS records; tokenizer $TOKENIZER_DIR"

# ---- can pp read a tokenizer.json? (a few records first, for a clear message)
OUT=$W/hf-pp.tok
head -n 20 "$DATA" > "$W/hf-probe.jsonl"
if ! "$BIN/pp-tokenize" -q -t "$TOK" -j 1 "$W/hf-probe.jsonl" -o "$OUT" 2> "$W/hf-pp.stderr"; then
    cat "$W/hf-pp.stderr" >&2
    die "$BIN/pp-tokenize cannot encode with $TOK/tokenizer.json (pp-tokenize -t DIR needs tokenizer.json support)"
fi

# ---- the peer, if it can run
PEER=1
if ! "$PYTHON" -c 'import tokenizers, numpy' >/dev/null 2>&1; then
    PEER=0
    echo "bench: peer unavailable: $PYTHON cannot import tokenizers and numpy;" \
         "reporting pp alone (set PYTHON to an interpreter that has them)"
fi

maxj=1
for n in $THREADS; do [ "$n" -gt "$maxj" ] && maxj=$n; done

# ---- untimed pass: every id must agree (also warms the page cache)
echo "bench: checking the ids (untimed pass, pp -j $maxj)"
"$BIN/pp-tokenize" -v -t "$TOK" -j "$maxj" "$DATA" -o "$OUT" 2> "$W/hf-pp.stderr" \
    || { cat "$W/hf-pp.stderr" >&2; die "pp failed"; }
sed 's/^/bench: /' "$W/hf-pp.stderr"
PRE=- POST=-
if [ "$PEER" = 1 ]; then
    zstd -dcq "$OUT" > "$W/hf-pp.safetensors" || die "cannot decompress pp's dataset $OUT"
    ids=$(RAYON_NUM_THREADS=$maxj TOKENIZERS_PARALLELISM=true "$PYTHON" "$PEER_PY" check \
          "$W/hf-pp.safetensors" "$DATA" "$TOK/tokenizer.json") || die "the check failed"
    rm -f "$W/hf-pp.safetensors"
    PRE=${ids% *} POST=${ids#* }
fi

# ---- timed runs: for each thread count, alternating pp / peer
for n in $THREADS; do
    rm -f "$W/times.pp.$n" "$W/times.peer.$n"
    i=1
    while [ "$i" -le "$RUNS" ]; do
        python3 bench/util.py time "$W/times.pp.$n" -- "$BIN/pp-tokenize" -q -t "$TOK" -j "$n" "$DATA" -o "$OUT" \
            || die "pp failed"
        line="pp $(tail -n 1 "$W/times.pp.$n" | awk '{printf "%.2f", $1}')s"
        if [ "$PEER" = 1 ]; then
            RAYON_NUM_THREADS=$n TOKENIZERS_PARALLELISM=true python3 bench/util.py time "$W/times.peer.$n" -- \
                "$PYTHON" "$PEER_PY" run --api "$PEER_API" --pre "$PRE" --post "$POST" "$DATA" "$TOK/tokenizer.json" \
                > "$W/hf-peer.json" || die "the peer failed"
            line="$line, tokenizers $(tail -n 1 "$W/times.peer.$n" | awk '{printf "%.2f", $1}')s"
        fi
        echo "bench: -j $n, run $i/$RUNS: $line"
        i=$((i + 1))
    done
done

# ---- the report
echo
# shellcheck disable=SC2086
python3 "$PEER_PY" report "$BYTES" "$RECORDS" "$W" $THREADS
machine_line
if [ "$PEER" = 1 ]; then
    peer_info=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));
print("tokenizers %s, Tokenizer.%s(add_special_tokens=False), RAYON_NUM_THREADS=N; json/numpy on 1 thread" % (d["tokenizers"], d["api"]))' "$W/hf-peer.json")
    pyver=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')
else
    peer_info="tokenizers: unavailable" pyver=""
fi
echo "threads: N = $THREADS: pp-tokenize -j N encoding threads (+ its reader and writer); $peer_info${pyver:+ (Python $pyver)}"
echo "median of $RUNS runs, $BENCH_MB MB corpus, rare-word fraction $BENCH_RARE; $(sed 's/^pp-tokenize: encoder: //;t;d' "$W/hf-pp.stderr" | head -n 1)"
clock_line
