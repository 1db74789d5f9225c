#!/bin/sh
# bench/gpu-generate.sh: pp-generate on the GPU next to transformers, on a
# random model with Llama-2-7B's layer shape (LAYERS of its 32 layers,
# default 32; fewer keep a short GPU session short: decode time per layer is
# what is compared), bf16 and NF4, prompt P (512) tokens, N (256) new tokens.
# Prints decode and prefill tokens/s, the physical floor (bytes of weights
# read per token / measured copy bandwidth), pp's share of it, the ratio to
# transformers (bf16 on the same GPU, same run) and peak device memory.
# Uses build/gpu-pack (tests/gpu/pack.sh) when present, like the self-test.
# Logs and the table go to $OUT (or build/gpu-logs).
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-logs}
LAYERS=${LAYERS:-32} P=${P:-512} N=${N:-256}
W=${W:-/tmp/pp-gpu-bench}
. bench/gpu-lib.sh
bw=$(python3 bench/gpu_peer.py bandwidth | python3 -c 'import json,sys; print(json.load(sys.stdin)["bandwidth_gbs"])')
peer=$(python3 bench/gpu_peer.py generate "$M" "$P" "$N" 2> "$OUT/peer.err")
# a prompt of about P tokens (one per word for the Llama 2 tokenizer; -v gives the exact count)
python3 -c "print(' '.join(['time', 'house', 'river', 'garden', 'letter', 'morning', 'window', 'story'][i % 8] for i in range($P - 1)))" > "$W/prompt.txt"
row() { printf '%-10s %12s %12s %12s %10s %12s %12s %10s\n' "$@"; }
{
row model "decode t/s" "floor t/s" "% floor" "x HF" "prefill t/s" "HF prefill" "peak MiB"
for form in bf16 nf4; do
    m=$M
    [ $form = nf4 ] && m=$M.nf4
    best=""
    for r in 1 2 3; do
        "$BIN/pp-generate" -v --device cuda --raw -m "$m" --greedy --max-new-tokens "$N" "$(cat "$W/prompt.txt")" \
            > /dev/null 2> "$OUT/pp-$form-$r.err" || { cat "$OUT/pp-$form-$r.err"; exit 1; }
        best="$best $(grep -o 'generation [0-9]* tokens at [0-9.]*' "$OUT/pp-$form-$r.err" | awk '{print $5}')"
    done
    dec=$(printf '%s\n' $best | sort -n | sed -n 2p)
    pre=$(grep -o 'prompt [0-9]* tokens at [0-9.]*' "$OUT/pp-$form-2.err" | awk '{print $5}')
    peak=$(grep -o 'peak device memory in use [0-9.]*' "$OUT/pp-$form-2.err" | awk '{print $6}')
    bytes=$(python3 -c "
import json; c=json.load(open('$M/config.json')); L=c['num_hidden_layers']; d=c['hidden_size']; h=c['intermediate_size']; v=c['vocab_size']
per=(4*d*d+3*d*h)*L; print(per*(0.5+4/64) + v*d*2 if '$form'=='nf4' else (per+v*d)*2)")
    python3 - "$form" "$dec" "$pre" "$peak" "$bytes" "$bw" "$peer" <<'PY'
import json, sys
form, dec, pre, peak, nbytes, bw, peer = sys.argv[1:8]
p = json.loads(peer)
floor = float(bw) * 1e9 / float(nbytes)
print("%-10s %12.1f %12.1f %11.0f%% %9.2fx %12.0f %12.0f %10s" % (form, float(dec), floor, 100 * float(dec) / floor,
      float(dec) / p["decode_tps"], float(pre), p["prefill_tps"], peak))
PY
done
echo "transformers (bf16, same GPU): decode $(echo "$peer" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.1f t/s, prefill %.0f t/s, peak %.0f MiB" % (d["decode_tps"], d["prefill_tps"], d["peak_mib"]))')"
echo "copy bandwidth ${bw} GB/s; model: Llama-2-7B layer shape, $LAYERS layers; prompt $P, $N new tokens; medians of 3"
[ "${EMU:-0}" = 1 ] && echo "EMU=1: a dry run on the CUDA emulator and the CPU, with a small model: these figures mean nothing"
} | tee "$OUT/gpu-generate.txt"
