#!/bin/sh
# pp-tokenize from the command line: the pipeline, options, exit codes, --dump.
. tests/cli/lib.sh
F=$BIN/pp-format
P=$BIN/pp-tokenize

expect tokenize_help 0 '^$' "$P --help | grep -q 'Usage: pp-tokenize'"
expect tokenize_needs_tokenizer 64 '--tokenizer is required' "echo | $P -o $T/x"
expect tokenize_bad_number 64 'max-len wants' "echo | $P -t $TOK --max-len 512x -o $T/x"
expect tokenize_bad_threads 64 'threads wants' "echo | $P -t $TOK -j 0 -o $T/x"
expect tokenize_drop_long_needs_max_len 64 'needs --max-len' "echo | $P -t $TOK --drop-long -o $T/x"
expect tokenize_missing_tokenizer 66 'nonexistent' "echo | $P -t /nonexistent/tokenizer.model -o $T/x"
expect tokenize_bad_tokenizer 65 'not a SentencePiece model' "echo | $P -t data/pride_prejudice_eval.json -o $T/x"
expect tokenize_refuses_terminal 64 'refusing to write binary data to a terminal' \
    "script -qec '$P -t $TOK /dev/null' /dev/null > $T/tty.out; r=\$?; cat $T/tty.out >&2; exit \$r"

$F data/pride_prejudice_ift.json >"$T/pp.jsonl"
expect tokenize_pipeline 0 '^$' "$F data/pride_prejudice_ift.json | $P -t $TOK -o $T/pp.tok && test -s $T/pp.tok"
expect tokenize_output_is_zstd_safetensors 0 '^$' "zstd -t -q $T/pp.tok && zstd -dc $T/pp.tok | head -c 300 | grep -q '\"pp.kind\":\"tokens\"'"
expect tokenize_stdout_pipe 0 '^$' "$P -t $TOK < $T/pp.jsonl | cmp - $T/pp.tok"
expect tokenize_threads_do_not_change_output 0 '^$' "$P -j 1 -t $TOK $T/pp.jsonl -o $T/pp1.tok && $P -j 3 -t $TOK $T/pp.jsonl -o $T/pp3.tok && cmp $T/pp1.tok $T/pp.tok && cmp $T/pp3.tok $T/pp.tok"
expect tokenize_model_dir 0 '^$' "$P -t ../shared/models/llama2-tokenizer $T/pp.jsonl | cmp - $T/pp.tok"

expect dump_counts 0 'pp-tokenize: 961 records, [0-9]+ tokens \([0-9]+ prompt, [0-9]+ trained\)' "$P --dump -t $TOK $T/pp.tok > $T/dump.txt && test \$(wc -l < $T/dump.txt) -eq 961"
expect dump_marks_prompt_bos_eos 0 '' "head -n 1 $T/dump.txt | grep -q '^0	[0-9]*+[0-9]*	\\[\\[<s>### Instruction:\\\\n.*\\\\n### Response:\\\\n\\]\\].*</s>\$'"
expect dump_no_double_bos 0 '' "! grep -q '<s><s>' $T/dump.txt && test \$(grep -c '</s>\$' $T/dump.txt) -eq 961"
expect dump_without_tokenizer_prints_ids 0 '' "$P --dump $T/pp.tok | head -n 1 | grep -q '^0	[0-9]*+[0-9]*	\\[\\[1 [0-9 ]*\\]\\] [0-9 ]* 2\$'"
expect dump_other_tokenizer_refused 65 'another tokenizer' "$P --dump -t ../shared/models/stories260K/tokenizer.model $T/pp.tok"
expect dump_of_non_dataset 65 'invalid safetensors header|truncated' "$P --dump $T/pp.jsonl"

expect tokenize_no_eos 0 '' "head -n 3 $T/pp.jsonl | $P -t $TOK --no-eos | $P --dump -t $TOK | grep -vc '</s>\$' | grep -qx 3"
# The first three records have 31+33, 20+20 and 30+21 prompt+response tokens.
expect tokenize_max_len_truncates 0 '3 records truncated to 32 tokens' "head -n 3 $T/pp.jsonl | $P -t $TOK --max-len 32 | $P --dump | cut -f2 | tr '\n' ' ' | grep -qx '31+1 20+12 30+2 '"
expect tokenize_prompt_too_long_dropped 0 '1 record longer than 31 tokens dropped' "head -n 3 $T/pp.jsonl | $P -t $TOK --max-len 31 | $P --dump | cut -f2 | tr '\n' ' ' | grep -qx '20+11 30+1 '"
expect tokenize_max_len_drops 0 '2 records longer than 40 tokens dropped' "head -n 3 $T/pp.jsonl | $P -t $TOK --max-len 40 --drop-long | $P --dump | cut -f2 | grep -qx '20+20'"

printf '%s\n' '{"prompt": "a", "response": "b"}' '{"prompt": 1, "response": "b"}' >"$T/bad.jsonl"
expect tokenize_empty_records_kept 0 '' "printf '%s\\n' '{\"prompt\": \"\", \"response\": \"\"}' '{\"prompt\": \"\", \"response\": \"x\"}' | $P -t $TOK --no-bos --no-eos | $P --dump | cut -f2 | tr '\\n' ' ' | grep -qx '0+0 0+1 '"
expect tokenize_write_error_names_stdout 74 '^pp-tokenize: <stdout>: write error' "head -n 2 $T/pp.jsonl | $P -t $TOK > /dev/full"
expect tokenize_bad_record_line 65 '^pp-tokenize: .*bad.jsonl: field "prompt" is not a string \(line 2\)$' "$P -t $TOK $T/bad.jsonl -o $T/bad.tok"
expect tokenize_bad_input_leaves_no_output 0 '' "test ! -e $T/bad.tok && ! ls -A $T | grep -q bad.tok"
expect tokenize_broken_json 65 'invalid JSON \(line 1\)' "echo '{\"prompt\": ' | $P -t $TOK -o $T/x"
expect tokenize_missing_response 65 'no field "response" \(line 1\)' "echo '{\"prompt\": \"p\"}' | $P -t $TOK -o $T/x"

awk 'BEGIN{for(i=0;i<400;i++) print "Elizabeth walked " i " miles to Netherfield and Mr. Darcy noticed."}' >"$T/corpus.txt"
expect train_vocab 0 '' "$P --train-vocab 300 $T/corpus.txt -o $T/tok.model && test -s $T/tok.model"
expect train_vocab_tokenizer_works 0 '' "echo '{\"prompt\": \"Who walked?\", \"response\": \"Elizabeth walked 7 miles \\u00e9.\"}' | $P -t $T/tok.model | $P --dump -t $T/tok.model | grep -qF '[[<s>Who walked?]]Elizabeth walked 7 miles é.</s>'"
expect train_vocab_bad_size 64 'train-vocab wants' "$P --train-vocab 3 $T/corpus.txt -o $T/tok2.model"

