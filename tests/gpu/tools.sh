#!/bin/sh
# tests/gpu/tools.sh: the tools with --device cuda against --device cpu, one
# "ok NAME" or "FAIL NAME" line each. Run by tests/cli/test_cuda_emu.sh on
# the CUDA emulator and by tests/gpu/selftest.sh on a GPU; PP_CUDA_LIB names
# the backend library, BIN the tools, M the stories260K model directory.
. tests/cli/lib.sh
M=${M:-../shared/models/stories260K}

# losses_close NAME A.jsonl B.jsonl N MAX [MIN]: the two logs have N steps
# each and their losses differ by at most MAX relative (and more than MIN:
# the runs really differ in precision)
losses_close() {
    if out=$(paste "$2" "$3" | awk -v want="$4" -v max="$5" -v min="${6:--1}" '
        { split($0, h, "\t"); a = h[1]; b = h[2]
          sub(/.*"loss": /, "", a); sub(/,.*/, "", a); sub(/.*"loss": /, "", b); sub(/,.*/, "", b)
          d = (a - b) / a; if (d < 0) d = -d; if (d > m) m = d; n++ }
        END { print n " steps, largest relative difference " m; exit !(n == want && m <= max && m > min) }'); then
        echo "ok $1"
    else
        echo "FAIL $1: $out"
    fi
}

# train NAME DEVICE ARGS...: 6 LoRA steps on the Pride and Prejudice records (64 tokens at most), log $T/NAME.jsonl
train() {
    name=$1 d=$2
    shift 2
    $BIN/pp-train -q --device "$d" -d $T/train.tok -o $T/$name --max-steps 6 --lr 1e-3 --log $T/$name.jsonl "$@" \
        2>$T/$name.err || cat $T/$name.err
}

check cuda_generate_greedy_as_cpu "a=\$($BIN/pp-generate --device cpu -m $M --greedy --max-new-tokens 24 'Once upon a time') &&
    b=\$($BIN/pp-generate --device cuda -m $M --greedy --max-new-tokens 24 'Once upon a time') && [ -n \"\$b\" ] && [ \"\$a\" = \"\$b\" ]"

$BIN/pp-format -q data/pride_prejudice_ift.json -o $T/train.jsonl &&
    $BIN/pp-tokenize -q -t $M --max-len 64 -o $T/train.tok $T/train.jsonl
# fp32 on both: the CPU's losses; bf16 products (the GPU's default): near them
train cpu cpu -m $M --targets all-linear
train fp32 cuda -m $M --targets all-linear --precision fp32
train bf16 cuda -m $M --targets all-linear
losses_close cuda_train_fp32_losses_as_cpu $T/cpu.jsonl $T/fp32.jsonl 6 1e-5
losses_close cuda_train_bf16_losses_near_cpu $T/cpu.jsonl $T/bf16.jsonl 6 1e-2 1e-5
# checkpointing recomputes each layer from its input as kept (bf16): the same losses to the bit
train bf16-ckpt cuda -m $M --targets all-linear --grad-checkpoint
check cuda_grad_checkpoint_bit_exact "[ \"\$(sed 's/, \"tokens_per_s\": [0-9.]*//' $T/bf16.jsonl)\" = \"\$(sed 's/, \"tokens_per_s\": [0-9.]*//' $T/bf16-ckpt.jsonl)\" ]"
check cuda_train_reports_precision_and_peak "grep -q '\"precision\": \"bf16\"' $T/bf16/pp-train.json &&
    grep -Eq '\"peak_device_bytes\": [1-9]' $T/bf16/pp-train.json"
# the plan a dry run makes for the GPU (it needs none) against the peak measured
check cuda_dry_run_plans_the_peak "plan=\$($BIN/pp-train --dry-run --device cuda -m $M -d $T/train.tok --targets all-linear |
        awk '/peak on the device/ { print \$(NF-1) }') &&
    got=\$(sed -n 's/.*\"peak_device_bytes\": \\([0-9]*\\).*/\\1/p' $T/bf16/pp-train.json) &&
    awk -v p=\"\$plan\" -v g=\"\$got\" 'BEGIN { g /= 1048576; d = (p - g) / g; if (d < 0) d = -d; print p, g; exit !(d <= 0.1) }'"

# fp16: an overflow injected at step 2 skips the update (AdamW's count is 2
# after 3 steps) and halves the loss scale; resuming from step 3 gives step 4
# as the uninterrupted run has it
export PP_TRAIN_OVERFLOW_AT=2
$BIN/pp-train -q --device cuda --precision fp16 -m $M -d $T/train.tok -o $T/fp16 --max-steps 4 --save-every 3 --lr 1e-3 \
    --log $T/fp16.jsonl 2>$T/fp16.err || cat $T/fp16.err
check cuda_fp16_overflow_skips_the_step "sed -n 2p $T/fp16.jsonl | grep -q '\"skipped\": true.*\"loss_scale\": 65536' &&
    sed -n 3p $T/fp16.jsonl | grep -q '\"loss_scale\": 32768' && ! sed -n 3p $T/fp16.jsonl | grep -q skipped &&
    grep -aq '\"adamw.t\":\"2\"' $T/fp16/checkpoint-3/trainer_state.safetensors"
$BIN/pp-train -q --device cuda --precision fp16 -m $M -d $T/train.tok -o $T/fp16 --max-steps 4 --save-every 3 --lr 1e-3 \
    --log $T/fp16.jsonl --resume 2>$T/fp16r.err || cat $T/fp16r.err
check cuda_fp16_resume_as_uninterrupted "[ \$(wc -l < $T/fp16.jsonl) = 5 ] &&
    [ \"\$(sed -n 4p $T/fp16.jsonl | sed 's/, \"tokens_per_s\": [0-9.]*//')\" = \"\$(sed -n 5p $T/fp16.jsonl | sed 's/, \"tokens_per_s\": [0-9.]*//')\" ]"
unset PP_TRAIN_OVERFLOW_AT

# QLoRA: the NF4 base, bf16 products, near the CPU's losses on it
$BIN/pp-quantize -q -o $T/base.nf4 $M
train qlora-cpu cpu -m $T/base.nf4
train qlora-cuda cuda -m $T/base.nf4
losses_close cuda_qlora_nf4_losses_near_cpu $T/qlora-cpu.jsonl $T/qlora-cuda.jsonl 6 1e-2
# double quantization: the device decodes the absmax values as the CPU resolves them (fp32: the same losses; greedy
# decoding, through the weight's own kernel: the same text)
$BIN/pp-quantize -q --double-quant -o $T/base.nf4dq $M
train qlora-dq-cpu cpu -m $T/base.nf4dq
train qlora-dq-cuda cuda -m $T/base.nf4dq --precision fp32
losses_close cuda_qlora_double_quant_fp32_as_cpu $T/qlora-dq-cpu.jsonl $T/qlora-dq-cuda.jsonl 6 1e-5
check cuda_generate_double_quant_as_cpu "a=\$($BIN/pp-generate --device cpu -m $T/base.nf4dq --greedy --max-new-tokens 24 'Once upon a time') &&
    b=\$($BIN/pp-generate --device cuda -m $T/base.nf4dq --greedy --max-new-tokens 24 'Once upon a time') && [ -n \"\$b\" ] && [ \"\$a\" = \"\$b\" ]"
# PP_CUDA_PROFILE=1: the device time of each operation, printed at the end (8 steps: the
# events' ring is read mid-run too); every operation named, each time a number
PP_CUDA_PROFILE=1 $BIN/pp-train -q --device cuda -m $T/base.nf4dq -d $T/train.tok -o $T/prof --max-steps 8 2> $T/prof.err
check cuda_profile_names_the_operations "grep -q 'device time by operation' $T/prof.err &&
    grep -Eq '^pp: +matmul +[0-9.]+ ms' $T/prof.err && grep -Eq '^pp: +widen weights +[0-9.]+ ms' $T/prof.err &&
    ! grep -Eq '^pp: .*(nan|-[0-9])' $T/prof.err"
# --full: every weight and its gradient on the device, fp32: the CPU's losses; the model written is usable
train full-cpu cpu -m $M --full --precision fp32
train full-cuda cuda -m $M --full --precision fp32
losses_close cuda_full_fp32_losses_as_cpu $T/full-cpu.jsonl $T/full-cuda.jsonl 6 1e-4
# --full in bf16: each step's AdamW changes the fp32 weights that the next step's products widen to bf16 on the
# second stream (backend_cuda.cu), which must wait for it: near the CPU's losses
train full-bf16 cuda -m $M --full
losses_close cuda_full_bf16_losses_near_cpu $T/full-cpu.jsonl $T/full-bf16.jsonl 6 1e-2 1e-5
# the same run again, with the main stream held back on the emulator (PP_EMU_DEFER=1; a GPU ignores it): the
# same losses to the bit (on a GPU: a run repeats itself, streams and all)
PP_EMU_DEFER=1 train full-bf16-again cuda -m $M --full
check cuda_full_bf16_repeats_itself "[ \"\$(sed 's/, \"tokens_per_s\": [0-9.]*//' $T/full-bf16.jsonl)\" = \"\$(sed 's/, \"tokens_per_s\": [0-9.]*//' $T/full-bf16-again.jsonl)\" ]"
check cuda_full_writes_a_model "[ -n \"\$($BIN/pp-generate -m $T/full-cuda --greedy --max-new-tokens 8 'Once upon a time')\" ]"
expect cpu_refuses_bf16 64 'needs a GPU' "$BIN/pp-train --precision bf16 -m $M -d $T/train.tok -o $T/x"
