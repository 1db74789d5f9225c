/* pp-train: a model and a token dataset in, a PEFT LoRA adapter out. LoRA on
 * the CPU backend: the loop, AdamW, clipping, the schedule; the gradients
 * equal PEFT's (tests/unit/test_train.c). */
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "llama.h"
#include "lora.h"
#include "optim.h"
#include "sha256.h"
#include "stream.h"
#include "text.h"
#include "tokens.h"
#include "train.h"

static void usage(void)
{
    printf(
"Usage: pp-train -m MODEL -d TOKENS -o OUTDIR [OPTION]...\n"
"Train a LoRA adapter on a token dataset (pp-tokenize) and write it as a PEFT\n"
"adapter directory. MODEL is a Hugging Face directory or a pp model file.\n"
"\n"
"  -m, --model PATH         the frozen base model (required)\n"
"  -d, --data TOKENS        the training data, a pp-tokenize dataset (required; - for stdin)\n"
"  -o, --output OUTDIR      the adapter directory to write (required)\n"
"  -r, --rank R             LoRA rank (default 16)\n"
"      --alpha A            LoRA alpha (default 32); the scale is alpha/r\n"
"      --rslora             scale alpha/sqrt(r) instead\n"
"      --targets LIST       modules: q,k,v,o,gate,up,down or all-linear (default q,v)\n"
"      --lr LR              peak learning rate (default 2e-4)\n"
"      --epochs N           passes over the data (default 2)\n"
"      --batch-size N       records per micro-batch (default 2)\n"
"      --grad-accum N       micro-batches per optimizer step (default 1)\n"
"      --max-steps N        stop after N optimizer steps (default: the epochs decide)\n"
"      --schedule S         linear (default), cosine or constant\n"
"      --warmup N|F         warm-up steps, or a fraction of all steps when it has a point (default 0)\n"
"      --max-grad-norm G    clip the gradient norm at G; 0 turns clipping off (default 1.0)\n"
"      --weight-decay W     AdamW's decoupled weight decay (default 0)\n"
"      --train-on-prompt    put the loss on prompt tokens too\n"
"      --seed N             initialisation and shuffling (default 0)\n"
"      --log FILE           one JSON line per optimizer step\n"
"  -t, --threads N          CPU threads (default: all cores)\n"
"  -q, --quiet              no messages but errors\n"
"  -v, --verbose            a line per step\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"73 cannot create output, 74 I/O error. See pp-train(1).\n");
}

enum { OPT_ALPHA = 256, OPT_RSLORA, OPT_TARGETS, OPT_LR, OPT_EPOCHS, OPT_BATCH, OPT_ACCUM, OPT_MAXSTEPS, OPT_SCHED,
       OPT_WARMUP, OPT_CLIP, OPT_WD, OPT_ONPROMPT, OPT_SEED, OPT_LOG, OPT_DROPOUT };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
    {"rank", required_argument, 0, 'r'}, {"alpha", required_argument, 0, OPT_ALPHA}, {"rslora", no_argument, 0, OPT_RSLORA},
    {"targets", required_argument, 0, OPT_TARGETS}, {"lr", required_argument, 0, OPT_LR},
    {"epochs", required_argument, 0, OPT_EPOCHS}, {"batch-size", required_argument, 0, OPT_BATCH},
    {"grad-accum", required_argument, 0, OPT_ACCUM}, {"max-steps", required_argument, 0, OPT_MAXSTEPS},
    {"schedule", required_argument, 0, OPT_SCHED}, {"warmup", required_argument, 0, OPT_WARMUP},
    {"max-grad-norm", required_argument, 0, OPT_CLIP}, {"weight-decay", required_argument, 0, OPT_WD},
    {"train-on-prompt", no_argument, 0, OPT_ONPROMPT}, {"seed", required_argument, 0, OPT_SEED},
    {"log", required_argument, 0, OPT_LOG}, {"dropout", required_argument, 0, OPT_DROPOUT},
    {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'}, {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0},
};

static int parse_targets(const char *s, unsigned *out)
{
    static const char *const short_names[PP_LORA_TYPES] = {"q", "k", "v", "o", "gate", "up", "down"};
    if (!strcmp(s, "all-linear")) {
        *out = 0x7f;
        return 0;
    }
    *out = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t = 0;
        while (t < PP_LORA_TYPES && strcmp(tok, short_names[t]) && strcmp(tok, pp_lora_module(t))) t++;
        if (t == PP_LORA_TYPES) {
            free(copy);
            return -1;
        }
        *out |= 1u << t;
    }
    free(copy);
    return *out ? 0 : -1;
}

int main(int argc, char **argv)
{
    pp_cli_init("pp-train");
    const char *model = NULL, *data = NULL, *outdir = NULL, *log_path = NULL, *warmup_arg = "0";
    uint64_t v, rank = 16, epochs = 2, batch = 2, accum = 1, max_steps = 0, seed = 0, threads = 0;
    double alpha = 32, lr = 2e-4, clip = 1.0, wd = 0, dropout = 0;
    int rslora = 0, on_prompt = 0, c;
    unsigned targets = 1u << PP_LORA_Q | 1u << PP_LORA_V;
    pp_schedule sched = PP_SCHED_LINEAR;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:d:o:r:t:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'o': outdir = optarg; break;
        case 'r': if (pp_cli_u64(optarg, 1, 4096, &rank)) return pp_cli_usage("--rank wants 1..4096"); break;
        case OPT_ALPHA: if (pp_cli_double(optarg, 1e-6, 1e6, &alpha)) return pp_cli_usage("--alpha wants a positive number"); break;
        case OPT_RSLORA: rslora = 1; break;
        case OPT_TARGETS: if (parse_targets(optarg, &targets)) return pp_cli_usage("--targets wants q,k,v,o,gate,up,down or all-linear, not \"%s\"", optarg); break;
        case OPT_LR: if (pp_cli_double(optarg, 0, 10, &lr)) return pp_cli_usage("--lr wants 0..10"); break;
        case OPT_EPOCHS: if (pp_cli_u64(optarg, 1, 1000000, &epochs)) return pp_cli_usage("--epochs wants a count"); break;
        case OPT_BATCH: if (pp_cli_u64(optarg, 1, 65536, &batch)) return pp_cli_usage("--batch-size wants a count"); break;
        case OPT_ACCUM: if (pp_cli_u64(optarg, 1, 65536, &accum)) return pp_cli_usage("--grad-accum wants a count"); break;
        case OPT_MAXSTEPS: if (pp_cli_u64(optarg, 1, 1u << 30, &max_steps)) return pp_cli_usage("--max-steps wants a count"); break;
        case OPT_SCHED:
            if (!strcmp(optarg, "linear")) sched = PP_SCHED_LINEAR;
            else if (!strcmp(optarg, "cosine")) sched = PP_SCHED_COSINE;
            else if (!strcmp(optarg, "constant")) sched = PP_SCHED_CONSTANT;
            else return pp_cli_usage("--schedule wants linear, cosine or constant");
            break;
        case OPT_WARMUP: warmup_arg = optarg; break;
        case OPT_CLIP: if (pp_cli_double(optarg, 0, 1e9, &clip)) return pp_cli_usage("--max-grad-norm wants a number >= 0"); break;
        case OPT_WD: if (pp_cli_double(optarg, 0, 10, &wd)) return pp_cli_usage("--weight-decay wants 0..10"); break;
        case OPT_ONPROMPT: on_prompt = 1; break;
        case OPT_SEED: if (pp_cli_u64(optarg, 0, UINT64_MAX, &seed)) return pp_cli_usage("--seed wants a number"); break;
        case OPT_LOG: log_path = optarg; break;
        case OPT_DROPOUT: if (pp_cli_double(optarg, 0, 0.999, &dropout)) return pp_cli_usage("--dropout wants 0..1"); break;
        case 't': if (pp_cli_u64(optarg, 1, 1024, &threads)) return pp_cli_usage("--threads wants 1..1024"); break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (!model || !data || !outdir) return pp_cli_usage("-m MODEL, -d TOKENS and -o OUTDIR are required");
    if (optind != argc) return pp_cli_usage("unexpected argument \"%s\"", argv[optind]);
    if (dropout > 0) return pp_cli_usage("--dropout > 0 is not implemented yet");
    if (!strcmp(model, "-") && !strcmp(data, "-")) return pp_cli_usage("the model and the data cannot both be standard input");
    /* the output directory is made now: a bad -o fails before the training */
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        return pp_cli_fail(outdir, pp_fail(PP_E_CANTCREAT, "cannot create: %s", strerror(e)));
    }

    pp_llama m = {0};
    pp_backend *be = NULL;
    pp_tokens ds = {0};
    pp_lora l = {0};
    pp_trainer t = {0};
    pp_adamw o = {0};
    pp_reader *in = NULL;
    FILE *logf = NULL;
    uint32_t *order = NULL;
    const char *ctx = model;
    int rc = 0;
    pp_status s = pp_llama_load(&m, model);
    if (s != PP_OK) goto fail;
    ctx = data;
    if ((s = pp_reader_open(&in, data)) != PP_OK || (s = pp_tokens_read(&ds, in)) != PP_OK) goto fail;
    if (m.tokenizer) {
        char sha[65];
        pp_sha256 h;
        pp_sha256_init(&h);
        pp_sha256_update(&h, m.tokenizer, m.tokenizer_len);
        pp_sha256_hex(&h, sha);
        if (strcmp(sha, ds.tokenizer_sha256)) {
            s = pp_fail(PP_E_DATA, "tokenized with another tokenizer than the model's (sha256 %.12s..., model %.12s...)",
                        ds.tokenizer_sha256, sha);
            goto fail;
        }
    }
    if (ds.vocab_size > (uint32_t)m.cfg.vocab) {
        s = pp_fail(PP_E_DATA, "token ids up to %u, the model has %d", ds.vocab_size, m.cfg.vocab);
        goto fail;
    }
    if (ds.n_records == 0) {
        s = pp_fail(PP_E_DATA, "no records");
        goto fail;
    }
    ctx = NULL;
    int longest = 0;
    for (uint64_t r = 0; r < ds.n_records; r++)
        if (ds.offsets[r + 1] - ds.offsets[r] > (uint64_t)longest) longest = (int)(ds.offsets[r + 1] - ds.offsets[r]);
    int context = m.cfg.sliding_window > 0 && m.cfg.sliding_window < m.cfg.max_pos ? m.cfg.sliding_window : m.cfg.max_pos;
    if (longest > context) {
        s = pp_fail(PP_E_DATA, "a record of %d tokens is longer than the context of %d (pp-tokenize --max-len)", longest, context);
        goto fail;
    }
    uint64_t all_targets = 0;
    for (uint64_t r = 0; r < ds.n_records; r++) {
        int n = (int)(ds.offsets[r + 1] - ds.offsets[r]), p = on_prompt ? 1 : (int)ds.prompt_lens[r];
        all_targets += n > (p > 1 ? p : 1) ? (uint64_t)(n - (p > 1 ? p : 1)) : 0;
    }
    if (all_targets == 0) {
        s = pp_fail(PP_E_DATA, "nothing to train on: no record has a response token");
        goto fail;
    }
    if ((s = pp_backend_cpu(&be, (int)threads)) != PP_OK ||
        (s = pp_lora_init(&l, &m.cfg, (int)rank, (float)alpha, rslora, targets)) != PP_OK ||
        (s = pp_trainer_init(&t, &m, be, &l, longest)) != PP_OK ||
        (s = pp_adamw_init(&o, l.n_params, 0.9f, 0.999f, 1e-8f, (float)wd)) != PP_OK)
        goto fail;
    pp_lora_init_weights(&l, seed);

    uint64_t per_step = batch * accum, steps_per_epoch = (ds.n_records + per_step - 1) / per_step;
    uint64_t total = max_steps ? max_steps : epochs * steps_per_epoch;
    long warmup;
    double wf;
    if (strchr(warmup_arg, '.')) {
        if (pp_cli_double(warmup_arg, 0, 1, &wf)) { s = pp_fail(PP_E_USAGE, "--warmup wants steps or a fraction in [0, 1]"); goto fail; }
        warmup = (long)ceil(wf * (double)total);
    } else {
        if (pp_cli_u64(warmup_arg, 0, 1u << 30, &v)) { s = pp_fail(PP_E_USAGE, "--warmup wants steps or a fraction in [0, 1]"); goto fail; }
        warmup = (long)v;
    }
    if (log_path && !(logf = fopen(log_path, "w"))) {
        s = pp_fail(PP_E_CANTCREAT, "%s: cannot create", log_path);
        goto fail;
    }
    if (logf) setvbuf(logf, NULL, _IOLBF, 0); /* a line per step, visible as it comes */
    order = malloc(ds.n_records * sizeof *order);
    if (!order) {
        s = pp_fail(PP_E_NOMEM, "out of memory");
        goto fail;
    }
    pp_cli_say(2, "%llu records, %llu optimizer steps of %llu records, LoRA r=%d on %zu parameters (%.3f%% of %llu)",
               (unsigned long long)ds.n_records, (unsigned long long)total, (unsigned long long)per_step, l.r, l.n_params,
               100.0 * (double)l.n_params / (double)pp_config_params(&m.cfg), pp_config_params(&m.cfg));
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull, step = 0;
    int bad = 0;
    double t0 = pp_cli_now(), last_loss = NAN;
    long tokens_seen = 0;
    /* Epochs of shuffled records, cut into steps of per_step records (the
     * last step of an epoch may be shorter), until total steps. */
    for (int epoch = 1; step < total; epoch++) {
        for (uint64_t i = 0; i < ds.n_records; i++) order[i] = (uint32_t)i;
        for (uint64_t i = ds.n_records - 1; i > 0; i--) {
            rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
            uint64_t j = (rng * 0x2545F4914F6CDD1Dull) % (i + 1);
            uint32_t tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        for (uint64_t first = 0; first < ds.n_records && step < total; first += per_step, step++) {
        const uint32_t *pick = order + first;
        uint64_t np = ds.n_records - first < per_step ? ds.n_records - first : per_step;
        int count = 0;
        for (uint64_t i = 0; i < np; i++) {
            uint64_t r = pick[i];
            int n = (int)(ds.offsets[r + 1] - ds.offsets[r]), p = on_prompt ? 1 : (int)ds.prompt_lens[r];
            count += n > (p > 1 ? p : 1) ? n - (p > 1 ? p : 1) : 0;
        }
        memset(l.grads, 0, l.n_params * sizeof *l.grads);
        double loss = 0;
        int got = 0;
        for (uint64_t i = 0; i < np && count > 0; i++) {
            uint64_t r = pick[i];
            int n = (int)(ds.offsets[r + 1] - ds.offsets[r]), p = on_prompt ? 1 : (int)ds.prompt_lens[r];
            if (n <= (p > 1 ? p : 1)) continue; /* no target in this record */
            if ((s = pp_trainer_record(&t, ds.tokens + ds.offsets[r], n, p, 1.0f / (float)count, 1, &loss, &got)) != PP_OK) goto fail;
            tokens_seen += n;
        }
        loss = count ? loss / count : 0;
        double norm = pp_clip_grad_norm(l.grads, l.n_params, (float)clip);
        float rate = pp_lr_at(sched, (float)lr, (long)step, (long)total, warmup);
        if (!isfinite(loss) || !isfinite(norm)) {
            pp_cli_say(1, "step %llu: non-finite loss or gradient, skipped", (unsigned long long)step + 1);
            if (++bad == 10) {
                s = pp_fail(PP_E_DATA, "10 steps in a row with a non-finite loss or gradient: stopping");
                goto fail;
            }
            continue; /* the step counts, its update is skipped */
        }
        bad = 0;
        if (count > 0) pp_adamw_step(&o, l.params, l.grads, rate);
        last_loss = loss;
        double el = pp_cli_now() - t0;
        if (logf)
            fprintf(logf, "{\"step\": %llu, \"epoch\": %d, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6f, \"tokens\": %ld, \"tokens_per_s\": %.1f}\n",
                    (unsigned long long)step + 1, epoch, loss, (double)rate, norm, tokens_seen, el > 0 ? tokens_seen / el : 0.0);
        if (pp_verbosity >= 2)
            fprintf(stderr, "pp-train: step %llu/%llu epoch %d loss %.4f lr %.3g grad_norm %.4f %.0f tokens/s\n",
                    (unsigned long long)step + 1, (unsigned long long)total, epoch, loss, (double)rate, norm, el > 0 ? tokens_seen / el : 0.0);
        else if (pp_verbosity >= 1 && isatty(2))
            fprintf(stderr, "\rpp-train: step %llu/%llu epoch %d loss %.4f lr %.3g %.0f tokens/s ", (unsigned long long)step + 1,
                    (unsigned long long)total, epoch, loss, (double)rate, el > 0 ? tokens_seen / el : 0.0);
        }
    }
    if (pp_verbosity >= 1 && isatty(2)) fputc('\n', stderr);
    ctx = outdir;
    if ((s = pp_lora_save(&l, outdir, model)) != PP_OK) goto fail;
    pp_cli_say(1, "final loss %.4f; adapter written to %s", last_loss, outdir);
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    if (logf) fclose(logf);
    free(order);
    pp_adamw_free(&o);
    pp_trainer_free(&t);
    pp_lora_free(&l);
    pp_tokens_free(&ds);
    pp_reader_close(in);
    pp_backend_free(be);
    pp_llama_free(&m);
    return rc;
}
