#!/bin/sh
# pp-quantize from the command line: outputs, the report, bad model directories.
. tests/cli/lib.sh
Q=$BIN/pp-quantize
M=../shared/models/stories260K

expect quantize_help 0 '^$' "$Q --help | grep -q 'Usage: pp-quantize'"
expect quantize_needs_output 64 '-o OUT is required' "$Q $M"
expect quantize_bad_type 64 'type wants' "$Q -t nf3 -o $T/x $M"
expect quantize_bad_blocksize 64 'blocksize wants a power of two' "$Q -b 48 -o $T/x $M"
expect quantize_dq_needs_4bit 64 'double-quant goes with nf4 or fp4' "$Q -t int8 --double-quant -o $T/x $M"
expect quantize_missing_dir 66 'No such file' "$Q -o $T/x /nonexistent/model"
expect quantize_nf4_report 0 'q_proj +5 .* [0-9.]+e-02$' "$Q -o $T/m.nf4 $M"
expect quantize_output_is_a_model_file 0 '' "zstd -dc $T/m.nf4 | head -c 4000 | grep -q '\"pp.kind\":\"model\"' && zstd -dc $T/m.nf4 | head -c 4000 | grep -q 'model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4'"
expect quantize_is_deterministic 0 '' "$Q -q -o $T/m2.nf4 $M && cmp $T/m.nf4 $T/m2.nf4"
for t in fp4 int8 bf16 f16; do
    expect quantize_type_$t 0 '' "$Q -q -t $t -o $T/m.$t $M && test -s $T/m.$t"
done
# an unquantized pp model file as the input: bf16 -> bf16 gives the same file back
expect quantize_from_model_file 0 '' "$Q -q -t bf16 --dtype bf16 -o $T/m.bf16 $M && $Q -q -t bf16 -o $T/m.bf16b $T/m.bf16 && cmp $T/m.bf16 $T/m.bf16b"
expect quantize_nf4_from_model_file 0 'q_proj +5 .* [0-9.]+e-02$' "$Q -o $T/m.nf4b $T/m.bf16 && $BIN/pp-generate -q -m $T/m.nf4b --raw --greedy --max-new-tokens 4 Once | grep -q ."
expect quantize_refuses_quantized_file 65 'is quantized \(nf4\); quantize from the unquantized model' "$Q -o $T/x $T/m.nf4"
expect quantize_refuses_other_files 65 'neither a model directory nor a pp model file' "$Q -o $T/x $M/config.json"
expect quantize_refuses_a_token_dataset 65 'not a pp model file \(metadata pp.kind is "tokens"\)' "echo '{\"prompt\": \"a\", \"response\": \"b\"}' | $BIN/pp-tokenize -q -t $M -o $T/d.tok && $Q -o $T/x $T/d.tok"
expect quantize_refuses_stdin 64 'read twice' "$Q -o $T/x - < $T/m.bf16"
expect quantize_double_quant 0 '' "$Q -q --double-quant -o $T/m.dq $M && zstd -dc $T/m.dq | head -c 4000 | grep -q 'nested_absmax'"
expect quantize_exclude_include 0 '' "$Q -q --exclude '*.q_proj.*' --include 'lm_head*' -o $T/m.x $M && ! zstd -dc $T/m.x | head -c 9000 | grep -q 'q_proj.weight.absmax'"
expect quantize_tokenizer_inside 0 '' "echo '{\"prompt\": \"Once upon\", \"response\": \"a time\"}' | $BIN/pp-tokenize -t $T/m.nf4 | $BIN/pp-tokenize --dump -q -t $M | grep -qF '[[<s>Once upon]]a time</s>'"

# broken model directories
mkdir -p $T/d
cp $M/config.json $M/tokenizer.model $T/d/
head -c 500000 $M/model.safetensors > $T/d/model.safetensors
expect quantize_truncated_shard 65 'model.safetensors: the header declares .* bytes of data' "$Q -o $T/x $T/d"
cp $M/model.safetensors $T/d/
sed 's/"num_attention_heads": 8/"num_attention_heads": 0/' $M/config.json > $T/d/config.json
expect quantize_zero_heads 65 'config.json: "num_attention_heads" must be an integer' "$Q -o $T/x $T/d"
sed 's/"intermediate_size": 172/"intermediate_size": 170/' $M/config.json > $T/d/config.json
expect quantize_wrong_shape 65 'shape \[170, 64\]|implies \[170, 64\] \(tensor model.layers.0.mlp.gate_proj.weight\)' "$Q -o $T/x $T/d"
sed 's/"hidden_act": "silu"/"hidden_act": "gelu"/' $M/config.json > $T/d/config.json
expect quantize_unsupported_activation 65 'hidden_act "gelu" is not implemented' "$Q -o $T/x $T/d"
sed 's/"rms_norm_eps": 1e-05,/"rms_norm_eps": 1e-05, "rope_scaling": {"rope_type": "yarn", "factor": 8.0},/' $M/config.json > $T/d/config.json
expect quantize_rope_scaling_refused 65 'rope_scaling "yarn" is not implemented' "$Q -o $T/x $T/d"
cp $M/config.json $T/d/
rm $T/d/tokenizer.model
expect quantize_missing_tokenizer 66 'no tokenizer.json or tokenizer.model in this directory' "$Q -o $T/x $T/d"
expect quantize_failure_leaves_no_file 0 '' "test ! -e $T/x && ! ls -A $T | grep -q '^\\.x\\.'"

# sharded checkpoints: a missing shard (66) and a truncated one (65) are named
cp -r tests/fixtures/llama/tiny-sharded $T/sh
rm $T/sh/model-00002-of-00003.safetensors
expect quantize_missing_shard 66 'model-00002-of-00003.safetensors: cannot open' "$Q -o $T/x $T/sh"
cp tests/fixtures/llama/tiny-sharded/model-00002-of-00003.safetensors $T/sh/
head -c 100000 tests/fixtures/llama/tiny-sharded/model-00003-of-00003.safetensors > $T/sh/model-00003-of-00003.safetensors
expect quantize_truncated_shard_named 65 'model-00003-of-00003.safetensors: the header declares' "$Q -o $T/x $T/sh"
