/* chat.h: chat templates without Jinja: recognise a model's chat_template,
 * then render conversations exactly as transformers'
 * tokenizer.apply_chat_template(messages, tokenize=False,
 * add_generation_prompt=gen) does, marking which bytes are template markup,
 * which are message text, and which carry the loss.
 *
 * Recognition. pp has no Jinja interpreter, so a template is recognised only
 * when it is, token for token, one of a small table of known templates whose
 * output chat.c reproduces (checked byte for byte against transformers by
 * tests/unit/test_chat.c on tests/fixtures/chat/, made by gen_chat.py). Both
 * the candidate and each table entry are first normalised the way Jinja's
 * lexer reads them: line ends made \n and one final newline dropped (Jinja's
 * keep_trailing_newline=False); inside {{ }} and {% %} tags, runs of blanks
 * dropped next to brackets, quotes, commas, colons, '+', '|' and '~' and made
 * one space elsewhere; string literals decoded (\n \t \r \\ \' \" escapes; any
 * other escape and the template is refused) and written back in one quoting
 * style. Text outside tags, the -/+ whitespace-control marks and comments
 * are kept as they are. Two templates with the same normal form render the
 * same text. One slot is allowed: the default system prompt of ChatML
 * templates (SmolLM2's "You are a helpful AI assistant named SmolLM, trained
 * by Hugging Face", Qwen2's "You are a helpful assistant."), any text inside
 * the one string literal it sits in. Everything else is refused with
 * PP_E_DATA: a template that differs from a known one in a single operator is
 * another template. Limits: a known template reformatted beyond that (split
 * into several literals, `%` spacing changed, Jinja comments added) is not
 * recognised; choose the family by name then (pp_chat_by_name).
 *
 * Known templates:
 *   chatml   {% for %}'<|im_start|>' + role + '\n' + content + '<|im_end|>\n'
 *            (OpenHermes, transformers' old default), and the same with a
 *            default system turn put first when messages[0] is not "system"
 *            (SmolLM2-Instruct, Qwen1.5/Qwen2-Instruct);
 *   llama3   Meta-Llama-3-*-Instruct (3.0): bos_token, then per message
 *            '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
 *            content|trim + '<|eot_id|>'. Llama 3.1/3.2's longer template
 *            (tools, "Cutting Knowledge Date") is refused;
 *   llama2   Llama-2-*-chat-hf: [INST] with the <<SYS>> block in the first
 *            user turn, bos/eos tokens per exchange, content .strip()ped;
 *   mistral  Mistral-7B-Instruct-v0.1 as first published (eos_token + ' ')
 *            and Mixtral-8x7B-Instruct-v0.1 / Mistral-7B-Instruct-v0.2 as
 *            first published (eos_token alone): [INST] turns, no system role.
 * Where the real template raises (roles that do not alternate in llama2 and
 * mistral; any role but user and assistant in mistral), rendering fails with
 * PP_E_DATA and the template's reason. */
#ifndef PP_CHAT_H
#define PP_CHAT_H

#include <stddef.h>

#include "status.h"
#include "text.h"

typedef enum pp_chat_family { PP_CHAT_CHATML, PP_CHAT_LLAMA3, PP_CHAT_LLAMA2, PP_CHAT_MISTRAL } pp_chat_family;

#define PP_CHAT_SYSTEM_MAX 1024 /* bytes of a template's default system prompt, NUL included */

typedef struct pp_chat_template {
    pp_chat_family family;
    const char *name;         /* the known form matched, for messages: "chatml+system", "mistral-v0.1"... (static) */
    int eos_space;            /* mistral: ' ' after each assistant turn's eos_token (v0.1) */
    int has_system;           /* chatml: a system turn goes first when messages[0] is not "system" */
    char system[PP_CHAT_SYSTEM_MAX]; /* that turn's text (UTF-8, NUL-terminated) */
} pp_chat_template;

/* Recognises a Jinja chat_template (tokenizer_config.json's "chat_template",
 * GGUF's tokenizer.chat_template; n bytes, need not be NUL-terminated) as one
 * of the known templates above and fills *out. PP_E_DATA when it is not one:
 * the message quotes the template's first line, lists the known names and,
 * where a marker shows it, says what the template looks like ("a Llama
 * 3.1-style template"). */
pp_status pp_chat_detect(pp_chat_template *out, const char *jinja, size_t n);

/* The template of a family by name: "chatml" (no default system turn),
 * "llama3", "llama2", "mistral" (eos_token without the v0.1 space).
 * PP_E_USAGE for any other name. */
pp_status pp_chat_by_name(pp_chat_template *out, const char *name);

/* "chatml, llama3, llama2, mistral" */
const char *pp_chat_names(void);

/* The string that ends a turn, for a generator to stop at: "<|im_end|>",
 * "<|eot_id|>", or eos for llama2 and mistral (returned as given). */
const char *pp_chat_eot(const pp_chat_template *t, const char *eos);

typedef struct pp_chat_msg {
    const char *role;    /* "system", "user", "assistant"; chatml and llama3 write any role verbatim */
    const char *content; /* UTF-8, NUL-terminated */
} pp_chat_msg;

/* Span kinds: exactly one of MARKUP and CONTENT, plus flags. */
enum {
    PP_SPAN_MARKUP = 1,  /* template text: special tokens such as <|im_start|> are recognised here */
    PP_SPAN_CONTENT = 2, /* a message's text or role: never turned into special tokens */
    PP_SPAN_TRAIN = 4,   /* carries the loss: an assistant turn's content and what closes it */
    PP_SPAN_EOT = 8,     /* exactly the end-of-turn token (pp_chat_eot()), a MARKUP span of its own */
};

typedef struct pp_chat_span {
    size_t off, len; /* bytes of pp_chat_text.text */
    int kind;        /* PP_SPAN_* */
} pp_chat_span;

/* A rendered conversation. Zero-initialise ({0}) to start. */
typedef struct pp_chat_text {
    pp_buf text;          /* NUL-terminated once anything was rendered */
    pp_chat_span *spans;  /* (n_spans) in order, adjacent, never empty */
    size_t n_spans, cap_spans;
    size_t first;         /* internal: the first span of the current pp_chat_render() call */
} pp_chat_text;

/* Renders messages m[0..n) through t and appends the text to out->text and
 * spans covering exactly the appended bytes, in order, to out->spans
 * (neighbours of the same kind merged, EOT spans never). gen is
 * add_generation_prompt. bos and eos are the tokenizer's bos_token and
 * eos_token strings (NULL is ""). On failure out is left as it was: PP_E_DATA
 * when n is 0, a role or content is NULL, or the template refuses the
 * conversation (the message says why, with the message's index); PP_E_NOMEM.
 * The spans say where special tokens may be recognised and which bytes carry
 * the loss; they are not tokenization boundaries (encode the text as the
 * reference tokenizer does, e.g. Llama 2's ' ' + content as one piece). */
pp_status pp_chat_render(pp_chat_text *out, const pp_chat_template *t, const pp_chat_msg *m, size_t n, int gen,
                         const char *bos, const char *eos);

void pp_chat_text_clear(pp_chat_text *o);
void pp_chat_text_free(pp_chat_text *o);

#endif
