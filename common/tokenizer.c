#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "sha256.h"
#include "stream.h"
#include "text.h"

#define TOKENIZER_MAX (64u << 20)

/* The tokenizer.model bytes named by path (see pp_tokenizer_load). */
static pp_status read_model(const char *path, char **out, size_t *nout)
{
    char *file = NULL;
    struct stat stt;
    if (strcmp(path, "-") != 0 && stat(path, &stt) == 0 && S_ISDIR(stt.st_mode)) {
        size_t n = strlen(path) + sizeof "/tokenizer.model";
        file = malloc(n);
        if (!file) return pp_fail(PP_E_NOMEM, "out of memory");
        snprintf(file, n, "%s/tokenizer.model", path);
        path = file;
    }
    pp_reader *r = NULL;
    char *model = NULL, head[9];
    size_t nmodel = 0;
    /* A pp model file or any safetensors file is read as a stream and only
     * its tokenizer.model tensor is kept; a first look at 9 bytes decides. */
    int container = 0;
    pp_status s = PP_OK;
    if (strcmp(path, "-") != 0) {
        s = pp_reader_open(&r, path);
        if (s == PP_OK) {
            size_t got = 0, k;
            while (got < 9 && (s = pp_read_some(r, head + got, 9 - got, &k)) == PP_OK && k) got += k;
            container = pp_reader_is_zstd(r) || (got == 9 && head[8] == '{');
            pp_reader_close(r);
            r = NULL;
        }
    }
    if (s == PP_OK) s = pp_reader_open(&r, path);
    if (s == PP_OK && container) {
        pp_st_reader *st = NULL;
        s = pp_st_open(&st, r);
        const pp_tensor_info *t = s == PP_OK ? pp_st_find(st, "tokenizer.model") : NULL;
        if (s == PP_OK && (!t || t->dtype != PP_U8 || t->end - t->begin > TOKENIZER_MAX))
            s = pp_fail(PP_E_DATA, "no U8 tensor \"tokenizer.model\" in this safetensors file");
        if (s == PP_OK) {
            nmodel = (size_t)(t->end - t->begin);
            model = malloc(nmodel ? nmodel : 1);
            s = model ? pp_st_read(st, t, model) : pp_fail(PP_E_NOMEM, "out of memory");
        }
        pp_st_close(st);
    } else if (s == PP_OK) {
        s = pp_read_all(r, &model, &nmodel, TOKENIZER_MAX);
    }
    pp_reader_close(r);
    free(file);
    if (s != PP_OK) {
        free(model);
        return s;
    }
    *out = model;
    *nout = nmodel;
    return PP_OK;
}

/* Probe texts for the load-time check: spaces in every position, byte
 * fallback, long words, the template's markup. */
static const char *const probes[] = {
    "", " ", "   ", "Hello world", "  two  spaces  ", "### Instruction:\nWho is Mr. Darcy?\n\n### Response:\n",
    "caf\xc3\xa9 na\xc3\xafve Z\xc3\xbcrich \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80",
    "\ttab\x01\x7f end", "supercalifragilisticexpialidocious", "1234567890 3.14159", "\xe2\x96\x81literal",
};

/* Why the fast encoder cannot stand in for the library, or NULL if it can. */
static const char *cross_check(const pp_tokenizer *tk)
{
    int n = pp_spm_vocab_size(tk->spm);
    if (pp_bpe_vocab_size(tk->bpe) != n) return "vocabulary sizes differ";
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *p = pp_bpe_piece(tk->bpe, i, &len), *q = pp_spm_id_to_piece(tk->spm, i);
        if (!q || strlen(q) != len || memcmp(p, q, len) != 0) return "pieces differ";
        if (pp_bpe_score(tk->bpe, i) != pp_spm_score(tk->spm, i)) return "scores differ";
    }
    uint32_t *a = NULL, *b = NULL;
    size_t ca = 0, cb = 0, na, nb;
    pp_bpe_state *st = NULL;
    const char *why = NULL;
    for (size_t k = 0; k < sizeof probes / sizeof *probes && !why; k++) {
        size_t len = strlen(probes[k]);
        if (pp_spm_encode(tk->spm, probes[k], len, &a, &ca, &na) != PP_OK ||
            pp_bpe_encode(tk->bpe, &st, probes[k], len, &b, &cb, &nb) != PP_OK ||
            na != nb || (na && memcmp(a, b, na * sizeof *a) != 0))
            why = "probe texts encode differently";
    }
    free(a);
    free(b);
    pp_bpe_state_free(st);
    return why;
}

pp_status pp_tokenizer_from_bytes(pp_tokenizer **out, const void *model, size_t nmodel)
{
    *out = NULL;
    pp_tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status s = pp_spm_load(&tk->spm, model, nmodel);
    if (s != PP_OK) {
        free(tk);
        return s;
    }
    pp_sha256_hex_of(model, nmodel, tk->sha256);
    const char *env = getenv("PP_TOKENIZER");
    if (env && strcmp(env, "library") == 0) {
        snprintf(tk->engine, sizeof tk->engine, "libsentencepiece (PP_TOKENIZER=library)");
    } else if (pp_bpe_build(&tk->bpe, model, nmodel) != PP_OK) {
        snprintf(tk->engine, sizeof tk->engine, "libsentencepiece (%s)", pp_errmsg());
    } else {
        const char *why = cross_check(tk);
        if (why) {
            pp_bpe_free(tk->bpe);
            tk->bpe = NULL;
            snprintf(tk->engine, sizeof tk->engine, "libsentencepiece (fast BPE off: %s)", why);
        } else {
            snprintf(tk->engine, sizeof tk->engine, "pp's BPE encoder (cross-checked with libsentencepiece)");
        }
    }
    *out = tk;
    return PP_OK;
}

pp_status pp_tokenizer_load(pp_tokenizer **out, const char *path)
{
    *out = NULL;
    char *model = NULL;
    size_t nmodel = 0;
    PP_TRY(read_model(path, &model, &nmodel));
    pp_status s = pp_tokenizer_from_bytes(out, model, nmodel);
    free(model);
    return s;
}

void pp_tokenizer_free(pp_tokenizer *tk)
{
    if (!tk) return;
    pp_spm_free(tk->spm);
    pp_bpe_free(tk->bpe);
    free(tk);
}

pp_status pp_tokenizer_encode(const pp_tokenizer *tk, pp_bpe_state **st, const char *text, size_t n,
                              uint32_t **ids, size_t *cap, size_t *count)
{
    /* The fast path is exact on valid UTF-8; the library has its own rules
     * for malformed bytes. */
    if (tk->bpe && pp_utf8_valid(text, n, NULL)) return pp_bpe_encode(tk->bpe, st, text, n, ids, cap, count);
    return pp_spm_encode(tk->spm, text, n, ids, cap, count);
}
