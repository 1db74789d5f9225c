/* hftok.h: Hugging Face tokenizer.json files, applied as the `tokenizers`
 * library applies them.
 *
 * The pipeline is the library's: added tokens are cut out of the text first
 * (those with "normalized": false on the raw text, the others after the
 * normalizer), the normalizer runs on what is left, the pre-tokenizer cuts it
 * into pieces, the BPE model encodes each piece, and the post-processor adds
 * BOS/EOS. Decoding turns ids into token strings and runs the decoder chain.
 *
 * Supported (anything else is refused with PP_E_DATA naming it, never run
 * differently): model BPE (byte_fallback, fuse_unk, ignore_merges, unk_token;
 * merges as "a b" strings or [a, b] pairs); normalizers NFC, NFKC, Prepend,
 * Replace, Sequence; pre-tokenizers ByteLevel, Split, Digits, Metaspace,
 * Sequence; decoders ByteLevel, ByteFallback, Metaspace, Fuse, Strip, Replace,
 * Sequence; post-processors TemplateProcessing, ByteLevel, Sequence; added
 * tokens with single_word, lstrip, rstrip, normalized and special.
 *
 * Regular expressions run in PCRE2 (UTF + UCP, JIT). The library uses
 * Oniguruma; the two agree on the patterns Llama-family tokenizers use once
 * `\s` is given Oniguruma's meaning (White_Space without U+180E), which the
 * loader does by rewriting it. Both follow Unicode 14 in the versions pinned
 * here (PCRE2 10.42, Oniguruma 6.9.8). Unicode normalization is utf8proc's.
 *
 * A loaded pp_hftok is immutable; encoding needs a per-thread pp_hftok_state
 * (regex match data, scratch, a cache of pieces already encoded). */
#ifndef PP_HFTOK_H
#define PP_HFTOK_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct pp_hftok pp_hftok;
typedef struct pp_hftok_state pp_hftok_state;

/* Parses tokenizer.json text. PP_E_DATA names what is malformed or not
 * supported ("tokenizer.json: pre_tokenizer \"Whitespace\" is not supported"). */
pp_status pp_hftok_load(pp_hftok **out, const char *json, size_t n);
void pp_hftok_free(pp_hftok *t);
void pp_hftok_state_free(pp_hftok_state *st);

/* One past the largest id, over the model's vocabulary and the added tokens
 * (transformers' len(tokenizer)). */
int pp_hftok_vocab_size(const pp_hftok *t);
/* The token string of id as the file has it (added tokens: their content);
 * NULL for an id no token has. */
const char *pp_hftok_token(const pp_hftok *t, int id, size_t *len);
/* The id of the token string s[0..n): an added token first, then the model's
 * vocabulary; -1 if none. */
int pp_hftok_token_id(const pp_hftok *t, const char *s, size_t n);
/* Nonzero for a special added token. */
int pp_hftok_is_special(const pp_hftok *t, int id);
/* The post-processor's ids around a single sequence (add_special_tokens). */
void pp_hftok_template(const pp_hftok *t, const uint32_t **pre, size_t *npre, const uint32_t **post, size_t *npost);
/* Nonzero when the file has a post-processor. */
int pp_hftok_has_post(const pp_hftok *t);
/* Replaces the post-processor by "bos $A eos" (either id may be -1 for none),
 * as transformers does when tokenizer_config.json sets add_bos_token or
 * add_eos_token, or when the file has no post-processor. */
void pp_hftok_set_template(pp_hftok *t, int bos, int eos);
/* Nonzero when encode can report each token's byte offset in the text (no
 * normalizer and no pre-tokenizer that rewrites the text before the model). */
int pp_hftok_has_offsets(const pp_hftok *t);
/* One line for -v: the model and pipeline. */
const char *pp_hftok_describe(const pp_hftok *t);

enum {
    PP_HFTOK_SPECIAL = 1,   /* recognise special added tokens in the text */
};

/* Encodes valid UTF-8 text[0..n) without the post-processor's ids. Ids are
 * appended to *ids (capacity *cap, grown as needed) and *count set to their
 * number. With offs non-NULL (only where pp_hftok_has_offsets), *offs
 * (capacity *ocap) receives each token's start offset in text. Text that is
 * not valid UTF-8 is PP_E_DATA. */
pp_status pp_hftok_encode(const pp_hftok *t, pp_hftok_state **st, const char *text, size_t n, int flags,
                          uint32_t **ids, size_t *cap, size_t *count, uint32_t **offs, size_t *ocap);

/* Decodes ids as Tokenizer.decode(ids, skip_special_tokens) does: ids no token
 * has are dropped (as the library does). The text replaces *out (a malloc'ed
 * NUL-terminated buffer of *cap bytes, grown as needed), *len its length. */
pp_status pp_hftok_decode(const pp_hftok *t, const uint32_t *ids, size_t n, int skip_special,
                          char **out, size_t *cap, size_t *len);

#endif
