#include "chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOT "@@SYSTEM@@" /* in a known template: where a default system prompt may be */

/* ------------------------------------------------------------ known forms */

/* Each entry is the template as its source publishes it (see gen_chat.py),
 * with SLOT for the ChatML default system prompt. */
static const struct known {
    const char *name;
    pp_chat_family family;
    int eos_space, has_system;
    const char *jinja;
} known[] = {
    {"chatml", PP_CHAT_CHATML, 0, 0,
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
     "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"chatml+system", PP_CHAT_CHATML, 0, 1,
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
     SLOT "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
     "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"llama3", PP_CHAT_LLAMA3, 0, 0,
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
     "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
     "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
     "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"llama2", PP_CHAT_LLAMA2, 0, 0,
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
     "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
     "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
     "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% "
     "if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
     "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
    {"mistral-v0.1", PP_CHAT_MISTRAL, 1, 0,
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
     "'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant "
     "roles are supported!') }}{% endif %}{% endfor %}"},
    {"mistral", PP_CHAT_MISTRAL, 0, 0,
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
     "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
     "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
     "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
     "are supported!') }}{% endif %}{% endfor %}"},
};

#define N_KNOWN (sizeof known / sizeof known[0])

static const char names[] = "chatml, llama3, llama2, mistral";

const char *pp_chat_names(void) { return names; }

/* ---------------------------------------------------------- normalisation */

static int is_blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Characters next to which a blank inside a tag never separates tokens:
 * no Jinja token is formed by these with a neighbour. */
static int blank_free(int c) { return c == 0 || strchr("()[]{},:'\"+|~", c) != NULL; }

/* Appends the normal form of a Jinja source (see chat.h) to out. Returns
 * PP_OK, PP_E_DATA when the source uses something the normal form does not
 * cover (another string escape, an unterminated tag or string), PP_E_NOMEM. */
static pp_status normalise(pp_buf *out, const char *src, size_t n)
{
    /* Jinja's lexer: every line end is \n, and one final one is dropped. */
    char *s = malloc(n + 1);
    if (!s) return pp_fail(PP_E_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[m++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[m++] = src[i];
        }
    }
    if (m && s[m - 1] == '\n') m--;
    pp_status st = PP_OK;
    size_t i = 0;
    while (i < m && st == PP_OK) {
        if (!(s[i] == '{' && i + 1 < m && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#'))) {
            st = pp_buf_add(out, &s[i++], 1); /* template text: verbatim */
            continue;
        }
        char kind = s[i + 1];
        size_t open = 2 + (i + 2 < m && (s[i + 2] == '-' || s[i + 2] == '+'));
        if ((st = pp_buf_add(out, s + i, open)) != PP_OK) break;
        i += open;
        if (kind == '#') { /* a comment: verbatim to its end */
            const char *e = NULL;
            for (size_t k = i; k + 1 < m; k++)
                if (s[k] == '#' && s[k + 1] == '}') { e = s + k + 2; break; }
            if (!e) { st = PP_E_DATA; break; }
            st = pp_buf_add(out, s + i, (size_t)(e - (s + i)));
            i = (size_t)(e - s);
            continue;
        }
        const char close = kind == '{' ? '}' : '%';
        int depth = 0, pending = 0, prev = 0, done = 0;
        if ((st = pp_buf_add(out, " ", 1)) != PP_OK) break;
        while (i < m && !done && st == PP_OK) {
            char c = s[i];
            if (depth == 0 && c == '-' && i + 2 < m && s[i + 1] == close && s[i + 2] == '}') {
                st = pp_buf_add(out, close == '}' ? " -}}" : " -%}", 4);
                i += 3;
                done = 1;
            } else if (depth == 0 && c == close && i + 1 < m && s[i + 1] == '}') {
                st = pp_buf_add(out, close == '}' ? " }}" : " %}", 3);
                i += 2;
                done = 1;
            } else if (is_blank(c)) {
                pending = 1;
                i++;
            } else if (c == '\'' || c == '"') {
                if (pending && !blank_free(prev) && !blank_free(c)) st = pp_buf_add(out, " ", 1);
                pending = 0;
                pp_buf lit = {0};
                st = pp_buf_add(&lit, "'", 1);
                for (i++; st == PP_OK; i++) {
                    if (i >= m) { st = PP_E_DATA; break; }
                    char d = s[i];
                    if (d == c) break;
                    if (d == '\\') {
                        if (++i >= m) { st = PP_E_DATA; break; }
                        switch (s[i]) {
                        case 'n': d = '\n'; break;
                        case 't': d = '\t'; break;
                        case 'r': d = '\r'; break;
                        case '\\': case '\'': case '"': d = s[i]; break;
                        default: st = PP_E_DATA; break; /* \x, \u, octal...: not covered */
                        }
                        if (st != PP_OK) break;
                    }
                    switch (d) {
                    case '\n': st = pp_buf_add(&lit, "\\n", 2); break;
                    case '\t': st = pp_buf_add(&lit, "\\t", 2); break;
                    case '\r': st = pp_buf_add(&lit, "\\r", 2); break;
                    case '\\': st = pp_buf_add(&lit, "\\\\", 2); break;
                    case '\'': st = pp_buf_add(&lit, "\\'", 2); break;
                    default: st = pp_buf_add(&lit, &d, 1); break;
                    }
                }
                if (st == PP_OK) st = pp_buf_add(&lit, "'", 1);
                if (st == PP_OK) st = pp_buf_add(out, lit.p, lit.len);
                pp_buf_free(&lit);
                i++;
                prev = '\'';
            } else {
                if (pending && !blank_free(prev) && !blank_free((unsigned char)c)) st = pp_buf_add(out, " ", 1);
                pending = 0;
                if (c == '(' || c == '[' || c == '{') depth++;
                if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
                if (st == PP_OK) st = pp_buf_add(out, &c, 1);
                prev = (unsigned char)c;
                i++;
            }
        }
        if (st == PP_OK && !done) st = PP_E_DATA;
    }
    free(s);
    if (st == PP_E_DATA) return pp_fail(PP_E_DATA, "template outside what pp can compare");
    if (st != PP_OK) return pp_fail(st, "out of memory");
    return pp_buf_add(out, "", 0);
}

/* Decodes the canonical literal text x[0..n) (escapes \n \t \r \\ \') into
 * dst. 0 when x leaves its string literal (an unescaped quote) or is too long. */
static int decode_slot(char *dst, size_t cap, const char *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = x[i];
        if (c == '\'') return 0;
        if (c == '\\') {
            if (++i >= n) return 0;
            c = x[i] == 'n' ? '\n' : x[i] == 't' ? '\t' : x[i] == 'r' ? '\r' : x[i];
        }
        if (k + 1 >= cap) return 0;
        dst[k++] = c;
    }
    dst[k] = '\0';
    return 1;
}

static void fill(pp_chat_template *out, const struct known *k)
{
    memset(out, 0, sizeof *out);
    out->family = k->family;
    out->name = k->name;
    out->eos_space = k->eos_space;
    out->has_system = k->has_system;
}

/* The first line of a template, quoted safely into a message. */
static void first_line(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i = 0, end, len;
    while (i < n && is_blank((unsigned char)s[i])) i++;
    for (end = i; end < n && s[end] != '\n' && s[end] != '\r'; end++) {}
    int cut = end - i > cap - 4;
    len = cut ? cap - 4 : end - i;
    while (cut && len > 0 && ((unsigned char)s[i + len] & 0xC0) == 0x80) len--; /* no half characters */
    for (size_t k = 0; k < len; k++) dst[k] = (unsigned char)s[i + k] < 0x20 || s[i + k] == 0x7f ? '?' : s[i + k];
    if (!pp_utf8_valid(dst, len, NULL))
        for (size_t k = 0; k < len; k++)
            if (dst[k] & 0x80) dst[k] = '?';
    if (cut) memcpy(dst + len, "...", 3);
    dst[len + (cut ? 3 : 0)] = '\0';
}

static int has(const char *s, size_t n, const char *needle)
{
    size_t ln = strlen(needle);
    for (size_t i = 0; i + ln <= n; i++)
        if (memcmp(s + i, needle, ln) == 0) return 1;
    return 0;
}

pp_status pp_chat_detect(pp_chat_template *out, const char *jinja, size_t n)
{
    pp_buf cand = {0}, ref = {0};
    pp_chat_template t;
    pp_status st = normalise(&cand, jinja, n);
    if (st == PP_E_NOMEM) return st;
    int ok = st == PP_OK;
    for (size_t k = 0; ok && k < N_KNOWN; k++) {
        pp_buf_clear(&ref);
        if ((st = normalise(&ref, known[k].jinja, strlen(known[k].jinja))) != PP_OK) break;
        const char *slot = strstr(ref.p, SLOT);
        if (!slot) {
            if (cand.len == ref.len && memcmp(cand.p, ref.p, ref.len) == 0) {
                fill(&t, &known[k]);
                goto found;
            }
            continue;
        }
        size_t pre = (size_t)(slot - ref.p), post = ref.len - pre - strlen(SLOT);
        if (cand.len >= pre + post && memcmp(cand.p, ref.p, pre) == 0 &&
            memcmp(cand.p + cand.len - post, slot + strlen(SLOT), post) == 0) {
            fill(&t, &known[k]);
            if (decode_slot(t.system, sizeof t.system, cand.p + pre, cand.len - pre - post)) goto found;
        }
    }
    pp_buf_free(&cand);
    pp_buf_free(&ref);
    if (st == PP_E_NOMEM) return pp_fail(st, "out of memory");
    char line[96];
    first_line(line, sizeof line, jinja, n);
    const char *like = has(jinja, n, "Cutting Knowledge Date")
                           ? "; it looks like Llama 3.1's (a system block with \"Cutting Knowledge Date\", tools), "
                             "which pp does not render"
                       : has(jinja, n, "<|im_start|>")        ? "; it looks like ChatML, in a form pp does not know"
                       : has(jinja, n, "<|start_header_id|>") ? "; it looks like Llama 3's, in a form pp does not know"
                       : has(jinja, n, "[INST]") ? "; it looks like Llama 2's or Mistral's, in a form pp does not know"
                                                 : "";
    return pp_fail(PP_E_DATA, "chat template not recognised: \"%s\"%s (known: %s)", line, like, names);
found:
    *out = t;
    pp_buf_free(&cand);
    pp_buf_free(&ref);
    return PP_OK;
}

pp_status pp_chat_by_name(pp_chat_template *out, const char *name)
{
    static const char *const by_name[] = {"chatml", "llama3", "llama2", "mistral"};
    for (size_t i = 0; i < sizeof by_name / sizeof by_name[0]; i++)
        if (strcmp(name, by_name[i]) == 0)
            for (size_t k = 0; k < N_KNOWN; k++)
                if (strcmp(known[k].name, name) == 0) {
                    fill(out, &known[k]);
                    return PP_OK;
                }
    return pp_fail(PP_E_USAGE, "unknown chat template \"%s\" (known: %s)", name, names);
}

const char *pp_chat_eot(const pp_chat_template *t, const char *eos)
{
    switch (t->family) {
    case PP_CHAT_CHATML: return "<|im_end|>";
    case PP_CHAT_LLAMA3: return "<|eot_id|>";
    default: return eos ? eos : "";
    }
}

/* -------------------------------------------------------------- rendering */

/* Python's str.isspace(), which Jinja's trim and str.strip() use. */
static int py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The length of the UTF-8 character at s[0..n) and its code point; 0 when
 * the bytes are not one (then they are never whitespace). */
static size_t utf8_at(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t c = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    *cp = c;
    return len;
}

/* The length of a whitespace character ending at s[n-1], or 0. */
static size_t space_before(const char *s, size_t n)
{
    for (size_t len = 1; len <= 4 && len <= n; len++) {
        uint32_t c;
        if (utf8_at((const unsigned char *)s + n - len, len, &c) == len) return py_space(c) ? len : 0;
        if (((unsigned char)s[n - len] & 0xC0) != 0x80) return 0;
    }
    return 0;
}

static size_t space_after(const char *s, size_t n)
{
    uint32_t c;
    size_t len = utf8_at((const unsigned char *)s, n, &c);
    return len && py_space(c) ? len : 0;
}

typedef struct seg {
    const char *p;
    size_t n;
    int kind;
} seg;

/* Python's str.strip() of the concatenation of g[0..k), done in place on
 * the pieces. */
static void strip(seg *g, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        size_t l;
        while ((l = space_after(g[i].p, g[i].n)) != 0) {
            g[i].p += l;
            g[i].n -= l;
        }
        if (g[i].n) break;
    }
    for (size_t i = k; i-- > 0;) {
        size_t l;
        while ((l = space_before(g[i].p, g[i].n)) != 0) g[i].n -= l;
        if (g[i].n) break;
    }
}

static pp_status put(pp_chat_text *o, const char *s, size_t n, int kind)
{
    if (n == 0) return PP_OK;
    size_t off = o->text.len;
    PP_TRY(pp_buf_add(&o->text, s, n));
    pp_chat_span *last = o->n_spans > o->first ? &o->spans[o->n_spans - 1] : NULL;
    if (last && last->kind == kind && !(kind & PP_SPAN_EOT)) {
        last->len += n;
        return PP_OK;
    }
    if (o->n_spans == o->cap_spans) {
        size_t cap = o->cap_spans ? 2 * o->cap_spans : 16;
        pp_chat_span *p = realloc(o->spans, cap * sizeof *p);
        if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
        o->spans = p;
        o->cap_spans = cap;
    }
    o->spans[o->n_spans++] = (pp_chat_span){off, n, kind};
    return PP_OK;
}

static pp_status puts_(pp_chat_text *o, const char *s, int kind) { return put(o, s, strlen(s), kind); }

static pp_status put_segs(pp_chat_text *o, const seg *g, size_t k)
{
    for (size_t i = 0; i < k; i++) PP_TRY(put(o, g[i].p, g[i].n, g[i].kind));
    return PP_OK;
}

enum { M = PP_SPAN_MARKUP, C = PP_SPAN_CONTENT, T = PP_SPAN_TRAIN, E = PP_SPAN_EOT };

static pp_status alternate_error(size_t i, const char *role)
{
    return pp_fail(PP_E_DATA,
                   "conversation roles must alternate user/assistant/user/assistant/... (message %zu is \"%.40s\")",
                   i + 1, role);
}

static pp_status render_chatml(pp_chat_text *o, const pp_chat_template *t, const pp_chat_msg *m, size_t n, int gen)
{
    if (t->has_system && strcmp(m[0].role, "system") != 0) {
        PP_TRY(puts_(o, "<|im_start|>system\n", M));
        PP_TRY(puts_(o, t->system, M));
        PP_TRY(puts_(o, "<|im_end|>", M | E));
        PP_TRY(puts_(o, "\n", M));
    }
    for (size_t i = 0; i < n; i++) {
        int tr = strcmp(m[i].role, "assistant") == 0 ? T : 0;
        PP_TRY(puts_(o, "<|im_start|>", M));
        PP_TRY(puts_(o, m[i].role, C));
        PP_TRY(puts_(o, "\n", M));
        PP_TRY(puts_(o, m[i].content, C | tr));
        PP_TRY(puts_(o, "<|im_end|>", M | E | tr));
        PP_TRY(puts_(o, "\n", M));
    }
    return gen ? puts_(o, "<|im_start|>assistant\n", M) : PP_OK;
}

static pp_status render_llama3(pp_chat_text *o, const pp_chat_msg *m, size_t n, int gen, const char *bos)
{
    for (size_t i = 0; i < n; i++) {
        int tr = strcmp(m[i].role, "assistant") == 0 ? T : 0;
        seg g = {m[i].content, strlen(m[i].content), C | tr};
        strip(&g, 1);
        if (i == 0) PP_TRY(puts_(o, bos, M));
        PP_TRY(puts_(o, "<|start_header_id|>", M));
        PP_TRY(puts_(o, m[i].role, C));
        PP_TRY(puts_(o, "<|end_header_id|>\n\n", M));
        PP_TRY(put_segs(o, &g, 1));
        PP_TRY(puts_(o, "<|eot_id|>", M | E | tr));
    }
    return gen ? puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n", M) : PP_OK;
}

static pp_status render_llama2(pp_chat_text *o, const pp_chat_msg *m, size_t n, const char *bos, const char *eos)
{
    const char *sys = NULL;
    size_t first = 0;
    if (strcmp(m[0].role, "system") == 0) {
        sys = m[0].content;
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        size_t k = i - first;
        int user = strcmp(m[i].role, "user") == 0, asst = strcmp(m[i].role, "assistant") == 0;
        if (user != (k % 2 == 0)) return alternate_error(i, m[i].role);
        seg g[4];
        size_t ng = 0;
        if (k == 0 && sys) {
            g[ng++] = (seg){"<<SYS>>\n", 8, M};
            g[ng++] = (seg){sys, strlen(sys), C};
            g[ng++] = (seg){"\n<</SYS>>\n\n", 11, M};
        }
        g[ng++] = (seg){m[i].content, strlen(m[i].content), asst ? C | T : C};
        strip(g, ng);
        if (user) {
            PP_TRY(puts_(o, bos, M));
            PP_TRY(puts_(o, "[INST] ", M));
            PP_TRY(put_segs(o, g, ng));
            PP_TRY(puts_(o, " [/INST]", M));
        } else if (asst) {
            PP_TRY(puts_(o, " ", M));
            PP_TRY(put_segs(o, g, ng));
            PP_TRY(puts_(o, " ", M | T));
            PP_TRY(puts_(o, eos, M | T | E));
        } /* other roles: the template writes nothing */
    }
    return PP_OK;
}

static pp_status render_mistral(pp_chat_text *o, const pp_chat_template *t, const pp_chat_msg *m, size_t n,
                                const char *bos, const char *eos)
{
    PP_TRY(puts_(o, bos, M));
    for (size_t i = 0; i < n; i++) {
        int user = strcmp(m[i].role, "user") == 0;
        if (user != (i % 2 == 0)) return alternate_error(i, m[i].role);
        if (user) {
            PP_TRY(puts_(o, "[INST] ", M));
            PP_TRY(puts_(o, m[i].content, C));
            PP_TRY(puts_(o, " [/INST]", M));
        } else if (strcmp(m[i].role, "assistant") == 0) {
            PP_TRY(puts_(o, m[i].content, C | T));
            PP_TRY(puts_(o, eos, M | T | E));
            if (t->eos_space) PP_TRY(puts_(o, " ", M));
        } else {
            return pp_fail(PP_E_DATA, "only user and assistant roles are supported (message %zu is \"%.40s\")", i + 1,
                           m[i].role);
        }
    }
    return PP_OK;
}

pp_status pp_chat_render(pp_chat_text *out, const pp_chat_template *t, const pp_chat_msg *m, size_t n, int gen,
                         const char *bos, const char *eos)
{
    if (n == 0) return pp_fail(PP_E_DATA, "a conversation needs at least one message");
    for (size_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return pp_fail(PP_E_DATA, "message %zu has no %s", i + 1, m[i].role ? "content" : "role");
    if (!bos) bos = "";
    if (!eos) eos = "";
    size_t len0 = out->text.len, spans0 = out->n_spans;
    out->first = spans0; /* spans of earlier calls are not extended */
    pp_status s;
    switch (t->family) {
    case PP_CHAT_CHATML: s = render_chatml(out, t, m, n, gen); break;
    case PP_CHAT_LLAMA3: s = render_llama3(out, m, n, gen, bos); break;
    case PP_CHAT_LLAMA2: s = render_llama2(out, m, n, bos, eos); break;
    case PP_CHAT_MISTRAL: s = render_mistral(out, t, m, n, bos, eos); break;
    default: s = pp_fail(PP_E_USAGE, "unknown chat template family %d", (int)t->family); break;
    }
    if (s == PP_OK) s = pp_buf_add(&out->text, "", 0); /* NUL-terminated even when nothing was written */
    if (s != PP_OK) {
        out->text.len = len0;
        if (out->text.p) out->text.p[len0] = '\0';
        out->n_spans = spans0;
    }
    return s;
}

void pp_chat_text_clear(pp_chat_text *o)
{
    pp_buf_clear(&o->text);
    o->n_spans = o->first = 0;
}

void pp_chat_text_free(pp_chat_text *o)
{
    pp_buf_free(&o->text);
    free(o->spans);
    o->spans = NULL;
    o->n_spans = o->cap_spans = o->first = 0;
}
