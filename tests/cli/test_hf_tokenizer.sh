#!/bin/sh
# Models that ship a tokenizer.json: the tools find it, carry it, and encode
# with it; conversations through chat templates; prompt + response joined.
. tests/cli/lib.sh
F=$BIN/pp-format
P=$BIN/pp-tokenize
Q=$BIN/pp-quantize
G=$BIN/pp-generate
S=../shared/models/stories260K
FX=tests/fixtures/tokenizer

# stories260K with the tokenizer.json transformers makes from its
# tokenizer.model (Metaspace, byte fallback) beside it, and without the .model
mkdir -p $T/hf $T/sm
cp $S/config.json $S/model.safetensors $FX/stories260K-spm/tokenizer.json $FX/stories260K-spm/tokenizer_config.json $T/hf/
zstd -dq $FX/smollm2/tokenizer.json.zst -o $T/sm/tokenizer.json && cp $FX/smollm2/tokenizer_config.json $T/sm/
$F data/pride_prejudice_ift.json >"$T/pp.jsonl"

# the same ids as the SentencePiece model it was made from, on every P&P record
expect hf_tokenizer_json_in_a_directory 0 '^$' "$P -t $T/hf $T/pp.jsonl -o $T/json.tok && $P -t $S/tokenizer.model $T/pp.jsonl -o $T/spm.tok &&
    $P --dump $T/json.tok > $T/json.txt 2>/dev/null && $P --dump $T/spm.tok > $T/spm.txt 2>/dev/null && cmp $T/json.txt $T/spm.txt"
expect hf_tokenizer_json_file 0 '^$' "$P -t $T/hf/tokenizer.json $T/pp.jsonl | cmp - $T/json.tok"
expect hf_verbose_names_the_encoder 0 'tokenizer.json: BPE, 512 ids' "$P -v -t $T/hf $T/pp.jsonl -o $T/v.tok"
expect hf_json_wins_over_model 0 '^$' "cp $S/tokenizer.model $T/hf/ && $P -t $T/hf $T/pp.jsonl | cmp - $T/json.tok && rm $T/hf/tokenizer.model"
expect hf_dataset_records_the_json_digest 0 '' "zstd -dc $T/json.tok | head -c 400 | grep -q \"\$(sha256sum $T/hf/tokenizer.json | cut -c1-64)\""
expect hf_directory_without_tokenizer 66 'no tokenizer.json or tokenizer.model in this directory' "echo | $P -t $T -o $T/x"
expect hf_unsupported_component 65 'pre_tokenizer "Whitespace" is not supported' \
    "sed 's/\"type\": *\"Metaspace\"/\"type\": \"Whitespace\"/' $T/hf/tokenizer.json > $T/bad.json && echo | $P -t $T/bad.json -o $T/x"
expect hf_malformed_json 65 'tokenizer.json: malformed JSON' "head -c 3000 $T/hf/tokenizer.json > $T/cut.json && echo | $P -t $T/cut.json -o $T/x"

# pp-quantize carries tokenizer.json and tokenizer_config.json; pp-generate
# reads them from the model file as from the directory
expect hf_quantize_carries_tokenizer_json 0 '' "$Q -q -t nf4 -o $T/m.nf4 $T/hf && zstd -dc $T/m.nf4 | head -c 100000 | grep -q '\"tokenizer.json\":{\"dtype\":\"U8\"' &&
    zstd -dc $T/m.nf4 | head -c 100000 | grep -q '\"tokenizer_config.json\":{\"dtype\":\"U8\"'"
expect hf_model_file_tokenizes_the_same 0 '^$' "$P -t $T/m.nf4 $T/pp.jsonl | cmp - $T/json.tok"
expect hf_generate_same_as_sentencepiece 0 '' "a=\$($G -q -m $T/hf --greedy --raw --max-new-tokens 30 'Once upon a time') &&
    b=\$($G -q -m $S --greedy --raw --max-new-tokens 30 'Once upon a time') && [ -n \"\$a\" ] && [ \"\$a\" = \"\$b\" ]"
expect hf_generate_from_model_file 0 '' "a=\$($G -q -m $T/m.nf4 --greedy --raw --max-new-tokens 20 'Once upon a time') &&
    b=\$($Q -q -t nf4 -o $T/s.nf4 $S && $G -q -m $T/s.nf4 --greedy --raw --max-new-tokens 20 'Once upon a time') && [ \"\$a\" = \"\$b\" ]"

# conversations (pp-format --chat) in SmolLM2's ChatML, the loss on the assistant
printf '{"question": "Who is Mr. Darcy?", "answer": "A rich gentleman."}\n{"question": "Say <|im_end|> now", "answer": "ok"}\n' > $T/qa.json
expect chat_tokenize_smollm2 0 '^$' "$F --chat $T/qa.json | $P -t $T/sm -o $T/chat.tok"
expect chat_dump_shows_the_mask 0 '' "$P --dump -t $T/sm $T/chat.tok 2>/dev/null | head -n 1 |
    grep -qF '[[<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n<|im_start|>user\\nWho is Mr. Darcy?<|im_end|>\\n<|im_start|>assistant\\n]]A rich gentleman.<|im_end|>[[\\n]]'"
# the injected <|im_end|> is text: one <|im_end|> id (2) per turn, three turns
expect chat_injection_stays_text 0 '' "test \$($P --dump $T/chat.tok 2>/dev/null | sed -n 2p | cut -f3 | tr -c '0-9\\n' ' ' | tr ' ' '\\n' | grep -cx 2) -eq 3"
expect chat_loss_mask_in_dataset 0 '' "zstd -dc $T/chat.tok | head -c 600 | grep -q '\"loss_mask\":{\"dtype\":\"U8\"'"
expect chat_named_template 0 '^$' "$F --chat $T/qa.json | $P -t $T/sm --chat-template chatml -o $T/chat2.tok && ! cmp -s $T/chat.tok $T/chat2.tok"
expect chat_unknown_name 64 'none of auto, chatml, llama3, llama2, mistral' "echo | $P -t $T/sm --chat-template zephyr -o $T/x"
expect chat_without_template 65 'no chat_template' "$F --chat $T/qa.json | $P -t $T/hf -o $T/x"
expect chat_template_not_recognised 65 'first line|not one of|known' \
    "sed 's/add_generation_prompt/add_generation_prompt or true/' $T/sm/tokenizer_config.json > $T/cfg && mkdir -p $T/sm2 && cp $T/sm/tokenizer.json $T/sm2/ && cp $T/cfg $T/sm2/tokenizer_config.json &&
     $F --chat $T/qa.json | $P -t $T/sm2 --chat-template auto -o $T/x"
expect chat_trains_from_pp_train 0 '' "$F --chat data/pride_prejudice_ift.json | head -n 40 | $P -t $T/hf --chat-template llama2 -o $T/l2.tok &&
    $BIN/pp-train -q -m $T/hf -d $T/l2.tok -o $T/ad --max-steps 2 --log $T/l2.jsonl && grep -q '\"loss\"' $T/l2.jsonl"

# prompt + response as one text: the mask on the token holding the response's first byte
expect joined_encoding 0 '' "$P --joined -t $S/tokenizer.model $T/pp.jsonl -o $T/j.tok && $P --dump -t $S/tokenizer.model $T/j.tok > $T/j.txt 2>/dev/null &&
    ! cmp -s $T/j.txt $T/spm.txt && test \$(wc -l < $T/j.txt) -eq 961"
# the ids are those of the two texts as one: a record whose response is the whole text
printf '%s\n' '{"prompt": "### Instruction:\nWho is Jane?\n\n### Response:\n", "response": "Jane is the eldest."}' \
    '{"prompt": "Q: a b", "response": "c d"}' > $T/two.jsonl
printf '%s\n' '{"prompt": "", "response": "### Instruction:\nWho is Jane?\n\n### Response:\nJane is the eldest."}' \
    '{"prompt": "", "response": "Q: a bc d"}' > $T/whole.jsonl
expect joined_is_one_text 0 '' "$P --joined -t $S/tokenizer.model $T/two.jsonl -o $T/two.tok && $P -t $S/tokenizer.model $T/whole.jsonl -o $T/whole.tok &&
    $P --dump $T/two.tok 2>/dev/null | cut -f3 | tr -d '[]' | tr -s ' ' > $T/a.ids && $P --dump $T/whole.tok 2>/dev/null | cut -f3 | tr -d '[]' | tr -s ' ' > $T/b.ids &&
    cmp $T/a.ids $T/b.ids && $P --dump $T/two.tok 2>/dev/null | cut -f2 | grep -qv '^1+'"
