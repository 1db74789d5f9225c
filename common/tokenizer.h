/* tokenizer.h: finding, loading and running a SentencePiece tokenizer.
 *
 * The library (spm.h) is always loaded: it is the reference, and it decodes.
 * Where the model is a BPE model that bpe.h reproduces exactly, encoding goes
 * through that fast encoder instead; the two are cross-checked at load time
 * (every piece and score, and probe texts) and the fast path is dropped on
 * any difference. PP_TOKENIZER=library in the environment forces the library. */
#ifndef PP_TOKENIZER_H
#define PP_TOKENIZER_H

#include "bpe.h"
#include "spm.h"
#include "status.h"

typedef struct pp_tokenizer {
    pp_spm *spm;            /* the library */
    pp_bpe *bpe;            /* the fast encoder, or NULL */
    char sha256[65];        /* of the tokenizer.model bytes */
    char engine[160];       /* which encoder runs, and why (for -v) */
} pp_tokenizer;

/* Loads the tokenizer named by path: a SentencePiece tokenizer.model, a
 * Hugging Face model directory holding one, or a pp model file (safetensors,
 * plain or zstd) carrying it as the U8 tensor "tokenizer.model". */
pp_status pp_tokenizer_load(pp_tokenizer **tk, const char *path);
void pp_tokenizer_free(pp_tokenizer *tk);

/* The same from the bytes of a tokenizer.model already in memory. */
pp_status pp_tokenizer_from_bytes(pp_tokenizer **tk, const void *model, size_t n);

/* Encodes text[0..n) as the library would (no BOS/EOS). *st is the calling
 * thread's scratch state: NULL at first, freed with pp_bpe_state_free(). Safe
 * to call from several threads, each with its own *st. */
pp_status pp_tokenizer_encode(const pp_tokenizer *tk, pp_bpe_state **st, const char *text, size_t n,
                              uint32_t **ids, size_t *cap, size_t *count);

#endif
