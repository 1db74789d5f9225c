# pipelines/pride-prejudice.mk: the classic PEFT tutorial as make targets.
# Each stage is a target whose output file is the next stage's input, so a
# re-run after a change redoes only what depends on it.
#
#   make -f pipelines/pride-prejudice.mk MODEL=/models/Llama-2-7b-hf        # the real run
#   make -f pipelines/pride-prejudice.mk MODEL=../shared/models/stories260K EPOCHS=1 answers
#
# Variables (defaults are the tutorial's): MODEL (a Hugging Face Llama
# directory or a pp model file), DATA (pp-format's input), TEMPLATE, RANK,
# ALPHA, TARGETS, EPOCHS, BATCH, ACCUM, LR, MAXLEN, QUANT (nf4, fp4, int8,
# bf16, f16, or none: train on MODEL as it is), DEVICE, TEMPERATURE, SEED,
# QUESTIONS (a file, one question per line), OUT (where everything goes),
# FORMAT_FLAGS (extra pp-format options; pipelines/custom-dataset.mk sets them).
# Targets: tokens, model, adapter, answers (the default), merged, clean.

BIN         ?= bin
MODEL       ?= $(error MODEL=... is needed: a Hugging Face Llama directory or a pp model file)
DATA        ?= data/pride_prejudice_ift.json
TEMPLATE    ?= default
RANK        ?= 16
ALPHA       ?= 32
TARGETS     ?= q,v
EPOCHS      ?= 2
BATCH       ?= 2
ACCUM       ?= 1
LR          ?= 2e-4
MAXLEN      ?= 512
QUANT       ?= nf4
DEVICE      ?= auto
TEMPERATURE ?= 0.7
SEED        ?= 0
MAXNEW      ?= 128
QUESTIONS   ?= pipelines/questions.txt
OUT         ?= out/pride-prejudice
FORMAT_FLAGS ?=

BASE := $(if $(filter none,$(QUANT)),$(MODEL),$(OUT)/model.$(QUANT))
# what the quantized model is made from: a directory's config and weights, or the file
MODEL_FILES = $(if $(wildcard $(MODEL)/config.json),$(wildcard $(MODEL)/config.json $(MODEL)/*.safetensors),$(MODEL))

.PHONY: all tokens model adapter answers merged clean
.DELETE_ON_ERROR:
all: answers
tokens: $(OUT)/train.tok
model: $(BASE)
adapter: $(OUT)/adapter/adapter_model.safetensors
answers: $(OUT)/answers.txt
merged: $(OUT)/merged/config.json

$(OUT)/train.jsonl: $(DATA)
	@mkdir -p $(@D)
	$(BIN)/pp-format -q -t $(TEMPLATE) $(FORMAT_FLAGS) $< -o $@

$(OUT)/train.tok: $(OUT)/train.jsonl
	$(BIN)/pp-tokenize -q -t $(MODEL) --max-len $(MAXLEN) -o $@ $<

$(OUT)/model.$(QUANT): $(MODEL_FILES)
	@mkdir -p $(@D)
	$(BIN)/pp-quantize -q -t $(QUANT) -o $@ $(MODEL)

$(OUT)/adapter/adapter_model.safetensors: $(BASE) $(OUT)/train.tok
	$(BIN)/pp-train -m $(BASE) -d $(OUT)/train.tok -o $(OUT)/adapter -r $(RANK) --alpha $(ALPHA) --targets $(TARGETS) \
	    --epochs $(EPOCHS) --batch-size $(BATCH) --grad-accum $(ACCUM) --lr $(LR) --seed $(SEED) --log $(OUT)/train-log.jsonl

# each question without and with the adapter, side by side
$(OUT)/answers.txt: $(OUT)/adapter/adapter_model.safetensors $(QUESTIONS)
	@: > $@.tmp
	@while IFS= read -r q; do \
	    [ -n "$$q" ] || continue; \
	    printf '### %s\n' "$$q" >> $@.tmp; \
	    printf 'base:    %s\n' "$$($(BIN)/pp-generate -q --device $(DEVICE) -m $(BASE) --temperature $(TEMPERATURE) --seed $(SEED) --max-new-tokens $(MAXNEW) --stop '\n\n' "$$q" | tr '\n' ' ')" >> $@.tmp; \
	    printf 'adapter: %s\n\n' "$$($(BIN)/pp-generate -q --device $(DEVICE) -m $(BASE) -a $(OUT)/adapter --temperature $(TEMPERATURE) --seed $(SEED) --max-new-tokens $(MAXNEW) --stop '\n\n' "$$q" | tr '\n' ' ')" >> $@.tmp; \
	done < $(QUESTIONS)
	@mv $@.tmp $@
	@cat $@

$(OUT)/merged/config.json: $(OUT)/adapter/adapter_model.safetensors
	$(BIN)/pp-merge -q -m $(MODEL) -a $(OUT)/adapter -o $(OUT)/merged

clean:
	rm -rf $(OUT)
