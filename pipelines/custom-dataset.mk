# pipelines/custom-dataset.mk: the same pipeline for your own data set: any
# JSON array or JSON Lines that pp-format understands. Known shapes need no
# field names (question/answer, instruction/input/output, prompt/completion,
# text, messages, conversations); name the fields when they differ.
#
#   make -f pipelines/custom-dataset.mk MODEL=/models/Llama-2-7b-hf DATA=my.jsonl \
#        QUESTION_FIELD=q ANSWER_FIELD=a QUESTIONS=my-questions.txt
#
# Variables: those of pipelines/pride-prejudice.mk, and QUESTION_FIELD,
# INPUT_FIELD, ANSWER_FIELD, TEXT_FIELD, MESSAGES_FIELD (pp-format's
# --instruction-field, --input-field, --response-field, --text-field,
# --messages-field), SKIP_BAD=1 (skip malformed records instead of failing),
# EVAL (your held-out set, in the same shape as DATA; default none).
# OUT defaults to out/custom.

DATA ?= $(error DATA=... is needed: your data set, JSON or JSON Lines)
EVAL ?=
OUT  ?= out/custom
FORMAT_FLAGS = $(if $(QUESTION_FIELD),--instruction-field $(QUESTION_FIELD)) \
               $(if $(INPUT_FIELD),--input-field $(INPUT_FIELD)) \
               $(if $(ANSWER_FIELD),--response-field $(ANSWER_FIELD)) \
               $(if $(TEXT_FIELD),--text-field $(TEXT_FIELD)) \
               $(if $(MESSAGES_FIELD),--messages-field $(MESSAGES_FIELD)) \
               $(if $(filter 1,$(SKIP_BAD)),--skip-bad)

include pipelines/pride-prejudice.mk
