#include "tokens.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "safetensors.h"

static pp_status meta_u64(const pp_st_reader *st, const char *key, uint64_t max, uint64_t *v)
{
    const char *s = pp_st_meta(st, key);
    if (!s) return pp_fail(PP_E_DATA, "metadata \"%s\" is missing", key);
    if (pp_cli_u64(s, 0, max, v) != 0) return pp_fail(PP_E_DATA, "metadata \"%s\" is not a valid number: \"%.40s\"", key, s);
    return PP_OK;
}

static pp_status meta_id(const pp_st_reader *st, const char *key, uint32_t vocab, int32_t *id)
{
    const char *s = pp_st_meta(st, key);
    uint64_t v;
    if (s && strcmp(s, "-1") == 0) {
        *id = -1;
        return PP_OK;
    }
    PP_TRY(meta_u64(st, key, vocab ? vocab - 1 : 0, &v));
    *id = (int32_t)v;
    return PP_OK;
}

static pp_status check_tensor(const pp_tensor_info *t, const char *name, pp_dtype dt, uint64_t n)
{
    if (!t) return pp_fail(PP_E_DATA, "tensor missing (tensor %s)", name);
    if (t->dtype != dt || t->ndim != 1 || t->shape[0] != n)
        return pp_fail(PP_E_DATA, "expected %s [%llu], found %s of rank %d (tensor %s)", pp_dtype_name(dt),
                       (unsigned long long)n, pp_dtype_name(t->dtype), t->ndim, name);
    return PP_OK;
}

#define CHUNK ((size_t)16 << 20)

static pp_status tokens_read(pp_tokens *t, pp_st_reader *st, pp_reader *in)
{
    const char *kind = pp_st_meta(st, "pp.kind"), *ver = pp_st_meta(st, "pp.version");
    if (!kind || strcmp(kind, "tokens") != 0)
        return pp_fail(PP_E_DATA, "not a token dataset (metadata pp.kind is \"%.40s\")", kind ? kind : "");
    if (!ver || strcmp(ver, PP_TOKENS_VERSION) != 0)
        return pp_fail(PP_E_DATA, "token dataset version \"%.40s\", this pp reads %s", ver ? ver : "",
                       PP_TOKENS_VERSION);
    uint64_t vocab, records;
    PP_TRY(meta_u64(st, "vocab_size", UINT32_MAX, &vocab));
    PP_TRY(meta_u64(st, "records", UINT64_MAX / 16, &records));
    if (vocab == 0) return pp_fail(PP_E_DATA, "metadata \"vocab_size\" is 0");
    t->vocab_size = (uint32_t)vocab;
    PP_TRY(meta_id(st, "bos_id", t->vocab_size, &t->bos_id));
    PP_TRY(meta_id(st, "eos_id", t->vocab_size, &t->eos_id));
    const char *sha = pp_st_meta(st, "tokenizer.sha256");
    if (!sha || strlen(sha) != 64) return pp_fail(PP_E_DATA, "metadata \"tokenizer.sha256\" is missing or malformed");
    memcpy(t->tokenizer_sha256, sha, 65);

    const pp_tensor_info *to = pp_st_find(st, "tokens"), *of = pp_st_find(st, "offsets"),
                         *pl = pp_st_find(st, "prompt_lens"), *lm = pp_st_find(st, "loss_mask");
    PP_TRY(check_tensor(of, "offsets", PP_U64, records + 1));
    PP_TRY(check_tensor(pl, "prompt_lens", PP_U32, records));
    if (!to) return pp_fail(PP_E_DATA, "tensor missing (tensor tokens)");
    PP_TRY(check_tensor(to, "tokens", PP_U32, to->shape[0]));
    if (lm) PP_TRY(check_tensor(lm, "loss_mask", PP_U8, to->shape[0]));
    size_t nt = lm ? 4 : 3;
    if (pp_st_count(st) != nt) return pp_fail(PP_E_DATA, "%zu tensors, a token dataset has 3 (4 with loss_mask)", pp_st_count(st));
    t->n_records = records;
    t->n_tokens = to->shape[0];

    /* One allocation for the three arrays, in file order, each 8-aligned.
     * When the input's size is unknown (zstd, a pipe), the header's sizes are
     * not trusted: the buffer grows as the bytes actually arrive. */
    uint64_t nb = (of->end - of->begin) + (to->end - to->begin) + (pl->end - pl->begin) + 32, left;
    if (lm) nb += lm->end - lm->begin;
    if (nb > SIZE_MAX) return pp_fail(PP_E_NOMEM, "dataset too large for memory");
    int known = pp_reader_remaining(in, &left);
    size_t cap = known ? (size_t)nb : 0, at = 0, where[4];
    if (known && !(t->mem = malloc(cap))) return pp_fail(PP_E_NOMEM, "out of memory (%llu bytes)", (unsigned long long)nb);
    for (size_t i = 0; i < nt; i++) {
        const pp_tensor_info *ti = pp_st_tensor(st, i);
        size_t n = (size_t)(ti->end - ti->begin), done = 0;
        at = (at + 7) & ~(size_t)7;
        where[i] = at;
        do {
            size_t k = n - done < CHUNK ? n - done : CHUNK;
            if (at + k > cap) {
                size_t c = cap ? cap : CHUNK;
                while (c < at + k) c *= 2;
                void *p = realloc(t->mem, c);
                if (!p) return pp_fail(PP_E_NOMEM, "out of memory (%zu bytes)", c);
                t->mem = p;
                cap = c;
            }
            PP_TRY(pp_st_read_part(st, ti, (char *)t->mem + at, k));
            at += k;
            done += k;
        } while (done < n);
    }
    for (size_t i = 0; i < nt; i++) {
        const pp_tensor_info *ti = pp_st_tensor(st, i);
        void *p = (char *)t->mem + where[i];
        if (ti == of) t->offsets = p;
        else if (ti == to) t->tokens = p;
        else if (ti == lm) t->loss_mask = p;
        else t->prompt_lens = p;
    }
    PP_TRY(pp_st_finish(st));

    if (t->offsets[0] != 0) return pp_fail(PP_E_DATA, "offsets[0] is %llu, expected 0", (unsigned long long)t->offsets[0]);
    for (uint64_t i = 0; i < records; i++) {
        uint64_t a = t->offsets[i], b = t->offsets[i + 1];
        if (b < a || b > t->n_tokens)
            return pp_fail(PP_E_DATA, "offsets[%llu] = %llu is out of order or past the tokens (tensor offsets)",
                           (unsigned long long)(i + 1), (unsigned long long)b);
        if (t->prompt_lens[i] > b - a)
            return pp_fail(PP_E_DATA, "prompt_lens[%llu] = %u exceeds the record's %llu tokens (tensor prompt_lens)",
                           (unsigned long long)i, t->prompt_lens[i], (unsigned long long)(b - a));
    }
    if (t->offsets[records] != t->n_tokens)
        return pp_fail(PP_E_DATA, "offsets end at %llu, tokens has %llu (tensor offsets)",
                       (unsigned long long)t->offsets[records], (unsigned long long)t->n_tokens);
    for (uint64_t i = 0; t->loss_mask && i < t->n_tokens; i++)
        if (t->loss_mask[i] > 1)
            return pp_fail(PP_E_DATA, "loss_mask[%llu] = %u, expected 0 or 1 (tensor loss_mask)", (unsigned long long)i,
                           t->loss_mask[i]);
    for (uint64_t i = 0; i < t->n_tokens; i++)
        if (t->tokens[i] >= t->vocab_size)
            return pp_fail(PP_E_DATA, "tokens[%llu] = %u is outside the vocabulary of %u (tensor tokens)",
                           (unsigned long long)i, t->tokens[i], t->vocab_size);
    return PP_OK;
}

pp_status pp_tokens_read(pp_tokens *t, pp_reader *r)
{
    memset(t, 0, sizeof *t);
    pp_st_reader *st = NULL;
    PP_TRY(pp_st_open(&st, r));
    pp_status s = tokens_read(t, st, r);
    pp_st_close(st);
    if (s != PP_OK) pp_tokens_free(t);
    return s;
}

pp_status pp_tokens_write(pp_writer *w, const pp_tokens *t, const char *const *extra_kv, size_t n_extra)
{
    char vocab[24], bos[24], eos[24], records[24], ntok[24];
    snprintf(vocab, sizeof vocab, "%" PRIu32, t->vocab_size);
    snprintf(bos, sizeof bos, "%" PRId32, t->bos_id);
    snprintf(eos, sizeof eos, "%" PRId32, t->eos_id);
    snprintf(records, sizeof records, "%" PRIu64, t->n_records);
    snprintf(ntok, sizeof ntok, "%" PRIu64, t->n_tokens);
    enum { NSTD = 8, NMAX = 32 };
    const char *kv[2 * NMAX] = {
        "pp.kind", "tokens", "pp.version", PP_TOKENS_VERSION, "tokenizer.sha256", t->tokenizer_sha256,
        "vocab_size", vocab, "bos_id", bos, "eos_id", eos, "records", records, "tokens", ntok,
    };
    if (n_extra > NMAX - NSTD) return pp_fail(PP_E_INTERNAL, "too much metadata");
    if (n_extra) memcpy(kv + 2 * NSTD, extra_kv, 2 * n_extra * sizeof *kv);
    uint64_t n_off = t->n_records + 1;
    pp_st_entry e[4] = {
        {"offsets", PP_U64, 1, &n_off, t->offsets},
        {"tokens", PP_U32, 1, &t->n_tokens, t->tokens},
        {"prompt_lens", PP_U32, 1, &t->n_records, t->prompt_lens},
        {"loss_mask", PP_U8, 1, &t->n_tokens, t->loss_mask},
    };
    return pp_st_write(w, e, t->loss_mask ? 4 : 3, kv, NSTD + n_extra);
}

void pp_tokens_free(pp_tokens *t)
{
    free(t->mem);
    t->mem = NULL;
    t->offsets = NULL;
    t->tokens = t->prompt_lens = NULL;
    t->loss_mask = NULL;
}
