#!/bin/sh
# tests/gpu/selftest.sh: the GPU self-test, one command, on a machine with an
# NVIDIA GPU. Uses build/gpu-pack/ (tests/gpu/pack.sh, made on the build
# machine and carried over) or, without it, builds with make. Runs:
#   1. cuda_probe: a kernel runs on the device;
#   2. test_cuda: every CUDA operation against the CPU backend on random
#      inputs (outputs poisoned with NaN first), the training operations and
#      a LoRA step's gradients, then the logits and greedy text of whole
#      models on both backends (tiny, tiny-bf16, stories260K and its NF4 file);
#   3. pp-generate --device cuda against --device cpu: the same greedy text;
#   4. pp-train --device cuda against --device cpu: 20 LoRA steps' losses;
#   5. tests/gpu/tools.sh: mixed precision, fp16 loss scaling, resume, the
#      dry run's plan, QLoRA (what make test runs on the CUDA emulator).
# Prints one table last; logs go to $OUT (or build/gpu-logs). Exit status 0
# when everything passes. EMU=1 runs it all on the CUDA emulator (cuda/emu/)
# instead, without a GPU: a check of this script before a GPU session.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/gpu-logs}
mkdir -p "$OUT"
P=build/gpu-pack
EMU=${EMU:-0}
if [ "$EMU" != 1 ] && [ -x "$P/bin/test_cuda" ]; then
    BIN=$P/bin
    export LD_LIBRARY_PATH="$P/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    MODELS=$P/models
else
    targets="all cuda"
    [ "$EMU" = 1 ] && targets="all build/gpu/test_cuda build/emu/libppcuda.so"
    make -j"$(nproc)" $targets > "$OUT/build.log" 2>&1 || { tail -n 20 "$OUT/build.log"; echo "build failed"; exit 1; }
    BIN=bin
    cp build/gpu/test_cuda build/cuda_probe bin/ 2>/dev/null
    MODELS=../shared/models
    [ "$EMU" = 1 ] && export PP_CUDA_LIB=build/emu/libppcuda.so
fi
# cuBLAS: the CUDA toolkit's, or the one that comes with torch's wheels
if ! ldconfig -p 2>/dev/null | grep -q libcublas.so.13 && [ ! -e /usr/local/cuda/lib64/libcublas.so.13 ]; then
    d=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)
    [ -n "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[ -d /usr/local/cuda/lib64 ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64"
export PP_CUDA_LIB=${PP_CUDA_LIB:-$(dirname "$BIN")/lib/libppcuda.so}
[ -e "$PP_CUDA_LIB" ] || PP_CUDA_LIB=build/lib/libppcuda.so

{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/device.txt" 2>&1
summary=$OUT/summary.txt
: > "$summary"
row() { printf '%-52s %s\n' "$1" "$2" | tee -a "$summary"; }

if [ "$EMU" = 1 ]; then
    echo "CUDA emulator (cuda/emu)" > "$OUT/probe.log"
    echo "CUDA emulator, no GPU" > "$OUT/device.txt"
    rc=0
else
    "$BIN/cuda_probe" > "$OUT/probe.log" 2>&1
    rc=$?
fi
row "cuda_probe ($(head -n 1 "$OUT/probe.log"))" "$([ $rc = 0 ] && echo ok || echo FAIL)"
if [ $rc != 0 ]; then
    cat "$OUT/probe.log"
    echo "no usable GPU: stopping here"
    exit $([ $rc = 77 ] && echo 77 || echo 1)
fi

models="tests/fixtures/llama/tiny tests/fixtures/llama/tiny-bf16 tests/fixtures/llama3/tiny"
[ -r "$MODELS/stories260K/model.safetensors" ] && models="$models $MODELS/stories260K"
[ -r "$MODELS/stories260K.nf4" ] && models="$models $MODELS/stories260K.nf4"
timeout 420 "$BIN/test_cuda" $models > "$OUT/test_cuda.log" 2>&1
rc=$?
cat "$OUT/test_cuda.log"
row "test_cuda: $(tail -n 1 "$OUT/test_cuda.log")" "$([ $rc = 0 ] && echo ok || echo FAIL)"
# the products with weights widened a few rows at a time (blocks of 5000 values), every
# operand's 16-bit copy held between products
PP_CUDA_WIDEN_MAX=5000 PP_CUDA_HOLD_MIN=1 timeout 120 "$BIN/test_cuda" tests/fixtures/llama/tiny > "$OUT/test_cuda_blocks.log" 2>&1
rc=$?
row "test_cuda, weights in blocks: $(tail -n 1 "$OUT/test_cuda_blocks.log")" "$([ $rc = 0 ] && echo ok || echo FAIL)"

if [ -r "$MODELS/stories260K/model.safetensors" ]; then
    for m in "$MODELS/stories260K" "$MODELS/stories260K.nf4"; do
        [ -r "$m" ] || continue
        a=$("$BIN/pp-generate" --device cpu -m "$m" --greedy --max-new-tokens 64 'Once upon a time' 2>"$OUT/gen-cpu.err")
        b=$("$BIN/pp-generate" -v --device cuda -m "$m" --greedy --max-new-tokens 64 'Once upon a time' 2>"$OUT/gen-cuda.err")
        printf 'cpu:  %s\ncuda: %s\n' "$a" "$b" >> "$OUT/generate.log"
        row "pp-generate greedy cuda == cpu ($(basename "$m"))" "$([ -n "$b" ] && [ "$a" = "$b" ] && echo ok || echo FAIL)"
    done
fi

# training: 20 LoRA steps (every linear layer, lr 1e-3) on each device, the
# losses step by step; then the adapters' own greedy text
if [ -r "$MODELS/stories260K/model.safetensors" ]; then
    m=$MODELS/stories260K
    "$BIN/pp-format" -q data/pride_prejudice_ift.json -o "$OUT/train.jsonl" &&
        "$BIN/pp-tokenize" -q -t "$m" --max-len 256 -o "$OUT/train.tok" "$OUT/train.jsonl"
    for d in cpu cuda; do
        rm -rf "$OUT/adapter-$d"
        timeout 300 "$BIN/pp-train" -q --device $d --precision fp32 -m "$m" -d "$OUT/train.tok" -o "$OUT/adapter-$d" --max-steps 20 \
            --lr 1e-3 --targets all-linear --log "$OUT/train-$d.jsonl" 2> "$OUT/train-$d.err"
    done
    diff=$(paste "$OUT/train-cpu.jsonl" "$OUT/train-cuda.jsonl" 2>/dev/null | awk '
        { split($0, h, "\t"); a = h[1]; b = h[2]; sub(/.*"loss": /, "", a); sub(/,.*/, "", a); sub(/.*"loss": /, "", b); sub(/,.*/, "", b);
          d = a - b; if (d < 0) d = -d; d /= (a < 0 ? -a : a); if (d > m) m = d; n++ }
        END { if (n == 20) printf "%.2e", m; else print "missing" }')
    row "pp-train 20 LoRA steps, cuda vs cpu: loss rel. diff $diff" "$(awk -v d="$diff" 'BEGIN { exit !(d != "missing" && d + 0 <= 1e-3) }' && echo ok || echo FAIL)"
    a=$("$BIN/pp-generate" --device cpu -m "$m" -a "$OUT/adapter-cpu" --greedy --max-new-tokens 32 'Who is Mr. Darcy?' 2>/dev/null)
    b=$("$BIN/pp-generate" --device cpu -m "$m" -a "$OUT/adapter-cuda" --greedy --max-new-tokens 32 'Who is Mr. Darcy?' 2>/dev/null)
    printf 'cpu-trained:  %s\ncuda-trained: %s\n' "$a" "$b" >> "$OUT/train.log"
    row "pp-train cuda adapter answers as the cpu one" "$([ -n "$b" ] && [ "$a" = "$b" ] && echo ok || echo 'differs (see train.log)')"
fi

# the tools' checks the CUDA emulator runs in make test (tests/gpu/tools.sh):
# precision fp32 and bf16, the dry run's plan against the measured peak,
# fp16's loss scaling with an injected overflow, resume, QLoRA on NF4
if [ -r "$MODELS/stories260K/model.safetensors" ]; then
    BIN=$BIN M=$MODELS/stories260K timeout 300 sh tests/gpu/tools.sh > "$OUT/tools.log" 2>&1
    grep -E '^(ok|FAIL) ' "$OUT/tools.log" | while read -r verdict name rest; do
        row "tools: ${name%:}" "$([ "$verdict" = ok ] && echo ok || echo FAIL)"
    done
fi

echo
echo "== GPU self-test ($(head -n 1 "$OUT/device.txt")) =="
cat "$summary"
! grep -q 'FAIL$' "$summary"
