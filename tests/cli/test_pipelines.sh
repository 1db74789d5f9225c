#!/bin/sh
# The pipelines as make targets: every stage runs, answers come out for each
# question, a second run has nothing to do, and a change to the data redoes
# formatting, tokenizing and training but not quantizing.
. tests/cli/lib.sh
M=../shared/models/stories260K
# 30 records as JSON Lines with their own field names
$BIN/pp-format data/pride_prejudice_ift.json | head -n 30 | sed 's/"prompt"/"p"/; s/"response"/"r"/' > $T/mine.jsonl
$BIN/pp-format data/pride_prejudice_eval.json | sed 's/"prompt"/"p"/; s/"response"/"r"/' > $T/mine-eval.jsonl
MK="make -s -f pipelines/custom-dataset.mk EVAL=$T/mine-eval.jsonl BIN=$BIN MODEL=$M DATA=$T/mine.jsonl QUESTION_FIELD=p ANSWER_FIELD=r TEMPLATE=raw EPOCHS=1 MAXLEN=128 MAXNEW=6 OUT=$T/pipe"
expect pipeline_runs 0 '' "$MK answers merged > $T/answers.out && test -s $T/pipe/adapter/adapter_model.safetensors && test -s $T/pipe/merged/config.json && test -s $T/pipe/model.nf4 && test \$(grep -c '^adapter: ' $T/pipe/answers.txt) -eq \$(grep -c . pipelines/questions.txt)"
expect pipeline_second_run_is_a_no_op 0 '' "$MK -n answers merged > $T/plan0 && ! grep -q 'bin/pp-' $T/plan0"
touch $T/mine.jsonl
expect pipeline_redoes_only_what_changed 0 '' "$MK -n answers > $T/plan && grep -q pp-train $T/plan && grep -q pp-tokenize $T/plan && ! grep -q pp-quantize $T/plan"
expect pipeline_needs_a_model 2 'MODEL=' "make -s -f pipelines/pride-prejudice.mk BIN=$BIN OUT=$T/x"

# scoring: the held-out set and the training records, base and adapter side by side
expect pipeline_scores 0 '' "$MK SCORE_TRAIN=1 MAXNEW=4 scores > $T/scores.out && grep -Eq '^  held-out questions .* [0-9.]+  [0-9.]+   \\(50 answers\\)$' $T/pipe/scores.txt && grep -Eq '^  training records .* \\(30 answers\\)$' $T/pipe/scores.txt && test \$(grep -c '\"recall\": ' $T/pipe/train-adapter.jsonl) -eq 30"
# a changed variable redoes the stages it affects, and only those
expect pipeline_variable_change_redoes_training 0 '' "$MK -n answers EPOCHS=2 > $T/plan2 && grep -q pp-train $T/plan2 && ! grep -q pp-tokenize $T/plan2 && ! grep -q pp-format $T/plan2"
expect pipeline_select_redoes_formatting 0 '' "$MK -n answers SELECT=1-10 > $T/plan3 && grep -q 'pp-format .*--select 1-10' $T/plan3"

# the base-model recipe, shrunk (a tiny config, one epoch): it runs, the model
# it makes generates, and a second build gives the same bytes
printf '%s\n' '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,' \
    '"intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 2,' \
    '"vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "tie_word_embeddings": true}' > $T/tiny.json
BM="make -s -f pipelines/base-model.mk BIN=$BIN CONFIG=$T/tiny.json VOCAB=512 EPOCHS=1 BATCH=32"
expect base_model_recipe 0 '' "$BM OUT=$T/bm1 $T/bm1/model.bf16 && $BIN/pp-generate -q -m $T/bm1/model.bf16 --raw --greedy --max-new-tokens 3 'Mr. Darcy' | grep -q . && grep -q eval_loss $T/bm1/train-log.jsonl"
expect base_model_recipe_is_reproducible 0 '' "$BM OUT=$T/bm2 $T/bm2/model.bf16 && cmp $T/bm1/model.bf16 $T/bm2/model.bf16 && cmp $T/bm1/tokenizer.model $T/bm2/tokenizer.model"
expect plot_loss_png 0 '' "! command -v gnuplot >/dev/null || { sh pipelines/plot-loss.sh $T/bm1/train-log.jsonl $T/loss.png && test \"\$(head -c 4 $T/loss.png | tail -c 3)\" = PNG; }"
