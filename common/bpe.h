/* bpe.h: a fast encoder for SentencePiece BPE models, exact to the library.
 *
 * libsentencepiece is the reference: pp_spm_encode() calls it. This encoder
 * reimplements its BPE path (normalizer without a character map, then merges
 * of the highest-scoring adjacent pair, leftmost first, then byte fallback)
 * in plain C with a per-thread cache of whitespace-delimited segments, which
 * makes tokenization several times faster. It builds only for models it can
 * reproduce exactly: BPE, no precompiled character map, no user-defined or
 * unused pieces, whitespace as a prefix. For anything else pp_bpe_build()
 * says why and the caller keeps the library. Equality with the library is
 * tested on fixtures, whole datasets and fuzzed text (tests/unit/test_bpe.c). */
#ifndef PP_BPE_H
#define PP_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct pp_bpe pp_bpe;
typedef struct pp_bpe_state pp_bpe_state;

/* Parses a serialized SentencePiece model (tokenizer.model bytes).
 * PP_E_DATA for a malformed model; PP_E_USAGE (with the reason) for a valid
 * model this encoder does not reproduce. */
pp_status pp_bpe_build(pp_bpe **out, const void *model, size_t n);
void pp_bpe_free(pp_bpe *b);

/* Piece i's bytes and score, for the cross-check against the library. */
int pp_bpe_vocab_size(const pp_bpe *b);
const char *pp_bpe_piece(const pp_bpe *b, int id, size_t *len);
float pp_bpe_score(const pp_bpe *b, int id);

/* Per-thread working memory and segment cache; *st may be NULL at first and
 * is created on demand. Free with pp_bpe_state_free(). */
void pp_bpe_state_free(pp_bpe_state *st);

/* Encodes valid UTF-8 text like SentencePieceProcessor::Encode (no BOS/EOS).
 * *ids grows as needed (see pp_spm_encode). */
pp_status pp_bpe_encode(const pp_bpe *b, pp_bpe_state **st, const char *text, size_t n,
                        uint32_t **ids, size_t *cap, size_t *count);

#endif
