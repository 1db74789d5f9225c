/* tokenizer.h: finding and loading a SentencePiece tokenizer. */
#ifndef PP_TOKENIZER_H
#define PP_TOKENIZER_H

#include "spm.h"
#include "status.h"

/* Loads the tokenizer named by path: a SentencePiece tokenizer.model, a
 * Hugging Face model directory holding one, or a pp model file (safetensors,
 * plain or zstd) carrying it as the U8 tensor "tokenizer.model". Writes the
 * SHA-256 of the tokenizer.model bytes to sha256 (64 hex digits). */
pp_status pp_tokenizer_load(pp_spm **sp, const char *path, char sha256[65]);

#endif
