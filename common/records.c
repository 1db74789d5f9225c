#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MAX ((size_t)4 << 30) /* a JSON array file is parsed whole */

/* ------------------------------------------------------------ record input */

struct pp_jsonl {
    pp_reader *r;
    int started, is_array, can_skip;
    uint64_t line;          /* JSON Lines: current line number */
    cJSON *cur;             /* JSON Lines: the record handed out */
    cJSON *array, *item;    /* array mode: the whole document, next element */
    uint64_t index;         /* array mode: 1-based record number */
    char where[48];
};

pp_status pp_jsonl_open(pp_jsonl **out, pp_reader *r)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return pp_fail(PP_E_NOMEM, "out of memory");
    (*out)->r = r;
    return PP_OK;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

static uint64_t line_of(const char *s, size_t off)
{
    uint64_t line = 1;
    for (size_t i = 0; i < off; i++) line += s[i] == '\n';
    return line;
}

/* Parses a JSON document that must fill s[0..n) but for whitespace. */
static cJSON *parse_exact(const char *s, size_t n, size_t *err_off)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v) {
        const char *e = cJSON_GetErrorPtr();
        *err_off = (e && e >= s && e <= s + n) ? (size_t)(e - s) : 0;
        return NULL;
    }
    size_t i = skip_ws(s, n, (size_t)(end - s));
    if (i != n) {
        cJSON_Delete(v);
        *err_off = i;
        return NULL;
    }
    return v;
}

/* The first non-blank line decides: '[' starts one array, read whole. */
static pp_status load_array(pp_jsonl *jl, const char *first, size_t n1)
{
    /* first points into the reader's buffer: copy it before reading on. */
    char *head = malloc(n1 + 1), *rest;
    size_t n2;
    if (!head) return pp_fail(PP_E_NOMEM, "out of memory");
    memcpy(head, first, n1);
    pp_status rs = pp_read_all(jl->r, &rest, &n2, ARRAY_MAX);
    if (rs != PP_OK) {
        free(head);
        return rs;
    }
    char *doc = malloc(n1 + 1 + n2 + 1);
    if (!doc) {
        free(head);
        free(rest);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    memcpy(doc, head, n1);
    doc[n1] = '\n';
    memcpy(doc + n1 + 1, rest, n2);
    free(head);
    free(rest);
    size_t n = n1 + 1 + n2, bad;
    doc[n] = '\0';
    /* Lines before the first non-blank one were blank: count them in. */
    uint64_t line0 = jl->line - 1;
    pp_status s = PP_OK;
    if (!pp_utf8_valid(doc, n, &bad)) {
        s = pp_fail(PP_E_DATA, "invalid UTF-8 (line %llu)", (unsigned long long)(line0 + line_of(doc, bad)));
    } else if (!pp_json_strings_clean(doc, n, &bad)) {
        s = pp_fail(PP_E_DATA, "%s in a string (line %llu)", doc[bad] == '\\' ? "a NUL (\\u0000)" : "a control character",
                    (unsigned long long)(line0 + line_of(doc, bad)));
    } else if (!(jl->array = parse_exact(doc, n, &bad))) {
        s = pp_fail(PP_E_DATA, "invalid JSON (line %llu)", (unsigned long long)(line0 + line_of(doc, bad)));
    } else {
        jl->item = jl->array->child;
    }
    free(doc);
    return s;
}

pp_status pp_jsonl_next(pp_jsonl *jl, cJSON **rec)
{
    *rec = NULL;
    jl->can_skip = 0;
    cJSON_Delete(jl->cur);
    jl->cur = NULL;
    if (jl->is_array) {
        if (!jl->item) return PP_OK;
        *rec = jl->item;
        jl->item = jl->item->next;
        snprintf(jl->where, sizeof jl->where, "record %llu", (unsigned long long)++jl->index);
        return PP_OK;
    }
    for (;;) {
        const char *line;
        size_t n;
        PP_TRY(pp_read_line(jl->r, &line, &n));
        if (!line) return PP_OK;
        jl->line++;
        snprintf(jl->where, sizeof jl->where, "line %llu", (unsigned long long)jl->line);
        if (!jl->started && jl->line == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3; /* a byte order mark */
            n -= 3;
        }
        size_t i = skip_ws(line, n, 0);
        if (i == n) continue;
        if (!jl->started) {
            jl->started = 1;
            if (line[i] == '[') {
                jl->is_array = 1;
                PP_TRY(load_array(jl, line, n));
                return pp_jsonl_next(jl, rec);
            }
        }
        size_t bad;
        jl->can_skip = 1;
        if (!pp_utf8_valid(line, n, &bad))
            return pp_fail(PP_E_DATA, "invalid UTF-8 at column %zu (line %llu)", bad + 1,
                           (unsigned long long)jl->line);
        if (!pp_json_strings_clean(line, n, &bad))
            return pp_fail(PP_E_DATA, "%s in a string at column %zu (line %llu)",
                           line[bad] == '\\' ? "a NUL (\\u0000)" : "a control character", bad + 1, (unsigned long long)jl->line);
        jl->cur = parse_exact(line, n, &bad);
        if (!jl->cur)
            return pp_fail(PP_E_DATA, "invalid JSON at column %zu (line %llu)", bad + 1,
                           (unsigned long long)jl->line);
        jl->can_skip = 0;
        *rec = jl->cur;
        return PP_OK;
    }
}

int pp_jsonl_can_skip(const pp_jsonl *jl) { return jl->can_skip; }
const char *pp_jsonl_where(const pp_jsonl *jl) { return jl->where; }

void pp_jsonl_close(pp_jsonl *jl)
{
    if (!jl) return;
    cJSON_Delete(jl->cur);
    cJSON_Delete(jl->array);
    free(jl);
}

/* --------------------------------------------------------------- templates */

struct pp_template {
    char *preamble;         /* before the first turn */
    char *preamble_input;   /* instead, when the record has an input */
    char *head;             /* a turn's prompt: {instruction}, {input} */
    char *input_block;      /* what {input} becomes when there is an input */
    char *tail;             /* appended to each response */
    char *sep;              /* between a response and the next turn */
};

static const struct {
    const char *name, *preamble, *preamble_input, *head, *input_block, *sep;
} builtins[] = {
    {"default", "", "", "### Instruction:\n{instruction}\n\n{input}### Response:\n",
     "### Input:\n{input}\n\n", "\n\n"},
    {"alpaca",
     "Below is an instruction that describes a task. Write a response that appropriately "
     "completes the request.\n\n",
     "Below is an instruction that describes a task, paired with an input that provides further "
     "context. Write a response that appropriately completes the request.\n\n",
     "### Instruction:\n{instruction}\n\n{input}### Response:\n", "### Input:\n{input}\n\n", "\n\n"},
    {"raw", "", "", "{instruction}{input}", "\n\n{input}", "\n"},
};

void pp_template_free(pp_template *t)
{
    if (!t) return;
    free(t->preamble);
    free(t->preamble_input);
    free(t->head);
    free(t->input_block);
    free(t->tail);
    free(t->sep);
    free(t);
}

static pp_status template_new(pp_template **out, const char *pre, const char *pre_in, const char *head,
                              size_t head_n, const char *input_block, const char *tail, const char *sep)
{
    pp_template *t = calloc(1, sizeof *t);
    if (!t) return pp_fail(PP_E_NOMEM, "out of memory");
    t->preamble = strdup(pre);
    t->preamble_input = strdup(pre_in);
    t->head = strndup(head, head_n);
    t->input_block = strdup(input_block);
    t->tail = strdup(tail);
    t->sep = strdup(sep);
    if (!t->preamble || !t->preamble_input || !t->head || !t->input_block || !t->tail || !t->sep) {
        pp_template_free(t);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    *out = t;
    return PP_OK;
}

pp_status pp_template_builtin(pp_template **out, const char *name)
{
    *out = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(name, builtins[i].name) == 0)
            return template_new(out, builtins[i].preamble, builtins[i].preamble_input, builtins[i].head,
                                strlen(builtins[i].head), builtins[i].input_block, "", builtins[i].sep);
    return pp_fail(PP_E_USAGE, "unknown template \"%s\" (built-ins: default, alpaca, raw)", name);
}

static size_t count_of(const char *s, const char *needle)
{
    size_t k = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) k++;
    return k;
}

pp_status pp_template_custom(pp_template **out, const char *text, int unescape)
{
    *out = NULL;
    char *s = unescape ? pp_unescape(text) : strdup(text);
    if (!s) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status st = PP_OK;
    if (!pp_utf8_valid(s, strlen(s), NULL))
        st = pp_fail(PP_E_USAGE, "template is not valid UTF-8");
    else if (count_of(s, "{instruction}") != 1)
        st = pp_fail(PP_E_USAGE, "template needs {instruction} exactly once");
    else if (count_of(s, "{response}") > 1 || count_of(s, "{input}") > 1)
        st = pp_fail(PP_E_USAGE, "template has {response} or {input} more than once");
    if (st == PP_OK) {
        char *r = strstr(s, "{response}");
        if (r && strstr(r, "{instruction}"))
            st = pp_fail(PP_E_USAGE, "template has {instruction} after {response}");
        else if (r && strstr(r, "{input}"))
            st = pp_fail(PP_E_USAGE, "template has {input} after {response}");
        else
            st = template_new(out, "", "", s, r ? (size_t)(r - s) : strlen(s), "{input}",
                              r ? r + strlen("{response}") : "", "");
    }
    free(s);
    return st;
}

/* Appends pattern with {instruction} and {input} substituted. */
static pp_status expand(pp_buf *out, const char *pattern, const char *instr, size_t ni,
                        const pp_template *t, const char *input, size_t nin)
{
    const char *p = pattern;
    for (;;) {
        const char *a = strstr(p, "{instruction}"), *b = strstr(p, "{input}");
        const char *q = a && (!b || a < b) ? a : b;
        if (!q) return pp_buf_adds(out, p);
        PP_TRY(pp_buf_add(out, p, (size_t)(q - p)));
        if (q == a) {
            PP_TRY(pp_buf_add(out, instr, ni));
            p = q + strlen("{instruction}");
        } else {
            if (nin > 0 && t) PP_TRY(expand(out, t->input_block, NULL, 0, NULL, input, nin));
            else if (nin > 0) PP_TRY(pp_buf_add(out, input, nin));
            p = q + strlen("{input}");
        }
    }
}

pp_status pp_template_prompt(const pp_template *t, const char *question, size_t n, pp_buf *out)
{
    PP_TRY(pp_buf_adds(out, t->preamble));
    return expand(out, t->head, question, n, t, "", 0);
}

/* ----------------------------------------------------------------- records */

static const char *const auto_instruction[] = {"instruction", "question", "prompt", NULL};
static const char *const auto_response[] = {"output", "answer", "response", "completion", NULL};

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

/* The string field name of obj: *s NULL if absent (or null when optional). */
static pp_status get_string(const cJSON *obj, const char *name, int optional, const char **s, size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *s = NULL;
    *n = 0;
    if (!v || (optional && cJSON_IsNull(v))) return PP_OK;
    if (!cJSON_IsString(v))
        return pp_fail(PP_E_DATA, "field \"%s\" is %s, expected a string", name, type_name(v));
    *s = v->valuestring;
    *n = strlen(v->valuestring);
    return PP_OK;
}

static const char *first_present(const cJSON *obj, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(obj, names[i])) return names[i];
    return NULL;
}

static pp_status render_turn(pp_buf *out, const pp_template *t, const char *instr, size_t ni,
                             const char *input, size_t nin)
{
    return expand(out, t->head, instr, ni, t, input, nin);
}

/* The role of a chat entry in the usual spelling: "system", "user" (also
 * "human"), "assistant" (also "gpt", "model"); NULL for any other. */
static const char *role_of(const char *r)
{
    if (strcmp(r, "system") == 0) return "system";
    if (strcmp(r, "user") == 0 || strcmp(r, "human") == 0) return "user";
    if (strcmp(r, "assistant") == 0 || strcmp(r, "gpt") == 0 || strcmp(r, "model") == 0) return "assistant";
    return NULL;
}

/* Entry k (0-based) of a chat field: OpenAI-style role/content or
 * ShareGPT-style from/value, per entry. */
static pp_status chat_entry(const cJSON *m, const char *field, int k, const char **role, const char **content)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!r && !c) {
        r = cJSON_GetObjectItemCaseSensitive(m, "from");
        c = cJSON_GetObjectItemCaseSensitive(m, "value");
    }
    if (!cJSON_IsObject(m) || !cJSON_IsString(r) || !cJSON_IsString(c))
        return pp_fail(PP_E_DATA, "%s[%d] needs string fields \"role\" and \"content\" (or \"from\" and \"value\")",
                       field, k);
    *role = r->valuestring;
    *content = c->valuestring;
    return PP_OK;
}

/* messages [{role, content}] or conversations [{from, value}]: the last turn
 * must be the assistant's; earlier turns are flattened with the template. */
static pp_status render_chat(const cJSON *msgs, const char *field, const pp_template *t,
                             pp_buf *prompt, pp_buf *response)
{
    if (!cJSON_IsArray(msgs))
        return pp_fail(PP_E_DATA, "field \"%s\" is %s, expected an array", field, type_name(msgs));
    const char *user = NULL, *last_asst = NULL;
    size_t nuser = 0, nlast = 0, turns = 0;
    int k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        k++;
        const char *r, *c;
        PP_TRY(chat_entry(m, field, k - 1, &r, &c));
        size_t nc = strlen(c);
        const char *rr = role_of(r);
        if (!rr) return pp_fail(PP_E_DATA, "%s[%d]: unknown role \"%.40s\"", field, k - 1, r);
        if (strcmp(rr, "system") == 0) {
            if (k != 1) return pp_fail(PP_E_DATA, "%s[%d]: a system message must come first", field, k - 1);
            PP_TRY(pp_buf_add(prompt, c, nc));
            PP_TRY(pp_buf_adds(prompt, "\n\n"));
        } else if (strcmp(rr, "user") == 0) {
            if (user) return pp_fail(PP_E_DATA, "%s[%d]: two user turns in a row", field, k - 1);
            if (last_asst) { /* an earlier exchange becomes context */
                PP_TRY(pp_buf_adds(prompt, t->tail));
                PP_TRY(pp_buf_adds(prompt, t->sep));
            }
            last_asst = NULL;
            user = c;
            nuser = nc;
        } else {
            if (!user) return pp_fail(PP_E_DATA, "%s[%d]: an assistant turn without a user turn", field, k - 1);
            if (turns++ == 0) PP_TRY(pp_buf_adds(prompt, t->preamble));
            PP_TRY(render_turn(prompt, t, user, nuser, "", 0));
            /* Tentatively context; the last one is moved to the response. */
            last_asst = c;
            nlast = nc;
            PP_TRY(pp_buf_add(prompt, c, nc));
            user = NULL;
        }
    }
    if (!last_asst || user)
        return pp_fail(PP_E_DATA, "field \"%s\" does not end with an assistant turn", field);
    prompt->len -= nlast; /* the final answer is the response */
    prompt->p[prompt->len] = '\0';
    PP_TRY(pp_buf_add(response, last_asst, nlast));
    return pp_buf_adds(response, t->tail);
}

/* The chat field of a record: f->messages, or "messages" or "conversations"
 * when no field option says otherwise; NULL when the record is not a chat. */
static const char *chat_field(const cJSON *rec, const pp_fields *f)
{
    if (f->messages) return f->messages;
    if (f->instruction || f->text) return NULL;
    if (cJSON_GetObjectItemCaseSensitive(rec, "messages")) return "messages";
    if (cJSON_GetObjectItemCaseSensitive(rec, "conversations")) return "conversations";
    return NULL;
}

/* An instruction record's instruction, optional input and answer; *in_f NULL
 * when the record has no instruction field (then it can only be text). */
typedef struct qa {
    const char *in_f, *instr, *input, *resp;
    size_t ni, nin, nr;
} qa;

static pp_status get_qa(const cJSON *rec, const pp_fields *f, qa *q)
{
    memset(q, 0, sizeof *q);
    q->in_f = f->instruction ? f->instruction : f->text ? NULL : first_present(rec, auto_instruction);
    if (!q->in_f) return PP_OK;
    PP_TRY(get_string(rec, q->in_f, 0, &q->instr, &q->ni));
    if (!q->instr) return pp_fail(PP_E_DATA, "record has no field \"%s\"", q->in_f);
    if (q->ni == 0) return pp_fail(PP_E_DATA, "field \"%s\" is empty", q->in_f);
    PP_TRY(get_string(rec, f->input ? f->input : "input", 1, &q->input, &q->nin));
    const char *rf = f->response ? f->response : first_present(rec, auto_response);
    if (!rf)
        return pp_fail(PP_E_DATA, "record has \"%s\" but no answer field (output, answer, response, completion)",
                       q->in_f);
    PP_TRY(get_string(rec, rf, 0, &q->resp, &q->nr));
    if (!q->resp) return pp_fail(PP_E_DATA, "record has no field \"%s\"", rf);
    if (q->nr == 0) return pp_fail(PP_E_DATA, "field \"%s\" is empty", rf);
    return PP_OK;
}

pp_status pp_record_render(const cJSON *rec, const pp_fields *f, const pp_template *t,
                           pp_buf *prompt, pp_buf *response)
{
    pp_buf_clear(prompt);
    pp_buf_clear(response);
    if (!cJSON_IsObject(rec)) return pp_fail(PP_E_DATA, "record is %s, expected an object", type_name(rec));

    const char *mf = chat_field(rec, f);
    if (mf) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, mf);
        if (!msgs) return pp_fail(PP_E_DATA, "record has no field \"%s\"", mf);
        PP_TRY(pp_buf_add(response, "", 0));
        return render_chat(msgs, mf, t, prompt, response);
    }

    qa q;
    PP_TRY(get_qa(rec, f, &q));
    if (!q.in_f) { /* plain text: nothing to condition on */
        const char *tf = f->text ? f->text : "text";
        const char *s;
        size_t n;
        PP_TRY(get_string(rec, tf, 0, &s, &n));
        if (!s) return pp_fail(PP_E_DATA, "record has no usable field (instruction, question, prompt, "
                                          "messages, conversations or text)");
        if (n == 0) return pp_fail(PP_E_DATA, "field \"%s\" is empty", tf);
        PP_TRY(pp_buf_add(prompt, "", 0));
        return pp_buf_add(response, s, n);
    }
    PP_TRY(pp_buf_adds(prompt, q.nin ? t->preamble_input : t->preamble));
    PP_TRY(render_turn(prompt, t, q.instr, q.ni, q.input ? q.input : "", q.nin));
    PP_TRY(pp_buf_add(response, q.resp, q.nr));
    return pp_buf_adds(response, t->tail);
}

/* ------------------------------------------------------------ conversations */

/* Appends one {"role": ..., "content": ...} entry; *k counts them. */
static pp_status chat_add(pp_buf *out, int *k, const char *role, const char *c, size_t n)
{
    PP_TRY(pp_buf_adds(out, (*k)++ ? ", {\"role\": \"" : "{\"role\": \""));
    PP_TRY(pp_buf_adds(out, role));
    PP_TRY(pp_buf_adds(out, "\", \"content\": "));
    PP_TRY(pp_buf_json_string(out, c, n));
    return pp_buf_adds(out, "}");
}

pp_status pp_record_chat(const cJSON *rec, const pp_fields *f, const char *system, pp_buf *out)
{
    pp_buf_clear(out);
    if (!cJSON_IsObject(rec)) return pp_fail(PP_E_DATA, "record is %s, expected an object", type_name(rec));
    int k = 0;
    PP_TRY(pp_buf_adds(out, "{\"messages\": ["));
    const char *mf = chat_field(rec, f);
    if (mf) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, mf), *m;
        if (!msgs) return pp_fail(PP_E_DATA, "record has no field \"%s\"", mf);
        if (!cJSON_IsArray(msgs))
            return pp_fail(PP_E_DATA, "field \"%s\" is %s, expected an array", mf, type_name(msgs));
        int i = 0, users = 0;
        const char *prev = NULL; /* the role of the last user or assistant turn */
        cJSON_ArrayForEach(m, msgs) {
            const char *r, *c;
            PP_TRY(chat_entry(m, mf, i, &r, &c));
            const char *rr = role_of(r);
            if (!rr) return pp_fail(PP_E_DATA, "%s[%d]: unknown role \"%.40s\"", mf, i, r);
            if (i == 0 && system && strcmp(rr, "system") != 0)
                PP_TRY(chat_add(out, &k, "system", system, strlen(system)));
            if (strcmp(rr, "system") == 0) {
                if (i != 0) return pp_fail(PP_E_DATA, "%s[%d]: a system message must come first", mf, i);
            } else if (strcmp(rr, "user") == 0) {
                if (prev && strcmp(prev, "user") == 0)
                    return pp_fail(PP_E_DATA, "%s[%d]: two user turns in a row", mf, i);
                users++;
                prev = rr;
            } else {
                if (!prev || strcmp(prev, "assistant") == 0)
                    return pp_fail(PP_E_DATA, "%s[%d]: an assistant turn without a user turn", mf, i);
                prev = rr;
            }
            PP_TRY(chat_add(out, &k, rr, c, strlen(c)));
            i++;
        }
        if (!users) return pp_fail(PP_E_DATA, "field \"%s\" has no user turn", mf);
        return pp_buf_adds(out, "]}");
    }
    qa q;
    PP_TRY(get_qa(rec, f, &q));
    if (!q.in_f)
        return pp_fail(PP_E_DATA, cJSON_GetObjectItemCaseSensitive(rec, f->text ? f->text : "text")
                                      ? "record is plain text; --chat wants a conversation or an instruction "
                                        "(instruction, question, prompt, messages, conversations)"
                                      : "record has no usable field (instruction, question, prompt, messages or "
                                        "conversations)");
    if (system) PP_TRY(chat_add(out, &k, "system", system, strlen(system)));
    if (q.nin) { /* the instruction, a blank line, the input: as the raw template joins them */
        pp_buf u = {0};
        pp_status s = pp_buf_add(&u, q.instr, q.ni);
        if (s == PP_OK) s = pp_buf_add(&u, "\n\n", 2);
        if (s == PP_OK) s = pp_buf_add(&u, q.input, q.nin);
        if (s == PP_OK) s = chat_add(out, &k, "user", u.p, u.len);
        pp_buf_free(&u);
        PP_TRY(s);
    } else {
        PP_TRY(chat_add(out, &k, "user", q.instr, q.ni));
    }
    PP_TRY(chat_add(out, &k, "assistant", q.resp, q.nr));
    return pp_buf_adds(out, "]}");
}

pp_status pp_question_chat(const char *question, size_t n, const char *system, pp_buf *out)
{
    int k = 0;
    pp_buf_clear(out);
    PP_TRY(pp_buf_adds(out, "{\"messages\": ["));
    if (system) PP_TRY(chat_add(out, &k, "system", system, strlen(system)));
    PP_TRY(chat_add(out, &k, "user", question, n));
    return pp_buf_adds(out, "]}");
}
