#!/bin/sh
# bench/generate.sh: CPU inference speed, pp-generate next to transformers.
#
# Models (built once, cached under build/bench/models/):
#   stories260K   the real checkpoint in ../shared/models/stories260K
#   stories15M    random weights, the stories15M shape   (bench/gen_models.py)
#   stories110M   random weights, the stories110M shape  (bench/gen_models.py)
# and each of them quantized to NF4 by bin/pp-quantize -q (build/bench/models/M.nf4).
#
#   pp:    bin/pp-generate -v -t THREADS -m MODEL --raw --greedy --max-new-tokens N PROMPT
#          (its -v line: "prompt P tokens at X tokens/s, generation G tokens at Y tokens/s";
#          prompt = one forward of BOS + prompt, generation = N / time from the end
#          of that forward to the last token)
#   peer:  bench/peer_generate.py: transformers LlamaForCausalLM, fp32, the same
#          directory and token ids, torch.set_num_threads(THREADS); prefill = one
#          forward of the prompt, decode from generate(do_sample=False,
#          max_new_tokens=N, min_new_tokens=N) timed per token by a streamer
#          (see its docstring). For the NF4 rows the peer is the same fp32 model:
#          bitsandbytes' 4-bit layers do not run on the CPU here.
#   sgemm: bench/sgemm_probe.c against -lopenblas, cblas_sgemm called as pp calls
#          it, on one decoder layer's seven products over the prompt (M = P tokens);
#          "prefill % of sgemm" = pp's prefill FLOP rate, 2 * (decoder-layer linear
#          weights) * P / prefill time, over that rate.
#
# pp runs RUNS times per model as separate processes (alternating f32 / nf4);
# the peer loads the model once, warms up, then runs RUNS times. Medians.
# pp's output is compared with the peer's (greedy, so they should agree; on
# random weights a near-tie can flip a token late in the text); pp's NF4
# output with the peer's greedy text on NF4-round-tripped weights (untimed).
# The load average is printed before and after: anything else running on the
# machine (a build, tests) shows up as spread between runs.
#
# Environment: THREADS (default: all online CPUs), RUNS (3), NEW_TOKENS (128:
# new tokens for stories260K and stories15M), NEW_TOKENS_110M (64),
# MODELS ("stories260K stories15M stories110M"), PYTHON (/opt/ppvenv/bin/python:
# torch, transformers, safetensors, sentencepiece), CC (cc), BIN (bin),
# PP_ENV (extra environment for pp-generate only, e.g. OMP_WAIT_POLICY=passive;
# default none).
set -eu

. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/opt/ppvenv/bin/python}
THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)}
RUNS=${RUNS:-3}
NEW_TOKENS=${NEW_TOKENS:-128}
NEW_TOKENS_110M=${NEW_TOKENS_110M:-64}
MODELS=${MODELS:-stories260K stories15M stories110M}
BIN=${BIN:-bin}
CC=${CC:-cc}
PP_ENV=${PP_ENV:-}
SHARED=../shared/models
M=build/bench/models
W=build/bench/generate

need_tools pp-generate pp-quantize
need_python torch transformers safetensors sentencepiece
command -v python3 >/dev/null 2>&1 || die "python3 is needed"
need_positive RUNS NEW_TOKENS NEW_TOKENS_110M THREADS
[ -r "$SHARED/llama2-tokenizer/tokenizer.model" ] || die "no $SHARED/llama2-tokenizer/tokenizer.model"
mkdir -p "$M" "$W"
start_clock

# The prompt: fixed English text, 127 Llama 2 tokens + BOS = 128 (243 + BOS with stories260K's 512-piece tokenizer).
PROMPT_FILE=$W/prompt.txt
cat > "$PROMPT_FILE" <<'EOF'
Once upon a time, in a small village at the edge of a great forest, there lived a little girl named Lily. Every morning she walked to the river with her grandmother to fetch water, and every evening she sat by the fire and listened to stories about the animals that lived among the tall trees. One day, while she was picking berries near the old stone bridge, Lily heard a soft sound coming from under a bush. She knelt down and saw a tiny fox with a hurt paw. The little fox looked at her with sad eyes. Lily smiled at the fox.
EOF
PROMPT=$(cat "$PROMPT_FILE")

dir_of() { case $1 in stories260K) echo "$SHARED/stories260K" ;; *) echo "$M/$1-random" ;; esac; }
new_of() { case $1 in stories110M) echo "$NEW_TOKENS_110M" ;; *) echo "$NEW_TOKENS" ;; esac; }

# ---- 1. models (random ones built once; the stamp inside says with what)
gen=""
for m in $MODELS; do
    case $m in
    stories260K) [ -r "$SHARED/stories260K/model.safetensors" ] || die "no $SHARED/stories260K" ;;
    stories15M|stories110M) gen="$gen $m" ;;
    *) die "unknown model '$m' (stories260K, stories15M, stories110M)" ;;
    esac
done
if [ -n "$gen" ]; then
    HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error \
        "$PYTHON" bench/gen_models.py "$M" "$SHARED/llama2-tokenizer/tokenizer.model" $gen 2>&1 | sed 's/^/bench: /'
    for m in $gen; do [ -s "$M/$m-random/.stamp" ] || die "building $m failed"; done
fi

# ---- 2. NF4 files, rebuilt when older than the model or pp-quantize
for m in $MODELS; do
    d=$(dir_of "$m"); q=$M/$m.nf4
    if [ -s "$q" ] && [ "$q" -nt "$d/model.safetensors" ] && [ "$q" -nt "$BIN/pp-quantize" ]; then continue; fi
    echo "bench: $BIN/pp-quantize -q -o $q $d"
    "$BIN/pp-quantize" -q -o "$q.tmp" "$d" || die "pp-quantize failed on $d"
    mv "$q.tmp" "$q"
done

# ---- 3. the sgemm probe
PROBE=build/bench/sgemm_probe
if [ ! -x "$PROBE" ] || [ bench/sgemm_probe.c -nt "$PROBE" ]; then
    "$CC" -O2 -o "$PROBE" bench/sgemm_probe.c -lopenblas || die "cannot build $PROBE ($CC, -lopenblas)"
fi

# ---- 4. the runs
# pp_run LABEL MODEL_PATH NEW OUTBASE RUN: appends "P X G Y" to OUTBASE.times, keeps
# the text of each run in OUTBASE.out.RUN
pp_run() {
    env $PP_ENV "$BIN/pp-generate" -v -t "$THREADS" -m "$2" --raw --greedy --max-new-tokens "$3" "$PROMPT" \
        > "$4.out.$5" 2> "$4.err" || { cat "$4.err" >&2; die "pp-generate failed on $2"; }
    line=$(grep 'prompt [0-9]* tokens at' "$4.err") || { cat "$4.err" >&2; die "no speed line from pp-generate -v"; }
    echo "$line" | sed 's/.*prompt \([0-9]*\) tokens at \([0-9.]*\) tokens\/s, generation \([0-9]*\) tokens at \([0-9.]*\).*/\1 \2 \3 \4/' >> "$4.times"
    echo "bench: $1: $(echo "$line" | sed 's/^pp-generate: //')"
}

for m in $MODELS; do
    d=$(dir_of "$m"); n=$(new_of "$m")
    rm -f "$W/$m".* "$W/$m-nf4".*
    i=1
    while [ "$i" -le "$RUNS" ]; do
        pp_run "$m run $i/$RUNS, f32" "$d" "$n" "$W/$m" "$i"
        pp_run "$m run $i/$RUNS, nf4" "$M/$m.nf4" "$n" "$W/$m-nf4" "$i"
        i=$((i + 1))
    done
    echo "bench: $m: transformers, warm-up + $RUNS runs"
    "$PYTHON" bench/peer_generate.py --threads "$THREADS" --new "$n" --runs "$RUNS" --nf4-blocksize 64 "$d" "$PROMPT_FILE" \
        > "$W/$m.peer.json" 2> "$W/$m.peer.err" || { cat "$W/$m.peer.err" >&2; die "the peer failed on $d"; }
    P=$(head -n 1 "$W/$m.times" | cut -d ' ' -f 1)
    set -- $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]));
d=c["hidden_size"]; h=c.get("num_attention_heads"); k=c.get("num_key_value_heads") or h; hd=c.get("head_dim") or d//h
print(d, c["intermediate_size"], h*hd, k*hd)' "$d/config.json")
    "$PROBE" "$THREADS" "$P" "$1" "$2" "$3" "$4" > "$W/$m.sgemm" || die "sgemm probe failed"
    echo "bench: $m: cblas_sgemm on one layer's products, M=$P, $THREADS thread(s): $(cut -d ' ' -f 8 "$W/$m.sgemm") GFLOP/s"
done

# ---- 5. the report
ppver=$("$BIN/pp-generate" -V | head -n 1)
ccver=$(${CC} --version 2>/dev/null | head -n 1)
echo
python3 bench/generate_report.py "$W" "$PROMPT_FILE" "$MODELS" \
    "$(machine_line)" \
    "threads: $THREADS (pp-generate -t $THREADS; torch.set_num_threads($THREADS); sgemm probe openblas_set_num_threads($THREADS))${PP_ENV:+; pp run with $PP_ENV}" \
    "versions: $ppver, built by ${ccver:-?}" \
    "runs: median of $RUNS; new tokens $NEW_TOKENS (stories110M: $NEW_TOKENS_110M); $(clock_line)"
