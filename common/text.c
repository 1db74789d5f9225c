#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pp_status pp_buf_reserve(pp_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len - 1) return pp_fail(PP_E_NOMEM, "out of memory");
    if (b->len + n + 1 <= b->cap) return PP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
    b->p = p;
    b->cap = cap;
    return PP_OK;
}

pp_status pp_buf_add(pp_buf *b, const void *data, size_t n)
{
    PP_TRY(pp_buf_reserve(b, n));
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return PP_OK;
}

pp_status pp_buf_adds(pp_buf *b, const char *s) { return pp_buf_add(b, s, strlen(s)); }

pp_status pp_buf_printf(pp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return pp_fail(PP_E_INTERNAL, "bad format");
    PP_TRY(pp_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PP_OK;
}

pp_status pp_buf_json_string(pp_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    PP_TRY(pp_buf_reserve(b, n + 2));
    b->p[b->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes copied verbatim */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        PP_TRY(pp_buf_add(b, s + run, i - run));
        char esc[6] = {'\\', 0};
        size_t k = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            k = 6;
        }
        PP_TRY(pp_buf_add(b, esc, k));
        run = i + 1;
    }
    PP_TRY(pp_buf_add(b, s + run, n - run));
    return pp_buf_add(b, "\"", 1);
}

void pp_buf_clear(pp_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

void pp_buf_free(pp_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int pp_utf8_valid(const char *str, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c == 0xED) len = 3, hi = 0x9F;          /* no surrogates */
        else if (c >= 0xE1 && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c == 0xF4) len = 4, hi = 0x8F;          /* <= U+10FFFF */
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else goto fail;
        if (n - i < len) goto fail;
        if (s[i + 1] < lo || s[i + 1] > hi) goto fail;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) goto fail;
        i += len;
    }
    return 1;
fail:
    if (bad) *bad = i;
    return 0;
}

int pp_json_strings_clean(const char *s, size_t n, size_t *bad)
{
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!in_str) {
            if (c == '"') in_str = 1;
            else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') goto fail;
            continue;
        }
        if (c < 0x20) goto fail;
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) goto fail;
            i++;
        }
        continue;
    fail:
        if (bad) *bad = i;
        return 0;
    }
    return 1;
}

char *pp_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *pp_unescape(const char *s)
{
    char *o = strdup(s), *w = o;
    if (!o) return NULL;
    for (const char *p = s; *p; p++) {
        if (*p == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == '\\')) {
            p++;
            *w++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : '\\';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return o;
}

/* common words of 4+ letters that carry no fact (sorted, for bsearch) */
static const char *const stop_words[] = {
    "about", "above", "after", "again", "against", "also", "because", "been", "before", "being", "both",
    "could", "does", "doing", "down", "during", "each", "even", "from", "further", "have", "having",
    "here", "hers", "herself", "himself", "into", "itself", "just", "more", "most", "much", "myself",
    "once", "only", "other", "ought", "ours", "over", "same", "shall", "should", "some", "such", "than",
    "that", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those",
    "through", "under", "until", "very", "were", "what", "when", "where", "which", "while", "whom",
    "whose", "will", "with", "would", "your", "yours", "yourself",
};

static int cmp_word(const void *a, const void *b) { return strcmp(a, *(const char *const *)b); }

static int word_char(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }

/* Splits s into lowercased words, each NUL-terminated in buf (n + 1 bytes);
 * start[] gets their offsets. Returns the count. */
static size_t split_words(const char *s, size_t n, char *buf, size_t *start)
{
    size_t k = 0, o = 0;
    for (size_t i = 0; i < n;) {
        if (!word_char((unsigned char)s[i])) {
            i++;
            continue;
        }
        start[k++] = o;
        while (i < n && word_char((unsigned char)s[i])) {
            char c = s[i++];
            buf[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        buf[o++] = 0;
    }
    return k;
}

double pp_keyword_recall(const char *ref, size_t nref, const char *ans, size_t nans, int *hits, int *total)
{
    /* one block: both texts' words (each at most n+1 bytes, n/2+1 words) */
    size_t nw_ref = nref / 2 + 1, nw_ans = nans / 2 + 1;
    char *mem = malloc(nref + 1 + nans + 1 + (nw_ref + nw_ans) * sizeof(size_t));
    if (!mem) return -2;
    size_t *rs = (size_t *)mem, *as = rs + nw_ref;
    char *rb = (char *)(as + nw_ans), *ab = rb + nref + 1;
    size_t nr = split_words(ref, nref, rb, rs), na = split_words(ans, nans, ab, as);
    int h = 0, t = 0;
    for (size_t i = 0; i < nr; i++) {
        const char *w = rb + rs[i];
        if (strlen(w) < 4 || bsearch(w, stop_words, sizeof stop_words / sizeof *stop_words, sizeof *stop_words, cmp_word))
            continue;
        size_t j = 0;
        while (j < i && strcmp(rb + rs[j], w) != 0) j++;
        if (j < i) continue; /* counted already */
        t++;
        for (j = 0; j < na; j++)
            if (strcmp(ab + as[j], w) == 0) break;
        h += j < na;
    }
    free(mem);
    if (hits) *hits = h;
    if (total) *total = t;
    return t ? (double)h / t : -1;
}
