/* hftok.c: tokenizer.json, as Hugging Face `tokenizers` applies it (see hftok.h).
 *
 * Each step follows the library's source (tokenizers/src/...): the comments
 * name the file whose behaviour a function reproduces, quirks included. */
#include "hftok.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "piececache.h"
#include "text.h"

#define MAX_IDS (1 << 24)           /* ids and merges beyond this: refused */
#define NOMEM() pp_fail(PP_E_NOMEM, "out of memory")

/* ------------------------------------------------------------ utilities */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* The code point at s (valid UTF-8) and its length in *k. */
static uint32_t cp_at(const char *s, size_t n, int *k)
{
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80 || n < 2) return *k = 1, u[0];
    if (u[0] < 0xE0) return *k = 2, (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
    if (u[0] < 0xF0 || n < 4) return *k = 3, (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    return *k = 4, (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 | (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
}

static int cp_put(char *o, uint32_t c)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (char)(0x80 | (c >> 6 & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Rust's char::is_whitespace and regex \s: the White_Space property. */
static int is_ws(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Rust's char::is_numeric: general categories Nd, Nl, No. */
static int is_numeric(uint32_t c)
{
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* Rust regex's \w: Alphabetic, marks, Nd, Pc, Join_Control. Alphabetic is
 * taken as the letters, Nl and the Other_Alphabetic symbols (circled and
 * squared Latin letters). */
static int is_word(uint32_t c)
{
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC: return 1;
    default: return 0;
    }
}

/* GPT-2's byte-to-character map (pre_tokenizers/byte_level.rs bytes_char). */
static uint32_t byte_char[256];
static void byte_map_init(void)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_char[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}
/* The byte for a character of that map, or -1. */
static int char_byte(uint32_t c)
{
    if (c < 256) return byte_char[c] == c ? (int)c : -1;
    if (c < 256 + 68) {
        for (int b = 0; b < 256; b++)
            if (byte_char[b] == c) return b;
    }
    return -1;
}

/* ---------------------------------------------------- string -> id map */

typedef struct strmap {
    uint32_t *slot;         /* entry + 1, 0 = empty */
    uint32_t mask;
    char *bytes;
    size_t nbytes, capbytes;
    uint32_t *off, *len;
    int32_t *val;
    size_t n, cap;
} strmap;

static void sm_free(strmap *m)
{
    free(m->slot);
    free(m->bytes);
    free(m->off);
    free(m->len);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int32_t sm_get(const strmap *m, const char *s, size_t n)
{
    if (!m->slot) return -1;
    for (uint32_t i = (uint32_t)hash(s, n) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t e = m->slot[i];
        if (!e) return -1;
        e--;
        if (m->len[e] == n && memcmp(m->bytes + m->off[e], s, n) == 0) return m->val[e];
    }
}

/* Adds s -> v; 1 if added, 0 if s was there (unchanged), -1 out of memory. */
static int sm_put(strmap *m, const char *s, size_t n, int32_t v)
{
    if (sm_get(m, s, n) >= 0) return 0;
    if ((m->n + 1) * 2 > (size_t)(m->slot ? m->mask + 1 : 0)) {
        size_t c = m->slot ? (size_t)m->mask + 1 : 64;
        while ((m->n + 1) * 2 > c) c *= 2;
        uint32_t *slot = calloc(c, sizeof *slot);
        if (!slot) return -1;
        for (size_t e = 0; e < m->n; e++) {
            uint32_t i = (uint32_t)hash(m->bytes + m->off[e], m->len[e]) & (uint32_t)(c - 1);
            while (slot[i]) i = (i + 1) & (uint32_t)(c - 1);
            slot[i] = (uint32_t)e + 1;
        }
        free(m->slot);
        m->slot = slot;
        m->mask = (uint32_t)(c - 1);
    }
    size_t c0 = m->cap;
    if (!grow((void **)&m->off, &c0, m->n + 1, sizeof *m->off)) return -1;
    c0 = m->cap;
    if (!grow((void **)&m->len, &c0, m->n + 1, sizeof *m->len)) return -1;
    c0 = m->cap;
    if (!grow((void **)&m->val, &c0, m->n + 1, sizeof *m->val)) return -1;
    m->cap = c0;
    if (!grow((void **)&m->bytes, &m->capbytes, m->nbytes + n + 1, 1)) return -1;
    memcpy(m->bytes + m->nbytes, s, n);
    m->off[m->n] = (uint32_t)m->nbytes;
    m->len[m->n] = (uint32_t)n;
    m->val[m->n] = v;
    m->nbytes += n;
    uint32_t i = (uint32_t)hash(s, n) & m->mask;
    while (m->slot[i]) i = (i + 1) & m->mask;
    m->slot[i] = (uint32_t)m->n + 1;
    m->n++;
    return 1;
}

/* --------------------------------------------------------------- types */

enum { N_NFC, N_NFKC, N_PREPEND, N_REPLACE };
enum { P_BYTELEVEL, P_SPLIT, P_DIGITS, P_METASPACE };
enum { D_BYTELEVEL, D_BYTEFALLBACK, D_METASPACE, D_FUSE, D_STRIP, D_REPLACE };
enum { B_REMOVED, B_ISOLATED, B_PREVIOUS, B_NEXT, B_CONTIGUOUS };
enum { S_ALWAYS, S_FIRST, S_NEVER };

/* A pattern: a literal (re NULL) or a regex. */
typedef struct pattern {
    char *lit;
    size_t nlit;
    pcre2_code *re;
} pattern;

typedef struct step {
    int kind;
    pattern pat;
    char *text;             /* Prepend's and Replace's content, Strip's char */
    size_t ntext;
    int behavior, invert;   /* Split */
    int prefix_space, use_regex; /* ByteLevel */
    int individual;         /* Digits */
    uint32_t repl;          /* Metaspace's replacement */
    int scheme, split;      /* Metaspace */
    int start, stop;        /* Strip */
} step;

typedef struct added {
    int32_t id;
    uint32_t off, len;      /* content in t->strs */
    uint32_t noff, nlen;    /* as matched: normalized content for normalized tokens */
    uint8_t single_word, lstrip, rstrip, normalized, special;
} added;

/* The added tokens matched in one pass: raw or normalized. */
typedef struct addset {
    strmap map;             /* matched string -> index in t->added */
    uint8_t first[32];      /* bitset of first bytes */
    uint32_t lens[64];      /* distinct lengths, longest first */
    int nlens;
} addset;

typedef struct merge_ent {
    uint64_t key;           /* left id << 32 | right id, 0 = empty (never a real pair: see load) */
    uint32_t rank, id;
} merge_ent;

struct pp_hftok {
    int nids;               /* one past the largest id */
    char *strs;             /* every token string, back to back */
    size_t nstrs, capstrs;
    uint32_t *tok_off, *tok_len; /* (nids) id -> string; len UINT32_MAX: no token */
    int32_t *added_of;      /* (nids) index in added, or -1 */
    strmap vocab;           /* the model's token strings -> id */
    strmap vocab_raw;       /* byte-level: the same keyed by the bytes they stand for */
    merge_ent *merges;
    uint64_t merge_mask;
    size_t nmerges;
    int bytelevel;          /* BPE on raw bytes: the pre-tokenizer ends with ByteLevel */
    int byte_tok[256];      /* byte-level: the single-byte tokens */
    int byte_fb[256];       /* "<0xXX>" tokens, or -1 */
    int byte_fallback, fuse_unk, ignore_merges, unk_id;
    added *added;
    int nadded;
    addset raw, norm;
    step *normalizers, *pretok, *decoders;
    int nnorm, npre, ndec;
    uint32_t pre_ids[8], post_ids[8];
    size_t npre_ids, npost_ids;
    int offsets;            /* encode can report offsets */
    int has_post;           /* the file has a post-processor */
    char describe[200];
};

/* ------------------------------------------------------------- regexes */

/* Oniguruma's \s is [\t-\r\x85\p{Z}]; PCRE2's also takes U+180E. The
 * pattern's \s and \S are rewritten; \S inside a class is refused. */
static pp_status compile_regex(const char *src, size_t n, pcre2_code **out)
{
    static const char WS_CLASS[] = "\\t-\\r\\x{85}\\p{Z}";
    char *p = malloc(n * 20 + 1);
    if (!p) return NOMEM();
    size_t k = 0;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char d = src[++i];
            if (d == 's' || d == 'S') {
                if (in_class && d == 'S') {
                    free(p);
                    return pp_fail(PP_E_DATA, "tokenizer.json: regex \"%.60s\": \\S inside a character class is not supported", src);
                }
                k += (size_t)sprintf(p + k, in_class ? "%s" : d == 's' ? "[%s]" : "[^%s]", WS_CLASS);
            } else {
                p[k++] = c;
                p[k++] = d;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            p[k++] = c;
            if (i + 1 < n && src[i + 1] == '^') p[k++] = src[++i];
            if (i + 1 < n && src[i + 1] == ']') p[k++] = src[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && src[i + 1] == ':') { /* [:alpha:] */
            const char *e = memmem(src + i + 2, n - i - 2, ":]", 2);
            if (e) {
                size_t m = (size_t)(e + 2 - (src + i));
                memcpy(p + k, src + i, m);
                k += m;
                i += m - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        p[k++] = c;
    }
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, k, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    free(p);
    if (!re) {
        char msg[160];
        pcre2_get_error_message(err, (PCRE2_UCHAR *)msg, sizeof msg);
        return pp_fail(PP_E_DATA, "tokenizer.json: regex \"%.60s\": %s", src, msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter runs */
    *out = re;
    return PP_OK;
}

/* ------------------------------------------------------------- loading */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static pp_status utf8_ok(const char *s, const char *what)
{
    if (!pp_utf8_valid(s, strlen(s), NULL)) return pp_fail(PP_E_DATA, "tokenizer.json: %s is not valid UTF-8", what);
    return PP_OK;
}

/* Appends a string to t->strs; its offset in *off. */
static pp_status keep(pp_hftok *t, const char *s, size_t n, uint32_t *off)
{
    if (t->nstrs + n > UINT32_MAX / 2) return pp_fail(PP_E_DATA, "tokenizer.json: too many token bytes");
    if (!grow((void **)&t->strs, &t->capstrs, t->nstrs + n + 1, 1)) return NOMEM();
    memcpy(t->strs + t->nstrs, s, n);
    *off = (uint32_t)t->nstrs;
    t->nstrs += n;
    return PP_OK;
}

/* A {"String": ...} or {"Regex": ...} pattern. */
static pp_status load_pattern(const cJSON *o, pattern *p, const char *where)
{
    const char *lit = jstr(o, "String"), *re = jstr(o, "Regex");
    if (lit) {
        PP_TRY(utf8_ok(lit, where));
        p->nlit = strlen(lit);
        p->lit = malloc(p->nlit + 1);
        if (!p->lit) return NOMEM();
        memcpy(p->lit, lit, p->nlit + 1);
        return PP_OK;
    }
    if (re) {
        PP_TRY(utf8_ok(re, where));
        return compile_regex(re, strlen(re), &p->re);
    }
    return pp_fail(PP_E_DATA, "tokenizer.json: %s: a pattern needs \"String\" or \"Regex\"", where);
}

static pp_status load_char(const char *s, uint32_t *c, const char *where)
{
    int k;
    if (!s || !*s || !pp_utf8_valid(s, strlen(s), NULL) || (cp_at(s, strlen(s), &k), s[k] != 0))
        return pp_fail(PP_E_DATA, "tokenizer.json: %s needs one character", where);
    *c = cp_at(s, strlen(s), &k);
    return PP_OK;
}

static pp_status copy_text(step *st, const char *s, const char *where)
{
    if (!s) return pp_fail(PP_E_DATA, "tokenizer.json: %s: missing string", where);
    PP_TRY(utf8_ok(s, where));
    st->ntext = strlen(s);
    st->text = malloc(st->ntext + 1);
    if (!st->text) return NOMEM();
    memcpy(st->text, s, st->ntext + 1);
    return PP_OK;
}

/* Flattens a component or a Sequence of them (key: "normalizers",
 * "pretokenizers", "decoders") into *steps. */
typedef pp_status (*load_one)(const cJSON *o, const char *type, step *st);

static pp_status load_chain(const cJSON *o, const char *seqkey, const char *what, load_one fn, step **steps, int *n)
{
    if (!o || cJSON_IsNull(o)) return PP_OK;
    const char *type = jstr(o, "type");
    if (!type) return pp_fail(PP_E_DATA, "tokenizer.json: %s without a type", what);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, seqkey), *e;
        if (!cJSON_IsArray(list)) return pp_fail(PP_E_DATA, "tokenizer.json: %s Sequence without \"%s\"", what, seqkey);
        cJSON_ArrayForEach(e, list) PP_TRY(load_chain(e, seqkey, what, fn, steps, n));
        return PP_OK;
    }
    if (*n >= 64) return pp_fail(PP_E_DATA, "tokenizer.json: too many %ss", what);
    step *s = realloc(*steps, (size_t)(*n + 1) * sizeof *s);
    if (!s) return NOMEM();
    *steps = s;
    memset(&s[*n], 0, sizeof *s);
    (*n)++;
    pp_status r = fn(o, type, &s[*n - 1]);
    if (r == PP_E_USAGE) return pp_fail(PP_E_DATA, "tokenizer.json: %s \"%.40s\" is not supported", what, type);
    return r;
}

static pp_status load_normalizer(const cJSON *o, const char *type, step *s)
{
    if (strcmp(type, "NFC") == 0) s->kind = N_NFC;
    else if (strcmp(type, "NFKC") == 0) s->kind = N_NFKC;
    else if (strcmp(type, "Prepend") == 0) {
        s->kind = N_PREPEND;
        return copy_text(s, jstr(o, "prepend"), "normalizer Prepend");
    } else if (strcmp(type, "Replace") == 0) {
        s->kind = N_REPLACE;
        PP_TRY(load_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s->pat, "normalizer Replace"));
        return copy_text(s, jstr(o, "content"), "normalizer Replace");
    } else return PP_E_USAGE;
    return PP_OK;
}

static pp_status load_pretok(const cJSON *o, const char *type, step *s)
{
    if (strcmp(type, "ByteLevel") == 0) {
        s->kind = P_BYTELEVEL;
        s->prefix_space = jbool(o, "add_prefix_space", 1);
        s->use_regex = jbool(o, "use_regex", 1);
        if (s->use_regex) {
            static const char GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            return compile_regex(GPT2, sizeof GPT2 - 1, &s->pat.re);
        }
    } else if (strcmp(type, "Split") == 0) {
        s->kind = P_SPLIT;
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        const char *b = jstr(o, "behavior");
        s->behavior = -1;
        for (int i = 0; b && i < 5; i++)
            if (strcmp(b, names[i]) == 0) s->behavior = i;
        if (s->behavior < 0) return pp_fail(PP_E_DATA, "tokenizer.json: Split behavior \"%.40s\" is not supported", b ? b : "");
        s->invert = jbool(o, "invert", 0);
        return load_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s->pat, "pre_tokenizer Split");
    } else if (strcmp(type, "Digits") == 0) {
        s->kind = P_DIGITS;
        s->individual = jbool(o, "individual_digits", 0);
    } else if (strcmp(type, "Metaspace") == 0) {
        s->kind = P_METASPACE;
        PP_TRY(load_char(jstr(o, "replacement"), &s->repl, "pre_tokenizer Metaspace replacement"));
        const char *sch = jstr(o, "prepend_scheme");
        s->scheme = !sch || strcmp(sch, "always") == 0 ? S_ALWAYS : strcmp(sch, "first") == 0 ? S_FIRST
                  : strcmp(sch, "never") == 0 ? S_NEVER : -1;
        if (s->scheme < 0) return pp_fail(PP_E_DATA, "tokenizer.json: Metaspace prepend_scheme \"%.40s\" is not supported", sch);
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
        if (cJSON_IsFalse(aps)) {
            if (s->scheme != S_NEVER && sch)
                return pp_fail(PP_E_DATA, "tokenizer.json: Metaspace add_prefix_space does not match prepend_scheme");
            s->scheme = S_NEVER;
        }
        s->split = jbool(o, "split", 1);
    } else return PP_E_USAGE;
    return PP_OK;
}

static pp_status load_decoder(const cJSON *o, const char *type, step *s)
{
    if (strcmp(type, "ByteLevel") == 0) s->kind = D_BYTELEVEL;
    else if (strcmp(type, "ByteFallback") == 0) s->kind = D_BYTEFALLBACK;
    else if (strcmp(type, "Fuse") == 0) s->kind = D_FUSE;
    else if (strcmp(type, "Metaspace") == 0) {
        PP_TRY(load_pretok(o, type, s));
        s->kind = D_METASPACE;
    } else if (strcmp(type, "Strip") == 0) {
        s->kind = D_STRIP;
        PP_TRY(load_char(jstr(o, "content"), &s->repl, "decoder Strip content"));
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start"), *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || b->valuedouble < 0 ||
            a->valuedouble > 1e6 || b->valuedouble > 1e6)
            return pp_fail(PP_E_DATA, "tokenizer.json: decoder Strip needs start and stop counts");
        s->start = (int)a->valuedouble;
        s->stop = (int)b->valuedouble;
    } else if (strcmp(type, "Replace") == 0) {
        s->kind = D_REPLACE;
        PP_TRY(load_pattern(cJSON_GetObjectItemCaseSensitive(o, "pattern"), &s->pat, "decoder Replace"));
        return copy_text(s, jstr(o, "content"), "decoder Replace");
    } else return PP_E_USAGE;
    return PP_OK;
}

/* The post-processor's special ids around sequence A. */
static pp_status load_post(pp_hftok *t, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return PP_OK;
    t->has_post = 1;
    const char *type = jstr(o, "type");
    if (!type) return pp_fail(PP_E_DATA, "tokenizer.json: post_processor without a type");
    if (strcmp(type, "ByteLevel") == 0) return PP_OK; /* only offsets */
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e, *list = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(list)) return pp_fail(PP_E_DATA, "tokenizer.json: post_processor Sequence without processors");
        cJSON_ArrayForEach(e, list) PP_TRY(load_post(t, e));
        return PP_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return pp_fail(PP_E_DATA, "tokenizer.json: post_processor \"%.40s\" is not supported", type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    if (!cJSON_IsArray(single)) return pp_fail(PP_E_DATA, "tokenizer.json: TemplateProcessing without \"single\"");
    t->npre_ids = t->npost_ids = 0;
    int seen_a = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence"), *tok = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (seq) {
            const char *id = jstr(seq, "id");
            if (!id || strcmp(id, "A") != 0 || seen_a)
                return pp_fail(PP_E_DATA, "tokenizer.json: TemplateProcessing \"single\" must hold sequence A once");
            seen_a = 1;
            continue;
        }
        const char *name = tok ? jstr(tok, "id") : NULL;
        const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(sp, name) : NULL;
        const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL, *x;
        if (!cJSON_IsArray(ids)) return pp_fail(PP_E_DATA, "tokenizer.json: TemplateProcessing: special token without ids");
        cJSON_ArrayForEach(x, ids) {
            size_t *n = seen_a ? &t->npost_ids : &t->npre_ids;
            uint32_t *dst = seen_a ? t->post_ids : t->pre_ids;
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= t->nids || *n >= 8)
                return pp_fail(PP_E_DATA, "tokenizer.json: TemplateProcessing: bad special token id");
            dst[(*n)++] = (uint32_t)x->valuedouble;
        }
    }
    if (!seen_a) return pp_fail(PP_E_DATA, "tokenizer.json: TemplateProcessing \"single\" without sequence A");
    return PP_OK;
}

static pp_status merge_put(pp_hftok *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
    uint64_t key = (uint64_t)(a + 1) << 32 | (b + 1); /* +1: 0 marks an empty slot */
    for (uint64_t i = hash((const char *)&key, 8) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        merge_ent *e = &t->merges[i];
        if (e->key == key) { /* a repeated merge: the last rank stands, as in the library's map */
            e->rank = rank;
            e->id = id;
            return PP_OK;
        }
        if (!e->key) {
            *e = (merge_ent){key, rank, id};
            return PP_OK;
        }
    }
}

static const merge_ent *merge_get(const pp_hftok *t, uint32_t a, uint32_t b)
{
    if (!t->merges) return NULL;
    uint64_t key = (uint64_t)(a + 1) << 32 | (b + 1);
    for (uint64_t i = hash((const char *)&key, 8) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_ent *e = &t->merges[i];
        if (e->key == key) return e;
        if (!e->key) return NULL;
    }
}

static pp_status load_model(pp_hftok *t, const cJSON *m)
{
    const char *type = jstr(m, "type");
    if (type ? strcmp(type, "BPE") != 0 : !cJSON_GetObjectItemCaseSensitive(m, "merges"))
        return pp_fail(PP_E_DATA, "tokenizer.json: model \"%.40s\" is not supported (BPE only)", type ? type : "?");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0) return pp_fail(PP_E_DATA, "tokenizer.json: BPE dropout is not supported");
    const char *csp = jstr(m, "continuing_subword_prefix"), *eow = jstr(m, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return pp_fail(PP_E_DATA, "tokenizer.json: BPE with continuing_subword_prefix or end_of_word_suffix is not supported");
    t->byte_fallback = jbool(m, "byte_fallback", 0);
    t->fuse_unk = jbool(m, "fuse_unk", 0);
    t->ignore_merges = jbool(m, "ignore_merges", 0);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab"), *e;
    if (!cJSON_IsObject(vocab)) return pp_fail(PP_E_DATA, "tokenizer.json: model without a vocab");
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= MAX_IDS || e->valuedouble != (int)e->valuedouble)
            return pp_fail(PP_E_DATA, "tokenizer.json: vocab entry \"%.40s\": bad id", e->string);
        PP_TRY(utf8_ok(e->string, "a vocab entry"));
        int r = sm_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble);
        if (r < 0) return NOMEM();
        if (r == 0) return pp_fail(PP_E_DATA, "tokenizer.json: vocab entry \"%.40s\" twice", e->string);
        if ((int)e->valuedouble >= t->nids) t->nids = (int)e->valuedouble + 1;
    }
    const char *unk = jstr(m, "unk_token");
    t->unk_id = unk ? sm_get(&t->vocab, unk, strlen(unk)) : -1;
    if (unk && t->unk_id < 0) return pp_fail(PP_E_DATA, "tokenizer.json: unk_token \"%.40s\" is not in the vocab", unk);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_fb[b] = sm_get(&t->vocab, name, 6);
    }
    return PP_OK;
}

static pp_status load_merges(pp_hftok *t, const cJSON *m)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges"), *e;
    if (!cJSON_IsArray(merges)) return pp_fail(PP_E_DATA, "tokenizer.json: BPE without merges");
    size_t n = (size_t)cJSON_GetArraySize(merges);
    if (n > MAX_IDS) return pp_fail(PP_E_DATA, "tokenizer.json: too many merges");
    size_t cap = 64;
    while (cap < 2 * n) cap *= 2;
    t->merges = calloc(cap, sizeof *t->merges);
    if (!t->merges) return NOMEM();
    t->merge_mask = cap - 1;
    char *buf = NULL;
    size_t bufcap = 0;
    uint32_t rank = 0;
    pp_status s = PP_OK;
    cJSON_ArrayForEach(e, merges) {
        if (cJSON_IsString(e) && strncmp(e->valuestring, "#version", 8) == 0) continue; /* skipped, as the library does */
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(e)) { /* "a b" */
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                s = pp_fail(PP_E_DATA, "tokenizer.json: merge %u \"%.40s\" is not two tokens", rank, e->valuestring);
                break;
            }
            a = e->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, na = strlen(a), b = e->child->next->valuestring, nb = strlen(b);
        } else {
            s = pp_fail(PP_E_DATA, "tokenizer.json: merge %u is neither \"a b\" nor [a, b]", rank);
            break;
        }
        int32_t ia = sm_get(&t->vocab, a, na), ib = sm_get(&t->vocab, b, nb);
        if (!grow((void **)&buf, &bufcap, na + nb + 1, 1)) {
            s = NOMEM();
            break;
        }
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        int32_t ic = sm_get(&t->vocab, buf, na + nb);
        if (ia < 0 || ib < 0 || ic < 0) {
            s = pp_fail(PP_E_DATA, "tokenizer.json: merge %u names a token not in the vocab (\"%.*s\", \"%.*s\")", rank,
                        (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b);
            break;
        }
        PP_TRY(merge_put(t, (uint32_t)ia, (uint32_t)ib, rank, (uint32_t)ic));
        rank++;
    }
    t->nmerges = rank;
    free(buf);
    return s;
}

static pp_status load_added(pp_hftok *t, const cJSON *list)
{
    if (!list || cJSON_IsNull(list)) return PP_OK;
    if (!cJSON_IsArray(list)) return pp_fail(PP_E_DATA, "tokenizer.json: added_tokens is not a list");
    int n = cJSON_GetArraySize(list);
    if (n > MAX_IDS) return pp_fail(PP_E_DATA, "tokenizer.json: too many added tokens");
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return NOMEM();
    int32_t next_id = (int32_t)t->vocab.n;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = jstr(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAX_IDS || !content)
            return pp_fail(PP_E_DATA, "tokenizer.json: added token %d needs an id and a content", t->nadded);
        PP_TRY(utf8_ok(content, "an added token"));
        if (!*content) continue; /* the library ignores empty ones */
        /* The library gives an added token the id of the same text in the
         * vocab, else of the same text added before, else the next one
         * from the vocab's size (AddedVocabulary::add_tokens); a file that
         * says otherwise would encode differently there: refused. */
        int32_t want = sm_get(&t->vocab, content, strlen(content));
        for (int k = 0; k < t->nadded && want < 0; k++)
            if (t->added[k].len == strlen(content) && memcmp(t->strs + t->added[k].off, content, t->added[k].len) == 0)
                want = t->added[k].id;
        if (want < 0) want = next_id++;
        if ((int32_t)id->valuedouble != want)
            return pp_fail(PP_E_DATA, "tokenizer.json: added token \"%.40s\" has id %d, the tokenizers library gives it %d",
                           content, (int)id->valuedouble, want);
        added *a = &t->added[t->nadded++];
        a->id = (int32_t)id->valuedouble;
        a->len = (uint32_t)strlen(content);
        PP_TRY(keep(t, content, a->len, &a->off));
        a->single_word = (uint8_t)jbool(e, "single_word", 0);
        a->lstrip = (uint8_t)jbool(e, "lstrip", 0);
        a->rstrip = (uint8_t)jbool(e, "rstrip", 0);
        a->special = (uint8_t)jbool(e, "special", 0);
        a->normalized = (uint8_t)jbool(e, "normalized", !a->special);
        if (a->id >= t->nids) t->nids = a->id + 1;
    }
    return PP_OK;
}

static pp_status normalize(const pp_hftok *t, pp_hftok_state *st, const char *s, size_t n, const char **out, size_t *nout);
static pp_status state_get(pp_hftok_state **stp);

/* The matching sets; normalized tokens are matched as the normalizer makes them. */
static pp_status build_addsets(pp_hftok *t, pp_hftok_state **st)
{
    PP_TRY(state_get(st));
    for (int i = 0; i < t->nadded; i++) {
        added *a = &t->added[i];
        const char *s = t->strs + a->off;
        size_t n = a->len;
        if (a->normalized && t->nnorm) {
            PP_TRY(normalize(t, *st, s, n, &s, &n));
            PP_TRY(keep(t, s, n, &a->noff));
            a->nlen = (uint32_t)n;
        } else {
            a->noff = a->off, a->nlen = a->len;
        }
        if (a->nlen == 0) continue;
        addset *set = a->normalized ? &t->norm : &t->raw;
        const char *key = t->strs + a->noff;
        int r = sm_put(&set->map, key, a->nlen, i);
        if (r < 0) return NOMEM();
        if (r == 0) { /* the same content twice: the later one wins, as in the library's map */
            for (uint32_t k = 0; k <= set->map.mask; k++) {
                uint32_t x = set->map.slot[k];
                if (x && set->map.len[x - 1] == a->nlen && memcmp(set->map.bytes + set->map.off[x - 1], key, a->nlen) == 0)
                    set->map.val[x - 1] = i;
            }
        }
        set->first[(uint8_t)key[0] >> 3] |= (uint8_t)(1u << ((uint8_t)key[0] & 7));
        int have = 0;
        for (int k = 0; k < set->nlens; k++) have |= set->lens[k] == a->nlen;
        if (!have) {
            if (set->nlens == 64) return pp_fail(PP_E_DATA, "tokenizer.json: added tokens of too many different lengths");
            int k = set->nlens++;
            while (k > 0 && set->lens[k - 1] < a->nlen) set->lens[k] = set->lens[k - 1], k--;
            set->lens[k] = a->nlen;
        }
    }
    return PP_OK;
}

static pp_status finish_tables(pp_hftok *t)
{
    size_t nids = (size_t)t->nids;
    t->tok_off = malloc(nids * sizeof *t->tok_off);
    t->tok_len = malloc(nids * sizeof *t->tok_len);
    t->added_of = malloc(nids * sizeof *t->added_of);
    if (!t->tok_off || !t->tok_len || !t->added_of) return NOMEM();
    for (size_t i = 0; i < nids; i++) t->tok_len[i] = UINT32_MAX, t->added_of[i] = -1;
    for (size_t e = 0; e < t->vocab.n; e++) {
        int32_t id = t->vocab.val[e];
        if (t->tok_len[id] != UINT32_MAX) return pp_fail(PP_E_DATA, "tokenizer.json: two vocab entries have id %d", id);
        PP_TRY(keep(t, t->vocab.bytes + t->vocab.off[e], t->vocab.len[e], &t->tok_off[id]));
        t->tok_len[id] = t->vocab.len[e];
    }
    for (int i = 0; i < t->nadded; i++) {
        added *a = &t->added[i];
        t->added_of[a->id] = i;
        t->tok_off[a->id] = a->off; /* decoding shows the added token's content */
        t->tok_len[a->id] = a->len;
    }
    return PP_OK;
}

/* Byte-level BPE runs on the raw bytes when the pre-tokenizer's last step
 * is ByteLevel: every token string is mapped back to the bytes it stands
 * for, and the model never sees the mapped text. */
static pp_status setup_bytelevel(pp_hftok *t)
{
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    int levels = 0;
    for (int i = 0; i < t->npre; i++) levels += t->pretok[i].kind == P_BYTELEVEL;
    if (levels != 1 || t->pretok[t->npre - 1].kind != P_BYTELEVEL) return PP_OK;
    t->bytelevel = 1;
    char *raw = NULL;
    size_t cap = 0;
    for (size_t e = 0; e < t->vocab.n; e++) {
        const char *s = t->vocab.bytes + t->vocab.off[e];
        size_t n = t->vocab.len[e], k = 0;
        if (!grow((void **)&raw, &cap, n + 1, 1)) {
            free(raw);
            return NOMEM();
        }
        int ok = 1;
        for (size_t i = 0; i < n && ok;) {
            int l;
            int b = char_byte(cp_at(s + i, n - i, &l));
            if (b < 0) ok = 0;
            else raw[k++] = (char)b;
            i += (size_t)l;
        }
        if (!ok || k == 0) continue; /* never produced by the byte-level pre-tokenizer */
        if (sm_put(&t->vocab_raw, raw, k, t->vocab.val[e]) < 0) {
            free(raw);
            return NOMEM();
        }
        if (k == 1) t->byte_tok[(uint8_t)raw[0]] = t->vocab.val[e];
    }
    free(raw);
    return PP_OK;
}

void pp_hftok_free(pp_hftok *t)
{
    if (!t) return;
    step *lists[3] = {t->normalizers, t->pretok, t->decoders};
    int counts[3] = {t->nnorm, t->npre, t->ndec};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < counts[l]; i++) {
            free(lists[l][i].pat.lit);
            pcre2_code_free(lists[l][i].pat.re);
            free(lists[l][i].text);
        }
        free(lists[l]);
    }
    sm_free(&t->vocab);
    sm_free(&t->vocab_raw);
    sm_free(&t->raw.map);
    sm_free(&t->norm.map);
    free(t->merges);
    free(t->strs);
    free(t->tok_off);
    free(t->tok_len);
    free(t->added_of);
    free(t->added);
    free(t);
}

static pp_status load(pp_hftok *t, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return pp_fail(PP_E_DATA, "tokenizer.json: not a JSON object");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(m)) return pp_fail(PP_E_DATA, "tokenizer.json: no \"model\"");
    PP_TRY(load_model(t, m));
    PP_TRY(load_merges(t, m));
    PP_TRY(load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")));
    if (t->nids == 0) return pp_fail(PP_E_DATA, "tokenizer.json: an empty vocabulary");
    PP_TRY(load_chain(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", "normalizer", load_normalizer,
                      &t->normalizers, &t->nnorm));
    PP_TRY(load_chain(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers", "pre_tokenizer",
                      load_pretok, &t->pretok, &t->npre));
    PP_TRY(load_chain(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoders", "decoder", load_decoder,
                      &t->decoders, &t->ndec));
    PP_TRY(load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor")));
    PP_TRY(finish_tables(t));
    PP_TRY(setup_bytelevel(t));
    /* Offsets: only where every piece is a slice of the text. */
    t->offsets = t->nnorm == 0;
    for (int i = 0; i < t->npre; i++) {
        const step *p = &t->pretok[i];
        if (p->kind == P_METASPACE || (p->kind == P_BYTELEVEL && (p->prefix_space || i != t->npre - 1))) t->offsets = 0;
    }
    snprintf(t->describe, sizeof t->describe, "tokenizer.json: BPE%s, %d ids, %zu merges, %d added tokens%s%s",
             t->bytelevel ? " (byte-level)" : "", t->nids, t->nmerges, t->nadded, t->byte_fallback ? ", byte fallback" : "",
             t->ignore_merges ? ", ignore_merges" : "");
    return PP_OK;
}

pp_status pp_hftok_load(pp_hftok **out, const char *json, size_t n)
{
    *out = NULL;
    size_t bad;
    if (!pp_json_strings_clean(json, n, &bad))
        return pp_fail(PP_E_DATA, "tokenizer.json: a control byte or \\u0000 in a string (byte offset %zu)", bad);
    static int once;
    if (!once) byte_map_init(), once = 1; /* idempotent: a race writes the same values */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!root) return pp_fail(PP_E_DATA, "tokenizer.json: malformed JSON");
    while (end && end < json + n && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end != json + n) {
        cJSON_Delete(root);
        return pp_fail(PP_E_DATA, "tokenizer.json: data after the JSON object (byte offset %zu)", (size_t)(end - json));
    }
    pp_hftok *t = calloc(1, sizeof *t);
    pp_hftok_state *st = NULL;
    pp_status s = t ? load(t, root) : NOMEM();
    cJSON_Delete(root);
    if (s == PP_OK) s = build_addsets(t, &st);
    pp_hftok_state_free(st);
    if (s != PP_OK) {
        pp_hftok_free(t);
        return s;
    }
    *out = t;
    return PP_OK;
}

int pp_hftok_vocab_size(const pp_hftok *t) { return t->nids; }
int pp_hftok_has_offsets(const pp_hftok *t) { return t->offsets; }
int pp_hftok_has_post(const pp_hftok *t) { return t->has_post; }
const char *pp_hftok_describe(const pp_hftok *t) { return t->describe; }

const char *pp_hftok_token(const pp_hftok *t, int id, size_t *len)
{
    if (id < 0 || id >= t->nids || t->tok_len[id] == UINT32_MAX) return NULL;
    *len = t->tok_len[id];
    return t->strs + t->tok_off[id];
}

int pp_hftok_token_id(const pp_hftok *t, const char *s, size_t n)
{
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && memcmp(t->strs + t->added[i].off, s, n) == 0) return t->added[i].id;
    return sm_get(&t->vocab, s, n);
}

int pp_hftok_is_special(const pp_hftok *t, int id)
{
    return id >= 0 && id < t->nids && t->added_of[id] >= 0 && t->added[t->added_of[id]].special;
}

void pp_hftok_template(const pp_hftok *t, const uint32_t **pre, size_t *npre, const uint32_t **post, size_t *npost)
{
    *pre = t->pre_ids, *npre = t->npre_ids, *post = t->post_ids, *npost = t->npost_ids;
}

void pp_hftok_set_template(pp_hftok *t, int bos, int eos)
{
    t->npre_ids = t->npost_ids = 0;
    if (bos >= 0) t->pre_ids[t->npre_ids++] = (uint32_t)bos;
    if (eos >= 0) t->post_ids[t->npost_ids++] = (uint32_t)eos;
}

/* -------------------------------------------------------------- state */

typedef struct piece {
    uint32_t off, len;      /* in st->buf */
    uint32_t orig;          /* offset of its first byte in the text being encoded */
    uint8_t first;          /* it starts at offset 0 of the text */
} piece;

typedef struct match {
    uint32_t a, b;
    int hit;
} match;

typedef struct sym {
    int32_t id, prev, next;
    uint32_t len;
} sym;

typedef struct heap_ent {
    uint32_t rank, pos, id;
} heap_ent;

typedef struct seg {
    uint32_t a, b;
    int32_t added;          /* index in t->added, or -1 for text */
} seg;

struct pp_hftok_state {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *jit;
    char *buf, *norm, *tmp;
    size_t buf_len, buf_cap, norm_cap, tmp_cap;
    piece *pa, *pb;
    size_t na, nb, capa, capb;
    match *m;
    size_t nm, capm;
    seg *s1, *s2;
    size_t cap1, cap2;
    sym *sym;
    size_t sym_cap;
    heap_ent *heap;
    size_t heap_len, heap_cap;
    uint32_t *pid, *plen;   /* one piece's tokens and their byte lengths */
    size_t pn, pcap, plcap;
    pp_piececache *cache;   /* pieces already encoded (on first use) */
};

void pp_hftok_state_free(pp_hftok_state *st)
{
    if (!st) return;
    pcre2_match_data_free(st->md);
    pcre2_match_context_free(st->mc);
    pcre2_jit_stack_free(st->jit);
    free(st->buf);
    free(st->norm);
    free(st->tmp);
    free(st->pa);
    free(st->pb);
    free(st->m);
    free(st->s1);
    free(st->s2);
    free(st->sym);
    free(st->heap);
    free(st->pid);
    free(st->plen);
    pp_piececache_free(st->cache);
    free(st);
}

/* The state's regex match data; the cache and the JIT stack come on first use. */
static pp_status state_get(pp_hftok_state **stp)
{
    if (*stp) return PP_OK;
    pp_hftok_state *st = calloc(1, sizeof *st);
    if (!st) return NOMEM();
    st->md = pcre2_match_data_create(1, NULL);
    st->mc = pcre2_match_context_create(NULL);
    if (!st->md || !st->mc) {
        pp_hftok_state_free(st);
        return NOMEM();
    }
    *stp = st;
    return PP_OK;
}

/* ------------------------------------------------------------ matching */

static pp_status add_match(pp_hftok_state *st, size_t a, size_t b, int hit)
{
    if (!grow((void **)&st->m, &st->capm, st->nm + 1, sizeof *st->m)) return NOMEM();
    st->m[st->nm++] = (match){(uint32_t)a, (uint32_t)b, hit};
    return PP_OK;
}

/* Pattern::find_matches (tokenizer/pattern.rs) into st->m: the pieces of
 * s[0..n) in order, each flagged as a match or not. Regexes iterate as the
 * onig crate does: an empty match right at the previous match's end is
 * skipped by one character. */
static pp_status find_matches(pp_hftok_state *st, const pattern *p, const char *s, size_t n)
{
    st->nm = 0;
    if (n == 0) return add_match(st, 0, 0, 0);
    size_t prev = 0;
    if (!p->re) {
        if (p->nlit == 0) return add_match(st, 0, n, 0);
        for (size_t i = 0; i + p->nlit <= n;) {
            const char *f = memmem(s + i, n - i, p->lit, p->nlit);
            if (!f) break;
            size_t a = (size_t)(f - s);
            if (prev != a) PP_TRY(add_match(st, prev, a, 0));
            PP_TRY(add_match(st, a, a + p->nlit, 1));
            prev = i = a + p->nlit;
        }
    } else {
        size_t pos = 0, last_end = SIZE_MAX;
        if (!st->jit && (st->jit = pcre2_jit_stack_create(32 << 10, 8 << 20, NULL)))
            pcre2_jit_stack_assign(st->mc, NULL, st->jit);
        while (pos <= n) {
            int rc = pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, st->md, st->mc);
            if (rc == PCRE2_ERROR_JIT_BADOPTION) /* no JIT on this machine */
                rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, st->md, st->mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                char msg[120];
                pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
                return pp_fail(PP_E_DATA, "tokenizer regex: %s", msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
            size_t a = ov[0], b = ov[1];
            if (a == b && last_end == b) {
                int k = 1;
                if (b < n) cp_at(s + b, n - b, &k);
                pos = b + (size_t)k;
                continue;
            }
            pos = last_end = b;
            if (prev != a) PP_TRY(add_match(st, prev, a, 0));
            PP_TRY(add_match(st, a, b, 1));
            prev = b;
        }
    }
    if (prev != n) PP_TRY(add_match(st, prev, n, 0));
    return PP_OK;
}

/* The same for a character predicate: each character that passes is a match. */
static pp_status find_chars(pp_hftok_state *st, const char *s, size_t n, int (*pred)(uint32_t, uint32_t), uint32_t arg)
{
    st->nm = 0;
    if (n == 0) return add_match(st, 0, 0, 0);
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        int k;
        uint32_t c = cp_at(s + i, n - i, &k);
        if (pred(c, arg)) {
            if (last < i) PP_TRY(add_match(st, last, i, 0));
            PP_TRY(add_match(st, i, i + (size_t)k, 1));
            last = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (n > last) PP_TRY(add_match(st, last, n, 0));
    return PP_OK;
}

static int pred_numeric(uint32_t c, uint32_t arg) { return (void)arg, is_numeric(c); }
static int pred_equal(uint32_t c, uint32_t arg) { return c == arg; }

/* ----------------------------------------------------------- normalize */

static pp_status tmp_reserve(pp_hftok_state *st, size_t n)
{
    return grow((void **)&st->tmp, &st->tmp_cap, n + 1, 1) ? PP_OK : NOMEM();
}

/* The normalizer chain over s[0..n); the result in st->norm (*out). */
static pp_status normalize(const pp_hftok *t, pp_hftok_state *st, const char *s, size_t n, const char **out, size_t *nout)
{
    if (!grow((void **)&st->norm, &st->norm_cap, n + 1, 1)) return NOMEM();
    memmove(st->norm, s, n);
    size_t len = n;
    for (int i = 0; i < t->nnorm; i++) {
        const step *p = &t->normalizers[i];
        if (p->kind == N_NFC || p->kind == N_NFKC) {
            size_t k = 0;
            while (k < len && (uint8_t)st->norm[k] < 0x80) k++;
            if (k == len) continue; /* ASCII is its own normal form */
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)st->norm, (utf8proc_ssize_t)len, &dst,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE | (p->kind == N_NFKC ? UTF8PROC_COMPAT : 0));
            if (m < 0) return pp_fail(PP_E_DATA, "tokenizer normalizer: %s", utf8proc_errmsg(m));
            if (!grow((void **)&st->norm, &st->norm_cap, (size_t)m + 1, 1)) {
                free(dst);
                return NOMEM();
            }
            memcpy(st->norm, dst, (size_t)m);
            free(dst);
            len = (size_t)m;
        } else if (p->kind == N_PREPEND) {
            if (len == 0) continue;
            if (!grow((void **)&st->norm, &st->norm_cap, len + p->ntext + 1, 1)) return NOMEM();
            memmove(st->norm + p->ntext, st->norm, len);
            memcpy(st->norm, p->text, p->ntext);
            len += p->ntext;
        } else { /* N_REPLACE */
            PP_TRY(find_matches(st, &p->pat, st->norm, len));
            size_t need = 0;
            for (size_t j = 0; j < st->nm; j++) need += st->m[j].hit ? p->ntext : st->m[j].b - st->m[j].a;
            PP_TRY(tmp_reserve(st, need));
            size_t k = 0;
            for (size_t j = 0; j < st->nm; j++) {
                const char *src = st->m[j].hit ? p->text : st->norm + st->m[j].a;
                size_t l = st->m[j].hit ? p->ntext : st->m[j].b - st->m[j].a;
                memcpy(st->tmp + k, src, l);
                k += l;
            }
            if (!grow((void **)&st->norm, &st->norm_cap, k + 1, 1)) return NOMEM();
            memcpy(st->norm, st->tmp, k);
            len = k;
        }
    }
    *out = st->norm;
    *nout = len;
    return PP_OK;
}

/* -------------------------------------------------------- added tokens */

static size_t ws_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int k;
        if (!is_ws(cp_at(s + i, n - i, &k))) break;
        i += (size_t)k;
    }
    return i;
}

/* Start of the whitespace that ends s[0..n). */
static size_t ws_suffix_start(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
        int k;
        if (!is_ws(cp_at(s + j, n - j, &k))) break;
        i = j;
    }
    return i;
}

static int word_before(const char *s, size_t i)
{
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
    int k;
    return is_word(cp_at(s + j, i - j, &k));
}

static pp_status add_seg(seg **v, size_t *cap, size_t *n, size_t a, size_t b, int32_t added)
{
    if (!grow((void **)v, cap, *n + 1, sizeof **v)) return NOMEM();
    (*v)[(*n)++] = (seg){(uint32_t)a, (uint32_t)b, added};
    return PP_OK;
}

/* AddedVocabulary::find_matches (tokenizer/added_vocabulary.rs): leftmost-
 * longest matches of one set, with single_word, lstrip and rstrip; special
 * tokens skipped unless flags has PP_HFTOK_SPECIAL. */
static pp_status split_added(const pp_hftok *t, const addset *set, int flags, const char *s, size_t n, seg **v, size_t *cap,
                             size_t *nv)
{
    *nv = 0;
    size_t start_offset = 0;
    if (set->nlens) {
        for (size_t p = 0; p < n;) {
            uint8_t c0 = (uint8_t)s[p];
            int32_t hit = -1;
            size_t len = 0;
            if (set->first[c0 >> 3] & (1u << (c0 & 7)))
                for (int k = 0; k < set->nlens && hit < 0; k++)
                    if (set->lens[k] <= n - p && (hit = sm_get(&set->map, s + p, set->lens[k])) >= 0) len = set->lens[k];
            if (hit < 0) {
                p++;
                continue;
            }
            size_t start = p, stop = p + len;
            p = stop;
            const added *a = &t->added[hit];
            if (a->special && !(flags & PP_HFTOK_SPECIAL)) continue;
            if (a->single_word) {
                int k;
                int start_space = start == 0 || !word_before(s, start);
                int stop_space = stop == n || !is_word(cp_at(s + stop, n - stop, &k));
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = ws_suffix_start(s, start);
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) stop += ws_prefix(s + stop, n - stop);
            if (start_offset < start) PP_TRY(add_seg(v, cap, nv, start_offset, start, -1));
            PP_TRY(add_seg(v, cap, nv, start, stop, hit));
            start_offset = stop;
        }
    }
    if (start_offset != n) PP_TRY(add_seg(v, cap, nv, start_offset, n, -1));
    return PP_OK;
}

/* -------------------------------------------------------- pre-tokenize */

static pp_status buf_add(pp_hftok_state *st, const char *s, size_t n, uint32_t *off)
{
    if (st->buf_len + n > UINT32_MAX) return pp_fail(PP_E_DATA, "text too long to tokenize");
    if (!grow((void **)&st->buf, &st->buf_cap, st->buf_len + n + 1, 1)) return NOMEM();
    if (s) memcpy(st->buf + st->buf_len, s, n);
    *off = (uint32_t)st->buf_len;
    st->buf_len += n;
    return PP_OK;
}

static pp_status push_piece(pp_hftok_state *st, piece p)
{
    if (p.len == 0) return PP_OK; /* PreTokenizedString::split drops empty pieces */
    if (!grow((void **)&st->pb, &st->capb, st->nb + 1, sizeof *st->pb)) return NOMEM();
    st->pb[st->nb++] = p;
    return PP_OK;
}

/* NormalizedString::split: st->m applied to piece p with a behavior. */
static pp_status split_piece(pp_hftok_state *st, const piece *p, int behavior, int invert)
{
    size_t nm = st->nm;
    match *m = st->m;
    for (size_t i = 0; i < nm; i++) m[i].hit ^= invert;
    /* Each kept range: [a, b) and whether it is removed. */
    size_t k = 0; /* ranges written in place into m (k <= i always) */
    int prev = 0;
    if (behavior == B_NEXT) { /* right to left, as the library folds it */
        size_t w = nm;
        for (size_t j = nm; j-- > 0;) {
            match x = m[j];
            if (x.hit && !prev && w < nm) m[w].a = x.a;
            else m[--w] = (match){x.a, x.b, 0};
            prev = x.hit;
        }
        for (size_t j = w; j < nm; j++) m[k++] = m[j];
    } else {
        for (size_t i = 0; i < nm; i++) {
            match x = m[i];
            switch (behavior) {
            case B_ISOLATED: m[k++] = (match){x.a, x.b, 0}; break;
            case B_REMOVED: m[k++] = x; break;
            case B_CONTIGUOUS:
                if (x.hit == prev && k) m[k - 1].b = x.b;
                else m[k++] = (match){x.a, x.b, 0};
                break;
            case B_PREVIOUS:
                if (x.hit && !prev && k) m[k - 1].b = x.b;
                else m[k++] = (match){x.a, x.b, 0};
                break;
            }
            prev = x.hit;
        }
    }
    for (size_t i = 0; i < k; i++)
        if (!m[i].hit) PP_TRY(push_piece(st, (piece){p->off + m[i].a, m[i].b - m[i].a, p->orig + m[i].a, (uint8_t)(p->first && m[i].a == 0)}));
    return PP_OK;
}

/* One pre-tokenizer step over every piece (st->pa -> st->pb). */
static pp_status pretok_step(const pp_hftok *t, pp_hftok_state *st, const step *p, int last)
{
    st->nb = 0;
    for (size_t i = 0; i < st->na; i++) {
        piece q = st->pa[i];
        switch (p->kind) {
        case P_SPLIT:
            PP_TRY(find_matches(st, &p->pat, st->buf + q.off, q.len));
            PP_TRY(split_piece(st, &q, p->behavior, p->invert));
            break;
        case P_DIGITS:
            PP_TRY(find_chars(st, st->buf + q.off, q.len, pred_numeric, 0));
            PP_TRY(split_piece(st, &q, p->individual ? B_ISOLATED : B_CONTIGUOUS, 0));
            break;
        case P_METASPACE: {
            char rep[4];
            int nrep = cp_put(rep, p->repl);
            size_t spaces = 0;
            for (uint32_t j = 0; j < q.len; j++) spaces += st->buf[q.off + j] == ' ';
            int pre = (p->scheme == S_ALWAYS || (p->scheme == S_FIRST && q.first));
            if (pre) { /* not when it already starts with the replacement */
                int k;
                uint32_t c0 = cp_at(st->buf + q.off, q.len, &k);
                pre = !(c0 == p->repl || (c0 == ' ')); /* a space becomes the replacement first */
            }
            size_t n = q.len + spaces * (size_t)(nrep - 1) + (pre ? (size_t)nrep : 0);
            uint32_t off;
            PP_TRY(buf_add(st, NULL, n, &off));
            char *o = st->buf + off;
            const char *src = st->buf + q.off;
            size_t k = 0;
            if (pre) memcpy(o, rep, (size_t)nrep), k = (size_t)nrep;
            for (uint32_t j = 0; j < q.len; j++) {
                if (src[j] == ' ') memcpy(o + k, rep, (size_t)nrep), k += (size_t)nrep;
                else o[k++] = src[j];
            }
            piece r = {off, (uint32_t)n, q.orig, q.first};
            if (p->split) {
                PP_TRY(find_chars(st, st->buf + off, n, pred_equal, p->repl));
                PP_TRY(split_piece(st, &r, B_NEXT, 0));
            } else {
                PP_TRY(push_piece(st, r));
            }
            break;
        }
        case P_BYTELEVEL: {
            piece r = q;
            if (p->prefix_space && st->buf[q.off] != ' ') {
                uint32_t off;
                PP_TRY(buf_add(st, NULL, q.len + 1, &off));
                st->buf[off] = ' ';
                memcpy(st->buf + off + 1, st->buf + q.off, q.len);
                r = (piece){off, q.len + 1, q.orig, q.first};
            }
            size_t from = st->nb;
            if (p->use_regex) {
                PP_TRY(find_matches(st, &p->pat, st->buf + r.off, r.len));
                PP_TRY(split_piece(st, &r, B_ISOLATED, 0));
            } else {
                PP_TRY(push_piece(st, r));
            }
            if (last && t->bytelevel) break; /* the model reads the raw bytes */
            for (size_t j = from; j < st->nb; j++) { /* map each byte to its character */
                piece *x = &st->pb[j];
                uint32_t off;
                PP_TRY(buf_add(st, NULL, 2 * (size_t)x->len, &off));
                size_t k = 0;
                for (uint32_t b = 0; b < x->len; b++) k += (size_t)cp_put(st->buf + off + k, byte_char[(uint8_t)st->buf[x->off + b]]);
                x->off = off;
                x->len = (uint32_t)k;
            }
            break;
        }
        }
    }
    piece *tp = st->pa;
    size_t tc = st->capa;
    st->pa = st->pb, st->capa = st->capb, st->na = st->nb;
    st->pb = tp, st->capb = tc, st->nb = 0;
    return PP_OK;
}

/* ------------------------------------------------------------------ BPE */

static int heap_before(const heap_ent *a, const heap_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(pp_hftok_state *st, heap_ent e)
{
    if (!grow((void **)&st->heap, &st->heap_cap, st->heap_len + 1, sizeof *st->heap)) return 0;
    size_t i = st->heap_len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_before(&e, &st->heap[up])) break;
        st->heap[i] = st->heap[up];
        i = up;
    }
    st->heap[i] = e;
    return 1;
}

static heap_ent heap_pop(pp_hftok_state *st)
{
    heap_ent top = st->heap[0], last = st->heap[--st->heap_len];
    size_t i = 0, n = st->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&st->heap[c + 1], &st->heap[c])) c++;
        if (!heap_before(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int try_merge(const pp_hftok *t, pp_hftok_state *st, int l)
{
    if (l < 0 || st->sym[l].next < 0) return 1;
    const merge_ent *m = merge_get(t, (uint32_t)st->sym[l].id, (uint32_t)st->sym[st->sym[l].next].id);
    return !m || heap_push(st, (heap_ent){m->rank, (uint32_t)l, m->id});
}

static int sym_add(pp_hftok_state *st, size_t *n, int32_t id, uint32_t len)
{
    if (!grow((void **)&st->sym, &st->sym_cap, *n + 1, sizeof *st->sym)) return 0;
    st->sym[*n] = (sym){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
    return 1;
}

static int out_add(pp_hftok_state *st, uint32_t id, uint32_t len)
{
    size_t c = st->pcap;
    if (!grow((void **)&st->pid, &st->pcap, st->pn + 1, sizeof *st->pid)) return 0;
    if (!grow((void **)&st->plen, &c, st->pn + 1, sizeof *st->plen)) return 0;
    st->pid[st->pn] = id;
    st->plen[st->pn++] = len;
    return 1;
}

/* BPE::merge_word and Word::merge_all (models/bpe/): s[0..n) into st->pid. */
static pp_status bpe_word(const pp_hftok *t, pp_hftok_state *st, const char *s, size_t n)
{
    size_t m = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        int k = 1;
        int32_t id;
        if (t->bytelevel) id = t->byte_tok[(uint8_t)s[i]];
        else cp_at(s + i, n - i, &k), id = sm_get(&t->vocab, s + i, (size_t)k);
        if (id >= 0) {
            if (unk >= 0 && !sym_add(st, &m, unk, unk_len)) return NOMEM();
            unk = -1;
            if (!sym_add(st, &m, id, (uint32_t)k)) return NOMEM();
        } else {
            int all = t->byte_fallback;
            for (int j = 0; j < k && all; j++) all = t->byte_fb[(uint8_t)s[i + (size_t)j]] >= 0;
            if (all) {
                for (int j = 0; j < k; j++)
                    if (!sym_add(st, &m, t->byte_fb[(uint8_t)s[i + (size_t)j]], 1)) return NOMEM();
            } else if (t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)k;
                else {
                    if (unk >= 0 && !sym_add(st, &m, unk, unk_len)) return NOMEM();
                    unk = t->unk_id, unk_len = (uint32_t)k;
                }
            }
        }
        i += (size_t)k;
    }
    if (unk >= 0 && !sym_add(st, &m, unk, unk_len)) return NOMEM();
    st->pn = 0;
    if (m == 0) return PP_OK;
    st->sym[m - 1].next = -1;
    st->heap_len = 0;
    for (size_t i = 0; i + 1 < m; i++)
        if (!try_merge(t, st, (int)i)) return NOMEM();
    while (st->heap_len) {
        heap_ent top = heap_pop(st);
        sym *L = &st->sym[top.pos];
        if (L->len == 0 || L->next < 0) continue;
        sym *R = &st->sym[L->next];
        const merge_ent *e = merge_get(t, (uint32_t)L->id, (uint32_t)R->id);
        if (!e || e->id != top.id) continue;
        L->id = (int32_t)top.id;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (L->next >= 0) st->sym[L->next].prev = (int32_t)top.pos;
        if (!try_merge(t, st, L->prev) || !try_merge(t, st, (int)top.pos)) return NOMEM();
    }
    for (int i = 0; i >= 0; i = st->sym[i].next)
        if (!out_add(st, (uint32_t)st->sym[i].id, st->sym[i].len)) return NOMEM();
    return PP_OK;
}

/* BPE::tokenize: ignore_merges, then the cache, then merge_word. */
static pp_status bpe_piece(const pp_hftok *t, pp_hftok_state *st, const char *s, size_t n)
{
    st->pn = 0;
    if (n == 0) return PP_OK;
    if (t->ignore_merges) {
        int32_t id = sm_get(t->bytelevel ? &t->vocab_raw : &t->vocab, s, n);
        if (id >= 0) return out_add(st, (uint32_t)id, (uint32_t)n) ? PP_OK : NOMEM();
    }
    const uint32_t *ids, *lens;
    size_t count;
    if (!st->cache) PP_TRY(pp_piececache_new(&st->cache));
    if (pp_piececache_get(st->cache, s, n, &ids, &lens, &count)) {
        for (size_t j = 0; j < count; j++)
            if (!out_add(st, ids[j], lens[j])) return NOMEM();
        return PP_OK;
    }
    PP_TRY(bpe_word(t, st, s, n));
    pp_piececache_put(st->cache, s, n, st->pid, st->plen, st->pn);
    return PP_OK;
}

/* -------------------------------------------------------------- encode */

typedef struct out {
    uint32_t **ids, **offs;
    size_t *cap, *ocap, count;
} out;

static pp_status emit(out *o, uint32_t id, size_t at)
{
    if (!grow((void **)o->ids, o->cap, o->count + 1, sizeof **o->ids)) return NOMEM();
    if (o->offs && !grow((void **)o->offs, o->ocap, o->count + 1, sizeof **o->offs)) return NOMEM();
    (*o->ids)[o->count] = id;
    if (o->offs) (*o->offs)[o->count] = (uint32_t)at;
    o->count++;
    return PP_OK;
}

/* Pre-tokenizer and model over one stretch of text s[0..n) at offset orig. */
static pp_status encode_text(const pp_hftok *t, pp_hftok_state *st, const char *s, size_t n, size_t orig, out *o)
{
    st->buf_len = 0;
    uint32_t off;
    PP_TRY(buf_add(st, s, n, &off));
    st->na = 0;
    if (!grow((void **)&st->pa, &st->capa, 1, sizeof *st->pa)) return NOMEM();
    st->pa[st->na++] = (piece){off, (uint32_t)n, (uint32_t)orig, (uint8_t)(orig == 0)};
    for (int i = 0; i < t->npre; i++) PP_TRY(pretok_step(t, st, &t->pretok[i], i == t->npre - 1));
    for (size_t i = 0; i < st->na; i++) {
        const piece *p = &st->pa[i];
        PP_TRY(bpe_piece(t, st, st->buf + p->off, p->len));
        size_t at = p->orig;
        for (size_t j = 0; j < st->pn; j++) {
            PP_TRY(emit(o, st->pid[j], at));
            at += st->plen[j];
        }
    }
    return PP_OK;
}

pp_status pp_hftok_encode(const pp_hftok *t, pp_hftok_state **stp, const char *text, size_t n, int flags,
                          uint32_t **ids, size_t *cap, size_t *count, uint32_t **offs, size_t *ocap)
{
    *count = 0;
    if (offs && !t->offsets) return pp_fail(PP_E_USAGE, "this tokenizer cannot report token offsets");
    size_t bad;
    if (!pp_utf8_valid(text, n, &bad)) return pp_fail(PP_E_DATA, "text is not valid UTF-8 (byte offset %zu)", bad);
    PP_TRY(state_get(stp));
    pp_hftok_state *st = *stp;
    out o = {ids, offs, cap, ocap, 0};
    size_t n1;
    PP_TRY(split_added(t, &t->raw, flags, text, n, &st->s1, &st->cap1, &n1));
    for (size_t i = 0; i < n1; i++) {
        seg g = st->s1[i];
        if (g.added >= 0) {
            PP_TRY(emit(&o, (uint32_t)t->added[g.added].id, g.a));
            continue;
        }
        const char *s = text + g.a;
        size_t len = g.b - g.a;
        if (t->nnorm) PP_TRY(normalize(t, st, s, len, &s, &len));
        /* s may live in st->norm: the segments of this pass index it. */
        size_t n2;
        PP_TRY(split_added(t, &t->norm, flags, s, len, &st->s2, &st->cap2, &n2));
        for (size_t j = 0; j < n2; j++) {
            seg h = st->s2[j];
            size_t at = g.a + h.a; /* exact without a normalizer; enough for Metaspace's "first" with one */
            if (h.added >= 0) PP_TRY(emit(&o, (uint32_t)t->added[h.added].id, at));
            else PP_TRY(encode_text(t, st, s + h.a, h.b - h.a, at, &o));
        }
    }
    /* The library reports a token that starts inside a character at that
     * character's start. */
    for (size_t i = 0; offs && i < o.count; i++)
        while ((*offs)[i] > 0 && (*offs)[i] < n && ((uint8_t)text[(*offs)[i]] & 0xC0) == 0x80) (*offs)[i]--;
    *count = o.count;
    return PP_OK;
}

/* -------------------------------------------------------------- decode */

/* A list of strings in one buffer. */
typedef struct strs {
    char *b;
    size_t len, cap;
    uint32_t *off, *n;
    size_t count, ccap;
} strs;

static void strs_free(strs *l)
{
    free(l->b);
    free(l->off);
    free(l->n);
}

static pp_status strs_add(strs *l, const char *s, size_t n)
{
    size_t c = l->ccap;
    if (!grow((void **)&l->b, &l->cap, l->len + n + 1, 1) || !grow((void **)&l->off, &l->ccap, l->count + 1, sizeof *l->off) ||
        !grow((void **)&l->n, &c, l->count + 1, sizeof *l->n))
        return NOMEM();
    if (n) memcpy(l->b + l->len, s, n);
    l->off[l->count] = (uint32_t)l->len;
    l->n[l->count++] = (uint32_t)n;
    l->len += n;
    return PP_OK;
}

/* Appends to the last string. */
static pp_status strs_cat(strs *l, const char *s, size_t n)
{
    if (!grow((void **)&l->b, &l->cap, l->len + n + 1, 1)) return NOMEM();
    memcpy(l->b + l->len, s, n);
    l->len += n;
    l->n[l->count - 1] += (uint32_t)n;
    return PP_OK;
}

/* String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD. */
static pp_status lossy(strs *l, const uint8_t *s, size_t n)
{
    PP_TRY(strs_add(l, "", 0));
    for (size_t i = 0; i < n;) {
        size_t bad;
        if (pp_utf8_valid((const char *)s + i, n - i, &bad)) return strs_cat(l, (const char *)s + i, n - i);
        PP_TRY(strs_cat(l, (const char *)s + i, bad));
        i += bad;
        /* the maximal subpart: a lead byte and the continuation bytes that
         * could still begin a valid sequence */
        uint8_t c = s[i];
        size_t need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        size_t j = 1;
        for (; j <= need && i + j < n; j++) {
            uint8_t d = s[i + j];
            uint8_t lo = 0x80, hi = 0xBF;
            if (j == 1) {
                if (c == 0xE0) lo = 0xA0;
                if (c == 0xED) hi = 0x9F;
                if (c == 0xF0) lo = 0x90;
                if (c == 0xF4) hi = 0x8F;
            }
            if (d < lo || d > hi) break;
        }
        PP_TRY(strs_cat(l, "\xEF\xBF\xBD", 3));
        i += j;
    }
    return PP_OK;
}

static pp_status decode_step(const step *p, pp_hftok_state *st, const strs *in, strs *o)
{
    o->len = o->count = 0;
    switch (p->kind) {
    case D_BYTELEVEL: { /* all tokens' bytes, then one lossy string */
        size_t total = 0;
        for (size_t i = 0; i < in->count; i++) total += in->n[i];
        PP_TRY(tmp_reserve(st, total));
        size_t k = 0;
        for (size_t i = 0; i < in->count; i++) {
            const char *s = in->b + in->off[i];
            size_t n = in->n[i], k0 = k;
            for (size_t j = 0; j < n;) {
                int l, b = char_byte(cp_at(s + j, n - j, &l));
                if (b < 0) { /* a character outside the map: the token as it is */
                    memcpy(st->tmp + k0, s, n);
                    k = k0 + n;
                    break;
                }
                st->tmp[k++] = (char)b;
                j += (size_t)l;
            }
        }
        return lossy(o, (const uint8_t *)st->tmp, k);
    }
    case D_BYTEFALLBACK: {
        size_t nb = 0;
        PP_TRY(tmp_reserve(st, in->count));
        for (size_t i = 0; i <= in->count; i++) {
            const char *s = i < in->count ? in->b + in->off[i] : NULL;
            int is_byte = s && in->n[i] == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
                          strchr("0123456789abcdefABCDEF", s[3]) && strchr("0123456789abcdefABCDEF", s[4]) && s[3] && s[4];
            if (is_byte) {
                st->tmp[nb++] = (char)strtoul((char[3]){s[3], s[4], 0}, NULL, 16);
                continue;
            }
            if (nb) {
                if (pp_utf8_valid(st->tmp, nb, NULL)) PP_TRY(strs_add(o, st->tmp, nb));
                else
                    for (size_t j = 0; j < nb; j++) PP_TRY(strs_add(o, "\xEF\xBF\xBD", 3));
                nb = 0;
            }
            if (s) PP_TRY(strs_add(o, s, in->n[i]));
        }
        return PP_OK;
    }
    case D_FUSE:
        PP_TRY(strs_add(o, "", 0));
        for (size_t i = 0; i < in->count; i++) PP_TRY(strs_cat(o, in->b + in->off[i], in->n[i]));
        return PP_OK;
    case D_METASPACE:
        for (size_t i = 0; i < in->count; i++) {
            const char *s = in->b + in->off[i];
            size_t n = in->n[i];
            PP_TRY(strs_add(o, "", 0));
            for (size_t j = 0; j < n;) {
                int l;
                uint32_t c = cp_at(s + j, n - j, &l);
                if (c != p->repl) PP_TRY(strs_cat(o, s + j, (size_t)l));
                else if (!(i == 0 && p->scheme != S_NEVER)) PP_TRY(strs_cat(o, " ", 1));
                j += (size_t)l;
            }
        }
        return PP_OK;
    case D_STRIP:
        for (size_t i = 0; i < in->count; i++) {
            const char *s = in->b + in->off[i];
            size_t n = in->n[i], a = 0, b = n;
            for (int j = 0; j < p->start && a < n; j++) {
                int l;
                if (cp_at(s + a, n - a, &l) != p->repl) break;
                a += (size_t)l;
            }
            for (int j = 0; j < p->stop && b > a; j++) {
                size_t q = b - 1;
                while (q > a && ((uint8_t)s[q] & 0xC0) == 0x80) q--;
                int l;
                if (cp_at(s + q, b - q, &l) != p->repl) break;
                b = q;
            }
            /* The library counts stop from the end even past start: a token
             * of only the content character loses it once. */
            PP_TRY(strs_add(o, s + a, b - a));
        }
        return PP_OK;
    case D_REPLACE:
        for (size_t i = 0; i < in->count; i++) {
            const char *s = in->b + in->off[i];
            PP_TRY(find_matches(st, &p->pat, s, in->n[i]));
            PP_TRY(strs_add(o, "", 0));
            for (size_t j = 0; j < st->nm; j++) {
                if (st->m[j].hit) PP_TRY(strs_cat(o, p->text, p->ntext));
                else PP_TRY(strs_cat(o, s + st->m[j].a, st->m[j].b - st->m[j].a));
            }
        }
        return PP_OK;
    }
    return pp_fail(PP_E_INTERNAL, "unknown decoder");
}

pp_status pp_hftok_decode(const pp_hftok *t, const uint32_t *ids, size_t n, int skip_special, char **outp, size_t *cap,
                          size_t *len)
{
    pp_hftok_state *st = NULL;
    strs a = {0}, b = {0};
    pp_status s = state_get(&st);
    for (size_t i = 0; i < n && s == PP_OK; i++) {
        int id = (int)ids[i];
        if (ids[i] >= (uint32_t)t->nids || t->tok_len[id] == UINT32_MAX) continue;
        int ai = t->added_of[id];
        if (ai >= 0 && skip_special && t->added[ai].special) continue;
        /* an added token shows as the normalizer makes it (simple_id_to_token) */
        const char *p = ai >= 0 ? t->strs + t->added[ai].noff : t->strs + t->tok_off[id];
        size_t l = ai >= 0 ? t->added[ai].nlen : t->tok_len[id];
        s = strs_add(&a, p, l);
    }
    for (int i = 0; i < t->ndec && s == PP_OK; i++) {
        s = decode_step(&t->decoders[i], st, &a, &b);
        strs x = a;
        a = b, b = x;
    }
    size_t total = 0;
    for (size_t i = 0; i < a.count; i++) total += a.n[i] + (t->ndec ? 0 : 1);
    if (s == PP_OK && !grow((void **)outp, cap, total + 1, 1)) s = NOMEM();
    if (s == PP_OK) {
        size_t k = 0;
        for (size_t i = 0; i < a.count; i++) {
            if (!t->ndec && i) (*outp)[k++] = ' '; /* no decoder: tokens joined by spaces */
            memcpy(*outp + k, a.b + a.off[i], a.n[i]);
            k += a.n[i];
        }
        (*outp)[k] = 0;
        *len = k;
    }
    strs_free(&a);
    strs_free(&b);
    pp_hftok_state_free(st);
    return s;
}
