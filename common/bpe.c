#include "bpe.h"

#include <stdlib.h>
#include <string.h>

#include "piececache.h"

/* SentencePiece piece types (sentencepiece_model.proto). */
enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER_DEFINED = 4, T_UNUSED = 5, T_BYTE = 6 };

struct pp_bpe {
    int n;                  /* vocabulary size */
    uint32_t *off;          /* (n) start of piece i in bytes */
    uint32_t *len;          /* (n) its length */
    float *score;           /* (n) */
    uint8_t *type;          /* (n) */
    char *bytes;            /* all pieces, back to back */
    uint32_t *table;        /* open addressing: id + 1, 0 = empty */
    uint32_t mask;
    uint32_t max_len;       /* longest piece in bytes */
    int unk_id;
    int byte_fallback;
    int byte_id[256];
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    int segments;           /* no piece joins a non-space character to a following U+2581 */
};

static const char WS[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's space */

/* ----------------------------------------------------------- protobuf */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return 0;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return 1;
    }
    return 0;
}

/* Reads the next field: number, wire type, and for wire type 2 the payload
 * in *sub; for 0 the value in *v; 1 and 5 are skipped (5's bits in *v). */
static int pb_field(pb *b, uint32_t *field, int *wt, uint64_t *v, pb *sub)
{
    uint64_t key;
    if (!pb_varint(b, &key)) return 0;
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0: return pb_varint(b, v);
    case 1:
        if (b->end - b->p < 8) return 0;
        b->p += 8;
        return 1;
    case 2:
        if (!pb_varint(b, v) || *v > (uint64_t)(b->end - b->p)) return 0;
        sub->p = b->p;
        sub->end = b->p + *v;
        b->p += *v;
        return 1;
    case 5:
        if (b->end - b->p < 4) return 0;
        *v = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 | (uint64_t)b->p[3] << 24;
        b->p += 4;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------- lookup */

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* The id of the piece s[0..n), or -1. */
static int lookup(const pp_bpe *b, const char *s, size_t n)
{
    if (n > b->max_len) return -1;
    for (uint32_t i = (uint32_t)hash(s, n) & b->mask;; i = (i + 1) & b->mask) {
        uint32_t e = b->table[i];
        if (!e) return -1;
        int id = (int)e - 1;
        if (b->len[id] == n && memcmp(b->bytes + b->off[id], s, n) == 0) return id;
    }
}

/* -------------------------------------------------------------- build */

void pp_bpe_free(pp_bpe *b)
{
    if (!b) return;
    free(b->off);
    free(b->len);
    free(b->score);
    free(b->type);
    free(b->bytes);
    free(b->table);
    free(b);
}

int pp_bpe_vocab_size(const pp_bpe *b) { return b->n; }
float pp_bpe_score(const pp_bpe *b, int id) { return b->score[id]; }

const char *pp_bpe_piece(const pp_bpe *b, int id, size_t *len)
{
    *len = b->len[id];
    return b->bytes + b->off[id];
}

static pp_status build(pp_bpe *b, const uint8_t *model, size_t n)
{
    pb top = {model, model + n}, sub;
    uint32_t f;
    int wt;
    uint64_t v;
    size_t npieces = 0, nbytes = 0;
    int model_type = 1, ws_suffix = 0, have_charsmap = 0;
    b->add_dummy_prefix = b->remove_extra_ws = b->escape_ws = 1; /* proto defaults */

    /* First pass: count pieces and bytes, read the specs. */
    while (top.p < top.end) {
        if (!pb_field(&top, &f, &wt, &v, &sub)) return pp_fail(PP_E_DATA, "malformed SentencePiece model");
        if (wt != 2) continue;
        if (f == 1) {
            pb ps = sub;
            npieces++;
            while (ps.p < ps.end) {
                pb s2;
                if (!pb_field(&ps, &f, &wt, &v, &s2)) return pp_fail(PP_E_DATA, "malformed SentencePiece model");
                if (f == 1 && wt == 2) nbytes += v;
            }
        } else if (f == 2) { /* TrainerSpec */
            while (sub.p < sub.end) {
                pb s2;
                if (!pb_field(&sub, &f, &wt, &v, &s2)) return pp_fail(PP_E_DATA, "malformed SentencePiece model");
                if (wt != 0) continue;
                if (f == 3) model_type = v > 4 ? -1 : (int)v;
                else if (f == 24) ws_suffix = v != 0;
                else if (f == 35) b->byte_fallback = v != 0;
            }
        } else if (f == 3) { /* NormalizerSpec */
            while (sub.p < sub.end) {
                pb s2;
                if (!pb_field(&sub, &f, &wt, &v, &s2)) return pp_fail(PP_E_DATA, "malformed SentencePiece model");
                if (f == 2 && wt == 2 && v > 0) have_charsmap = 1;
                else if (wt == 0 && f == 3) b->add_dummy_prefix = v != 0;
                else if (wt == 0 && f == 4) b->remove_extra_ws = v != 0;
                else if (wt == 0 && f == 5) b->escape_ws = v != 0;
            }
        }
    }
    if (model_type != 2) return pp_fail(PP_E_USAGE, "not a BPE model");
    if (have_charsmap) return pp_fail(PP_E_USAGE, "the model normalizes with a character map");
    if (ws_suffix) return pp_fail(PP_E_USAGE, "the model treats whitespace as a suffix");
    if (npieces == 0 || npieces > (1u << 24) || nbytes > (1u << 30)) return pp_fail(PP_E_DATA, "implausible vocabulary");

    b->n = (int)npieces;
    b->off = malloc(npieces * sizeof *b->off);
    b->len = malloc(npieces * sizeof *b->len);
    b->score = malloc(npieces * sizeof *b->score);
    b->type = malloc(npieces);
    b->bytes = malloc(nbytes + 1);
    uint32_t cap = 1;
    while (cap < 2 * npieces) cap <<= 1;
    b->table = calloc(cap, sizeof *b->table);
    b->mask = cap - 1;
    if (!b->off || !b->len || !b->score || !b->type || !b->bytes || !b->table) return pp_fail(PP_E_NOMEM, "out of memory");

    /* Second pass: the pieces. */
    top.p = model;
    size_t at = 0, i = 0;
    b->unk_id = -1;
    for (int k = 0; k < 256; k++) b->byte_id[k] = -1;
    while (top.p < top.end) {
        pb_field(&top, &f, &wt, &v, &sub);
        if (wt != 2 || f != 1) continue;
        b->off[i] = (uint32_t)at;
        b->len[i] = 0;
        b->score[i] = 0;
        b->type[i] = T_NORMAL;
        while (sub.p < sub.end) {
            pb s2;
            pb_field(&sub, &f, &wt, &v, &s2);
            if (f == 1 && wt == 2) {
                memcpy(b->bytes + b->off[i], s2.p, v);
                b->len[i] = (uint32_t)v;
                at += v;
            } else if (f == 2 && wt == 5) {
                uint32_t u = (uint32_t)v;
                memcpy(&b->score[i], &u, 4);
            } else if (f == 3 && wt == 0) {
                b->type[i] = v >= 1 && v <= 6 ? (uint8_t)v : 0; /* 0: refused below */
            }
        }
        const char *s = b->bytes + b->off[i];
        uint32_t len = b->len[i];
        if (len == 0) return pp_fail(PP_E_DATA, "empty piece %zu", i);
        switch (b->type[i]) {
        case T_NORMAL: case T_CONTROL: break;
        case T_UNKNOWN: b->unk_id = (int)i; break;
        case T_BYTE:
            if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
                unsigned x = (unsigned)strtoul((char[3]){s[3], s[4], 0}, NULL, 16);
                b->byte_id[x & 255] = (int)i;
            }
            break;
        case T_USER_DEFINED: return pp_fail(PP_E_USAGE, "the model has user-defined pieces");
        case T_UNUSED: return pp_fail(PP_E_USAGE, "the model has unused pieces");
        default: return pp_fail(PP_E_DATA, "piece %zu has unknown type %d", i, b->type[i]);
        }
        if (len > b->max_len) b->max_len = len;
        /* A piece that joins a non-space character to a following U+2581
         * would let merges cross segment boundaries. */
        for (uint32_t k = 1; k + 3 <= len; k++)
            if (memcmp(s + k, WS, 3) == 0 && !(k >= 3 && memcmp(s + k - 3, WS, 3) == 0)) b->segments = -1;
        uint32_t h = (uint32_t)hash(s, len) & b->mask;
        while (b->table[h]) {
            int other = (int)b->table[h] - 1;
            if (b->len[other] == len && memcmp(b->bytes + b->off[other], s, len) == 0)
                return pp_fail(PP_E_DATA, "duplicate piece %zu", i);
            h = (h + 1) & b->mask;
        }
        b->table[h] = (uint32_t)i + 1;
        i++;
    }
    if (b->unk_id < 0) return pp_fail(PP_E_DATA, "the model has no unknown piece");
    if (b->byte_fallback)
        for (int k = 0; k < 256; k++)
            if (b->byte_id[k] < 0) return pp_fail(PP_E_DATA, "byte fallback without piece <0x%02X>", k);
    b->segments = b->segments == 0;
    return PP_OK;
}

pp_status pp_bpe_build(pp_bpe **out, const void *model, size_t n)
{
    *out = NULL;
    pp_bpe *b = calloc(1, sizeof *b);
    if (!b) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status s = build(b, model, n);
    if (s != PP_OK) {
        pp_bpe_free(b);
        return s;
    }
    *out = b;
    return PP_OK;
}

/* ------------------------------------------------------------- encode */

typedef struct sym {
    int32_t start, len, prev, next;
} sym;

typedef struct pair {
    float score;
    int32_t left, right;
    uint32_t size;
} pair;

struct pp_bpe_state {
    char *norm;
    size_t norm_cap;
    sym *sym;
    size_t sym_cap;
    pair *heap;
    size_t heap_len, heap_cap;
    uint32_t *out;          /* one segment's ids */
    size_t out_len, out_cap;
    pp_piececache *cache;   /* segments already encoded */
};

void pp_bpe_state_free(pp_bpe_state *st)
{
    if (!st) return;
    free(st->norm);
    free(st->sym);
    free(st->heap);
    free(st->out);
    pp_piececache_free(st->cache);
    free(st);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static int before(const pair *a, const pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(pp_bpe_state *st, pair p)
{
    if (!grow((void **)&st->heap, &st->heap_cap, st->heap_len + 1, sizeof *st->heap)) return 0;
    size_t i = st->heap_len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(&p, &st->heap[up])) break;
        st->heap[i] = st->heap[up];
        i = up;
    }
    st->heap[i] = p;
    return 1;
}

static pair heap_pop(pp_bpe_state *st)
{
    pair top = st->heap[0], last = st->heap[--st->heap_len];
    size_t i = 0, n = st->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&st->heap[c + 1], &st->heap[c])) c++;
        if (!before(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

/* Pushes the merge of symbols l and r if their concatenation is a normal piece. */
static int try_pair(const pp_bpe *b, pp_bpe_state *st, const char *s, int l, int r)
{
    if (l < 0 || r < 0) return 1;
    uint32_t size = (uint32_t)(st->sym[l].len + st->sym[r].len);
    int id = lookup(b, s + st->sym[l].start, size);
    if (id < 0 || b->type[id] != T_NORMAL) return 1;
    return heap_push(st, (pair){b->score[id], l, r, size});
}

static int out_add(pp_bpe_state *st, uint32_t id)
{
    if (!grow((void **)&st->out, &st->out_cap, st->out_len + 1, sizeof *st->out)) return 0;
    st->out[st->out_len++] = id;
    return 1;
}

static int char_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; /* valid UTF-8 only */
}

/* BPE over one segment s[0..n), ids appended to st->out. */
static pp_status encode_segment(const pp_bpe *b, pp_bpe_state *st, const char *s, size_t n)
{
    if (!grow((void **)&st->sym, &st->sym_cap, n, sizeof *st->sym)) return pp_fail(PP_E_NOMEM, "out of memory");
    int m = 0;
    for (size_t i = 0; i < n;) {
        int k = char_len((unsigned char)s[i]);
        if ((size_t)k > n - i) k = (int)(n - i);
        st->sym[m] = (sym){(int32_t)i, k, m - 1, m + 1};
        m++;
        i += (size_t)k;
    }
    if (m == 0) return PP_OK;
    st->sym[m - 1].next = -1;
    st->heap_len = 0;
    for (int i = 1; i < m; i++)
        if (!try_pair(b, st, s, i - 1, i)) return pp_fail(PP_E_NOMEM, "out of memory");
    while (st->heap_len) {
        pair top = heap_pop(st);
        sym *L = &st->sym[top.left], *R = &st->sym[top.right];
        if (L->len == 0 || R->len == 0 || (uint32_t)(L->len + R->len) != top.size) continue; /* stale */
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) st->sym[R->next].prev = top.left;
        R->len = 0;
        if (!try_pair(b, st, s, L->prev, top.left) || !try_pair(b, st, s, top.left, L->next))
            return pp_fail(PP_E_NOMEM, "out of memory");
    }
    for (int i = 0; i != -1; i = st->sym[i].next) {
        const char *p = s + st->sym[i].start;
        int id = lookup(b, p, (size_t)st->sym[i].len);
        if (id < 0) id = b->unk_id;
        if (id == b->unk_id && b->byte_fallback) {
            for (int k = 0; k < st->sym[i].len; k++)
                if (!out_add(st, (uint32_t)b->byte_id[(unsigned char)p[k]])) return pp_fail(PP_E_NOMEM, "out of memory");
        } else if (!out_add(st, (uint32_t)id)) {
            return pp_fail(PP_E_NOMEM, "out of memory");
        }
    }
    return PP_OK;
}

/* Encodes one segment through the cache; its ids end up in st->out. */
static pp_status cached_segment(const pp_bpe *b, pp_bpe_state *st, const char *s, size_t n)
{
    st->out_len = 0;
    const uint32_t *ids, *lens;
    size_t count;
    if (pp_piececache_get(st->cache, s, n, &ids, &lens, &count)) {
        if (!grow((void **)&st->out, &st->out_cap, count, sizeof *st->out)) return pp_fail(PP_E_NOMEM, "out of memory");
        memcpy(st->out, ids, count * sizeof *ids);
        st->out_len = count;
        return PP_OK;
    }
    PP_TRY(encode_segment(b, st, s, n));
    pp_piececache_put(st->cache, s, n, st->out, NULL, st->out_len);
    return PP_OK;
}

/* The normalizer without a character map: optional removal of extra spaces,
 * the dummy prefix, spaces escaped as U+2581. */
static pp_status normalize(const pp_bpe *b, pp_bpe_state *st, const char *t, size_t n, size_t *len)
{
    *len = 0;
    if (n == 0) return PP_OK;
    size_t i = 0;
    if (b->remove_extra_ws) {
        while (i < n && t[i] == ' ') i++;
        if (i == n) return PP_OK;
    }
    if (!grow((void **)&st->norm, &st->norm_cap, 3 * (n - i) + 3, 1)) return pp_fail(PP_E_NOMEM, "out of memory");
    char *o = st->norm;
    size_t k = 0;
    const char *sp = b->escape_ws ? WS : " ";
    size_t spn = b->escape_ws ? 3 : 1;
    if (b->add_dummy_prefix) {
        memcpy(o, sp, spn);
        k = spn;
    }
    int prev_space = b->remove_extra_ws;
    for (; i < n; i++) {
        if (t[i] == ' ') {
            if (prev_space) continue;
            memcpy(o + k, sp, spn);
            k += spn;
            prev_space = b->remove_extra_ws;
        } else {
            o[k++] = t[i];
            prev_space = 0;
        }
    }
    if (b->remove_extra_ws)
        while (k >= spn && memcmp(o + k - spn, sp, spn) == 0) k -= spn;
    *len = k;
    return PP_OK;
}

pp_status pp_bpe_encode(const pp_bpe *b, pp_bpe_state **stp, const char *text, size_t n,
                        uint32_t **ids, size_t *cap, size_t *count)
{
    *count = 0;
    pp_bpe_state *st = *stp;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st || pp_piececache_new(&st->cache) != PP_OK) {
            pp_bpe_state_free(st);
            return pp_fail(PP_E_NOMEM, "out of memory");
        }
        *stp = st;
    }
    size_t len;
    PP_TRY(normalize(b, st, text, n, &len));
    const char *s = st->norm;
    size_t total = 0, i = 0;
    while (i < len) {
        /* A segment: a run of U+2581, then everything up to the next one. */
        size_t j = i;
        if (b->segments) {
            while (j + 3 <= len && memcmp(s + j, WS, 3) == 0) j += 3;
            while (j < len && !(j + 3 <= len && memcmp(s + j, WS, 3) == 0)) j++;
        } else {
            j = len;
        }
        PP_TRY(cached_segment(b, st, s + i, j - i));
        if (total + st->out_len > *cap) {
            size_t c = *cap ? *cap : 64;
            while (c < total + st->out_len) c *= 2;
            uint32_t *p = realloc(*ids, c * sizeof *p);
            if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
            *ids = p;
            *cap = c;
        }
        memcpy(*ids + total, st->out, st->out_len * sizeof **ids);
        total += st->out_len;
        i = j;
    }
    /* Without byte fallback the library merges each run of unknown pieces
     * into one <unk> (PopulateSentencePieceText), across segments too. */
    if (!b->byte_fallback && total > 1) {
        size_t k = 1;
        for (size_t i = 1; i < total; i++)
            if (!((*ids)[i] == (uint32_t)b->unk_id && (*ids)[k - 1] == (uint32_t)b->unk_id)) (*ids)[k++] = (*ids)[i];
        total = k;
    }
    *count = total;
    return PP_OK;
}
