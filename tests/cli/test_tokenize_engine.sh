#!/bin/sh
# pp-tokenize's two encoders: pp's BPE and libsentencepiece give the same bytes.
. tests/cli/lib.sh
F=$BIN/pp-format
P=$BIN/pp-tokenize

expect engine_fast_by_default 0 "encoder: pp's BPE encoder" "$P -v -t $TOK /dev/null -o $T/empty.tok"
expect engine_library_on_request 0 'encoder: libsentencepiece \(PP_TOKENIZER=library\)' "PP_TOKENIZER=library $P -v -t $TOK /dev/null -o $T/empty.tok"
expect engines_write_identical_datasets 0 '' "$F data/pride_prejudice_ift.json > $T/pp.jsonl && $P -t $TOK $T/pp.jsonl -o $T/fast.tok && PP_TOKENIZER=library $P -t $TOK $T/pp.jsonl -o $T/lib.tok && cmp $T/fast.tok $T/lib.tok"
