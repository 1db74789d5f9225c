/* records.h: instruction records in, prompt/response pairs out.
 *
 * pp_jsonl_next() reads JSON records from a stream, either one JSON array or
 * JSON Lines (one object per line; blank lines skipped), chosen by the first
 * non-blank character. A template turns a record into the prompt (context,
 * no loss) and the response (what the model learns to write). */
#ifndef PP_RECORDS_H
#define PP_RECORDS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "status.h"
#include "stream.h"
#include "text.h"

/* ------------------------------------------------------------ record input */

typedef struct pp_jsonl pp_jsonl;

/* Reads records from r (borrowed). */
pp_status pp_jsonl_open(pp_jsonl **out, pp_reader *r);

/* The next record in *rec (owned by jl, valid until the next call), or NULL
 * at the end. The value may be of any JSON type: callers check. On PP_E_DATA
 * (invalid UTF-8 or JSON) the message carries the position and, if
 * pp_jsonl_can_skip() says so, the next call goes on with the next record. */
pp_status pp_jsonl_next(pp_jsonl *jl, cJSON **rec);

/* 1 when the last error only spoiled one record (a JSON Lines line). */
int pp_jsonl_can_skip(const pp_jsonl *jl);

/* Where the last record came from, for messages: "line N" in JSON Lines,
 * "record N" (1-based) in an array. Valid until the next call. */
const char *pp_jsonl_where(const pp_jsonl *jl);

void pp_jsonl_close(pp_jsonl *jl);

/* --------------------------------------------------------------- templates */

typedef struct pp_template pp_template;

/* Built-in templates: "default" (### Instruction: / ### Input: / ### Response:),
 * "alpaca" (the same with the Stanford Alpaca preamble), "raw" (the
 * instruction verbatim). PP_E_USAGE for an unknown name. */
pp_status pp_template_builtin(pp_template **out, const char *name);

/* A custom template: text with {instruction} (required, once) and optionally
 * {input} and {response}. The prompt is the text up to {response}; the text
 * after {response} is appended to the response. With unescape, the sequences
 * \n, \t and \\ are turned into their characters first (for command lines). */
pp_status pp_template_custom(pp_template **out, const char *text, int unescape);

void pp_template_free(pp_template *t);

/* Appends the prompt for a single question (no input) to out: for prompt-only
 * records such as pp-format --lines. */
pp_status pp_template_prompt(const pp_template *t, const char *question, size_t n, pp_buf *out);

/* Field names; NULL means "recognise the usual ones". */
typedef struct pp_fields {
    const char *instruction; /* question, instruction, prompt */
    const char *input;       /* input */
    const char *response;    /* answer, output, response, completion */
    const char *text;        /* text: plain language-model text, no prompt */
    const char *messages;    /* messages (role/content) or conversations (from/value) */
} pp_fields;

/* Renders one record into prompt and response (both cleared first). A record
 * that is not an object, a field of the wrong type, invalid UTF-8 or no usable
 * field is PP_E_DATA naming the field. */
pp_status pp_record_render(const cJSON *rec, const pp_fields *f, const pp_template *t,
                           pp_buf *prompt, pp_buf *response);

/* --------------------------------------------------------- conversations */

/* Writes one record as a conversation, for pp-format --chat, into out
 * (cleared first), as one line of JSON without the newline:
 *   {"messages": [{"role": "system", "content": ...}, {"role": "user", ...}, ...]}
 * A chat record (as pp_record_render() finds one) is passed through with its
 * roles spelled system, user and assistant (human, gpt and model mapped) and
 * checked: a system turn only first, user and assistant turns alternating from
 * a user turn, at least one user turn; it may end with either. An instruction
 * record becomes a user turn, the instruction followed by "\n\n" and the input
 * when there is one, and an assistant turn, the answer. system (NULL for none)
 * is put first, unless a chat record has its own system turn. A plain-text
 * record, or any record pp_record_render() refuses, is PP_E_DATA. */
pp_status pp_record_chat(const cJSON *rec, const pp_fields *f, const char *system, pp_buf *out);

/* The same for a single question (pp-format --chat --lines): the system turn
 * when system is not NULL, then question[0..n) as the user turn. */
pp_status pp_question_chat(const char *question, size_t n, const char *system, pp_buf *out);

#endif
