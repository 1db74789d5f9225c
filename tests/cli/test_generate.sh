#!/bin/sh
# pp-generate from the command line: greedy text, sampling, stops, JSON, errors.
. tests/cli/lib.sh
G=$BIN/pp-generate
M=../shared/models/stories260K

expect generate_help 0 '^$' "$G --help | grep -q 'Usage: pp-generate'"
expect generate_needs_model 64 '-m MODEL is required' "$G hello"
expect generate_missing_model 66 'No such file|cannot open' "$G -m /nonexistent/model hello"
expect generate_no_tokenizer 66 'no tokenizer.json or tokenizer.model with this model' "$G -m tests/fixtures/llama/tiny hello"
expect generate_bad_top_p 64 'top-p wants' "$G -m $M --top-p 0 hello"
expect generate_bad_temperature 64 'temperature wants' "$G -m $M --temperature hot hello"

# transformers' greedy continuation of "Once upon a time" (tests/fixtures/llama, gen_llama.py)
expect generate_greedy_golden 0 '^$' "test \"\$($G -m $M --raw --greedy --max-new-tokens 30 'Once upon a time')\" = ', there was a little girl named Lily. She loved to play outside in the park. One day,'"
expect generate_echo 0 '^$' "$G -m $M --raw --greedy --echo --max-new-tokens 5 'Once upon a time' | grep -q '^Once upon a time, there was'"
expect generate_stop_string 0 '^$' "$G -m $M --raw --greedy --stop . --json 'Once upon a time' | grep -qF '\"response\": \", there was a little girl named Lily\", \"tokens\": 11, \"stop_reason\": \"stop\"}'"
expect generate_max_length 0 '^$' "$G -m $M --raw --max-length 10 --json 'Once upon a time' | grep -q '\"tokens\": 5, \"stop_reason\": \"length\"'"
expect generate_same_seed_same_text 0 '^$' "a=\$($G -m $M --raw --seed 5 --max-new-tokens 40 'The dog'); b=\$($G -m $M --raw --seed 5 --max-new-tokens 40 'The dog'); c=\$($G -m $M --raw --seed 6 --max-new-tokens 40 'The dog'); test \"\$a\" = \"\$b\" && test \"\$a\" != \"\$c\""
printf '%s\n' '{"prompt": "### Instruction:\nWho is Mr. Darcy?\n\n### Response:\n", ' > $T/want
expect generate_template_on_lines 0 '^$' "echo 'Who is Mr. Darcy?' | $G -m $M --greedy --max-new-tokens 3 --json | cut -c1-69 | cmp - $T/want"
expect generate_pp_format_records 0 '^$' "echo 'Who is Mr. Darcy?' | $BIN/pp-format --lines | $G -m $M --greedy --max-new-tokens 3 --json | cut -c1-69 | cmp - $T/want"
expect generate_two_prompts_two_lines 0 '^$' "test \$($G -m $M --raw --greedy --max-new-tokens 8 'Once' 'The cat' | wc -l) -eq 2"
expect generate_prompt_too_long 65 'a prompt of [0-9]+ tokens does not fit the context of 512' "awk 'BEGIN{for(i=0;i<700;i++) printf \"word \"; print \"\"}' | $G -m $M --raw --max-new-tokens 2"
expect generate_nf4_model 0 '' "$BIN/pp-quantize -q -o $T/m.nf4 $M && $G -m $T/m.nf4 --raw --greedy --max-new-tokens 12 'Once upon a time' | grep -q '^, there was a little girl named Lily'"
expect generate_verbose_speed 0 'generation [0-9]+ tokens at [0-9.]+ tokens/s' "$G -v -m $M --raw --greedy --max-new-tokens 8 'Once'"

# --score: each answer's key-word recall against the record's response, and the mean
printf '%s\n' '{"prompt": "Once upon a time", "response": "A little girl named Lily."}' \
    '{"prompt": "Once upon a time", "response": "Pemberley, in Derbyshire."}' '{"prompt": "Once", "response": "a the it"}' >"$T/score.jsonl"
expect generate_score 0 '^pp-generate: key-word recall 0.5000, the mean over 2 scored prompts$' "$G -m $M --greedy --stop . --score < $T/score.jsonl > $T/score.out && grep -c '\"reference\": ' $T/score.out | grep -qx 3 && grep -q 'Lily.\", \"recall\": 1.0000}' $T/score.out && grep -q 'Derbyshire.\", \"recall\": 0.0000}' $T/score.out && grep -q '\"recall\": null}' $T/score.out"
expect generate_score_wants_records 65 'score wants pp-format JSON records' "echo 'Who?' | $G -m $M --score"
expect generate_score_wants_response 65 'score wants a string "response"' "echo '{\"prompt\": \"Who?\"}' | $G -m $M --score"
expect generate_score_not_arguments 64 'score reads pp-format records' "$G -m $M --score 'Who?'"
# streaming never shows an unfinished character (byte-fallback pieces) and matches --json
cp -r tests/fixtures/llama/chain $T/chain && cp $M/tokenizer.model $T/chain/
printf '\346\274\242b\n' > $T/chain4.want
expect generate_streams_whole_characters 0 '^$' "$G -m $T/chain --greedy --raw --max-new-tokens 4 a | cmp - $T/chain4.want"
expect generate_stream_equals_json 0 '^$' "$G -m $T/chain --greedy --raw --max-new-tokens 6 --json a | grep -qF '\"response\": \"漢b a'"
