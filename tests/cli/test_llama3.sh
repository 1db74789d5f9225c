#!/bin/sh
# Llama 3.x configurations from the command line (tests/fixtures/llama3,
# gen_llama3.py): greedy text that stops at the third of three eos ids,
# another RoPE scaling refused by name, pp-merge keeping rope_parameters and
# the eos list, and the merged model computing what the adapter does unmerged.
. tests/cli/lib.sh
G=$BIN/pp-generate
MG=$BIN/pp-merge
U=${UNIT_DIR:-build/tests}
L3=tests/fixtures/llama3
PROMPT='Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball'
# the model with stories260K's tokenizer (its vocabulary is the model's)
mkdir -p $T/l3 && cp $L3/tiny/config.json $L3/tiny/generation_config.json $L3/tiny/model.safetensors ../shared/models/stories260K/tokenizer.model $T/l3/

# transformers' greedy continuation (llama3 RoPE, past original_max_position_embeddings), up to eos id 309, the list's third
expect llama3_greedy_text_stops_at_third_eos 0 '^$' "$G -m $T/l3 --raw --greedy --max-new-tokens 40 '$PROMPT' | cmp - $L3/greedy_eos.txt"
expect llama3_greedy_stop_reason_eos 0 '^$' "$G -m $T/l3 --raw --greedy --max-new-tokens 40 --json '$PROMPT' | grep -q '\"tokens\": 20, \"stop_reason\": \"eos\"'"

# another RoPE scaling: exit 65, named
mkdir -p $T/yarn && cp $T/l3/* $T/yarn/ && sed 's/"rope_type": "llama3"/"rope_type": "yarn"/' $L3/tiny/config.json > $T/yarn/config.json
expect llama3_unknown_rope_type_refused 65 'rope_parameters "yarn" is not implemented' "$G -m $T/yarn --raw --greedy --max-new-tokens 2 'Once'"

# pp-merge: config.json as the base's (rope_parameters, eos list), and from parsed values for a base on stdin
expect llama3_merge 0 '^$' "$MG -q --dtype f32 -m $L3/tiny -a $L3/adapter -o $T/m3"
expect llama3_merge_keeps_rope_and_eos 0 '' "$U/test_llama3 config $T/m3 && grep -q '\"rope_parameters\"' $T/m3/config.json && cmp $L3/tiny/generation_config.json $T/m3/generation_config.json"
expect llama3_merged_logits_equal_unmerged 0 '' "$U/test_merge logits $T/m3 $L3/tiny $L3/adapter"
expect llama3_merge_base_from_stdin 0 '' "$BIN/pp-quantize -q -t bf16 -o $T/l3.bf16 $T/l3 && $MG -q -m - -a $L3/adapter -o $T/sin < $T/l3.bf16 && $U/test_llama3 config $T/sin && grep -q '\"rope_scaling\"' $T/sin/config.json"

# the eos list only in generation_config.json: read from the directory, and
# carried by pp-quantize into the model file (metadata generation_config)
mkdir -p $T/gen && cp $T/l3/* $T/gen/ && tr '\n' '\r' < $L3/tiny/config.json | sed 's/"eos_token_id": \[[^]]*\]/"eos_token_id": 2/' | tr '\r' '\n' > $T/gen/config.json
expect llama3_eos_list_from_generation_config 0 '^$' "grep -q '\"eos_token_id\": 2,' $T/gen/config.json &&
    $G -m $T/gen --raw --greedy --max-new-tokens 40 --json '$PROMPT' | grep -q '\"tokens\": 20, \"stop_reason\": \"eos\"'"
expect llama3_eos_list_kept_by_quantize 0 '^$' "$BIN/pp-quantize -q -t bf16 -o $T/gen.bf16 $T/gen &&
    $G -m $T/gen.bf16 --raw --greedy --max-new-tokens 40 --json '$PROMPT' | grep -q '\"stop_reason\": \"eos\"'"
expect llama3_merge_from_model_file_writes_eos_list 0 '' "$MG -q -m $T/gen.bf16 -a $L3/adapter -o $T/mg && grep -q '\"eos_token_id\": \[2, 300, 309\]' $T/mg/generation_config.json"
