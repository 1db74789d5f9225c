/* pp-generate: a model (HF directory or pp model file) and prompts in,
 * generated text out, streamed as it is produced. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "llama.h"
#include "records.h"
#include "sample.h"
#include "stream.h"
#include "text.h"
#include "tokenizer.h"

static void usage(void)
{
    printf(
"Usage: pp-generate -m MODEL [OPTION]... [PROMPT]...\n"
"Generate text with a Llama model on the CPU.\n"
"\n"
"Each PROMPT argument is one prompt; without any, prompts are read from standard\n"
"input: pp-format JSONL (its \"prompt\" field is used as it is) or plain lines.\n"
"Plain prompts get the default template (### Instruction: ... ### Response:)\n"
"unless --raw or --template says otherwise.\n"
"\n"
"  -m, --model PATH        Hugging Face directory or pp model file (required)\n"
"  -a, --adapter DIR       apply a PEFT LoRA adapter (pp-train's or Hugging Face's), unmerged\n"
"      --adapter-scale S   multiply the adapter's contribution by S (default 1)\n"
"      --raw               use prompts verbatim, no template\n"
"      --chat              each prompt is a user turn in the model's chat template (its\n"
"                          tokenizer_config.json's chat_template); stops at the end of\n"
"                          the assistant's turn\n"
"      --chat-template T   --chat with the template T: chatml, llama3, llama2, mistral\n"
"      --system TEXT       with --chat: a system turn first\n"
"      --template T        default | alpaca | raw, or a template text (see pp-format)\n"
"      --lines             standard input is plain lines even if they look like JSON\n"
"      --json              write one JSON line per prompt: prompt, response, tokens, stop_reason\n"
"      --score             standard input is pp-format records with answers: add each\n"
"                          \"reference\" and its key-word \"recall\" to the JSON line, and\n"
"                          report the mean (see pp-generate(1))\n"
"      --echo              print the prompt before the response\n"
"      --greedy            always the most likely token (same as --temperature 0)\n"
"      --temperature T     sampling temperature (default 0.7)\n"
"      --top-k K           keep the K most likely tokens (default 0: off)\n"
"      --top-p P           keep the smallest set with probability mass P (default 1: off)\n"
"      --min-p P           drop tokens below P times the best one (default 0: off)\n"
"      --repeat-penalty R  penalise recent tokens: positive logits / R, negative * R (default 1: off)\n"
"      --repeat-window N   how many recent tokens (default 64; 0: the whole sequence)\n"
"      --seed N            random seed (default 0); the same seed gives the same text\n"
"      --max-new-tokens N  stop after N new tokens (default 256)\n"
"      --max-length N      stop when prompt plus output reach N tokens (as Hugging Face counts;\n"
"                          --max-new-tokens, when given, takes precedence)\n"
"      --stop STRING       stop before STRING (repeatable; \\n and \\t understood)\n"
"  -t, --threads N         CPU threads (default: the CPUs no other program keeps busy)\n"
"      --device D          cpu, cuda, cuda:N or auto (default: auto, the GPU when there is one)\n"
"  -q, --quiet             no messages but errors\n"
"  -v, --verbose           report load time and prompt/generation speed\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"74 I/O error. See pp-generate(1).\n");
}

enum { OPT_ASCALE = 300, OPT_RAW = 256, OPT_TEMPLATE, OPT_LINES, OPT_JSON, OPT_SCORE, OPT_ECHO, OPT_GREEDY, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_MINP,
       OPT_REP, OPT_REPWIN, OPT_SEED, OPT_MAXNEW, OPT_MAXLEN, OPT_STOP, OPT_DEVICE, OPT_CHAT, OPT_CHATT, OPT_SYSTEM };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"adapter", required_argument, 0, 'a'},
    {"adapter-scale", required_argument, 0, OPT_ASCALE},
    {"raw", no_argument, 0, OPT_RAW},
    {"chat", no_argument, 0, OPT_CHAT},
    {"chat-template", required_argument, 0, OPT_CHATT},
    {"system", required_argument, 0, OPT_SYSTEM},
    {"template", required_argument, 0, OPT_TEMPLATE},
    {"lines", no_argument, 0, OPT_LINES},
    {"json", no_argument, 0, OPT_JSON},
    {"score", no_argument, 0, OPT_SCORE},
    {"echo", no_argument, 0, OPT_ECHO},
    {"greedy", no_argument, 0, OPT_GREEDY},
    {"temperature", required_argument, 0, OPT_TEMP},
    {"top-k", required_argument, 0, OPT_TOPK},
    {"top-p", required_argument, 0, OPT_TOPP},
    {"min-p", required_argument, 0, OPT_MINP},
    {"repeat-penalty", required_argument, 0, OPT_REP},
    {"repeat-window", required_argument, 0, OPT_REPWIN},
    {"seed", required_argument, 0, OPT_SEED},
    {"max-new-tokens", required_argument, 0, OPT_MAXNEW},
    {"max-length", required_argument, 0, OPT_MAXLEN},
    {"stop", required_argument, 0, OPT_STOP},
    {"threads", required_argument, 0, 't'},
    {"device", required_argument, 0, OPT_DEVICE},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

#define MAX_STOPS 16

typedef struct gen {
    pp_llama m;
    pp_backend *be;
    pp_tokenizer *tk;
    pp_tok_state *tst;
    const pp_chat_template *chat; /* --chat: the template, or NULL */
    const char *system;     /* --system */
    char *bos_text, *eos_text;
    int eot_id;             /* the end of an assistant turn, or -1 */
    pp_chat_text ct;
    uint8_t *train;
    size_t train_cap;
    pp_infer inf;
    pp_sampler smp;
    pp_lora lora;
    uint64_t seed;
    int json, echo, max_new, max_new_set, max_length;
    char *stops[MAX_STOPS];
    int n_stops;
    uint32_t *ids;          /* the sequence: prompt then output */
    size_t ids_cap;
    float *logits;          /* (vocab) */
    char *text;             /* decoded output */
    size_t text_cap;
    pp_buf line;
    double t_prompt, t_gen;
    long n_prompt, n_gen;
    double recall_sum;      /* --score: the sum of recalls over n_scored prompts */
    long n_scored;
} gen;

/* Bytes of s that can be shown without cutting a UTF-8 character. */
static size_t complete_utf8(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && i > n - 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    if (i == 0) return n;
    unsigned char c = (unsigned char)s[i - 1];
    size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return n - (i - 1) >= need ? n : i - 1;
}

static int write_out(const char *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, stdout) == n;
}

/* Generates the response to one prompt text; streams it unless --json.
 * With a reference answer (--score), the JSON line also carries it and the
 * response's key-word recall against it. */
static pp_status run_prompt(gen *g, const char *prompt, size_t plen, const char *ref)
{
    const pp_config *c = &g->m.cfg;
    uint32_t *pids = NULL;
    size_t pcap = 0, pn = 0;
    size_t npre = g->tk->npre; /* BOS, as the tokenizer adds it */
    int trim = plen > 0 && (prompt[plen - 1] == ' ' || prompt[plen - 1] == '\n' || prompt[plen - 1] == '\t');
    if (g->chat) { /* the prompt as a user turn, then the assistant's header */
        pp_chat_msg m[2];
        size_t nm = 0;
        char *q = malloc(plen + 1);
        if (!q) return pp_fail(PP_E_NOMEM, "out of memory");
        memcpy(q, prompt, plen);
        q[plen] = 0;
        if (g->system) m[nm++] = (pp_chat_msg){"system", g->system};
        m[nm++] = (pp_chat_msg){"user", q};
        pp_chat_text_clear(&g->ct);
        pp_status cs = pp_chat_render(&g->ct, g->chat, m, nm, 1, g->bos_text, g->eos_text);
        free(q);
        if (cs == PP_OK)
            cs = pp_tokenizer_encode_chat(g->tk, &g->tst, &g->ct, &pids, &pcap, &g->train, &g->train_cap, &pn);
        if (cs != PP_OK) {
            free(pids);
            return cs;
        }
        npre = 0; /* the template wrote its own BOS */
        trim = g->ct.text.len && strchr(" \n\t", g->ct.text.p[g->ct.text.len - 1]);
    } else {
        PP_TRY(pp_tokenizer_encode(g->tk, &g->tst, prompt, plen, 0, &pids, &pcap, &pn));
    }
    size_t n = pn + npre;
    if (n > (size_t)c->max_pos || n > (size_t)g->inf.max_seq) {
        free(pids);
        return pp_fail(PP_E_DATA, "a prompt of %zu tokens does not fit the context of %d", n, g->inf.max_seq);
    }
    /* as Hugging Face: --max-new-tokens, when given, overrides --max-length */
    size_t limit = g->max_length > 0 && !g->max_new_set ? (size_t)g->max_length : n + (size_t)g->max_new;
    if (limit < n) return pp_fail(PP_E_DATA, "--max-length %zu is shorter than the prompt's %zu tokens", limit, n);
    if (limit > (size_t)g->inf.max_seq) limit = (size_t)g->inf.max_seq;
    if (g->ids_cap < limit + 1) {
        uint32_t *p = realloc(g->ids, (limit + 1) * sizeof *p);
        if (!p) {
            free(pids);
            return pp_fail(PP_E_NOMEM, "out of memory");
        }
        g->ids = p;
        g->ids_cap = limit + 1;
    }
    memcpy(g->ids, g->tk->pre, npre * sizeof *g->ids);
    memcpy(g->ids + npre, pids, pn * sizeof *pids);
    free(pids);

    pp_infer_reset(&g->inf);
    pp_sampler_seed(&g->smp, g->seed); /* each prompt starts from the seed */
    if (g->echo && !g->json && !write_out(prompt, plen)) return pp_fail(PP_E_IO, "write error on standard output");
    /* The response is the text of prompt + output minus the prompt's own text,
     * so that a word's space survives ("Once" + " upon"); after a prompt that
     * ends in whitespace (a template's "### Response:\n") one leading space goes. */
    size_t first = npre, pdec = 0, len = 0, off = 0;
    PP_TRY(pp_tokenizer_decode(g->tk, g->ids + first, n - first, 1, &g->text, &g->text_cap, &pdec));
    double t0 = pp_cli_now();
    pp_status s = n < limit ? pp_infer_forward(&g->inf, g->ids, (int)n, g->logits, 0) : PP_OK;
    g->t_prompt += pp_cli_now() - t0;
    g->n_prompt += (long)n;
    const char *reason = "length";
    size_t shown = 0, cur = n, hold = 0;
    for (int k = 0; k < g->n_stops; k++)
        if (strlen(g->stops[k]) > hold) hold = strlen(g->stops[k]);
    t0 = pp_cli_now();
    while (s == PP_OK && cur < limit) {
        uint32_t t = pp_sample(&g->smp, g->logits, g->ids, (int)cur);
        g->n_gen++;
        if (pp_config_is_eos(c, (int)t) || (int)t == g->tk->eos_id || (int)t == g->eot_id) {
            reason = "eos";
            break;
        }
        g->ids[cur++] = t;
        size_t full;
        s = pp_tokenizer_decode(g->tk, g->ids + first, cur - first, 1, &g->text, &g->text_cap, &full);
        if (s != PP_OK) break;
        off = full >= pdec ? pdec : full;
        if (trim && off < full && g->text[off] == ' ') off++;
        len = full - off;
        const char *r = g->text + off;
        int stopped = 0;
        for (int k = 0; k < g->n_stops; k++) {
            size_t sl = strlen(g->stops[k]);
            const char *hit = strstr(r + (shown > sl ? shown - sl : 0), g->stops[k]);
            if (hit && (size_t)(hit - r) < len) {
                len = (size_t)(hit - r) > shown ? (size_t)(hit - r) : shown;
                stopped = 1;
            }
        }
        if (stopped) {
            reason = "stop";
            break;
        }
        /* Show only what can no longer change: not the last bytes that could
         * begin a stop string, not an unfinished character (byte-fallback
         * pieces decode to U+FFFD until the character is complete). */
        size_t safe = len > hold ? len - hold : 0;
        while (safe >= 3 && memcmp(r + safe - 3, "\xef\xbf\xbd", 3) == 0) safe -= 3;
        safe = complete_utf8(r, safe);
        if (!g->json && safe > shown) {
            if (!write_out(r + shown, safe - shown) || fflush(stdout) != 0)
                return pp_fail(PP_E_IO, "write error on standard output");
            shown = safe;
        }
        if (cur < limit) s = pp_infer_forward(&g->inf, &t, 1, g->logits, 0);
    }
    g->t_gen += pp_cli_now() - t0;
    if (s != PP_OK) return s;
    const char *r = g->text ? g->text + off : "";
    if (len < shown) len = shown;
    if (g->json) {
        pp_buf_clear(&g->line);
        s = pp_buf_adds(&g->line, "{\"prompt\": ");
        if (s == PP_OK) s = pp_buf_json_string(&g->line, prompt, plen);
        if (s == PP_OK) s = pp_buf_adds(&g->line, ", \"response\": ");
        if (s == PP_OK) s = pp_buf_json_string(&g->line, r, len);
        if (s == PP_OK) s = pp_buf_printf(&g->line, ", \"tokens\": %zu, \"stop_reason\": \"%s\"", cur - n, reason);
        if (s == PP_OK && ref) {
            double rc = pp_keyword_recall(ref, strlen(ref), r, len, NULL, NULL);
            if (rc < -1.5) s = pp_fail(PP_E_NOMEM, "out of memory");
            if (s == PP_OK) s = pp_buf_adds(&g->line, ", \"reference\": ");
            if (s == PP_OK) s = pp_buf_json_string(&g->line, ref, strlen(ref));
            if (s == PP_OK && rc >= 0) {
                s = pp_buf_printf(&g->line, ", \"recall\": %.4f", rc);
                g->recall_sum += rc;
                g->n_scored++;
            } else if (s == PP_OK) {
                s = pp_buf_adds(&g->line, ", \"recall\": null");
            }
        }
        if (s == PP_OK) s = pp_buf_adds(&g->line, "}\n");
        if (s == PP_OK && !write_out(g->line.p, g->line.len)) s = pp_fail(PP_E_IO, "write error on standard output");
    } else {
        if (!write_out(r + shown, len - shown) || !write_out("\n", 1)) s = pp_fail(PP_E_IO, "write error on standard output");
    }
    if (fflush(stdout) != 0) s = pp_fail(PP_E_IO, "write error on standard output");
    return s;
}

int main(int argc, char **argv)
{
    pp_blas_setup(argv); /* the CPU's best OpenBLAS kernels (may execute argv again) */
    pp_cli_init("pp-generate");
    gen g;
    memset(&g, 0, sizeof g);
    g.max_new = 256;
    const char *model = NULL, *tmpl_arg = "default", *adapter = NULL;
    double adapter_scale = 1;
    int raw = 0, lines = 0, score = 0, threads = -1 /* the free cores: decoding is the same on any count */, chat = 0, c;
    const char *chat_name = NULL;
    pp_chat_template chat_t;
    const char *device = "auto";
    double temperature = 0.7, top_p = 1, min_p = 0, rep = 1;
    uint64_t v, top_k = 0, rep_win = 64;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:a:t:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case OPT_ASCALE:
            if (pp_cli_double(optarg, -100, 100, &adapter_scale)) return pp_cli_usage("--adapter-scale wants a number, not \"%s\"", optarg);
            break;
        case OPT_RAW: raw = 1; break;
        case OPT_CHAT: chat = 1; break;
        case OPT_CHATT: chat = 1, chat_name = optarg; break;
        case OPT_SYSTEM: g.system = optarg; break;
        case OPT_TEMPLATE: tmpl_arg = optarg; break;
        case OPT_LINES: lines = 1; break;
        case OPT_JSON: g.json = 1; break;
        case OPT_SCORE: score = g.json = 1; break;
        case OPT_ECHO: g.echo = 1; break;
        case OPT_GREEDY: temperature = 0; break;
        case OPT_TEMP:
            if (pp_cli_double(optarg, 0, 100, &temperature)) return pp_cli_usage("--temperature wants 0..100, not \"%s\"", optarg);
            break;
        case OPT_TOPK:
            if (pp_cli_u64(optarg, 0, 1u << 24, &top_k)) return pp_cli_usage("--top-k wants a count, not \"%s\"", optarg);
            break;
        case OPT_TOPP:
            if (pp_cli_double(optarg, 0, 1, &top_p) || top_p <= 0) return pp_cli_usage("--top-p wants (0, 1], not \"%s\"", optarg);
            break;
        case OPT_MINP:
            if (pp_cli_double(optarg, 0, 1, &min_p)) return pp_cli_usage("--min-p wants 0..1, not \"%s\"", optarg);
            break;
        case OPT_REP:
            if (pp_cli_double(optarg, 0.01, 100, &rep)) return pp_cli_usage("--repeat-penalty wants 0.01..100, not \"%s\"", optarg);
            break;
        case OPT_REPWIN:
            if (pp_cli_u64(optarg, 0, 1u << 24, &rep_win)) return pp_cli_usage("--repeat-window wants a count, not \"%s\"", optarg);
            break;
        case OPT_SEED:
            if (pp_cli_u64(optarg, 0, UINT64_MAX, &g.seed)) return pp_cli_usage("--seed wants a number, not \"%s\"", optarg);
            break;
        case OPT_MAXNEW:
            if (pp_cli_u64(optarg, 0, 1u << 24, &v)) return pp_cli_usage("--max-new-tokens wants a count, not \"%s\"", optarg);
            g.max_new = (int)v;
            g.max_new_set = 1;
            break;
        case OPT_MAXLEN:
            if (pp_cli_u64(optarg, 1, 1u << 24, &v)) return pp_cli_usage("--max-length wants a count, not \"%s\"", optarg);
            g.max_length = (int)v;
            break;
        case OPT_STOP:
            if (g.n_stops == MAX_STOPS) return pp_cli_usage("at most %d --stop strings", MAX_STOPS);
            if (!(g.stops[g.n_stops] = pp_unescape(optarg)) || !*g.stops[g.n_stops]) return pp_cli_usage("--stop wants a non-empty string");
            g.n_stops++;
            break;
        case 't':
            if (pp_cli_u64(optarg, 1, 1024, &v)) return pp_cli_usage("--threads wants 1..1024, not \"%s\"", optarg);
            threads = (int)v;
            break;
        case OPT_DEVICE: device = optarg; break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); printf("%s\n", pp_blas_describe()); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (!model) return pp_cli_usage("-m MODEL is required");
    if (strcmp(model, "-") == 0 && optind == argc) return pp_cli_usage("with -m -, the prompts must be arguments");
    if (raw || chat) tmpl_arg = "raw"; /* --chat: the chat template instead */
    if (g.system && !chat) return pp_cli_usage("--system goes with --chat");
    if (score && (optind < argc || lines)) return pp_cli_usage("--score reads pp-format records (prompt and response) from standard input");

    pp_template *tmpl = NULL;
    pp_reader *in = NULL;
    pp_jsonl *jl = NULL;
    pp_buf prompt = {0};
    const char *ctx = model;
    int rc = 0;
    double t0 = pp_cli_now();
    pp_status s = strstr(tmpl_arg, "{instruction}") ? pp_template_custom(&tmpl, tmpl_arg, 1) : pp_template_builtin(&tmpl, tmpl_arg);
    if (s != PP_OK) {
        ctx = NULL;
        goto fail;
    }
    if ((s = pp_llama_load(&g.m, model)) != PP_OK) goto fail;
    if (!g.m.tok.data) {
        s = pp_fail(PP_E_NOINPUT, "no tokenizer.json or tokenizer.model with this model");
        goto fail;
    }
    if ((s = pp_tokenizer_from_files(&g.tk, &g.m.tok)) != PP_OK) goto fail;
    if (g.tk->vocab > g.m.cfg.vocab) {
        s = pp_fail(PP_E_DATA, "the tokenizer has %d tokens, the model %d", g.tk->vocab, g.m.cfg.vocab);
        goto fail;
    }
    g.eot_id = -1;
    if (chat) {
        if (chat_name) {
            if (pp_chat_by_name(&chat_t, chat_name) != PP_OK) {
                s = pp_fail(PP_E_USAGE, "--chat-template: \"%s\" is none of %s", chat_name, pp_chat_names());
                ctx = NULL;
                goto fail;
            }
        } else if (!g.tk->chat_template) {
            s = pp_fail(PP_E_DATA, "--chat: the tokenizer has no chat_template (tokenizer_config.json); "
                                   "--chat-template %s", pp_chat_names());
            goto fail;
        } else if ((s = pp_chat_detect(&chat_t, g.tk->chat_template, strlen(g.tk->chat_template))) != PP_OK) {
            goto fail;
        }
        g.chat = &chat_t;
        size_t n;
        const char *p;
        if (g.tk->bos_id >= 0 && (p = pp_tokenizer_piece(g.tk, g.tk->bos_id, &n)) && (g.bos_text = malloc(n + 1)))
            memcpy(g.bos_text, p, n), g.bos_text[n] = 0;
        if (g.tk->eos_id >= 0 && (p = pp_tokenizer_piece(g.tk, g.tk->eos_id, &n)) && (g.eos_text = malloc(n + 1)))
            memcpy(g.eos_text, p, n), g.eos_text[n] = 0;
        const char *eot = pp_chat_eot(g.chat, g.eos_text ? g.eos_text : "");
        g.eot_id = pp_tokenizer_piece_id(g.tk, eot, strlen(eot));
    }
    int max_seq = g.m.cfg.max_pos;
    /* Mistral attends within a sliding window; up to that length it is plain
     * causal attention, which is what runs: the context stops there. */
    if (g.m.cfg.sliding_window > 0 && g.m.cfg.sliding_window < max_seq) max_seq = g.m.cfg.sliding_window;
    if (g.max_length > 0 && g.max_length < max_seq) max_seq = g.max_length;
    if ((s = pp_backend_open(&g.be, device, threads)) != PP_OK || (s = pp_llama_to_backend(&g.m, g.be)) != PP_OK ||
        (s = pp_infer_init(&g.inf, &g.m, g.be, max_seq, 256)) != PP_OK ||
        (s = pp_sampler_init(&g.smp, g.m.cfg.vocab, g.seed)) != PP_OK)
        goto fail;
    if (adapter) {
        ctx = adapter;
        if ((s = pp_lora_load(&g.lora, &g.m.cfg, adapter)) != PP_OK || (s = pp_lora_to_backend(&g.lora, g.be)) != PP_OK ||
            (s = pp_infer_adapter(&g.inf, &g.lora, (float)adapter_scale)) != PP_OK)
            goto fail;
        ctx = model;
    }
    g.smp.temperature = (float)temperature;
    g.smp.top_k = (int)top_k;
    g.smp.top_p = (float)top_p;
    g.smp.min_p = (float)min_p;
    g.smp.repeat_penalty = (float)rep;
    g.smp.repeat_window = (int)rep_win;
    if (!(g.logits = malloc((size_t)g.m.cfg.vocab * sizeof *g.logits))) {
        s = pp_fail(PP_E_NOMEM, "out of memory");
        goto fail;
    }
    if (!strcmp(g.be->ops->name, "cpu")) pp_cli_say(2, "%s", pp_blas_describe());
    pp_cli_say(2, "%s: %s, %d layers, dim %d, %s weights, %s backend, %d thread%s, loaded in %.2f s; encoder: %s", model,
               g.m.cfg.arch, g.m.cfg.n_layers, g.m.cfg.dim, g.m.quant, g.be->ops->name, g.be->threads,
               g.be->threads == 1 ? "" : "s", pp_cli_now() - t0, g.tk->engine);

    if (optind < argc) {
        for (int i = optind; i < argc && s == PP_OK; i++) {
            pp_buf_clear(&prompt);
            s = pp_template_prompt(tmpl, argv[i], strlen(argv[i]), &prompt);
            if (s == PP_OK) s = run_prompt(&g, prompt.p ? prompt.p : "", prompt.len, NULL);
        }
        if (s != PP_OK) {
            ctx = NULL;
            goto fail;
        }
    } else {
        ctx = "-";
        if ((s = pp_reader_open(&in, "-")) != PP_OK) goto fail;
        const char *l;
        size_t n;
        unsigned long long lineno = 0;
        while ((s = pp_read_line(in, &l, &n)) == PP_OK && l) {
            lineno++;
            size_t i = 0;
            while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
            if (i == n) continue;
            pp_buf_clear(&prompt);
            cJSON *rec = NULL;
            const char *ref = NULL;
            if (!lines && l[i] == '{') { /* a pp-format record: its prompt as it is */
                rec = cJSON_ParseWithLength(l, n);
                const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
                const cJSON *r = cJSON_GetObjectItemCaseSensitive(rec, "response");
                if (!cJSON_IsString(p)) s = pp_fail(PP_E_DATA, "expected a JSON object with a string \"prompt\" (line %llu)", lineno);
                else if (score && !cJSON_IsString(r)) s = pp_fail(PP_E_DATA, "--score wants a string \"response\" (line %llu)", lineno);
                else s = pp_buf_adds(&prompt, p->valuestring);
                if (s == PP_OK && score) ref = r->valuestring;
            } else if (score) {
                s = pp_fail(PP_E_DATA, "--score wants pp-format JSON records (line %llu)", lineno);
            } else if (!pp_utf8_valid(l, n, NULL)) {
                s = pp_fail(PP_E_DATA, "invalid UTF-8 (line %llu)", lineno);
            } else {
                s = pp_template_prompt(tmpl, l, n, &prompt);
            }
            if (s == PP_OK) s = run_prompt(&g, prompt.p ? prompt.p : "", prompt.len, ref);
            cJSON_Delete(rec);
            if (s != PP_OK) break;
        }
        if (s != PP_OK) goto fail;
    }
    if (score)
        pp_cli_say(1, "key-word recall %.4f, the mean over %ld scored prompt%s", g.n_scored ? g.recall_sum / g.n_scored : 0,
                   g.n_scored, g.n_scored == 1 ? "" : "s");
    if (g.t_gen > 0)
        pp_cli_say(2, "prompt %ld tokens at %.1f tokens/s, generation %ld tokens at %.1f tokens/s", g.n_prompt,
                   g.t_prompt > 0 ? g.n_prompt / g.t_prompt : 0, g.n_gen, g.n_gen / g.t_gen);
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    pp_jsonl_close(jl);
    pp_reader_close(in);
    pp_template_free(tmpl);
    pp_buf_free(&prompt);
    pp_buf_free(&g.line);
    pp_infer_free(&g.inf);
    pp_sampler_free(&g.smp);
    pp_tok_state_free(g.tst);
    pp_chat_text_free(&g.ct);
    free(g.train);
    free(g.bos_text);
    free(g.eos_text);
    pp_tokenizer_free(g.tk);
    pp_llama_free(&g.m);
    pp_lora_free(&g.lora);
    pp_backend_free(g.be); /* last: the model and adapter may live in its memory */
    for (int k = 0; k < g.n_stops; k++) free(g.stops[k]);
    free(g.ids);
    free(g.logits);
    free(g.text);
    return rc;
}
