/* pp-tokenize: pp-format JSONL in, token dataset out (or: dump a dataset,
 * train a tokenizer). Records are encoded on several threads, in batches,
 * and kept in input order. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "records.h"
#include "spm.h"
#include "stream.h"
#include "text.h"
#include "tokenizer.h"
#include "tokens.h"

static void usage(void)
{
    printf(
"Usage: pp-tokenize --tokenizer PATH [OPTION]... [FILE|-] [-o OUT]\n"
"       pp-tokenize --dump [--tokenizer PATH] [DATASET|-]\n"
"       pp-tokenize --train-vocab N [CORPUS|-] -o tokenizer.model\n"
"Encode pp-format JSONL into a token dataset (zstd-compressed safetensors).\n"
"\n"
"Each record becomes BOS + prompt + response + EOS; prompt and response are\n"
"encoded separately (--joined: as one text). The prompt (with BOS) gets no\n"
"loss in training.\n"
"\n"
"  -t, --tokenizer PATH  a model directory (tokenizer.json or tokenizer.model), either\n"
"                        file, or a pp model file\n"
"      --chat-template T conversations ({\"messages\": [...]}, pp-format --chat) in the\n"
"                        model's chat format: auto (the default: the tokenizer's\n"
"                        chat_template) or chatml, llama3, llama2, mistral; the loss\n"
"                        on the assistant turns\n"
"      --joined          encode prompt + response as one text (as tokenizer(prompt +\n"
"                        response)); the loss starts at the token holding the\n"
"                        response's first byte\n"
"      --max-len N       records longer than N tokens are truncated (response side)\n"
"      --drop-long       drop records longer than --max-len instead\n"
"      --no-eos          do not append EOS\n"
"      --no-bos          do not prepend BOS\n"
"  -j, --threads N       encoding threads (default: all CPUs)\n"
"  -l, --level N         zstd level 1-19 (default 3)\n"
"  -o, --output OUT      write to OUT (default standard output, never a terminal)\n"
"      --dump            print a token dataset as text, one record a line, the\n"
"                        masked prompt between [[ and ]] (ids without --tokenizer)\n"
"      --train-vocab N   train a SentencePiece BPE tokenizer of N pieces (byte\n"
"                        fallback) on a text corpus, one sentence a line\n"
"  -q, --quiet           no messages but errors\n"
"  -v, --verbose         more messages\n"
"  -h, --help            show this help\n"
"  -V, --version         show the version\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"73 cannot create output, 74 I/O error.\n"
"See pp-tokenize(1) and pp-files(5).\n");
}

enum { OPT_MAXLEN = 256, OPT_DROP, OPT_NOEOS, OPT_NOBOS, OPT_DUMP, OPT_TRAIN, OPT_JOINED, OPT_CHAT };

static const struct option longopts[] = {
    {"tokenizer", required_argument, 0, 't'},
    {"max-len", required_argument, 0, OPT_MAXLEN},
    {"drop-long", no_argument, 0, OPT_DROP},
    {"no-eos", no_argument, 0, OPT_NOEOS},
    {"no-bos", no_argument, 0, OPT_NOBOS},
    {"joined", no_argument, 0, OPT_JOINED},
    {"chat-template", required_argument, 0, OPT_CHAT},
    {"threads", required_argument, 0, 'j'},
    {"level", required_argument, 0, 'l'},
    {"output", required_argument, 0, 'o'},
    {"dump", no_argument, 0, OPT_DUMP},
    {"train-vocab", required_argument, 0, OPT_TRAIN},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

/* ------------------------------------------------------------ encoding */

#define BATCH_BYTES (8u << 20)   /* input bytes per batch */
#define BATCH_RECORDS 65536u     /* records per batch, at most */
#define MAX_THREADS 256
#define DROPPED UINT32_MAX       /* a record's length when it was dropped */

typedef struct opts {
    uint64_t max_len;       /* 0: no limit */
    int drop_long, bos, eos, joined;
    const char *chat_arg;   /* --chat-template: a name, "auto" or NULL (auto when a record is a conversation) */
    const pp_chat_template *chat; /* the template conversations are rendered with, or NULL */
    char chat_err[512];     /* why there is none */
    const char *bos_text, *eos_text; /* the template's bos_token and eos_token */
} opts;

/* One batch of input lines: text in one buffer, records as offsets. */
typedef struct batch {
    pp_buf text;
    size_t *start;          /* (BATCH_RECORDS + 1) record i is text[start[i] .. start[i+1]) */
    uint64_t *lineno;       /* (BATCH_RECORDS) */
    size_t n;
} batch;

/* What a worker produces for its slice of a batch. */
typedef struct worker {
    const pp_tokenizer *tk;
    const opts *o;
    const batch *b;
    size_t lo, hi;          /* records [lo, hi) of the batch */
    uint32_t *ids;          /* tokens of the kept records, concatenated */
    size_t ids_len, ids_cap;
    uint32_t *len, *plen;   /* (hi - lo) tokens and prompt tokens per record; DROPPED = dropped */
    uint32_t *scratch, *scratch2;
    size_t scratch_cap, scratch2_cap;
    char *join;             /* --joined: prompt + response */
    size_t join_cap;
    pp_tok_state *tst;      /* the encoder's per-thread state */
    uint8_t *mask;          /* (ids_cap) the loss mask of ids */
    size_t mask_cap;
    uint8_t *train;         /* a conversation's loss mask */
    size_t train_cap;
    pp_chat_text chat;      /* a conversation as rendered */
    int any_chat;           /* a record of this batch was a conversation */
    uint64_t truncated, dropped;
    pp_status s;            /* first failure, with its message */
    uint64_t err_line;
    char err[512];
} worker;

static pp_status ids_add(worker *w, const uint32_t *p, size_t n)
{
    if (n == 0) return PP_OK;
    if (w->ids_len + n > w->ids_cap) {
        size_t c = w->ids_cap ? w->ids_cap : 4096;
        while (c < w->ids_len + n) c *= 2;
        uint32_t *q = realloc(w->ids, c * sizeof *q);
        if (!q) return pp_fail(PP_E_NOMEM, "out of memory");
        w->ids = q;
        w->ids_cap = c;
    }
    memcpy(w->ids + w->ids_len, p, n * sizeof *p);
    w->ids_len += n;
    return PP_OK;
}

static pp_status json_field(const cJSON *rec, const char *name, const char **s, size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
    if (!v) return pp_fail(PP_E_DATA, "record has no field \"%s\"", name);
    if (!cJSON_IsString(v)) return pp_fail(PP_E_DATA, "field \"%s\" is not a string", name);
    *s = v->valuestring;
    *n = strlen(*s);
    return PP_OK;
}

/* A conversation ({"messages": [{"role", "content"}...]}) through the chat
 * template; the loss on the assistant turns. *plen: the first target. */
static pp_status encode_chat(worker *w, const cJSON *msgs, uint32_t *plen)
{
    if (!w->o->chat) return pp_fail(PP_E_DATA, "%s", w->o->chat_err);
    if (!cJSON_IsArray(msgs)) return pp_fail(PP_E_DATA, "\"messages\" is not a list");
    size_t n = (size_t)cJSON_GetArraySize(msgs), k = 0;
    if (n == 0 || n > 4096) return pp_fail(PP_E_DATA, "a conversation of %zu messages", n);
    pp_chat_msg *m = malloc(n * sizeof *m);
    if (!m) return pp_fail(PP_E_NOMEM, "out of memory");
    const cJSON *e;
    pp_status s = PP_OK;
    cJSON_ArrayForEach(e, msgs) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "role"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content"));
        if (!role || !content) {
            s = pp_fail(PP_E_DATA, "message %zu needs string \"role\" and \"content\"", k + 1);
            break;
        }
        m[k++] = (pp_chat_msg){role, content};
    }
    pp_chat_text_clear(&w->chat);
    if (s == PP_OK) s = pp_chat_render(&w->chat, w->o->chat, m, n, 0, w->o->bos_text, w->o->eos_text);
    free(m);
    size_t cnt = 0;
    if (s == PP_OK)
        s = pp_tokenizer_encode_chat(w->tk, &w->tst, &w->chat, &w->scratch, &w->scratch_cap, &w->train, &w->train_cap, &cnt);
    if (s == PP_OK) s = ids_add(w, w->scratch, cnt);
    if (s == PP_OK && w->mask_cap < w->ids_cap) {
        uint8_t *p = realloc(w->mask, w->ids_cap);
        if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
        w->mask = p, w->mask_cap = w->ids_cap;
    }
    if (s != PP_OK) return s;
    memcpy(w->mask + w->ids_len - cnt, w->train, cnt);
    size_t p = 0;
    while (p < cnt && !w->train[p]) p++;
    *plen = (uint32_t)p;
    w->any_chat = 1;
    return PP_OK;
}

static pp_status encode_record(worker *w, size_t i)
{
    const batch *b = w->b;
    const char *line = b->text.p + b->start[i];
    size_t n = b->start[i + 1] - b->start[i], bad;
    if (!pp_utf8_valid(line, n, &bad)) return pp_fail(PP_E_DATA, "invalid UTF-8 at column %zu", bad + 1);
    if (!pp_json_strings_clean(line, n, &bad))
        return pp_fail(PP_E_DATA, "%s in a string at column %zu", line[bad] == '\\' ? "a NUL (\\u0000)" : "a control character",
                       bad + 1);
    const char *end;
    cJSON *rec = cJSON_ParseWithLengthOpts(line, n, &end, 0);
    if (!rec) return pp_fail(PP_E_DATA, "invalid JSON");
    pp_status s = PP_OK;
    const char *text[2];
    size_t tn[2];
    while (end < line + n && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
    if (end != line + n) s = pp_fail(PP_E_DATA, "invalid JSON: data after the record");
    else if (!cJSON_IsObject(rec)) s = pp_fail(PP_E_DATA, "record is not a JSON object");
    const cJSON *msgs = s == PP_OK ? cJSON_GetObjectItemCaseSensitive(rec, "messages") : NULL;
    int is_chat = msgs != NULL;
    size_t first = w->ids_len;
    uint32_t plen = 0;
    if (is_chat) {
        s = encode_chat(w, msgs, &plen);
        cJSON_Delete(rec);
        if (s != PP_OK) return s;
        goto counted;
    }
    if (s == PP_OK) s = json_field(rec, "prompt", &text[0], &tn[0]);
    if (s == PP_OK) s = json_field(rec, "response", &text[1], &tn[1]);
    if (s == PP_OK && w->o->bos) { /* what the tokenizer puts first (BOS) */
        s = ids_add(w, w->tk->pre, w->tk->npre);
        plen = (uint32_t)w->tk->npre;
    }
    if (s == PP_OK && w->o->joined) {
        /* One text; the prompt is the tokens it shares with the prompt
         * encoded alone, so the token holding the response's first byte
         * carries the loss. */
        size_t cnt = 0, pc = 0, k = 0;
        if (!(w->join = w->join_cap >= tn[0] + tn[1] + 1 ? w->join : realloc(w->join, tn[0] + tn[1] + 1)))
            s = pp_fail(PP_E_NOMEM, "out of memory");
        else w->join_cap = w->join_cap > tn[0] + tn[1] + 1 ? w->join_cap : tn[0] + tn[1] + 1;
        if (s == PP_OK) {
            memcpy(w->join, text[0], tn[0]);
            memcpy(w->join + tn[0], text[1], tn[1]);
            s = pp_tokenizer_encode(w->tk, &w->tst, w->join, tn[0] + tn[1], 0, &w->scratch, &w->scratch_cap, &cnt);
        }
        if (s == PP_OK) s = pp_tokenizer_encode(w->tk, &w->tst, text[0], tn[0], 0, &w->scratch2, &w->scratch2_cap, &pc);
        while (s == PP_OK && k < pc && k < cnt && w->scratch[k] == w->scratch2[k]) k++;
        if (s == PP_OK && k == pc && k == cnt && tn[1]) k = cnt; /* nothing left for the response */
        if (s == PP_OK) s = ids_add(w, w->scratch, cnt);
        plen += (uint32_t)k;
    } else {
        for (int k = 0; k < 2 && s == PP_OK; k++) {
            size_t cnt = 0;
            s = pp_tokenizer_encode(w->tk, &w->tst, text[k], tn[k], 0, &w->scratch, &w->scratch_cap, &cnt);
            if (s == PP_OK) s = ids_add(w, w->scratch, cnt);
            if (k == 0) plen += (uint32_t)cnt;
        }
    }
    if (s == PP_OK && w->o->eos) {
        uint32_t eos = (uint32_t)w->tk->eos_id;
        s = ids_add(w, &eos, 1);
    }
    cJSON_Delete(rec);
    if (s != PP_OK) return s;
    if (!is_chat) { /* the loss mask of a prompt/response record: the response and EOS */
        if (w->mask_cap < w->ids_cap) {
            uint8_t *m = realloc(w->mask, w->ids_cap);
            if (!m) return pp_fail(PP_E_NOMEM, "out of memory");
            w->mask = m, w->mask_cap = w->ids_cap;
        }
        for (size_t k = first; k < w->ids_len; k++) w->mask[k] = k - first >= plen;
    }
counted:;
    uint64_t len = w->ids_len - first;
    if (w->o->max_len && len > w->o->max_len) {
        if (w->o->drop_long || plen >= w->o->max_len) {
            w->ids_len = first; /* no response token would be left: drop */
            w->dropped++;
            len = DROPPED;
        } else {
            w->ids_len = first + w->o->max_len;
            w->truncated++;
            len = w->o->max_len;
        }
    }
    if (len >= DROPPED && len != DROPPED) return pp_fail(PP_E_DATA, "record of 2^32 tokens or more");
    w->len[i - w->lo] = (uint32_t)len;
    w->plen[i - w->lo] = plen;
    return PP_OK;
}

static void *work(void *arg)
{
    worker *w = arg;
    w->ids_len = 0;
    for (size_t i = w->lo; i < w->hi; i++) {
        pp_status s = encode_record(w, i);
        if (s != PP_OK) {
            w->s = s;
            w->err_line = w->b->lineno[i];
            snprintf(w->err, sizeof w->err, "%s", pp_errmsg());
            break;
        }
    }
    return NULL;
}

/* The growing dataset. */
typedef struct dataset {
    uint32_t *tokens;
    uint64_t n_tokens, cap_tokens;
    uint64_t *offsets;
    uint32_t *plens;
    uint64_t n_records, cap_offsets, cap_plens;
    uint8_t *mask;          /* (n_tokens) the loss mask, kept from the first conversation on */
    uint64_t cap_mask;
    int any_chat;
} dataset;

static pp_status grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap) return PP_OK;
    uint64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return pp_fail(PP_E_NOMEM, "out of memory");
    *p = q;
    *cap = c;
    return PP_OK;
}

/* Appends the workers' results in record order. */
static pp_status gather(dataset *d, worker *ws, int nw)
{
    for (int k = 0; k < nw; k++) {
        worker *w = &ws[k];
        uint64_t need = d->n_records + (w->hi - w->lo) + 1; /* + 1: the closing offset */
        PP_TRY(grow((void **)&d->tokens, &d->cap_tokens, d->n_tokens + w->ids_len, sizeof *d->tokens));
        PP_TRY(grow((void **)&d->plens, &d->cap_plens, need, sizeof *d->plens));
        PP_TRY(grow((void **)&d->offsets, &d->cap_offsets, need, sizeof *d->offsets));
        if (w->ids_len) memcpy(d->tokens + d->n_tokens, w->ids, w->ids_len * sizeof *w->ids);
        if (w->any_chat && !d->any_chat) { /* from now on a loss mask: the records so far by their prompt lengths */
            PP_TRY(grow((void **)&d->mask, &d->cap_mask, d->n_tokens + 1, 1));
            for (uint64_t r = 0; r < d->n_records; r++) {
                uint64_t a = d->offsets[r], b = r + 1 < d->n_records ? d->offsets[r + 1] : d->n_tokens;
                for (uint64_t j = a; j < b; j++) d->mask[j] = j - a >= d->plens[r];
            }
            d->any_chat = 1;
        }
        if (d->any_chat) {
            PP_TRY(grow((void **)&d->mask, &d->cap_mask, d->n_tokens + w->ids_len + 1, 1));
            if (w->ids_len) memcpy(d->mask + d->n_tokens, w->mask, w->ids_len);
        }
        uint64_t at = d->n_tokens;
        for (size_t i = 0; i < w->hi - w->lo; i++) {
            if (w->len[i] == DROPPED) continue;
            d->offsets[d->n_records] = at;
            d->plens[d->n_records++] = w->plen[i];
            at += w->len[i];
        }
        d->n_tokens = at;
    }
    return PP_OK;
}

static pp_status read_batch(pp_reader *in, batch *b, uint64_t *lineno)
{
    pp_buf_clear(&b->text);
    b->n = 0;
    b->start[0] = 0;
    while (b->n < BATCH_RECORDS && b->text.len < BATCH_BYTES) {
        const char *l;
        size_t n;
        PP_TRY(pp_read_line(in, &l, &n));
        if (!l) break;
        ++*lineno;
        size_t i = 0;
        while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
        if (i == n) continue;
        PP_TRY(pp_buf_add(&b->text, l, n));
        b->lineno[b->n++] = *lineno;
        b->start[b->n] = b->text.len;
    }
    return PP_OK;
}

/* A token's text, NUL-terminated and malloc'ed; NULL for id -1. */
static char *piece_text(const pp_tokenizer *tk, int id)
{
    size_t n;
    const char *p = id >= 0 ? pp_tokenizer_piece(tk, id, &n) : NULL;
    char *s = p ? malloc(n + 1) : NULL;
    if (s) memcpy(s, p, n), s[n] = 0;
    return s;
}

static int tokenize(const char *tok_path, const char *in_path, const char *out_path, const opts *o,
                    int nthreads, int level)
{
    pp_tokenizer *tk = NULL;
    pp_reader *in = NULL;
    pp_writer *out = NULL;
    batch b = {0};
    dataset d = {0};
    worker ws[MAX_THREADS];
    memset(ws, 0, sizeof ws);
    const char *ctx = tok_path;
    uint64_t lineno = 0, truncated = 0, dropped = 0;
    int rc = 0;
    pp_tokens t = {0};
    pp_chat_template chat;
    opts oc;
    char *bos_text = NULL, *eos_text = NULL;

    pp_status s = pp_tokenizer_load(&tk, tok_path);
    if (s != PP_OK) goto fail;
    pp_cli_say(2, "encoder: %s", tk->engine);
    if (o->bos && tk->spm && tk->bos_id < 0) {
        s = pp_fail(PP_E_DATA, "the tokenizer has no BOS piece (use --no-bos)");
        goto fail;
    }
    if (o->eos && tk->eos_id < 0) {
        s = pp_fail(PP_E_DATA, "the tokenizer has no EOS token (%s; use --no-eos)",
                    tk->hf ? "no eos_token in a tokenizer_config.json beside it" : "no EOS piece");
        goto fail;
    }
    /* The chat template: named, or the tokenizer's; without one, a
     * conversation record is the error. */
    oc = *o;
    oc.bos_text = bos_text = piece_text(tk, tk->bos_id);
    oc.eos_text = eos_text = piece_text(tk, tk->eos_id);
    if (o->chat_arg && strcmp(o->chat_arg, "auto") != 0) {
        if ((s = pp_chat_by_name(&chat, o->chat_arg)) != PP_OK) {
            s = pp_fail(PP_E_USAGE, "--chat-template: \"%s\" is none of auto, %s", o->chat_arg, pp_chat_names());
            ctx = NULL;
            goto fail;
        }
        oc.chat = &chat;
    } else if (!tk->chat_template) {
        snprintf(oc.chat_err, sizeof oc.chat_err, "a conversation, and the tokenizer has no chat_template "
                 "(tokenizer_config.json): --chat-template %s", pp_chat_names());
    } else if (pp_chat_detect(&chat, tk->chat_template, strlen(tk->chat_template)) == PP_OK) {
        oc.chat = &chat;
        pp_cli_say(2, "chat template: %s", chat.name);
    } else {
        snprintf(oc.chat_err, sizeof oc.chat_err, "%s", pp_errmsg());
        if (o->chat_arg) { /* asked for: refuse now */
            s = pp_fail(PP_E_DATA, "%s", oc.chat_err);
            goto fail;
        }
    }
    o = &oc;
    ctx = in_path;
    if ((s = pp_reader_open(&in, in_path)) != PP_OK) goto fail;
    b.start = malloc((BATCH_RECORDS + 1) * sizeof *b.start);
    b.lineno = malloc(BATCH_RECORDS * sizeof *b.lineno);
    int short_of_memory = !b.start || !b.lineno;
    for (int k = 0; k < nthreads; k++) {
        ws[k].len = malloc(BATCH_RECORDS * sizeof *ws[k].len);
        ws[k].plen = malloc(BATCH_RECORDS * sizeof *ws[k].plen);
        if (!ws[k].len || !ws[k].plen) short_of_memory = 1;
    }
    if (short_of_memory) {
        s = pp_fail(PP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (;;) {
        if ((s = read_batch(in, &b, &lineno)) != PP_OK) goto fail;
        if (b.n == 0) break;
        int nw = (size_t)nthreads < b.n ? nthreads : (int)b.n;
        pthread_t th[MAX_THREADS];
        for (int k = 0; k < nw; k++) {
            ws[k].tk = tk;
            ws[k].o = o;
            ws[k].b = &b;
            ws[k].lo = b.n * (size_t)k / (size_t)nw;
            ws[k].hi = b.n * (size_t)(k + 1) / (size_t)nw;
            ws[k].s = PP_OK;
            if (k > 0 && pthread_create(&th[k], NULL, work, &ws[k]) != 0) {
                s = pp_fail(PP_E_INTERNAL, "cannot start a thread");
                nw = k;
                break;
            }
        }
        if (nw > 0) work(&ws[0]);
        for (int k = 1; k < nw; k++) pthread_join(th[k], NULL);
        if (s != PP_OK) goto fail;
        for (int k = 0; k < nw; k++) {
            if (ws[k].s != PP_OK) { /* the first failing record in input order */
                s = pp_fail(ws[k].s, "%s (line %llu)", ws[k].err, (unsigned long long)ws[k].err_line);
                goto fail;
            }
            truncated += ws[k].truncated;
            dropped += ws[k].dropped;
            ws[k].truncated = ws[k].dropped = 0;
        }
        if ((s = gather(&d, ws, nw)) != PP_OK) goto fail;
    }
    if ((s = grow((void **)&d.offsets, &d.cap_offsets, d.n_records + 1, sizeof *d.offsets)) != PP_OK)
        goto fail;
    d.offsets[d.n_records] = d.n_tokens;

    t.offsets = d.offsets;
    t.tokens = d.tokens ? d.tokens : (uint32_t[1]){0};
    t.prompt_lens = d.plens ? d.plens : (uint32_t[1]){0};
    t.loss_mask = d.any_chat ? d.mask : NULL;
    t.n_tokens = d.n_tokens;
    t.n_records = d.n_records;
    t.vocab_size = (uint32_t)tk->vocab;
    t.bos_id = tk->bos_id;
    t.eos_id = tk->eos_id;
    memcpy(t.tokenizer_sha256, tk->sha256, 65);
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%llu", (unsigned long long)o->max_len);
    const char *extra[] = {"add_bos", o->bos ? "true" : "false", "add_eos", o->eos ? "true" : "false",
                           "max_len", maxlen, "joined", o->joined ? "true" : "false"};
    ctx = strcmp(out_path, "-") ? out_path : "<stdout>";
    if ((s = pp_writer_open(&out, out_path, level)) != PP_OK) goto fail;
    if ((s = pp_tokens_write(out, &t, extra, 4)) != PP_OK) goto fail;
    s = pp_writer_commit(out);
    out = NULL;
    if (s != PP_OK) goto fail;
    if (truncated) pp_cli_say(1, "%llu record%s truncated to %llu tokens", (unsigned long long)truncated,
                              truncated == 1 ? "" : "s", (unsigned long long)o->max_len);
    if (dropped) pp_cli_say(1, "%llu record%s longer than %llu tokens dropped", (unsigned long long)dropped,
                            dropped == 1 ? "" : "s", (unsigned long long)o->max_len);
    pp_cli_say(2, "%llu records, %llu tokens", (unsigned long long)d.n_records, (unsigned long long)d.n_tokens);
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    pp_writer_abort(out);
    pp_reader_close(in);
    pp_tokenizer_free(tk);
    free(bos_text);
    free(eos_text);
    pp_buf_free(&b.text);
    free(b.start);
    free(b.lineno);
    for (int k = 0; k < nthreads; k++) {
        free(ws[k].ids);
        free(ws[k].len);
        free(ws[k].plen);
        free(ws[k].scratch);
        free(ws[k].scratch2);
        free(ws[k].mask);
        free(ws[k].train);
        pp_chat_text_free(&ws[k].chat);
        free(ws[k].join);
        pp_tok_state_free(ws[k].tst);
    }
    free(d.tokens);
    free(d.offsets);
    free(d.plens);
    free(d.mask);
    return rc;
}

/* ------------------------------------------------------------------- dump */

/* Appends text with \n, \t, \\ and control bytes escaped, so a record stays on one line. */
static pp_status add_escaped(pp_buf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') PP_TRY(pp_buf_add(o, "\\n", 2));
        else if (c == '\t') PP_TRY(pp_buf_add(o, "\\t", 2));
        else if (c == '\\') PP_TRY(pp_buf_add(o, "\\\\", 2));
        else if (c < 0x20 || c == 0x7f) PP_TRY(pp_buf_printf(o, "\\x%02x", c));
        else PP_TRY(pp_buf_add(o, s + i, 1));
    }
    return PP_OK;
}

/* Decodes ids[0..n) into o: runs of ordinary pieces through the tokenizer,
 * control pieces (<s>, </s>) spelled out so that a double BOS shows. */
static pp_status render(pp_buf *o, const pp_tokenizer *sp, const uint32_t *ids, size_t n, char **tmp, size_t *cap)
{
    if (!sp) {
        for (size_t i = 0; i < n; i++) PP_TRY(pp_buf_printf(o, i ? " %u" : "%u", ids[i]));
        return PP_OK;
    }
    size_t i = 0;
    while (i < n) {
        size_t len;
        if (pp_tokenizer_is_special(sp, (int)ids[i])) {
            const char *p = pp_tokenizer_piece(sp, (int)ids[i], &len);
            PP_TRY(pp_buf_add(o, p, len));
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !pp_tokenizer_is_special(sp, (int)ids[j])) j++;
        PP_TRY(pp_tokenizer_decode(sp, ids + i, j - i, 0, tmp, cap, &len));
        PP_TRY(add_escaped(o, *tmp, len));
        i = j;
    }
    return PP_OK;
}

static int dump(const char *tok_path, const char *in_path)
{
    pp_tokenizer *tk = NULL;
    const pp_tokenizer *sp = NULL;
    pp_reader *in = NULL;
    pp_tokens t = {0};
    pp_buf line = {0};
    char *tmp = NULL;
    size_t cap = 0;
    const char *ctx = tok_path;
    int rc = 0;
    pp_status s = PP_OK;
    if (tok_path && (s = pp_tokenizer_load(&tk, tok_path)) != PP_OK) goto fail;
    sp = tk;
    ctx = in_path;
    if ((s = pp_reader_open(&in, in_path)) != PP_OK) goto fail;
    if ((s = pp_tokens_read(&t, in)) != PP_OK) goto fail;
    if (tk && strcmp(tk->sha256, t.tokenizer_sha256) != 0) {
        s = pp_fail(PP_E_DATA, "tokenized with another tokenizer (sha256 %.12s..., given %.12s...)",
                    t.tokenizer_sha256, tk->sha256);
        goto fail;
    }
    uint64_t total_p = 0;
    for (uint64_t r = 0; r < t.n_records; r++) {
        const uint32_t *ids = t.tokens + t.offsets[r];
        size_t n = t.offsets[r + 1] - t.offsets[r], p = t.prompt_lens[r];
        pp_buf_clear(&line);
        const uint8_t *lm = t.loss_mask ? t.loss_mask + t.offsets[r] : NULL;
        size_t trained = n - p;
        if (lm) {
            trained = 0;
            for (size_t j = 0; j < n; j++) trained += lm[j];
        }
        total_p += n - trained;
        s = pp_buf_printf(&line, "%llu\t%zu+%zu\t", (unsigned long long)r, n - trained, trained);
        /* runs of tokens without loss between [[ and ]] */
        for (size_t j = 0; j < n && s == PP_OK;) {
            int on = lm ? lm[j] : j >= p;
            size_t k = j;
            while (k < n && (lm ? lm[k] : k >= p) == on) k++;
            if (!on) s = pp_buf_adds(&line, "[[");
            if (s == PP_OK) s = render(&line, sp, ids + j, k - j, &tmp, &cap);
            if (s == PP_OK && !on) s = pp_buf_adds(&line, "]]");
            if (s == PP_OK && sp == NULL && !on && k < n) s = pp_buf_adds(&line, " ");
            j = k;
        }
        if (s == PP_OK && n == 0) s = pp_buf_adds(&line, "[[]]");
        if (s == PP_OK) s = pp_buf_adds(&line, "\n");
        if (s != PP_OK) goto fail;
        if (fwrite(line.p, 1, line.len, stdout) != line.len) {
            s = pp_fail(PP_E_IO, "write error on standard output");
            ctx = NULL;
            goto fail;
        }
    }
    pp_cli_say(1, "%llu records, %llu tokens (%llu prompt, %llu trained)", (unsigned long long)t.n_records, (unsigned long long)t.n_tokens, (unsigned long long)total_p,
            (unsigned long long)(t.n_tokens - total_p));
    if (fflush(stdout) != 0) {
        s = pp_fail(PP_E_IO, "write error on standard output");
        ctx = NULL;
        goto fail;
    }
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    pp_tokens_free(&t);
    pp_reader_close(in);
    pp_tokenizer_free(tk);
    pp_buf_free(&line);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ train */

static int train(uint64_t vocab, const char *in_path, const char *out_path, int nthreads)
{
    pp_reader *in = NULL;
    pp_writer *out = NULL;
    char *model = NULL;
    size_t n = 0;
    const char *ctx = in_path;
    int rc = 0;
    pp_status s = pp_reader_open(&in, in_path);
    if (s == PP_OK) s = pp_spm_train(in, (int)vocab, nthreads, &model, &n);
    if (s == PP_OK) {
        ctx = strcmp(out_path, "-") ? out_path : "<stdout>";
        s = pp_writer_open(&out, out_path, 0);
    }
    if (s == PP_OK) s = pp_write(out, model, n);
    if (s == PP_OK) {
        s = pp_writer_commit(out);
        out = NULL;
    }
    if (s != PP_OK) rc = pp_cli_fail(ctx, s);
    else pp_cli_say(2, "wrote a %llu-piece tokenizer, %zu bytes", (unsigned long long)vocab, n);
    pp_writer_abort(out);
    pp_reader_close(in);
    free(model);
    return rc;
}

int main(int argc, char **argv)
{
    pp_cli_init("pp-tokenize");
    const char *tok_path = NULL, *out_path = NULL;
    opts o = {0};
    o.bos = o.eos = 1;
    uint64_t v, train_vocab = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = ncpu > 0 ? (ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu) : 1;
    int level = 3, do_dump = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:j:l:o:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tok_path = optarg; break;
        case OPT_MAXLEN:
            if (pp_cli_u64(optarg, 2, UINT32_MAX, &o.max_len)) return pp_cli_usage("--max-len wants a number of tokens >= 2, not \"%s\"", optarg);
            break;
        case OPT_DROP: o.drop_long = 1; break;
        case OPT_NOEOS: o.eos = 0; break;
        case OPT_NOBOS: o.bos = 0; break;
        case OPT_JOINED: o.joined = 1; break;
        case OPT_CHAT: o.chat_arg = optarg; break;
        case 'j':
            if (pp_cli_u64(optarg, 1, MAX_THREADS, &v)) return pp_cli_usage("--threads wants 1..%d, not \"%s\"", MAX_THREADS, optarg);
            nthreads = (int)v;
            break;
        case 'l':
            if (pp_cli_u64(optarg, 1, 19, &v)) return pp_cli_usage("--level wants 1..19, not \"%s\"", optarg);
            level = (int)v;
            break;
        case 'o': out_path = optarg; break;
        case OPT_DUMP: do_dump = 1; break;
        case OPT_TRAIN:
            if (pp_cli_u64(optarg, 8, 1u << 20, &train_vocab)) return pp_cli_usage("--train-vocab wants 8..1048576 pieces, not \"%s\"", optarg);
            break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (argc - optind > 1) return pp_cli_usage("one input at most");
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (do_dump + (train_vocab > 0) > 1) return pp_cli_usage("--dump and --train-vocab exclude each other");
    if (do_dump) {
        if (out_path) return pp_cli_usage("--dump writes to standard output; -o is not for it");
        return dump(tok_path, in_path);
    }
    if (!out_path) out_path = "-";
    if (pp_same_file(in_path, out_path)) return pp_cli_usage("output %s is the input", out_path);
    if (tok_path && pp_same_file(tok_path, out_path)) return pp_cli_usage("output %s is the tokenizer", out_path);
    if (strcmp(out_path, "-") == 0 && isatty(1))
        return pp_cli_usage("refusing to write binary data to a terminal (use -o FILE or a pipe)");
    if (train_vocab) return train(train_vocab, in_path, out_path, nthreads);
    if (!tok_path) return pp_cli_usage("--tokenizer is required");
    if (o.drop_long && !o.max_len) return pp_cli_usage("--drop-long needs --max-len");
    return tokenize(tok_path, in_path, out_path, &o, nthreads, level);
}
