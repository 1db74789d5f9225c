# pipelines/pride-prejudice.mk: the classic PEFT tutorial as make targets.
# Each stage is a target whose output file is the next stage's input, so a
# re-run after a change redoes only what depends on it.
#
#   make -f pipelines/pride-prejudice.mk MODEL=/models/Llama-2-7b-hf        # the real run
#   make -f pipelines/pride-prejudice.mk MODEL=../shared/models/stories260K EPOCHS=1 answers
#
# Variables (defaults are the tutorial's): MODEL (a Hugging Face Llama
# directory or a pp model file), DATA (pp-format's input), SELECT (train on
# these records of DATA only: pp-format --select, e.g. 1-200), TEMPLATE, RANK,
# ALPHA, TARGETS, EPOCHS, BATCH, ACCUM, LR, MAXLEN, QUANT (nf4, fp4, int8,
# bf16, f16, or none: train on MODEL as it is), DEVICE (pp-generate's),
# TRAIN_DEVICE (pp-train's: cpu until GPU training has been tested), PRECISION
# (pp-train --precision on a GPU: bf16 by default, fp16 as the tutorial's
# fp16=True), TEMPERATURE, SEED,
# QUESTIONS (a file, one question per line), EVAL (held-out questions with
# reference answers, any shape pp-format reads; empty: none), EVAL_EVERY
# (steps between held-out losses), SCORE_TRAIN=1 (score the training records
# too), PROSE (raw prompts for the base model; PROSE_TEMPERATURE),
# OUT (where everything goes), FORMAT_FLAGS (extra pp-format options;
# pipelines/custom-dataset.mk sets them).
# Targets: tokens, model, adapter, answers (the default), scores (base and
# adapter answering EVAL, key-word recall), plot (loss curves, PNG), prose
# (the base model continuing PROSE), demo (all of these, then a summary),
# merged, clean.

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
TRAIN_DEVICE ?= cpu
PRECISION   ?=
TEMPERATURE ?= 0.7
SEED        ?= 0
MAXNEW      ?= 128
QUESTIONS   ?= pipelines/questions.txt
EVAL        ?= data/pride_prejudice_eval.json
EVAL_EVERY  ?= 100
PROSE       ?= pipelines/prose.txt
PROSE_TEMPERATURE ?= 0.7
SCORE_TRAIN ?= 0
OUT         ?= out/pride-prejudice
FORMAT_FLAGS ?=
SELECT      ?=

include pipelines/settings.mk

BASE := $(if $(filter none,$(QUANT)),$(MODEL),$(OUT)/model.$(QUANT))
# what the quantized model is made from: a directory's config and weights, or the file
MODEL_FILES = $(if $(wildcard $(MODEL)/config.json),$(wildcard $(MODEL)/config.json $(MODEL)/*.safetensors),$(MODEL))

.PHONY: all tokens model adapter answers scores plot prose demo merged clean
.DELETE_ON_ERROR:
all: answers
tokens: $(OUT)/train.tok
model: $(BASE)
adapter: $(OUT)/adapter/adapter_model.safetensors
answers: $(OUT)/answers.txt
	@cat $<
scores: $(OUT)/scores.txt
	@cat $<
plot: $(OUT)/loss.png
prose: $(OUT)/prose.txt
	@cat $<
merged: $(OUT)/merged/config.json

$(OUT)/train.jsonl: $(DATA) $(call settings,format,TEMPLATE FORMAT_FLAGS SELECT)
	@mkdir -p $(@D)
	$(BIN)/pp-format -q -t $(TEMPLATE) $(FORMAT_FLAGS) $(if $(SELECT),--select $(SELECT)) $< -o $@

$(OUT)/train.tok: $(OUT)/train.jsonl $(call settings,tokenize,MODEL MAXLEN)
	$(BIN)/pp-tokenize -q -t $(MODEL) --max-len $(MAXLEN) -o $@ $<

$(OUT)/model.$(QUANT): $(MODEL_FILES) $(call settings,quantize,MODEL)
	@mkdir -p $(@D)
	$(BIN)/pp-quantize -q -t $(QUANT) -o $@ $(MODEL)

# the held-out set: its loss is measured while training, its questions scored after
$(OUT)/eval.jsonl: $(EVAL) $(call settings,format-eval,TEMPLATE FORMAT_FLAGS)
	@mkdir -p $(@D)
	$(BIN)/pp-format -q -t $(TEMPLATE) $(FORMAT_FLAGS) $< -o $@

$(OUT)/eval.tok: $(OUT)/eval.jsonl
	$(BIN)/pp-tokenize -q -t $(MODEL) --max-len $(MAXLEN) -o $@ $<

EVAL_TOK = $(if $(EVAL),$(OUT)/eval.tok)

$(OUT)/adapter/adapter_model.safetensors: $(BASE) $(OUT)/train.tok $(EVAL_TOK) \
        $(call settings,train,RANK ALPHA TARGETS EPOCHS BATCH ACCUM LR SEED EVAL EVAL_EVERY TRAIN_DEVICE PRECISION)
	$(BIN)/pp-train --device $(TRAIN_DEVICE) $(if $(PRECISION),--precision $(PRECISION)) -m $(BASE) -d $(OUT)/train.tok -o $(OUT)/adapter -r $(RANK) --alpha $(ALPHA) --targets $(TARGETS) \
	    --epochs $(EPOCHS) --batch-size $(BATCH) --grad-accum $(ACCUM) --lr $(LR) --seed $(SEED) --log $(OUT)/train-log.jsonl \
	    $(if $(EVAL),--eval $(OUT)/eval.tok --eval-every $(EVAL_EVERY))

# each question without and with the adapter, side by side
$(OUT)/answers.txt: $(OUT)/adapter/adapter_model.safetensors $(QUESTIONS) \
        $(call settings,generate,DEVICE TEMPERATURE SEED MAXNEW)
	@: > $@.tmp
	@while IFS= read -r q; do \
	    [ -n "$$q" ] || continue; \
	    printf '### %s\n' "$$q" >> $@.tmp; \
	    printf 'base:    %s\n' "$$($(BIN)/pp-generate -q --device $(DEVICE) -m $(BASE) --temperature $(TEMPERATURE) --seed $(SEED) --max-new-tokens $(MAXNEW) --stop '\n\n' "$$q" | tr '\n' ' ')" >> $@.tmp; \
	    printf 'adapter: %s\n\n' "$$($(BIN)/pp-generate -q --device $(DEVICE) -m $(BASE) -a $(OUT)/adapter --temperature $(TEMPERATURE) --seed $(SEED) --max-new-tokens $(MAXNEW) --stop '\n\n' "$$q" | tr '\n' ' ')" >> $@.tmp; \
	done < $(QUESTIONS)
	@mv $@.tmp $@

# Questions with reference answers, answered greedily by the base and by
# base + adapter, each answer scored by the fraction of the reference's key
# words it contains (pp-generate --score): the held-out set (EVAL) and, with
# SCORE_TRAIN=1, the training records too.
SCORE_SETS = $(if $(EVAL),eval) $(if $(filter 1,$(SCORE_TRAIN)),train)
GREEDY = --device $(DEVICE) --greedy --max-new-tokens $(MAXNEW) --stop '\n\n' --score
recall = sed -n 's/^pp-generate: key-word recall \([0-9.]*\), the mean over \([0-9]*\).*/\1/p'
$(OUT)/scores.txt: $(OUT)/adapter/adapter_model.safetensors $(foreach s,$(SCORE_SETS),$(OUT)/$(s).jsonl) \
        $(call settings,score,DEVICE MAXNEW SCORE_TRAIN)
	@printf '%-68s %6s  %s\n' "key-word recall of greedy answers (pp-generate --score)" base base+adapter > $@.tmp
	@for set in $(SCORE_SETS); do \
	    for who in base adapter; do \
	        a=; [ $$who = base ] || a="-a $(OUT)/adapter"; \
	        printf '%s\n' "$(BIN)/pp-generate -m $(BASE) $$a $(GREEDY) < $(OUT)/$$set.jsonl > $(OUT)/$$set-$$who.jsonl"; \
	        $(BIN)/pp-generate -m $(BASE) $$a $(GREEDY) < $(OUT)/$$set.jsonl > $(OUT)/$$set-$$who.jsonl 2> $(OUT)/$$set-$$who.log || \
	            { cat $(OUT)/$$set-$$who.log >&2; exit 1; }; \
	    done; \
	    name="held-out questions ($(EVAL))"; [ $$set = eval ] || name="training records ($(DATA)$(if $(SELECT), $(SELECT)))"; \
	    printf '  %-66s %6s  %6s   (%s answers)\n' "$$name" "$$($(recall) $(OUT)/$$set-base.log)" \
	        "$$($(recall) $(OUT)/$$set-adapter.log)" "$$(wc -l < $(OUT)/$$set.jsonl)" >> $@.tmp; \
	done
	@mv $@.tmp $@

$(OUT)/loss.png: $(OUT)/adapter/adapter_model.safetensors
	sh pipelines/plot-loss.sh $(OUT)/train-log.jsonl $@ "LoRA r$(RANK) on $(TARGETS), $(EPOCHS) epochs, lr $(LR)"

# what the base model writes on its own, from raw prompts
$(OUT)/prose.txt: $(BASE) $(PROSE) $(call settings,prose,DEVICE PROSE_TEMPERATURE SEED)
	@mkdir -p $(@D)
	@: > $@.tmp
	@while IFS= read -r p; do \
	    [ -n "$$p" ] || continue; \
	    printf '%s' "$$p" >> $@.tmp; \
	    $(BIN)/pp-generate -q --device $(DEVICE) -m $(BASE) --raw --temperature $(PROSE_TEMPERATURE) --seed $(SEED) --max-new-tokens 48 --stop '\n' "$$p" >> $@.tmp; \
	    echo >> $@.tmp; \
	done < $(PROSE)
	@mv $@.tmp $@

demo: $(OUT)/prose.txt $(OUT)/answers.txt $(OUT)/scores.txt $(OUT)/loss.png
	@echo; echo "== the base model on its own (raw prompts, $(PROSE)) =="; cat $(OUT)/prose.txt
	@echo; echo "== the questions ($(QUESTIONS)), without and with the adapter =="; cat $(OUT)/answers.txt
	@echo "== $$(cat $(OUT)/scores.txt)"
	@echo; echo "everything is in $(OUT)/: adapter/ (PEFT), train-log.jsonl, loss.png, answers.txt, scores.txt, *-base.jsonl and *-adapter.jsonl (each answer, its reference and recall)"

$(OUT)/merged/config.json: $(OUT)/adapter/adapter_model.safetensors
	$(BIN)/pp-merge -q -m $(MODEL) -a $(OUT)/adapter -o $(OUT)/merged

clean:
	rm -rf $(OUT)
