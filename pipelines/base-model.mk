# pipelines/base-model.mk: the demo's base model, made from nothing but the
# project's own corpus (data/corpus/*.md) with pp's own tools:
#
#   corpus ─► pp-tokenize --train-vocab ─► tokenizer.model
#   corpus ─► pp-format --paragraphs ─► pp-tokenize ─► corpus.tok
#   pp-train --full --init config.json ─► hf/ (pre-trained, held-out loss per epoch)
#   pp-quantize -t bf16 ─► model.bf16 (one pp model file: config, weights, tokenizer)
#
#   make -f pipelines/base-model.mk            # build it under out/base-model/ (about 2 minutes on 2 cores)
#   make -f pipelines/base-model.mk check      # ... and compare it with data/base-model/, byte for byte
#   make -f pipelines/base-model.mk install    # copy it into data/base-model/ (what the demo uses)
#
# The result is the same bytes on every run with the same threads (-t 2
# below), OpenBLAS build and CPU family: the tokenizer trainer, the record
# order, the initial weights and dropout all come from fixed seeds, and the
# sums run in a fixed order. Another CPU family (OpenBLAS picks its kernels
# by CPU) or another thread count gives a model that differs in the last bits.

BIN     ?= bin
OUT     ?= out/base-model
DEST    ?= data/base-model
CORPUS  := $(sort $(wildcard data/corpus/*.md))
CONFIG  ?= $(DEST)/config.json
VOCAB   ?= 4096
EPOCHS  ?= 7
LR      ?= 2e-3
BATCH   ?= 8
THREADS ?= 2

TRAIN_FLAGS = --train-on-prompt --batch-size $(BATCH) --lr $(LR) --warmup 0.05 --schedule cosine \
              --weight-decay 0.1 --epochs $(EPOCHS) --eval-fraction 0.05 --seed 0 -t $(THREADS)

include pipelines/settings.mk

.PHONY: all check install clean
.DELETE_ON_ERROR:
all: $(OUT)/model.bf16 $(OUT)/loss.png

# the prose, headings left out, one paragraph a line
$(OUT)/corpus.txt: $(CORPUS)
	@mkdir -p $(@D)
	cat $(CORPUS) | grep -v '^#' > $@

$(OUT)/tokenizer.model: $(OUT)/corpus.txt $(call settings,vocab,VOCAB)
	$(BIN)/pp-tokenize -q --train-vocab $(VOCAB) $< -o $@

$(OUT)/corpus.tok: $(OUT)/corpus.txt $(OUT)/tokenizer.model
	$(BIN)/pp-format -q --paragraphs $< | $(BIN)/pp-tokenize -q -t $(OUT)/tokenizer.model --max-len 512 -o $@

# pre-training from random weights; 5% of the paragraphs held out, their loss
# measured after every epoch (train-log.jsonl)
$(OUT)/hf/config.json: $(CONFIG) $(OUT)/tokenizer.model $(OUT)/corpus.tok $(call settings,train,TRAIN_FLAGS)
	rm -rf $(OUT)/hf
	$(BIN)/pp-train --full --init $(CONFIG) --tokenizer $(OUT)/tokenizer.model -d $(OUT)/corpus.tok \
	    -o $(OUT)/hf $(TRAIN_FLAGS) --log $(OUT)/train-log.jsonl

$(OUT)/model.bf16: $(OUT)/hf/config.json
	$(BIN)/pp-quantize -q -t bf16 --dtype bf16 -o $@ $(OUT)/hf

$(OUT)/loss.png: $(OUT)/hf/config.json
	sh pipelines/plot-loss.sh $(OUT)/train-log.jsonl $@ "base model pre-training: $(EPOCHS) epochs of data/corpus"

# the model byte for byte, and the log's losses (its speeds vary from run to run)
NO_SPEED = sed 's/, "tokens_per_s": [0-9.]*//'
check: $(OUT)/model.bf16
	cmp $(OUT)/model.bf16 $(DEST)/model.bf16
	$(NO_SPEED) $(OUT)/train-log.jsonl | cmp - $(DEST)/train-log.jsonl
	@echo "base-model.mk: $(OUT)/model.bf16 is $(DEST)/model.bf16, byte for byte"

install: $(OUT)/model.bf16 $(OUT)/loss.png
	cp $(OUT)/model.bf16 $(DEST)/
	$(NO_SPEED) $(OUT)/train-log.jsonl > $(DEST)/train-log.jsonl
	if [ -f $(OUT)/loss.png ]; then cp $(OUT)/loss.png $(DEST)/; fi

clean:
	rm -rf $(OUT)
