#!/bin/sh
# pp-format from the command line: shapes, templates, exit codes, messages.
. tests/cli/lib.sh
F=$BIN/pp-format

expect format_help 0 '^$' "$F --help | grep -q 'Usage: pp-format'"
expect format_version 0 '^$' "$F --version | grep -q '^pp-format (pp) '"
expect format_bad_option 64 "^pp-format: unrecognized option '--bogus'$" "$F --bogus"
expect format_missing_argument 64 "^pp-format: option '-t' needs an argument$" "$F -t"
expect format_two_inputs 64 'one input at most' "$F a b"
expect format_missing_input 66 '^pp-format: /nonexistent.json: cannot open' "$F /nonexistent.json"

printf '%s\n' '[{"question": "Who is Mr. Darcy?", "answer": "A proud gentleman."}]' >"$T/qa.json"
expect format_classic_bytes 0 '^$' "$F $T/qa.json > $T/qa.jsonl && printf '%s\n' '{\"prompt\": \"### Instruction:\\nWho is Mr. Darcy?\\n\\n### Response:\\n\", \"response\": \"A proud gentleman.\"}' | cmp - $T/qa.jsonl"
expect format_stdin_dash 0 '^$' "$F - < $T/qa.json | cmp - $T/qa.jsonl"
expect format_output_file 0 '^$' "$F $T/qa.json -o $T/out.jsonl && cmp $T/out.jsonl $T/qa.jsonl"
expect format_zstd_input 0 '^$' "zstd -q -c $T/qa.json > $T/qa.json.zst && $F $T/qa.json.zst | cmp - $T/qa.jsonl"
expect format_refuses_overwriting_input 64 'is the input' "$F $T/qa.json -o $T/qa.json"
expect format_uncreatable_output 73 'cannot create' "$F $T/qa.json -o /nonexistent/dir/out.jsonl"

expect format_write_error_names_stdout 74 '^pp-format: <stdout>: write error' "$F $T/qa.json > /dev/full"
expect format_fifo_output_stays_a_fifo 0 '^$' "mkfifo $T/fifo && { cat $T/fifo > $T/fifo.out & } && $F $T/qa.json -o $T/fifo && wait && test -p $T/fifo && cmp $T/fifo.out $T/qa.jsonl"
expect format_symlink_output_stays_a_link 0 '^$' "ln -s $T/real.jsonl $T/link.jsonl && $F $T/qa.json -o $T/link.jsonl && test -L $T/link.jsonl && cmp $T/real.jsonl $T/qa.jsonl"
expect format_grouped_bad_option 64 "^pp-format: unrecognized option '-x'\$" "$F -qx"
expect format_ignored_hangup_stays_ignored 0 '' "mkfifo $T/hup.in && { (trap '' HUP; exec $F --lines $T/hup.in -o $T/hup.out) & pid=\$!; exec 3>$T/hup.in; sleep 0.3; kill -HUP \$pid; sleep 0.3; echo 'Who is Mr. Darcy?' >&3; exec 3>&-; wait \$pid; } && grep -q Darcy $T/hup.out"
expect format_all_pp_records 0 '^$' "test \$($F data/pride_prejudice_ift.json | wc -l) -ge 500"
expect format_eval_records 0 '^$' "test \$($F data/pride_prejudice_eval.json | wc -l) -eq 50"

printf '%s\n' '{"instruction": "Add", "input": "1 2", "output": "3"}' '{"prompt": "P", "completion": "C"}' \
    '{"text": "Plain text."}' \
    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}' \
    '{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}' >"$T/shapes.jsonl"
expect format_every_shape 0 '^$' "$F $T/shapes.jsonl > $T/shapes.out && test \$(wc -l < $T/shapes.out) -eq 5 && grep -q '### Input:\\\\n1 2' $T/shapes.out && grep -q '\"prompt\": \"\", \"response\": \"Plain text.\"' $T/shapes.out"

expect format_custom_template 0 '^$' "$F -t '<q>{instruction}</q>\\n{response}' $T/qa.json | grep -qF '{\"prompt\": \"<q>Who is Mr. Darcy?</q>\\n\", \"response\": \"A proud gentleman.\"}'"
printf 'Q: {instruction}\\n{response}' >"$T/tmpl.txt"
printf '%s\n' '{"prompt": "Q: Who is Mr. Darcy?\\n", "response": "A proud gentleman."}' >"$T/tmpl.want"
expect format_template_file_verbatim 0 '^$' "$F --template-file $T/tmpl.txt $T/qa.json | cmp - $T/tmpl.want"
expect format_unknown_template 64 'unknown template "chatml"' "$F -t chatml $T/qa.json"
expect format_alpaca_template 0 '^$' "$F -t alpaca $T/qa.json | grep -q '^{\"prompt\": \"Below is an instruction'"
expect format_field_flags 0 '^$' "echo '{\"q\": \"x\", \"a\": \"y\"}' | $F --question-field q --answer-field a | grep -qF '\"response\": \"y\"'"
printf '%s\n' '{"prompt": "", "response": "One,\ntwo."}' '{"prompt": "", "response": "Three."}' >"$T/para.want"
expect format_paragraphs 0 '^$' "printf 'One,\\r\\ntwo.\\n \\n\\n\\nThree.' | $F --paragraphs | cmp - $T/para.want"
expect format_paragraphs_not_with_lines 64 'exclude each other' "$F --paragraphs --lines"
expect format_paragraphs_bad_utf8 65 'invalid UTF-8 at column 2 \(line 3\)' "printf 'a\\n\\nb\\377\\n' | $F --paragraphs -o $T/bad.jsonl; rc=\$?; test ! -e $T/bad.jsonl && exit \$rc"
expect format_select 0 '^$' "$F --select 2,4-5 data/pride_prejudice_ift.json > $T/sel.jsonl && $F data/pride_prejudice_ift.json | sed -n '2p;4,5p' | cmp - $T/sel.jsonl"
expect format_select_paragraphs 0 '^$' "printf 'a\\n\\nb\\n\\nc\\n' | $F --paragraphs --select 2 | grep -qx '{\"prompt\": \"\", \"response\": \"b\"}'"
expect format_select_lines 0 '^$' "printf 'q1\\n\\nq2\\nq3\\n' | $F --lines --select 2 | grep -c q2 | grep -qx 1"
expect format_select_bad_list 64 'select wants record numbers' "$F --select 3-1 $T/qa.json"
expect format_select_zero 64 'select wants record numbers' "$F --select 0 $T/qa.json"
expect format_select_unparsable_still_fatal 65 'line 2' "printf '%s\\n' '{\"question\": \"a\", \"answer\": \"b\"}' '{bad' | $F --select 1"
expect format_lines 0 '^$' "printf 'Who is Mr. Darcy?\n\nWhere is Pemberley?\n' | $F --lines | grep -c '\"response\": \"\"' | grep -qx 2"

printf '%s\n' '{"question": "ok", "answer": "fine"}' '{"question": 42, "answer": "x"}' '{broken' \
    '{"question": "q"}' '{"question": "good", "answer": "again"}' >"$T/bad.jsonl"
expect format_bad_type_line 65 '^pp-format: .*bad.jsonl: field "question" is a number, expected a string \(line 2\)$' "$F $T/bad.jsonl"
expect format_skip_bad_counts 0 'skipped 3 bad records' "$F --skip-bad $T/bad.jsonl | wc -l | grep -qx 2"
expect format_broken_json_line 65 'invalid JSON at column .* \(line 1\)' "printf '{\"question\": \"a\",\n' | $F"
expect format_array_record_number 65 '\(record 2\)' "echo '[{\"question\": \"a\", \"answer\": \"b\"}, {\"question\": \"c\"}]' | $F"
expect format_invalid_utf8 65 'invalid UTF-8 .*\(line 1\)' "printf '{\"question\": \"caf\\351\", \"answer\": \"b\"}\n' | $F"
expect format_no_usable_field 65 'no usable field' "echo '{\"title\": \"x\"}' | $F"
expect format_failure_leaves_no_file 65 '' "$F $T/bad.jsonl -o $T/partial.jsonl; test ! -e $T/partial.jsonl && test -z \"\$(ls -A $T | grep partial)\" && exit 65"

# --chat: conversations for a chat template
printf '%s\n' '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}' >"$T/chat1.want"
expect format_chat_question_answer 0 '^$' "echo '{\"question\": \"Hi\", \"answer\": \"Hello.\"}' | $F --chat --system 'Be brief.' | cmp - $T/chat1.want"
printf '%s\n' '{"messages": [{"role": "user", "content": "Add\n\n1 2"}, {"role": "assistant", "content": "3"}]}' \
    '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]}' \
    '{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}' \
    '{"messages": [{"role": "user", "content": "P"}, {"role": "assistant", "content": "C"}]}' >"$T/chat2.want"
printf '%s\n' '{"instruction": "Add", "input": "1 2", "output": "3"}' \
    '{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}, {"from": "human", "value": "Q2"}]}' \
    '{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}' \
    '{"prompt": "P", "completion": "C", "extra": 1}' >"$T/chat2.jsonl"
expect format_chat_shapes 0 '^$' "$F --chat $T/chat2.jsonl | cmp - $T/chat2.want"
expect format_chat_own_system_wins 0 '^$' "$F --chat --system X $T/chat2.jsonl | sed -n 3p | grep -qF '[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\"'"
expect format_chat_system_first 0 '^$' "$F --chat --system X $T/chat2.jsonl | grep -c '^{\"messages\": \[{\"role\": \"system\"' | grep -qx 4"
expect format_chat_lines 0 '^$' "printf 'Who is Mr. Darcy?\\n\\nWhere?\\n' | $F --chat --lines | sed -n 2p | grep -qxF '{\"messages\": [{\"role\": \"user\", \"content\": \"Where?\"}]}'"
expect format_chat_classic_set 0 '^$' "test \$($F --chat data/pride_prejudice_ift.json | grep -c '\"role\": \"assistant\"') -ge 500"
expect format_chat_text_record 65 'record is plain text; --chat wants a conversation .*\(line 2\)$' "printf '%s\\n' '{\"question\": \"a\", \"answer\": \"b\"}' '{\"text\": \"x\"}' | $F --chat"
expect format_chat_bad_role 65 'messages\[1\]: unknown role "tool" \(record 1\)$' "echo '[{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"tool\", \"content\": \"b\"}]}]' | $F --chat"
expect format_chat_no_user 65 'has no user turn \(line 1\)' "echo '{\"messages\": [{\"role\": \"system\", \"content\": \"a\"}]}' | $F --chat"
expect format_chat_two_users 65 'two user turns in a row' "echo '{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}' | $F --chat"
expect format_chat_late_system 65 'a system message must come first' "echo '{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"b\"}]}' | $F --chat"
expect format_chat_skip_bad 0 'skipped 1 bad record' "printf '%s\\n' '{\"text\": \"x\"}' '{\"question\": \"a\", \"answer\": \"b\"}' | $F --chat --skip-bad | grep -c messages | grep -qx 1"
expect format_chat_not_with_template 64 'no prompt template' "$F --chat -t alpaca $T/qa.json"
expect format_chat_not_with_paragraphs 64 'exclude each other' "$F --chat --paragraphs $T/qa.json"
expect format_system_needs_chat 64 '^pp-format: --system needs --chat$' "$F --system x $T/qa.json"
