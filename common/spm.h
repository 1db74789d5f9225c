/* spm.h: a C shim over libsentencepiece (C++).
 *
 * Every entry point catches C++ exceptions and checks ids before handing them
 * to the library, so a bad model file or an out-of-range id is a pp_status,
 * never an abort. A loaded pp_spm is immutable: pp_spm_encode may run on
 * several threads at once. */
#ifndef PP_SPM_H
#define PP_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pp_spm pp_spm;

/* Loads a serialized SentencePiece model (the bytes of tokenizer.model). */
pp_status pp_spm_load(pp_spm **out, const void *model, size_t n);
void pp_spm_free(pp_spm *sp);

int pp_spm_vocab_size(const pp_spm *sp);
int pp_spm_bos_id(const pp_spm *sp);   /* -1 if the model has none */
int pp_spm_eos_id(const pp_spm *sp);   /* -1 if the model has none */
/* The score of piece id (0 if out of range). */
float pp_spm_score(const pp_spm *sp, int id);

/* Nonzero for control pieces such as <s> and </s>. */
int pp_spm_is_control(const pp_spm *sp, int id);

/* Encodes text[0..n) (UTF-8) into ids, as SentencePieceProcessor::Encode
 * does: no BOS/EOS. *ids is a malloc'ed array that grows as needed (pass
 * NULL/0 the first time; reuse across calls); *count receives the length. */
pp_status pp_spm_encode(const pp_spm *sp, const char *text, size_t n,
                        uint32_t **ids, size_t *cap, size_t *count);

/* Decodes ids into UTF-8 text, appended to a malloc'ed NUL-terminated
 * buffer *out of *cap bytes (grown as needed) and *len set. An id outside
 * [0, vocab) is PP_E_DATA. */
pp_status pp_spm_decode(const pp_spm *sp, const uint32_t *ids, size_t count,
                        char **out, size_t *cap, size_t *len);

/* The piece of id (e.g. "▁the", "<s>", "<0x0A>"); NULL if out of range. The
 * string belongs to sp. */
const char *pp_spm_id_to_piece(const pp_spm *sp, int id);
/* The id of piece, or -1 when the model has no such piece. */
int pp_spm_piece_to_id(const pp_spm *sp, const char *piece);

/* Trains a BPE model with byte fallback, identity normalisation and split
 * digits on the lines of corpus, and returns the serialized model in *model
 * (malloc'ed, *n bytes; the caller frees it). */
pp_status pp_spm_train(pp_reader *corpus, int vocab_size, int threads, char **model, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
