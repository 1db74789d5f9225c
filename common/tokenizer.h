/* tokenizer.h: finding, loading and running a model's tokenizer.
 *
 * Two kinds, as Hugging Face models ship them:
 * - tokenizer.json (hftok.h): applied as the `tokenizers` library does, with
 *   tokenizer_config.json's bos_token, eos_token, add_bos_token,
 *   add_eos_token and chat_template read as transformers reads them;
 * - a SentencePiece tokenizer.model: the library (spm.h) is the reference
 *   and decodes; where bpe.h reproduces the model exactly, encoding goes
 *   through that fast encoder instead, cross-checked at load time (every piece
 *   and score, and probe texts) and dropped on any difference.
 *   PP_TOKENIZER=library in the environment forces the library.
 * A directory holding both is read as transformers reads it: tokenizer.json. */
#ifndef PP_TOKENIZER_H
#define PP_TOKENIZER_H

#include "bpe.h"
#include "chat.h"
#include "hfdir.h"
#include "hftok.h"
#include "spm.h"
#include "status.h"

typedef struct pp_tokenizer {
    pp_spm *spm;            /* SentencePiece: the library */
    pp_bpe *bpe;            /* SentencePiece: the fast encoder, or NULL */
    pp_hftok *hf;           /* tokenizer.json */
    pp_tokfiles files;      /* the files it was made from (carried into pp model files) */
    char sha256[65];        /* of the tokenizer.json or tokenizer.model bytes */
    char engine[200];       /* which encoder runs, and why (for -v) */
    int vocab;              /* one past the largest id */
    int bos_id, eos_id;     /* -1 when the tokenizer has none */
    uint32_t pre[8], post[8]; /* the ids a single text gets around it (add_special_tokens) */
    size_t npre, npost;
    char *chat_template;    /* tokenizer_config.json's chat_template, or NULL */
    int *specials;          /* the ids of the special tokens (control pieces) */
    int nspecials;
} pp_tokenizer;

typedef struct pp_tok_state pp_tok_state;

/* Reads the tokenizer files named by path: a model directory, a
 * tokenizer.json (with the tokenizer_config.json beside it, if any), a
 * tokenizer.model, or a pp model file (safetensors, plain or zstd) carrying
 * them. "-" reads a tokenizer.json or tokenizer.model from standard input. */
pp_status pp_tokenizer_files(pp_tokfiles *f, const char *path);

/* Loads the tokenizer named by path (as pp_tokenizer_files). */
pp_status pp_tokenizer_load(pp_tokenizer **tk, const char *path);
/* The same from files already in memory (copied). */
pp_status pp_tokenizer_from_files(pp_tokenizer **tk, const pp_tokfiles *f);
void pp_tokenizer_free(pp_tokenizer *tk);
void pp_tok_state_free(pp_tok_state *st);

enum {
    PP_TOK_SPECIAL = 1,     /* tokenizer.json: special tokens written in the text become their ids */
};

/* Encodes text[0..n) without the ids around it (see pre and post). *st is
 * the calling thread's scratch state: NULL at first, freed with
 * pp_tok_state_free(). Safe on several threads, each with its own *st. */
pp_status pp_tokenizer_encode(const pp_tokenizer *tk, pp_tok_state **st, const char *text, size_t n, int flags,
                              uint32_t **ids, size_t *cap, size_t *count);

/* Decodes ids into text (special tokens left out when skip_special), into
 * a malloc'ed NUL-terminated *out of *cap bytes, *len set. */
pp_status pp_tokenizer_decode(const pp_tokenizer *tk, const uint32_t *ids, size_t n, int skip_special, char **out,
                              size_t *cap, size_t *len);

/* Encodes a conversation rendered by pp_chat_render() as transformers
 * encodes apply_chat_template's text, with one difference: special tokens
 * become ids only where the template wrote them (MARKUP spans), never from
 * a message's text. Each stretch between special tokens is encoded whole;
 * (*train)[i] is 1 for the tokens that carry the loss: those of the TRAIN
 * spans, a token that straddles a span's edge included. */
pp_status pp_tokenizer_encode_chat(const pp_tokenizer *tk, pp_tok_state **st, const pp_chat_text *c, uint32_t **ids,
                                   size_t *cap, uint8_t **train, size_t *tcap, size_t *count);

/* Nonzero for a control piece (<s>) or a special added token. */
int pp_tokenizer_is_special(const pp_tokenizer *tk, int id);
/* The token string of id (NULL if none has it), and the id of a token string (-1). */
const char *pp_tokenizer_piece(const pp_tokenizer *tk, int id, size_t *len);
int pp_tokenizer_piece_id(const pp_tokenizer *tk, const char *s, size_t n);

#endif
