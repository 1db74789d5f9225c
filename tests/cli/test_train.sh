#!/bin/sh
# pp-train from the command line: a short LoRA run on stories260K, the adapter
# in pp-generate, bad arguments and data.
. tests/cli/lib.sh
TR=$BIN/pp-train
M=../shared/models/stories260K

$BIN/pp-format data/pride_prejudice_ift.json | head -n 40 | $BIN/pp-tokenize -q -t $M -o $T/pp40.tok
expect train_help 0 '^$' "$TR --help | grep -q 'Usage: pp-train'"
expect train_needs_args 64 'are required' "$TR -m $M -d $T/pp40.tok"
expect train_bad_targets 64 'targets wants' "$TR -m $M -d $T/pp40.tok -o $T/a --targets q,x"
expect train_dropout_not_yet 64 'dropout > 0 is not implemented yet' "$TR -m $M -d $T/pp40.tok -o $T/a --dropout 0.1"
expect train_runs_and_loss_falls 0 '' "$TR -q -m $M -d $T/pp40.tok -o $T/ad --lr 5e-3 --epochs 3 --batch-size 4 --targets all-linear --log $T/m.jsonl && test \$(wc -l < $T/m.jsonl) -eq 30 && awk -F'\"loss\": ' 'NR==1{split(\$2,a,\",\"); first=a[1]} END{split(\$2,b,\",\"); exit !(b[1] < first * 0.7)}' $T/m.jsonl"
expect train_writes_a_peft_adapter 0 '' "grep -q '\"peft_type\": \"LORA\"' $T/ad/adapter_config.json && grep -q '\"r\": 16' $T/ad/adapter_config.json && zstd -qdcf $T/ad/adapter_model.safetensors 2>/dev/null | head -c 400 | grep -q 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'"
expect train_same_seed_same_adapter 0 '' "$TR -q -m $M -d $T/pp40.tok -o $T/ad2 --lr 5e-3 --epochs 3 --batch-size 4 --targets all-linear && cmp $T/ad/adapter_model.safetensors $T/ad2/adapter_model.safetensors"
expect generate_with_the_adapter 0 '^$' "a=\$($BIN/pp-generate -m $M --greedy --max-new-tokens 12 'Who has taken Netherfield Park?'); b=\$($BIN/pp-generate -m $M -a $T/ad --greedy --max-new-tokens 12 'Who has taken Netherfield Park?'); c=\$($BIN/pp-generate -m $M -a $T/ad --adapter-scale 0 --greedy --max-new-tokens 12 'Who has taken Netherfield Park?'); test \"\$a\" != \"\$b\" && test \"\$a\" = \"\$c\""
$BIN/pp-format data/pride_prejudice_ift.json | head -n 4 | $BIN/pp-tokenize -q -t ../shared/models/llama2-tokenizer -o $T/llama.tok
expect train_other_tokenizer 65 'tokenized with another tokenizer' "$TR -m $M -d $T/llama.tok -o $T/x"
expect train_record_too_long 65 'longer than the context of 128' "$TR -m tests/fixtures/llama/tiny -d $T/pp40.tok -o $T/x"
expect train_missing_adapter_config 66 'adapter_config.json' "$BIN/pp-generate -m $M -a /nonexistent 'hi'"
expect train_bad_output_fails_first 73 'cannot create' "$TR -m $M -d $T/pp40.tok -o /nonexistent/dir/a"
printf '%s\n' '{"prompt": "a", "response": ""}' | $BIN/pp-tokenize -q --no-eos -t $M -o $T/empty.tok
expect train_nothing_to_train 65 'nothing to train on' "$TR -m $M -d $T/empty.tok -o $T/e"
