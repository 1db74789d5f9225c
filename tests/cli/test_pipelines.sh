#!/bin/sh
# The pipelines as make targets: every stage runs, answers come out for each
# question, a second run has nothing to do, and a change to the data redoes
# formatting, tokenizing and training but not quantizing.
. tests/cli/lib.sh
M=../shared/models/stories260K
# 30 records as JSON Lines with their own field names
$BIN/pp-format data/pride_prejudice_ift.json | head -n 30 | sed 's/"prompt"/"p"/; s/"response"/"r"/' > $T/mine.jsonl
MK="make -s -f pipelines/custom-dataset.mk BIN=$BIN MODEL=$M DATA=$T/mine.jsonl QUESTION_FIELD=p ANSWER_FIELD=r TEMPLATE=raw EPOCHS=1 MAXLEN=128 MAXNEW=6 OUT=$T/pipe"
expect pipeline_runs 0 '' "$MK answers merged > $T/answers.out && test -s $T/pipe/adapter/adapter_model.safetensors && test -s $T/pipe/merged/config.json && test -s $T/pipe/model.nf4 && test \$(grep -c '^adapter: ' $T/pipe/answers.txt) -eq \$(grep -c . pipelines/questions.txt)"
expect pipeline_second_run_is_a_no_op 0 '' "$MK -q answers merged"
touch $T/mine.jsonl
expect pipeline_redoes_only_what_changed 0 '' "$MK -n answers > $T/plan && grep -q pp-train $T/plan && grep -q pp-tokenize $T/plan && ! grep -q pp-quantize $T/plan"
expect pipeline_needs_a_model 2 'MODEL=' "make -s -f pipelines/pride-prejudice.mk BIN=$BIN OUT=$T/x"
