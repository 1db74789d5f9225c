#!/bin/sh
# The real SmolLM2-135M-Instruct (tokenizer.json, chatml): pp-generate's greedy
# tokens equal transformers' (tests/fixtures/smollm2, gen_smollm2.py) in f32
# (the HF directory), bf16 (pp-quantize -t bf16 --dtype bf16: every weight
# rounded, computed in f32) and NF4 (pp-quantize -t nf4: bitsandbytes' round
# trip of the seven linear weights). Two raw prompts and two --chat ones;
# each --json line (response text, token count without eos, stop reason)
# must equal the fixture's. The model is not committed: $PP_SMOLLM2 or
# /opt/models/smollm2, else one "skip" line (neither ok nor FAIL).
. tests/cli/lib.sh
G=$BIN/pp-generate
Q=$BIN/pp-quantize
F=${SMOLLM2_FIXTURES:-tests/fixtures/smollm2}
M=${PP_SMOLLM2:-/opt/models/smollm2}
if [ ! -f "$M/config.json" ] || [ ! -f "$M/tokenizer.json" ]; then
    echo "skip smollm2 (no model: run tests/fixtures/gen_smollm2.py)"
    exit 0
fi

# greedy NAME MODEL: the raw prompts then the chat ones, as --json lines, against $F/NAME.jsonl
greedy() {
    expect smollm2_greedy_$1 0 '' "{ $G -q -m $2 --greedy --raw --max-new-tokens 40 --json 'Once upon a time' 'The capital of France is' && $G -q -m $2 --greedy --chat --max-new-tokens 40 --json 'Who is Mr. Darcy?' 'What is 12 * 7?'; } > $T/$1.jsonl && diff $F/$1.jsonl $T/$1.jsonl >&2"
}

greedy f32 "$M"
expect smollm2_quantize_bf16 0 '' "$Q -q -t bf16 --dtype bf16 -o $T/m.bf16 $M"
greedy bf16 $T/m.bf16
expect smollm2_quantize_nf4 0 '' "$Q -q -t nf4 -o $T/m.nf4 $M"
greedy nf4 $T/m.nf4
