#!/bin/sh
# bench/gpu-train.sh: pp-train on the GPU next to transformers + PEFT, on a
# random model with Llama-2-7B's layer shape (LAYERS of its 32 layers,
# default 4: step time per layer is what is compared), sequence T (512),
# batch 2 and 8 (BATCHES), LoRA r 16 on q,v and on all-linear, a bf16 and
# an NF4 base, with and without gradient checkpointing. Prints tokens/s,
# model FLOPs utilisation (4 N FLOPs per token for LoRA, N the parameters,
# plus attention, against the GPU's measured bf16 matrix-product rate), peak
# device memory, and the ratio to transformers + PEFT (bf16 LoRA, the same
# shape, batch and GPU, in the same run). pp-train runs in its GPU default,
# --precision bf16 (bf16 operands and layer inputs, fp32 accumulation;
# PRECISION=fp16 or fp32 to change it). Then where the time goes
# (PP_CUDA_PROFILE) for a bf16 and an NF4 base, the latter also without
# the dequantization overlapping the products; last, Llama-2-7B QLoRA's
# whole device memory at batch 2 (a model of zeros from the pack); EXTRAS=0
# leaves these out (tests/gpu/session.sh's second run). Uses build/gpu-pack
# (tests/gpu/pack.sh) when present. Logs and the table go to $OUT (or
# build/gpu-logs).
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-logs}
LAYERS=${LAYERS:-4} T=${T:-512} BATCHES=${BATCHES:-2 8} STEPS=${STEPS:-10} PRECISION=${PRECISION:-bf16}
W=${W:-/tmp/pp-gpu-bench}
. bench/gpu-lib.sh
# records of exactly T tokens (bench/train_util.py data: long English-ish text, cut by --max-len)
[ -s "$W/train-$T.tok" ] || { python3 bench/train_util.py data "$W/train.jsonl" 64 1 &&
    "$BIN/pp-tokenize" -q -t "$M" --max-len "$T" -o "$W/train-$T.tok" "$W/train.jsonl"; }
tflops=$(python3 bench/gpu_peer.py matmul | python3 -c 'import json,sys; print(json.load(sys.stdin)["bf16_tflops"])')
# FLOPs per token: 4 N for the frozen weights (forward and input gradients)
# plus attention's 4 T d per layer forward, twice that backward
flops=$(python3 -c "
import json; c=json.load(open('$M/config.json')); L=c['num_hidden_layers']; d=c['hidden_size']; h=c['intermediate_size']; v=c['vocab_size']
N=(4*d*d+3*d*h)*L+v*d; print(4*N + 3*2*$T*d*L)")
row() { printf '%-6s %-10s %5s %4s %12s %7s %10s %12s %8s\n' "$@"; }
{
row base targets batch ckpt "pp tok/s" "MFU %" "peak MiB" "HF tok/s" "x HF"
for b in $BATCHES; do
    for tg in q,v all-linear; do
        for ck in 0 1; do
            peer=$(python3 bench/gpu_peer.py train "$M" "$b" "$T" "$tg" "$ck" 2> "$OUT/peer-$b-$tg-$ck.err" || echo '{}')
            for base in bf16 nf4; do
                m=$M
                [ $base = nf4 ] && m=$M.nf4
                log=$OUT/train-$base-$b-$tg-$ck.jsonl
                rm -rf "$W/adapter"
                flag=""
                [ $ck = 1 ] && flag=--grad-checkpoint
                "$BIN/pp-train" -v --device cuda --precision "$PRECISION" -m "$m" -d "$W/train-$T.tok" -o "$W/adapter" --targets "$tg" \
                    --batch-size "$b" --max-steps $((STEPS + 3)) $flag --log "$log" \
                    > /dev/null 2> "$OUT/train-$base-$b-$tg-$ck.err" || { tail -n 3 "$OUT/train-$base-$b-$tg-$ck.err"; continue; }
                python3 - "$base" "$tg" "$b" "$ck" "$log" "$OUT/train-$base-$b-$tg-$ck.err" "$flops" "$tflops" "$peer" "$T" <<'PY'
import json, re, statistics, sys
base, tg, b, ck, log, err, flops, tflops, peer, T = sys.argv[1:11]
lines = [json.loads(l) for l in open(log)]
# per-step rate from the cumulative tokens/s of consecutive lines (the first 3 steps are warm-up)
t = [l["tokens"] / l["tokens_per_s"] for l in lines if l.get("tokens_per_s")]
steps = [(lines[i]["tokens"] - lines[i - 1]["tokens"]) / (t[i] - t[i - 1]) for i in range(4, len(t)) if t[i] > t[i - 1]]
tps = statistics.median(steps) if steps else float("nan")
m = re.search(r"peak device memory in use ([0-9.]+)", open(err).read())
p = json.loads(peer) if peer.strip() else {}
hf = p.get("tokens_per_s", float("nan"))
print("%-6s %-10s %5s %4s %12.0f %7.1f %10s %12.0f %8.2f" % (base, tg, b, ck, tps, 100 * tps * float(flops) / (float(tflops) * 1e12),
      m.group(1) if m else "?", hf, tps / hf if hf == hf else float("nan")))
PY
            done
        done
    done
done
# where the time goes (PP_CUDA_PROFILE=1: device time per operation), what overlapping the
# dequantization with the products gives (PP_CUDA_OVERLAP=0 turns it off), and the flash-style
# attention kernels at this length (PP_TRAIN_LSE_FROM=0; by default they start above 1024
# tokens): q,v, the first batch size, no checkpointing
b1=${BATCHES%% *}
[ "${EXTRAS:-1}" = 1 ] && for v in bf16 bf16-flash nf4 nf4-serial; do
    m=$M ov=1 lse=1024
    case $v in bf16-flash) lse=0 ;; nf4) m=$M.nf4 ;; nf4-serial) m=$M.nf4 ov=0 ;; esac
    rm -rf "$W/adapter"
    PP_CUDA_PROFILE=1 PP_CUDA_OVERLAP=$ov PP_TRAIN_LSE_FROM=$lse "$BIN/pp-train" -v --device cuda --precision "$PRECISION" -m "$m" -d "$W/train-$T.tok" \
        -o "$W/adapter" --targets q,v --batch-size "$b1" --max-steps $((STEPS + 3)) --log "$OUT/profile-$v.jsonl" \
        > /dev/null 2> "$OUT/profile-$v.err" || { tail -n 3 "$OUT/profile-$v.err"; continue; }
    python3 - "$OUT/profile-$v.jsonl" "$v" "$b1" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
t = [l["tokens"] / l["tokens_per_s"] for l in lines if l.get("tokens_per_s")]
steps = [(lines[i]["tokens"] - lines[i - 1]["tokens"]) / (t[i] - t[i - 1]) for i in range(4, len(t)) if t[i] > t[i - 1]]
print("profile %s (q,v, batch %s): %.0f tokens/s profiled; device time by operation:" % (sys.argv[2], sys.argv[3], statistics.median(steps) if steps else float("nan")))
PY
    grep '^pp:   ' "$OUT/profile-$v.err" | head -n 12
done
# Llama-2-7B QLoRA's device memory, whole: the model of zeros (bench/zero_model.py, quantized
# by tests/gpu/pack.sh) at batch 2 x T with gradient checkpointing; the peak is the device's
# memory in use (CUDA context included), next to the dry run's plan (which leaves the context out)
Z=build/gpu-pack/models/llama2-7b-zero.nf4dq
if [ "${EMU:-0}" != 1 ] && [ "${EXTRAS:-1}" = 1 ] && [ -s "$Z" ]; then
    rm -rf "$W/z"
    plan=$("$BIN/pp-train" --dry-run --device cuda -m "$Z" -d "$W/train-$T.tok" --batch-size 2 --grad-checkpoint |
        awk '/peak on the device/ { print $(NF-1) }')
    if "$BIN/pp-train" -v --device cuda --precision "$PRECISION" -m "$Z" -d "$W/train-$T.tok" -o "$W/z" --batch-size 2 \
        --grad-checkpoint --max-steps 3 --log "$OUT/qlora7b.jsonl" > /dev/null 2> "$OUT/qlora7b.err"; then
        sed -n 's/.*"peak_device_bytes": \([0-9]*\).*/\1/p' "$W/z/pp-train.json" |
            awk -v plan="$plan" -v T="$T" '{ printf "Llama-2-7B QLoRA (NF4, double quant), batch 2 x %s, --grad-checkpoint: peak device memory %.0f MiB = %.2f GB (target <= 6 GB; the plan %s MiB + the CUDA context)\n", T, $1 / 1048576, $1 / 1e9, plan }'
    else
        echo "Llama-2-7B QLoRA memory: pp-train failed ($(tail -n 1 "$OUT/qlora7b.err"))"
    fi
fi
echo "GPU bf16 matrix products: $tflops TFLOP/s (8192^3, median of 10); model: Llama-2-7B layer shape, $LAYERS layers; T=$T"
echo "pp: --precision $PRECISION; transformers + PEFT: bf16 LoRA r 16, AdamW, the same batch"
[ "${EMU:-0}" = 1 ] && echo "EMU=1: a dry run on the CUDA emulator and the CPU, with a small model: these figures mean nothing"
} | tee "$OUT/gpu-train.txt"
