#!/bin/sh
# pp-merge from the command line: the merge against PEFT's merge_and_unload,
# shards, tied embeddings, NF4 bases, the base checks, errors.
. tests/cli/lib.sh
MG=$BIN/pp-merge
U=${UNIT_DIR:-build/tests}
TINY=tests/fixtures/llama/tiny
AD=tests/fixtures/lora/peft-adapter
S=../shared/models/stories260K
SA=tests/fixtures/merge/stories-adapter
G=$BIN/pp-generate
# $T/hdr FILE: the JSON header of a safetensors file
printf '%s\n' '#!/bin/sh' 'n=$(od -An -tu8 -N8 "$1" | tr -d " ")' 'head -c $((8 + n)) "$1" | tail -c "$n"' > $T/hdr
chmod +x $T/hdr

expect merge_help 0 '^$' "$MG --help | grep -q 'Usage: pp-merge'"
expect merge_version 0 '^$' "$MG --version | grep -q '^pp-merge (pp) '"
expect merge_needs_args 64 'are required' "$MG -m $TINY -o $T/x"
expect merge_bad_dtype 64 'dtype wants f32, bf16 or f16' "$MG -m $TINY -a $AD -o $T/x --dtype f8"
expect merge_bad_shard_size 64 'max-shard-size wants a size' "$MG -m $TINY -a $AD -o $T/x --max-shard-size 12x"
expect merge_refuses_base_dir 64 'is the base model' "$MG -m $TINY -a $AD -o $TINY"
expect merge_missing_base 66 'No such file|cannot open' "$MG -m /nonexistent/model -a $AD -o $T/x"
expect merge_missing_adapter 66 'adapter_config.json' "$MG -m $TINY -a /nonexistent -o $T/x"
expect merge_bad_output 73 'cannot create' "$MG -m $TINY -a $AD -o /nonexistent/dir/out"
expect merge_failure_leaves_nothing 0 '' "test ! -e $T/x"

# the merge itself: PEFT's merge_and_unload (gen_merge.py) within 1e-6, the rest byte for byte
expect merge_f32 0 '^$' "$MG -q --dtype f32 -m $TINY -a $AD -o $T/m && test -s $T/m/model.safetensors && test ! -e $T/m/model.safetensors.index.json"
expect merge_equals_peft 0 '' "$U/test_merge ref $T/m"
mkdir -p $T/zero && cp $AD/adapter_model.safetensors $T/zero/ && sed 's/"lora_alpha": 8/"lora_alpha": 0/' $AD/adapter_config.json > $T/zero/adapter_config.json
expect merge_check_catches_a_wrong_merge 0 '' "$MG -q --dtype f32 -m $TINY -a $T/zero -o $T/mz && ! $U/test_merge ref $T/mz"
expect merge_logits_equal_unmerged 0 '' "$U/test_merge logits $T/m $TINY $AD"
expect merge_config_dtype 0 '^$' "grep -q '\"dtype\":.*\"float32\"' $T/m/config.json && grep -q '\"num_hidden_layers\":.*2' $T/m/config.json && cmp $TINY/generation_config.json $T/m/generation_config.json"
expect merge_default_dtype_of_base 0 '^$' "$MG -q -m tests/fixtures/llama/tiny-bf16 -a $AD -o $T/mb && grep -q '\"dtype\":.*\"bfloat16\"' $T/mb/config.json && $T/hdr $T/mb/model.safetensors | grep -q BF16 && ! $T/hdr $T/mb/model.safetensors | grep -q F32"
expect merge_sharded_base 0 '' "$MG -q --dtype f32 -m tests/fixtures/llama/tiny-sharded -a $AD -o $T/msb && cmp $T/m/model.safetensors $T/msb/model.safetensors"

# shards: huggingface_hub's split, an index that pp (and transformers) load
expect merge_shards 0 '' "$MG -q --max-shard-size 200KB -m $TINY -a $AD -o $T/sh && test \$(ls $T/sh/model-0000?-of-00004.safetensors | wc -l) -eq 4 && test ! -e $T/sh/model.safetensors"
expect merge_shard_index 0 '^$' "grep -q '\"total_size\": 857344' $T/sh/model.safetensors.index.json && grep -q '\"lm_head.weight\": \"model-00003-of-00004.safetensors\"' $T/sh/model.safetensors.index.json && grep -q '\"model.norm.weight\": \"model-00004-of-00004.safetensors\"' $T/sh/model.safetensors.index.json"
expect merge_shards_load 0 '' "$U/test_merge ref $T/sh && $U/test_merge logits $T/sh $TINY $AD"
expect merge_rerun_removes_stale_shards 0 '' "$MG -q --dtype f32 -m $TINY -a $AD -o $T/sh && test -s $T/sh/model.safetensors && ! ls $T/sh | grep -q -- '-of-\\|index' && $U/test_merge ref $T/sh"

# a tied model stays tied; the merged model writes the text the adapter writes unmerged
expect merge_tied 0 '' "$T/hdr $T/m/model.safetensors | grep -q '\"lm_head.weight\"' && $MG -q -m $S -a $SA -o $T/st && ! $T/hdr $T/st/model.safetensors | grep -q lm_head && grep -q '\"tie_word_embeddings\":.*true' $T/st/config.json && cmp $S/tokenizer.model $T/st/tokenizer.model"
expect merge_tied_logits 0 '' "$U/test_merge logits $T/st $S $SA"
expect merge_greedy_text 0 '^$' "a=\$($G -m $T/st --raw --greedy --max-new-tokens 30 'Once upon a time'); b=\$($G -m $S -a $SA --raw --greedy --max-new-tokens 30 'Once upon a time'); c=\$($G -m $S --raw --greedy --max-new-tokens 30 'Once upon a time'); test \"\$a\" = \"\$b\" && test \"\$a\" != \"\$c\""

# a quantized base: dequantized, bf16 out by default, the norm table with -v
$BIN/pp-quantize -q -o $T/s.nf4 $S
expect merge_nf4_base_table 0 'module +\|s\*B\*A\|_F +\|W.\|_F +requant_F' "$MG -v -m $T/s.nf4 -a $SA -o $T/sn"
expect merge_nf4_base_rows 0 '' "$MG -v -m $T/s.nf4 -a $SA -o $T/sn 2>$T/table && grep -Eq 'model.layers.4.mlp.down_proj.weight +[0-9.]+e[-+][0-9]+ ' $T/table && test \$(grep -c 'proj.weight  ' $T/table) -eq 35"
expect merge_nf4_base_bf16 0 '^$' "grep -q '\"dtype\":.*\"bfloat16\"' $T/sn/config.json && $G -m $T/sn --raw --greedy --max-new-tokens 12 'Once upon a time' | grep -q '^, there was'"
expect merge_nf4_base_f32_logits 0 '' "$MG -q --dtype f32 -m $T/s.nf4 -a $SA -o $T/snf && $U/test_merge logits $T/snf $T/s.nf4 $SA"
expect merge_base_from_stdin 0 '' "$MG -q --dtype f32 -m - -a $SA -o $T/sin < $T/s.nf4 && cmp $T/snf/model.safetensors $T/sin/model.safetensors && $G -m $T/sin --raw --greedy --max-new-tokens 4 'Once' >/dev/null"
# merged, then quantized again: pp-generate runs the result
expect merge_then_quantize 0 '' "$BIN/pp-quantize -q -o $T/sq.nf4 $T/st && $G -m $T/sq.nf4 --raw --greedy --max-new-tokens 12 'Once upon a time' | grep -q ."

# the warning when the adapter is smaller than the requantization error
mkdir -p $T/small && cp $SA/adapter_model.safetensors $T/small/ && sed 's/"lora_alpha": 8/"lora_alpha": 0.01/' $SA/adapter_config.json > $T/small/adapter_config.json
expect merge_warns_small_adapter 0 'warning: in 35 of 35 adapted modules .* below the error of quantizing the merged weight to nf4' "$MG -m $S -a $T/small -o $T/x1"
expect merge_quiet 0 '^$' "$MG -q -m $S -a $T/small -o $T/x1"

# base and adapter must match: shapes, and pp-train.json's base digest
expect merge_mismatched_adapter 65 'expected a float .* does not fit base' "$MG -m $S -a $AD -o $T/x2"
mkdir -p $T/pa && cp $SA/* $T/pa/
printf '{"base_sha256": "%064d", "base_quant": "f32", "tokenizer_sha256": null}\n' 0 > $T/pa/pp-train.json
expect merge_other_base 65 'trained on another f32 base .*--force' "$MG -m $S -a $T/pa -o $T/x3"
expect merge_other_base_forced 0 'warning: the adapter was trained on another f32 base' "$MG --force -m $S -a $T/pa -o $T/x3 && test -s $T/x3/model.safetensors"
expect merge_other_quant_is_a_note 0 'note: the adapter was trained on a f32 base, this base is nf4' "$MG -v -m $T/s.nf4 -a $T/pa -o $T/x4"
# an adapter pp-train wrote: its pp-train.json names this base
$BIN/pp-format data/pride_prejudice_ift.json | head -n 8 | $BIN/pp-tokenize -q -t $S -o $T/pp8.tok
expect merge_pp_train_adapter 0 'note: base_sha256 matches pp-train.json' "$BIN/pp-train -q -m $S -d $T/pp8.tok -o $T/tr --epochs 1 --batch-size 4 && test -s $T/tr/pp-train.json && $MG -v -m $S -a $T/tr -o $T/x6"
printf '{"base_sha256": 5}\n' > $T/pa/pp-train.json
expect merge_bad_record 65 'pp-train.json: "base_sha256" must be a string' "$MG -m $S -a $T/pa -o $T/x5"

# --help and the man page agree
expect merge_man_lists_options 0 '^$' "for o in \$($MG --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do grep -q -- \"\$(printf '%s' \"\$o\" | sed 's/-/\\\\\\\\-/g')\" man/man1/pp-merge.1 || { echo \"missing \$o\"; exit 1; }; done"
