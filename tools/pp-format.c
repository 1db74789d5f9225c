/* pp-format: instruction records (JSON array or JSON Lines) in, JSONL
 * {"prompt": ..., "response": ...} out, through a prompt template; or, with
 * --chat, JSONL {"messages": [...]} conversations for a model's chat template. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "records.h"
#include "stream.h"
#include "text.h"

static void usage(void)
{
    printf(
"Usage: pp-format [OPTION]... [FILE|-] [-o OUT]\n"
"Turn instruction records into JSONL {\"prompt\": ..., \"response\": ...} for pp-tokenize,\n"
"or, with --chat, into conversations {\"messages\": [{\"role\": ..., \"content\": ...}]}.\n"
"\n"
"FILE is a JSON array or JSON Lines (default: standard input). Recognised without\n"
"flags: question/answer, instruction/input/output, prompt/completion, text,\n"
"messages (role/content) and conversations (from/value).\n"
"\n"
"  -t, --template T         default | alpaca | raw, or a template text with\n"
"                           {instruction}, {input} and {response} (\\n, \\t, \\\\ escapes)\n"
"      --template-file F    read the template text from F (verbatim)\n"
"      --instruction-field NAME   field holding the instruction (alias --question-field)\n"
"      --input-field NAME         field holding the optional input\n"
"      --response-field NAME      field holding the answer (alias --answer-field)\n"
"      --text-field NAME          field holding plain text (no prompt)\n"
"      --messages-field NAME      field holding a chat (role/content or from/value)\n"
"      --chat               write conversations (system, user, assistant turns) for\n"
"                           a chat template instead of applying a prompt template\n"
"      --system TEXT        with --chat: a system turn put first (verbatim)\n"
"      --lines              each input line is a question; write prompt-only records\n"
"      --paragraphs         the input is plain text; each paragraph (lines up to a\n"
"                           blank line) becomes a text record (for pre-training)\n"
"      --select LIST        keep only these records, numbered from 1 in input order:\n"
"                           numbers and ranges, e.g. 1-100,250 (default all)\n"
"      --skip-bad           skip bad records and count them instead of failing\n"
"  -o, --output OUT         write to OUT instead of standard output\n"
"  -q, --quiet              no messages but errors\n"
"  -v, --verbose            more messages\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"The default template is \"### Instruction:\\n{instruction}\\n\\n### Response:\\n{response}\".\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"73 cannot create output, 74 I/O error.\n"
"See pp-format(1).\n");
}

enum {
    OPT_TFILE = 256, OPT_IF, OPT_INF, OPT_RF, OPT_TF, OPT_MF, OPT_LINES, OPT_PARAS, OPT_SELECT, OPT_SKIP, OPT_CHAT,
    OPT_SYSTEM
};

static const struct option longopts[] = {
    {"template", required_argument, 0, 't'},
    {"template-file", required_argument, 0, OPT_TFILE},
    {"instruction-field", required_argument, 0, OPT_IF},
    {"question-field", required_argument, 0, OPT_IF},
    {"input-field", required_argument, 0, OPT_INF},
    {"response-field", required_argument, 0, OPT_RF},
    {"answer-field", required_argument, 0, OPT_RF},
    {"text-field", required_argument, 0, OPT_TF},
    {"messages-field", required_argument, 0, OPT_MF},
    {"chat", no_argument, 0, OPT_CHAT},
    {"system", required_argument, 0, OPT_SYSTEM},
    {"lines", no_argument, 0, OPT_LINES},
    {"paragraphs", no_argument, 0, OPT_PARAS},
    {"select", required_argument, 0, OPT_SELECT},
    {"skip-bad", no_argument, 0, OPT_SKIP},
    {"output", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

/* Writes one {"prompt": ..., "response": ...} line. */
static pp_status emit(pp_writer *w, pp_buf *line, const pp_buf *prompt, const pp_buf *response)
{
    pp_buf_clear(line);
    PP_TRY(pp_buf_adds(line, "{\"prompt\": "));
    PP_TRY(pp_buf_json_string(line, prompt->p ? prompt->p : "", prompt->len));
    PP_TRY(pp_buf_adds(line, ", \"response\": "));
    PP_TRY(pp_buf_json_string(line, response->p ? response->p : "", response->len));
    PP_TRY(pp_buf_adds(line, "}\n"));
    return pp_write(w, line->p, line->len);
}

int main(int argc, char **argv)
{
    pp_cli_init("pp-format");
    const char *tmpl_arg = NULL, *tmpl_file = NULL, *out_path = "-", *system = NULL;
    pp_fields fields = {0};
    int lines_mode = 0, para_mode = 0, chat_mode = 0, skip_bad = 0, n_sel = 0, c;
    static uint64_t sel[256][2];
    unsigned long long recno = 0; /* records seen, numbered from 1 */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:o:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tmpl_arg = optarg; break;
        case OPT_TFILE: tmpl_file = optarg; break;
        case OPT_IF: fields.instruction = optarg; break;
        case OPT_INF: fields.input = optarg; break;
        case OPT_RF: fields.response = optarg; break;
        case OPT_TF: fields.text = optarg; break;
        case OPT_MF: fields.messages = optarg; break;
        case OPT_CHAT: chat_mode = 1; break;
        case OPT_SYSTEM: system = optarg; break;
        case OPT_LINES: lines_mode = 1; break;
        case OPT_PARAS: para_mode = 1; break;
        case OPT_SELECT:
            if ((n_sel = pp_cli_ranges(optarg, 1, sel, 256)) < 0)
                return pp_cli_usage("--select wants record numbers and ranges from 1 (at most 256), not \"%s\"", optarg);
            break;
        case OPT_SKIP: skip_bad = 1; break;
        case 'o': out_path = optarg; break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (argc - optind > 1) return pp_cli_usage("one input at most");
    if (lines_mode && para_mode) return pp_cli_usage("--lines and --paragraphs exclude each other");
    if (chat_mode && (tmpl_arg || tmpl_file)) return pp_cli_usage("--chat writes conversations: no prompt template");
    if (chat_mode && para_mode) return pp_cli_usage("--chat and --paragraphs exclude each other");
    if (chat_mode && fields.text) return pp_cli_usage("--chat and --text-field exclude each other");
    if (system && !chat_mode) return pp_cli_usage("--system needs --chat");
    if (system && !pp_utf8_valid(system, strlen(system), NULL)) return pp_cli_usage("--system is not valid UTF-8");
    if (!tmpl_arg) tmpl_arg = "default";
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (pp_same_file(in_path, out_path)) return pp_cli_usage("output %s is the input", out_path);

    pp_template *tmpl = NULL;
    pp_reader *in = NULL;
    pp_writer *out = NULL;
    pp_jsonl *jl = NULL;
    pp_buf prompt = {0}, response = {0}, line = {0};
    const char *ctx = NULL; /* the file a failure is about */
    unsigned long long written = 0, skipped = 0;
    int rc = 0;
    pp_status s;
    const char *out_name = strcmp(out_path, "-") ? out_path : "<stdout>";

    if (tmpl_file) {
        pp_reader *tr = NULL;
        char *text = NULL;
        size_t n;
        ctx = tmpl_file;
        s = pp_reader_open(&tr, tmpl_file);
        if (s == PP_OK) s = pp_read_all(tr, &text, &n, 1 << 20);
        pp_reader_close(tr);
        if (s == PP_OK) s = pp_template_custom(&tmpl, text, 0);
        free(text);
    } else if (strstr(tmpl_arg, "{instruction}")) {
        s = pp_template_custom(&tmpl, tmpl_arg, 1);
    } else {
        s = pp_template_builtin(&tmpl, tmpl_arg);
    }
    if (s != PP_OK) goto fail;

    ctx = in_path;
    if ((s = pp_reader_open(&in, in_path)) != PP_OK) goto fail;
    ctx = out_name;
    if ((s = pp_writer_open(&out, out_path, 0)) != PP_OK) goto fail;
    ctx = in_path;

    if (para_mode) {
        /* A paragraph is a run of non-blank lines, joined with \n; a blank
         * (or whitespace-only) line or the end of the input closes it. */
        const char *l;
        size_t n;
        unsigned long long lineno = 0;
        pp_buf empty = {0};
        for (;;) {
            s = pp_read_line(in, &l, &n);
            if (s != PP_OK) goto fail;
            if (l) {
                lineno++;
                if (n && l[n - 1] == '\r') n--;
                size_t bad;
                if (!pp_utf8_valid(l, n, &bad)) {
                    s = pp_fail(PP_E_DATA, "invalid UTF-8 at column %zu (line %llu)", bad + 1, lineno);
                    goto fail; /* a paragraph cannot be skipped by halves */
                }
            }
            size_t i = 0;
            while (l && i < n && (l[i] == ' ' || l[i] == '\t')) i++;
            if (l && i < n) {
                if (response.len && (s = pp_buf_add(&response, "\n", 1)) != PP_OK) goto fail;
                if ((s = pp_buf_add(&response, l, n)) != PP_OK) goto fail;
                continue;
            }
            if (response.len) {
                recno++;
                if (!n_sel || pp_cli_in_ranges(recno, sel, n_sel)) {
                    ctx = out_name;
                    if ((s = emit(out, &line, &empty, &response)) != PP_OK) goto fail;
                    ctx = in_path;
                    written++;
                }
                pp_buf_clear(&response);
            }
            if (!l) break;
        }
    } else if (lines_mode) {
        const char *l;
        size_t n;
        unsigned long long lineno = 0;
        pp_buf empty = {0};
        while ((s = pp_read_line(in, &l, &n)) == PP_OK && l) {
            lineno++;
            size_t bad;
            if (n == 0) continue;
            if (n_sel && !pp_cli_in_ranges(++recno, sel, n_sel)) continue;
            if (!pp_utf8_valid(l, n, &bad)) {
                s = pp_fail(PP_E_DATA, "invalid UTF-8 at column %zu (line %llu)", bad + 1, lineno);
                if (!skip_bad) goto fail;
                pp_cli_say(2, "%s: %s", pp_display_name(in_path), pp_errmsg());
                skipped++;
                continue;
            }
            ctx = out_name;
            if (chat_mode) {
                if ((s = pp_question_chat(l, n, system, &line)) != PP_OK ||
                    (s = pp_buf_add(&line, "\n", 1)) != PP_OK || (s = pp_write(out, line.p, line.len)) != PP_OK)
                    goto fail;
            } else {
                pp_buf_clear(&prompt);
                if ((s = pp_template_prompt(tmpl, l, n, &prompt)) != PP_OK) goto fail;
                if ((s = emit(out, &line, &prompt, &empty)) != PP_OK) goto fail;
            }
            ctx = in_path;
            written++;
        }
        if (s != PP_OK) goto fail;
    } else {
        if ((s = pp_jsonl_open(&jl, in)) != PP_OK) goto fail;
        for (;;) {
            cJSON *rec;
            s = pp_jsonl_next(jl, &rec);
            if (s == PP_OK && !rec) break;
            if (n_sel && !pp_cli_in_ranges(++recno, sel, n_sel) && s == PP_OK) continue; /* bad JSON still counts */
            if (s == PP_OK) {
                s = chat_mode ? pp_record_chat(rec, &fields, system, &line)
                              : pp_record_render(rec, &fields, tmpl, &prompt, &response);
                if (s != PP_OK) pp_fail_ctx(s, "%s", pp_jsonl_where(jl));
            } else if (!pp_jsonl_can_skip(jl)) {
                goto fail;
            }
            if (s != PP_OK) {
                if (!skip_bad || s != PP_E_DATA) goto fail;
                pp_cli_say(2, "%s: %s", pp_display_name(in_path), pp_errmsg());
                skipped++;
                continue;
            }
            ctx = out_name;
            if (chat_mode) s = pp_buf_add(&line, "\n", 1) == PP_OK ? pp_write(out, line.p, line.len) : PP_E_NOMEM;
            else s = emit(out, &line, &prompt, &response);
            if (s != PP_OK) goto fail;
            ctx = in_path;
            written++;
        }
    }
    ctx = out_name;
    s = pp_writer_commit(out);
    out = NULL;
    if (s != PP_OK) goto fail;
    if (skipped) pp_cli_say(1, "%s: skipped %llu bad record%s", pp_display_name(in_path), skipped,
                            skipped == 1 ? "" : "s");
    pp_cli_say(2, "%llu records written", written);
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    pp_writer_abort(out);
    pp_jsonl_close(jl);
    pp_reader_close(in);
    pp_template_free(tmpl);
    pp_buf_free(&prompt);
    pp_buf_free(&response);
    pp_buf_free(&line);
    return rc;
}
