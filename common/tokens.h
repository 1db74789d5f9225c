/* tokens.h: the token dataset, pp-tokenize's output and pp-train's input.
 *
 * A safetensors file (zstd-compressed by default) with
 *   offsets     U64 (records+1)  record i is tokens[offsets[i] .. offsets[i+1])
 *   tokens      U32 (n_tokens)   all records concatenated: BOS prompt response EOS
 *   prompt_lens U32 (records)    leading tokens of each record that get no loss
 *   loss_mask   U8  (n_tokens)   optional (chat records): 1 where a token is
 *                                a target, 0 where not; prompt_lens is then
 *                                each record's first target
 * and __metadata__ pp.kind=tokens, pp.version, tokenizer.sha256, vocab_size,
 * bos_id, eos_id, records (see pp-files(5)). */
#ifndef PP_TOKENS_H
#define PP_TOKENS_H

#include <stdint.h>

#include "status.h"
#include "stream.h"

#define PP_TOKENS_VERSION "1"

typedef struct pp_tokens {
    uint64_t *offsets;      /* (n_records + 1) */
    uint32_t *tokens;       /* (n_tokens) */
    uint32_t *prompt_lens;  /* (n_records) */
    uint8_t *loss_mask;     /* (n_tokens) or NULL: each token a target (1) or not (0) */
    uint64_t n_tokens, n_records;
    uint32_t vocab_size;
    int32_t bos_id, eos_id; /* -1: none */
    char tokenizer_sha256[65];
    void *mem;              /* the one allocation behind the arrays (reader) */
} pp_tokens;

/* Reads and validates a token dataset: kind and version, tensor dtypes and
 * shapes, offsets from 0 non-decreasing to n_tokens, each prompt length within
 * its record, every id below vocab_size. */
pp_status pp_tokens_read(pp_tokens *t, pp_reader *r);

/* Writes t with the standard metadata plus n_extra key/value pairs. */
pp_status pp_tokens_write(pp_writer *w, const pp_tokens *t, const char *const *extra_kv, size_t n_extra);

void pp_tokens_free(pp_tokens *t);

#endif
