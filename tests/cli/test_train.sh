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
expect train_bad_dropout 64 'dropout wants' "$TR -m $M -d $T/pp40.tok -o $T/a --dropout 1.5"
expect train_bad_layers 64 'layers wants' "$TR -m $M -d $T/pp40.tok -o $T/a --layers 0,9"
expect train_init_adapter_takes_the_shape 64 'takes the rank' "$TR -m $M -d $T/pp40.tok -o $T/a --init-adapter $T/x -r 4"
expect train_keep_needs_save_every 64 'keep needs' "$TR -m $M -d $T/pp40.tok -o $T/a --keep 2"
expect train_dry_run 0 '^$' "$TR -m $M -d $T/pp40.tok --dry-run --targets all-linear --grad-checkpoint -o $T/dry > $T/plan && grep -q activations $T/plan && grep -q '^  peak' $T/plan && test ! -e $T/dry"
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

# Resume: N steps, a checkpoint, N more equal 2N straight (adapter and log,
# bit for bit), with accumulation, dropout, evaluation and an epoch boundary.
A="-q -m $M -d $T/pp40.tok --lr 5e-3 --max-steps 12 --batch-size 3 --grad-accum 2 --dropout 0.1 --eval-fraction 0.1 --eval-every 4 --targets q,v,down"
$TR $A -o $T/straight --log $T/straight.jsonl
expect train_save_every_and_keep 0 '^$' "$TR $A -o $T/ck --save-every 5 --keep 1 --log $T/ck.jsonl && test -d $T/ck/checkpoint-10 && test ! -e $T/ck/checkpoint-5 && grep -q '\"peft_type\": \"LORA\"' $T/ck/checkpoint-10/adapter_config.json"
$TR $A -o $T/ck5 --save-every 5 --log /dev/null
rm -rf $T/ck5/checkpoint-10 $T/ck5/adapter_model.safetensors
expect train_resume_is_bit_exact 0 '^$' "$TR $A -o $T/ck5 --resume --log $T/resumed.jsonl && cmp $T/straight/adapter_model.safetensors $T/ck5/adapter_model.safetensors && sed 's/\"tokens_per_s[^,}]*//' $T/straight.jsonl | tail -n 7 > $T/l1 && sed 's/\"tokens_per_s[^,}]*//' $T/resumed.jsonl > $T/l2 && cmp $T/l1 $T/l2"
expect train_eval_loss_logged_and_falls 0 '' "grep -c eval_loss $T/straight.jsonl | grep -qx 3 && awk -F'\"eval_loss\": ' 'NF>1{v[++n]=\$2+0} END{exit !(n==3 && v[3] < v[1])}' $T/straight.jsonl"
expect train_resume_refuses_other_settings 65 'other settings' "$TR $A -o $T/ck5 --resume --lr 1e-3"
expect train_resume_without_checkpoint 66 'no checkpoint' "$TR $A -o $T/straight --resume"
expect train_summary_json 0 '' "grep -q '\"base_sha256\": \"[0-9a-f]\{64\}\"' $T/straight/pp-train.json && grep -q '\"final_eval_loss\": [0-9]' $T/straight/pp-train.json && grep -q '\"base_quant\": \"f32\"' $T/straight/pp-train.json"

# SIGTERM mid-run: the step finishes, a checkpoint is saved, exit 75; the
# resumed run ends where an uninterrupted one does.
B="-q -m $M -d $T/pp40.tok --lr 5e-3 --epochs 10 --batch-size 2 --targets q,v"
$TR $B -o $T/sig --log $T/sig.jsonl 2>$T/sig.err &
pid=$!
i=0; while [ $i -lt 400 ] && [ "$(cat $T/sig.jsonl 2>/dev/null | wc -l)" -lt 3 ]; do sleep 0.05; i=$((i+1)); done
kill -TERM $pid; wait $pid; echo $? > $T/sig.rc
expect train_sigterm_checkpoint 0 '' "test \$(cat $T/sig.rc) -eq 75 && ls -d $T/sig/checkpoint-* >/dev/null && test ! -e $T/sig/adapter_model.safetensors"
expect train_sigterm_resume_finishes 0 '' "$TR $B -o $T/sig --resume && test -s $T/sig/adapter_model.safetensors && test \$(wc -l < $T/sig.jsonl) -lt 200"

# --layers writes PEFT's layers_to_transform; --init-adapter continues from an adapter
expect train_layers 0 '^$' "$TR -q -m $M -d $T/pp40.tok -o $T/lay --max-steps 2 --layers 1,3-4 && grep -q '\"layers_to_transform\": \[1, 3, 4\]' $T/lay/adapter_config.json && $BIN/pp-generate -m $M -a $T/lay --max-new-tokens 3 hi >/dev/null"
expect train_init_adapter 0 '^$' "$TR -q -m $M -d $T/pp40.tok -o $T/cont --max-steps 2 --init-adapter $T/lay --log $T/cont.jsonl && grep -q '\"layers_to_transform\": \[1, 3, 4\]' $T/cont/adapter_config.json && ! cmp -s $T/lay/adapter_model.safetensors $T/cont/adapter_model.safetensors"

# The point of it all: trained on four questions, the adapter answers them.
$BIN/pp-format data/pride_prejudice_ift.json | head -n 4 | $BIN/pp-tokenize -q -t $M -o $T/pp4.tok
expect train_adapter_answers_training_questions 0 '' "$TR -q -m $M -d $T/pp4.tok -o $T/mem --lr 1e-2 --epochs 50 --batch-size 4 --targets all-linear -r 32 --alpha 64 && $BIN/pp-generate -m $M -a $T/mem --greedy --max-new-tokens 24 'Who has taken Netherfield Park?' | grep -q '^A rich young bachelor called Bingley' && ! $BIN/pp-generate -m $M --greedy --max-new-tokens 24 'Who has taken Netherfield Park?' | grep -q Bingley"

# --full / --init: pre-training a fresh model from a config, and full
# fine-tuning; the output is a Hugging Face directory pp-generate loads.
sed 's/"max_position_embeddings": 128/"max_position_embeddings": 256/' tests/fixtures/llama/tiny/config.json > $T/cfg.json
P="-q --init $T/cfg.json --tokenizer $M -d $T/pp40.tok --lr 3e-3 --max-steps 12 --batch-size 4 --eval-fraction 0.1 --eval-every 6 --weight-decay 0.1"
expect full_init_pretrains 0 '^$' "$TR $P -o $T/pre --log $T/pre.jsonl && awk -F'\"loss\": ' 'NR==1{split(\$2,a,\",\"); first=a[1]} END{split(\$2,b,\",\"); exit !(b[1] < first - 1)}' $T/pre.jsonl && test -s $T/pre/config.json && test -s $T/pre/tokenizer.model && grep -q '\"kind\": \"pre-training\"' $T/pre/pp-train.json"
expect full_output_runs_in_pp_generate 0 '' "$BIN/pp-generate -m $T/pre --greedy --max-new-tokens 5 'Who is Mr. Darcy?' > /dev/null"
$TR $P -o $T/pre5 --save-every 5 --log /dev/null
rm -rf $T/pre5/checkpoint-10 $T/pre5/model.safetensors
expect full_resume_is_bit_exact 0 '^$' "$TR $P -o $T/pre5 --resume && cmp $T/pre/model.safetensors $T/pre5/model.safetensors"
expect full_finetune 0 '^$' "$TR -q --full -m $M -d $T/pp40.tok -o $T/ft --lr 1e-3 --max-steps 6 --batch-size 4 --log $T/ft.jsonl && awk -F'\"loss\": ' 'NR==1{split(\$2,a,\",\"); first=a[1]} END{split(\$2,b,\",\"); exit !(b[1] < first)}' $T/ft.jsonl && $BIN/pp-generate -m $T/ft --max-new-tokens 3 hi > /dev/null"
$BIN/pp-quantize -q -o $T/m.nf4 $M
expect full_refuses_quantized 65 'unquantized' "$TR --full -m $T/m.nf4 -d $T/pp40.tok -o $T/fq --max-steps 1"
expect full_refuses_lora_options 64 'LoRA options' "$TR --full -m $M -d $T/pp40.tok -o $T/fq -r 8"
expect full_init_excludes_model 64 'exclude each other' "$TR --init $T/cfg.json -m $M -d $T/pp40.tok -o $T/fq"
