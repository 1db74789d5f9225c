#!/bin/sh
# bench/train.sh: CPU LoRA training speed and peak memory, pp-train next to
# transformers + PEFT.
#
# Models:
#   stories260K   the real checkpoint in ../shared/models/stories260K (its own
#                 512-piece tokenizer; max_position_embeddings 512)
#   stories15M    random weights, the stories15M shape (bench/gen_models.py,
#                 cached under build/bench/models/; the Llama 2 tokenizer)
# LoRA r 16, alpha 32, on q,v and on all-linear (q, k, v, o, gate, up, down;
# not lm_head), batch 2 records, AdamW lr 2e-4 with linear decay, clipping
# 1.0, no dropout, fp32, the loss on response tokens only.
#
# Data: bench/train_util.py data writes prompt/response JSONL of long
# English-ish text; bin/pp-tokenize -t MODEL --max-len LEN cuts every record
# to exactly LEN tokens (LEN = SEQ_LEN, 256, or the model's
# max_position_embeddings if smaller), the prompt whole and masked; the
# script checks that every record has LEN tokens. pp and the peer read the
# same dataset file.
#
#   pp:    bin/pp-train -q -t THREADS -m MODEL -d DATA -o DIR --targets T -r 16
#          --alpha 32 --batch-size 2 --max-steps WARMUP+STEPS --log /dev/fd/3
#   peer:  bench/peer_train.py: LlamaForCausalLM fp32 + peft.get_peft_model,
#          torch.set_num_threads(THREADS); pp-train's record order (its
#          shuffle, copied), one (2, LEN) forward per step with labels -100
#          on prompt tokens, clip_grad_norm_(1.0), AdamW, LambdaLR (see its
#          docstring).
#
# Both run under bench/train_util.py run, a fresh python3 process per run,
# which stamps each step's JSON line as it arrives on file descriptor 3 and
# takes the child's own peak RSS from wait4 (ru_maxrss): pp's and torch's
# memory never share a process. For the peer that peak includes the Python
# interpreter, torch, transformers and peft (the report gives their share,
# VmRSS after the imports).
#
# tokens/s = all tokens of the records of the timed steps (2 x LEN per step:
# prompt and response tokens, there is no padding) / the wall time from the
# end of step WARMUP to the end of step WARMUP+STEPS (forward, backward,
# clipping, AdamW, zeroing the gradients). The WARMUP first steps and the
# model loading are not timed. The step-1 loss of pp and the peer must agree:
# LoRA's B starts at zero, so it is the base model's loss on the same batch.
#
# Each run is: for each model and targets, pp then the peer. RUNS runs;
# medians of tok/s and of peak RSS. The load average is printed before and
# after: anything else running on the machine shows up as spread between runs.
#
# Environment: THREADS (default: all online CPUs), RUNS (3), WARMUP (2),
# STEPS (timed steps: 20 for stories260K), STEPS_15M (8), SEQ_LEN (256),
# MODELS ("stories260K stories15M"), TARGETS ("q,v all-linear"),
# PYTHON (/opt/ppvenv/bin/python: torch, transformers, peft, safetensors,
# sentencepiece, numpy), BIN (bin).
set -eu

. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/opt/ppvenv/bin/python}
THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}
STEPS=${STEPS:-20}
STEPS_15M=${STEPS_15M:-8}
SEQ_LEN=${SEQ_LEN:-256}
MODELS=${MODELS:-stories260K stories15M}
TARGETS=${TARGETS:-q,v all-linear}
BIN=${BIN:-bin}
SHARED=../shared/models
M=build/bench/models
W=build/bench/train

need_tools pp-train pp-tokenize
need_python torch transformers peft safetensors sentencepiece numpy
command -v python3 >/dev/null 2>&1 || die "python3 is needed"
command -v zstd >/dev/null 2>&1 || die "the zstd CLI is needed (to read the dataset)"
need_numbers WARMUP SEQ_LEN
need_positive RUNS STEPS STEPS_15M THREADS
[ "$SEQ_LEN" -ge 16 ] || die "SEQ_LEN wants at least 16"
for t in $TARGETS; do
    case $t in q,v|all-linear) ;; *) die "TARGETS: q,v or all-linear, not '$t'" ;; esac
done
[ -r "$SHARED/llama2-tokenizer/tokenizer.model" ] || die "no $SHARED/llama2-tokenizer/tokenizer.model"
mkdir -p "$M" "$W"
start_clock

dir_of() { case $1 in stories260K) echo "$SHARED/stories260K" ;; *) echo "$M/$1-random" ;; esac; }
steps_of() { case $1 in stories260K) echo "$STEPS" ;; *) echo "$STEPS_15M" ;; esac; }

# ---- 1. models (the random one built once; gen_models.py's stamp says with what)
gen=""
for m in $MODELS; do
    case $m in
    stories260K) [ -r "$SHARED/stories260K/model.safetensors" ] || die "no $SHARED/stories260K" ;;
    stories15M) gen="$gen $m" ;;
    *) die "unknown model '$m' (stories260K, stories15M)" ;;
    esac
done
if [ -n "$gen" ]; then
    HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error \
        "$PYTHON" bench/gen_models.py "$M" "$SHARED/llama2-tokenizer/tokenizer.model" $gen 2>&1 | sed 's/^/bench: /'
    for m in $gen; do [ -s "$M/$m-random/.stamp" ] || die "building $m failed"; done
fi

# ---- 2. the data: one dataset per model (its tokenizer), records of exactly LEN tokens
most=$STEPS
[ "$STEPS_15M" -gt "$most" ] && most=$STEPS_15M
RECORDS=$((2 * (WARMUP + most)))
python3 bench/train_util.py data "$W/data.jsonl" "$RECORDS" 20240601
CONFIGS=""
for m in $MODELS; do
    d=$(dir_of "$m")
    maxpos=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_position_embeddings"])' "$d/config.json")
    len=$SEQ_LEN
    if [ "$maxpos" -lt "$len" ]; then
        len=$maxpos
        echo "bench: $m: max_position_embeddings $maxpos < $SEQ_LEN: records of $len tokens"
    fi
    "$BIN/pp-tokenize" -q -t "$d" --max-len "$len" "$W/data.jsonl" -o "$W/$m.tok" || die "pp-tokenize failed on $d"
    zstd -dcqf "$W/$m.tok" -o "$W/$m.safetensors" || die "cannot decompress $W/$m.tok"
    info=$(python3 bench/train_util.py check "$W/$m.safetensors" "$len") || die "$W/$m.tok: records not all $len tokens long"
    set -- $info
    [ "$1" = "$RECORDS" ] || die "$W/$m.tok: $1 records, wanted $RECORDS"
    echo "bench: $m: $1 records of $len tokens (prompt, BOS included, $2-$3 tokens, masked)"
    echo "$len" > "$W/$m.len"
    for t in $TARGETS; do CONFIGS="$CONFIGS $m/$t/$(steps_of "$m")"; done
done

# ---- 3. the runs
rm -f "$W"/*.pp.*.json "$W"/*.peer.*.json
i=1
while [ "$i" -le "$RUNS" ]; do
    for c in $CONFIGS; do
        m=${c%%/*}; rest=${c#*/}; t=${rest%%/*}; n=${rest#*/}
        d=$(dir_of "$m"); base=$W/$m.$(echo "$t" | tr -d ,)
        total=$((WARMUP + n))
        rm -rf "$W/adapter"
        python3 bench/train_util.py run "$base.pp.$i.json" -- "$BIN/pp-train" -q -t "$THREADS" -m "$d" -d "$W/$m.tok" \
            -o "$W/adapter" --targets "$t" -r 16 --alpha 32 --batch-size 2 --max-steps "$total" --log /dev/fd/3 \
            2> "$W/pp.err" || { cat "$W/pp.err" >&2; die "pp-train failed on $m $t"; }
        python3 bench/train_util.py run "$base.peer.$i.json" -- "$PYTHON" bench/peer_train.py --threads "$THREADS" \
            --steps "$total" --targets "$t" --rank 16 --alpha 32 "$d" "$W/$m.tok" \
            2> "$W/peer.err" || { cat "$W/peer.err" >&2; die "the peer failed on $m $t"; }
        echo "bench: run $i/$RUNS: $m $t: $(python3 -c 'import json,sys
def r(p, warm):
    d = json.load(open(p)); t, l = d["t"], d["lines"]
    tps = (l[-1]["tokens"] - (l[warm - 1]["tokens"] if warm else 0)) / (t[-1] - (t[warm - 1] if warm else 0))
    return "%.0f tok/s, %.0f MB" % (tps, d["maxrss_kb"] / 1024)
w = int(sys.argv[3])
print("pp %s; peer %s" % (r(sys.argv[1], w), r(sys.argv[2], w)))' "$base.pp.$i.json" "$base.peer.$i.json" "$WARMUP"); load $(cut -d ' ' -f 1 /proc/loadavg 2>/dev/null || echo '?')"
    done
    i=$((i + 1))
done

# ---- 4. the report
ppver=$("$BIN/pp-train" -V | head -n 1)
lens=""
for m in $MODELS; do lens="${lens:+$lens, }$m 2 x $(cat "$W/$m.len") tokens"; done
first=$(echo "$CONFIGS" | awk '{print $1}'); fm=${first%%/*}; frest=${first#*/}; ft=${frest%%/*}
peer=$(python3 -c 'import json,sys; d=json.loads(json.load(open(sys.argv[1]))["stdout"])
print("torch %s, transformers %s, peft %s, %d threads, attention %s; interpreter + libraries %.0f MB of its RSS (VmRSS after the imports)"
      % (d["torch"], d["transformers"], d["peft"], d["threads"], d["attn_implementation"], d["rss_after_imports_kb"] / 1024))' \
    "$W/$fm.$(echo "$ft" | tr -d ,).peer.1.json")
echo
python3 bench/train_util.py report "$W" "$WARMUP" "$CONFIGS" \
    "batches: $lens (no padding); LoRA r 16, alpha 32; tok/s = all tokens of the timed steps' records / their wall time" \
    "steps: $WARMUP warm-up steps untimed, then $STEPS timed (stories260K) / $STEPS_15M (stories15M); median of $RUNS runs, each a fresh process" \
    "$(machine_line)" \
    "threads: $THREADS (pp-train -t $THREADS; torch.set_num_threads($THREADS)); $ppver" \
    "peer: $peer" \
    "$(clock_line)"
