#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "sha256.h"
#include "stream.h"
#include "text.h"

#define TOKENIZER_MAX (64u << 20)

struct pp_tok_state {
    pp_bpe_state *bpe;
    pp_hftok_state *hf;
};

void pp_tok_state_free(pp_tok_state *st)
{
    if (!st) return;
    pp_bpe_state_free(st->bpe);
    pp_hftok_state_free(st->hf);
    free(st);
}

/* The directory part of path ("." when none), malloc'ed. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) memcpy(d, path, n), d[n] = 0;
    return d;
}

pp_status pp_tokenizer_files(pp_tokfiles *f, const char *path)
{
    memset(f, 0, sizeof *f);
    struct stat sb;
    if (strcmp(path, "-") != 0 && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return pp_tokfiles_from_dir(f, path);
    /* A pp model file or any safetensors file is read as a stream for its
     * tokenizer tensors; a first look at 9 bytes decides. */
    pp_reader *r = NULL;
    char head[9];
    int container = 0;
    size_t got = 0;
    pp_status s = PP_OK;
    if (strcmp(path, "-") != 0) {
        PP_TRY(pp_reader_open(&r, path));
        size_t k;
        while (got < 9 && (s = pp_read_some(r, head + got, 9 - got, &k)) == PP_OK && k) got += k;
        container = pp_reader_is_zstd(r) || (got == 9 && head[8] == '{');
        pp_reader_close(r);
        r = NULL;
        PP_TRY(s);
    }
    PP_TRY(pp_reader_open(&r, path));
    if (container) {
        pp_st_reader *st = NULL;
        s = pp_st_open(&st, r);
        if (s == PP_OK) s = pp_tokfiles_from_st(f, st);
        pp_st_close(st);
        pp_reader_close(r);
        return s;
    }
    s = pp_read_all(r, &f->data, &f->n, TOKENIZER_MAX);
    pp_reader_close(r);
    if (s != PP_OK) return s;
    size_t i = 0;
    while (i < f->n && (f->data[i] == ' ' || f->data[i] == '\n' || f->data[i] == '\r' || f->data[i] == '\t')) i++;
    f->json = i < f->n && f->data[i] == '{';
    if (f->json && strcmp(path, "-") != 0) { /* tokenizer_config.json beside it */
        char *d = dir_of(path), *cp = d ? pp_path_join(d, "tokenizer_config.json") : NULL;
        if (cp && stat(cp, &sb) == 0) {
            pp_reader *c = NULL;
            s = pp_reader_open(&c, cp);
            if (s == PP_OK) s = pp_read_all(c, &f->config, &f->nconfig, TOKENIZER_MAX);
            pp_reader_close(c);
        } else if (!cp) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
        }
        free(d);
        free(cp);
    }
    if (s != PP_OK) pp_tokfiles_free(f);
    return s;
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

/* tokenizer_config.json's token fields: a string or {"content": ...}. */
static const char *token_text(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A tokenizer.json with its tokenizer_config.json, as transformers sets it
 * up (tokenization_utils_tokenizers.py): the post-processor is rebuilt from
 * add_bos_token/add_eos_token when the config names either, or when the file
 * has none. */
static pp_status from_json(pp_tokenizer *tk, const pp_tokfiles *f)
{
    PP_TRY(pp_hftok_load(&tk->hf, f->data, f->n));
    tk->vocab = pp_hftok_vocab_size(tk->hf);
    tk->bos_id = tk->eos_id = -1;
    cJSON *cfg = NULL;
    if (f->config) {
        size_t bad;
        if (!pp_json_strings_clean(f->config, f->nconfig, &bad) || !(cfg = cJSON_ParseWithLength(f->config, f->nconfig)) ||
            !cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return pp_fail(PP_E_DATA, "tokenizer_config.json: malformed JSON");
        }
    }
    const char *bos = token_text(cfg, "bos_token"), *eos = token_text(cfg, "eos_token");
    if (bos) tk->bos_id = pp_hftok_token_id(tk->hf, bos, strlen(bos));
    if (eos) tk->eos_id = pp_hftok_token_id(tk->hf, eos, strlen(eos));
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"), *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (ab || ae || !pp_hftok_has_post(tk->hf))
        pp_hftok_set_template(tk->hf, cJSON_IsTrue(ab) ? tk->bos_id : -1, cJSON_IsTrue(ae) ? tk->eos_id : -1);
    const uint32_t *pre, *post;
    pp_hftok_template(tk->hf, &pre, &tk->npre, &post, &tk->npost);
    memcpy(tk->pre, pre, tk->npre * sizeof *pre);
    memcpy(tk->post, post, tk->npost * sizeof *post);
    if (tk->bos_id < 0 && tk->npre == 1) tk->bos_id = (int)tk->pre[0];
    /* chat_template: a string, or a list of {name, template} of which "default" */
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *e;
    if (cJSON_IsArray(ct)) {
        const cJSON *pick = NULL;
        cJSON_ArrayForEach(e, ct) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
            if (name && strcmp(name, "default") == 0) pick = cJSON_GetObjectItemCaseSensitive(e, "template");
        }
        ct = pick;
    }
    pp_status s = PP_OK;
    if (cJSON_IsString(ct) && !(tk->chat_template = strdup(ct->valuestring))) s = pp_fail(PP_E_NOMEM, "out of memory");
    cJSON_Delete(cfg);
    snprintf(tk->engine, sizeof tk->engine, "%s", pp_hftok_describe(tk->hf));
    return s;
}

static pp_status from_spm(pp_tokenizer *tk, const pp_tokfiles *f)
{
    PP_TRY(pp_spm_load(&tk->spm, f->data, f->n));
    tk->vocab = pp_spm_vocab_size(tk->spm);
    tk->bos_id = pp_spm_bos_id(tk->spm);
    tk->eos_id = pp_spm_eos_id(tk->spm);
    if (tk->bos_id >= 0) tk->pre[tk->npre++] = (uint32_t)tk->bos_id; /* Llama's tokenizers add BOS only */
    const char *env = getenv("PP_TOKENIZER");
    if (env && strcmp(env, "library") == 0) {
        snprintf(tk->engine, sizeof tk->engine, "libsentencepiece (PP_TOKENIZER=library)");
    } else if (pp_bpe_build(&tk->bpe, f->data, f->n) != PP_OK) {
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
    return PP_OK;
}

static pp_status copy_files(pp_tokfiles *d, const pp_tokfiles *f)
{
    memset(d, 0, sizeof *d);
    d->json = f->json;
    d->n = f->n;
    d->nconfig = f->nconfig;
    if (!(d->data = malloc(f->n + 1)) || (f->config && !(d->config = malloc(f->nconfig + 1)))) {
        pp_tokfiles_free(d);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    memcpy(d->data, f->data, f->n);
    d->data[f->n] = 0;
    if (f->config) memcpy(d->config, f->config, f->nconfig), d->config[f->nconfig] = 0;
    return PP_OK;
}

pp_status pp_tokenizer_from_files(pp_tokenizer **out, const pp_tokfiles *f)
{
    *out = NULL;
    if (!f->data) return pp_fail(PP_E_NOINPUT, "no tokenizer");
    pp_tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status s = copy_files(&tk->files, f);
    if (s == PP_OK) s = f->json ? from_json(tk, f) : from_spm(tk, f);
    if (s != PP_OK) {
        if (!f->json) pp_fail_ctx(s, "tokenizer.model");
        pp_tokenizer_free(tk);
        return s;
    }
    pp_sha256_hex_of(f->data, f->n, tk->sha256);
    for (int pass = 0; pass < 2; pass++) { /* count, then list */
        tk->nspecials = 0;
        for (int i = 0; i < tk->vocab; i++)
            if (pp_tokenizer_is_special(tk, i)) {
                if (pass) tk->specials[tk->nspecials] = i;
                tk->nspecials++;
            }
        if (!pass && !(tk->specials = malloc(((size_t)tk->nspecials + 1) * sizeof *tk->specials))) {
            pp_tokenizer_free(tk);
            return pp_fail(PP_E_NOMEM, "out of memory");
        }
    }
    *out = tk;
    return PP_OK;
}

pp_status pp_tokenizer_load(pp_tokenizer **out, const char *path)
{
    *out = NULL;
    pp_tokfiles f;
    PP_TRY(pp_tokenizer_files(&f, path));
    pp_status s = pp_tokenizer_from_files(out, &f);
    pp_tokfiles_free(&f);
    return s;
}

void pp_tokenizer_free(pp_tokenizer *tk)
{
    if (!tk) return;
    pp_spm_free(tk->spm);
    pp_bpe_free(tk->bpe);
    pp_hftok_free(tk->hf);
    pp_tokfiles_free(&tk->files);
    free(tk->chat_template);
    free(tk->specials);
    free(tk);
}

pp_status pp_tokenizer_encode(const pp_tokenizer *tk, pp_tok_state **stp, const char *text, size_t n, int flags,
                              uint32_t **ids, size_t *cap, size_t *count)
{
    if (!*stp && !(*stp = calloc(1, sizeof **stp))) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_tok_state *st = *stp;
    if (tk->hf)
        return pp_hftok_encode(tk->hf, &st->hf, text, n, flags & PP_TOK_SPECIAL ? PP_HFTOK_SPECIAL : 0, ids, cap, count,
                               NULL, NULL);
    /* The fast path is exact on valid UTF-8; the library has its own rules
     * for malformed bytes. */
    if (tk->bpe && pp_utf8_valid(text, n, NULL)) return pp_bpe_encode(tk->bpe, &st->bpe, text, n, ids, cap, count);
    return pp_spm_encode(tk->spm, text, n, ids, cap, count);
}

pp_status pp_tokenizer_decode(const pp_tokenizer *tk, const uint32_t *ids, size_t n, int skip_special, char **out,
                              size_t *cap, size_t *len)
{
    if (tk->hf) return pp_hftok_decode(tk->hf, ids, n, skip_special, out, cap, len);
    return pp_spm_decode(tk->spm, ids, n, out, cap, len);
}

int pp_tokenizer_is_special(const pp_tokenizer *tk, int id)
{
    return tk->hf ? pp_hftok_is_special(tk->hf, id) : pp_spm_is_control(tk->spm, id);
}

const char *pp_tokenizer_piece(const pp_tokenizer *tk, int id, size_t *len)
{
    if (tk->hf) return pp_hftok_token(tk->hf, id, len);
    const char *p = pp_spm_id_to_piece(tk->spm, id);
    if (p) *len = strlen(p);
    return p;
}

int pp_tokenizer_piece_id(const pp_tokenizer *tk, const char *s, size_t n)
{
    if (tk->hf) return pp_hftok_token_id(tk->hf, s, n);
    char buf[256];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return pp_spm_piece_to_id(tk->spm, buf);
}

/* ------------------------------------------------------------------ chat */

struct chat_scratch {
    uint32_t *a, *b;
    size_t ca, cb;
};

/* The longest special token spelled at s[0..n), its id in *id; 0 if none. */
static size_t special_at(const pp_tokenizer *tk, const char *s, size_t n, int *id)
{
    size_t best = 0;
    for (int k = 0; k < tk->nspecials; k++) {
        int i = tk->specials[k];
        size_t len;
        const char *p = pp_tokenizer_piece(tk, i, &len);
        if (p && len > best && len <= n && memcmp(p, s, len) == 0) best = len, *id = i;
    }
    return best;
}

static size_t common_prefix(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

static pp_status out_grow(uint32_t **ids, size_t *cap, uint8_t **train, size_t *tcap, size_t need)
{
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need) c *= 2;
        uint32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
        *ids = p, *cap = c;
    }
    if (need > *tcap) {
        size_t c = *tcap ? *tcap : 256;
        while (c < need) c *= 2;
        uint8_t *p = realloc(*train, c);
        if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
        *train = p, *tcap = c;
    }
    return PP_OK;
}

/* The text c->text[a..b) between two special tokens: encoded whole, then
 * each TRAIN span's edges placed by encoding the text up to the edge: the
 * tokens it shares with the whole are before the edge. */
static pp_status chat_stretch(const pp_tokenizer *tk, pp_tok_state **st, struct chat_scratch *x, const pp_chat_text *c,
                              size_t a, size_t b, uint32_t **ids, size_t *cap, uint8_t **train, size_t *tcap, size_t *count)
{
    if (a == b) return PP_OK;
    const char *t = c->text.p;
    size_t n, m;
    PP_TRY(pp_tokenizer_encode(tk, st, t + a, b - a, 0, &x->a, &x->ca, &n));
    PP_TRY(out_grow(ids, cap, train, tcap, *count + n));
    memcpy(*ids + *count, x->a, n * sizeof *x->a);
    memset(*train + *count, 0, n);
    for (size_t i = 0; i < c->n_spans; i++) {
        const pp_chat_span *sp = &c->spans[i];
        size_t s0 = sp->off > a ? sp->off : a, e0 = sp->off + sp->len < b ? sp->off + sp->len : b;
        if (!(sp->kind & PP_SPAN_TRAIN) || s0 >= e0) continue;
        size_t ks = 0, ke = n;
        if (s0 > a) {
            PP_TRY(pp_tokenizer_encode(tk, st, t + a, s0 - a, 0, &x->b, &x->cb, &m));
            ks = common_prefix(x->a, n, x->b, m);
        }
        if (e0 < b) {
            PP_TRY(pp_tokenizer_encode(tk, st, t + a, e0 - a, 0, &x->b, &x->cb, &m));
            ke = common_prefix(x->a, n, x->b, m);
            if (ke < m && ke < n) ke++; /* a token across the edge holds some of the span */
        }
        if (ks > n) ks = n;
        if (ks < ke) memset(*train + *count + ks, 1, ke - ks);
    }
    *count += n;
    return PP_OK;
}

pp_status pp_tokenizer_encode_chat(const pp_tokenizer *tk, pp_tok_state **st, const pp_chat_text *c, uint32_t **ids,
                                   size_t *cap, uint8_t **train, size_t *tcap, size_t *count)
{
    *count = 0;
    struct chat_scratch x = {0};
    pp_status s = PP_OK;
    size_t from = 0; /* the start of the text not yet encoded */
    for (size_t i = 0; i < c->n_spans && s == PP_OK; i++) {
        const pp_chat_span *sp = &c->spans[i];
        if (!(sp->kind & PP_SPAN_MARKUP)) continue;
        for (size_t p = sp->off; p < sp->off + sp->len && s == PP_OK;) {
            int id = -1;
            size_t len = special_at(tk, c->text.p + p, sp->off + sp->len - p, &id);
            if (!len) {
                p++;
                continue;
            }
            s = chat_stretch(tk, st, &x, c, from, p, ids, cap, train, tcap, count);
            if (s == PP_OK) s = out_grow(ids, cap, train, tcap, *count + 1);
            if (s == PP_OK) {
                (*ids)[*count] = (uint32_t)id;
                (*train)[(*count)++] = (sp->kind & PP_SPAN_TRAIN) != 0;
            }
            p += len;
            from = p;
        }
    }
    if (s == PP_OK) s = chat_stretch(tk, st, &x, c, from, c->text.len, ids, cap, train, tcap, count);
    free(x.a);
    free(x.b);
    return s;
}
