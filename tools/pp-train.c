/* pp-train: a model and a token dataset in, a PEFT LoRA adapter out. LoRA on
 * the CPU backend: packed micro-batches, gradient accumulation, AdamW,
 * clipping, schedules, evaluation, checkpoints that resume bit for bit, and
 * SIGINT/SIGTERM turned into a checkpoint. The gradients equal PEFT's
 * (tests/unit/test_train.c). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "full.h"
#include "hfdir.h"
#include "llama.h"
#include "lora.h"
#include "merge.h"
#include "optim.h"
#include "safetensors.h"
#include "sha256.h"
#include "tokenizer.h"
#include "stream.h"
#include "text.h"
#include "tokens.h"
#include "train.h"

#define EXIT_INTERRUPTED 75 /* EX_TEMPFAIL: stopped by a signal, a checkpoint saved */

static void usage(void)
{
    printf(
"Usage: pp-train -m MODEL -d TOKENS -o OUTDIR [OPTION]...\n"
"       pp-train --full [-m MODEL | --init CONFIG.json --tokenizer TOK] -d TOKENS -o OUTDIR [OPTION]...\n"
"Train a LoRA adapter on a token dataset (pp-tokenize) and write it as a PEFT\n"
"adapter directory. MODEL is a Hugging Face directory or a pp model file (a\n"
"quantized one makes it QLoRA). With --full, train every weight and write a\n"
"Hugging Face model directory instead.\n"
"\n"
"  -m, --model PATH         the frozen base model (required)\n"
"  -d, --data TOKENS        the training data, a pp-tokenize dataset (required; - for stdin)\n"
"  -o, --output OUTDIR      the adapter directory to write (required)\n"
"LoRA:\n"
"  -r, --rank R             LoRA rank (default 16)\n"
"      --alpha A            LoRA alpha (default 32); the scale is alpha/r\n"
"      --rslora             scale alpha/sqrt(r) instead\n"
"      --dropout P          dropout on the adapters' input while training (default 0)\n"
"      --targets LIST       modules: q,k,v,o,gate,up,down or all-linear (default q,v)\n"
"      --layers LIST        adapt only these layers: indices and ranges, e.g. 0,2,8-15 (default all)\n"
"      --init-adapter DIR   start from this PEFT adapter (its rank, alpha, targets and layers)\n"
"Full training:\n"
"      --full               train every weight (no adapter); OUTDIR gets a Hugging Face model\n"
"      --init CONFIG.json   start from random weights for this config instead of -m (pre-training)\n"
"      --tokenizer TOK      with --init: the tokenizer (tokenizer.json or tokenizer.model, or a\n"
"                           directory or pp model file holding one) to ship\n"
"Optimisation:\n"
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
"      --seed N             initialisation, shuffling and dropout (default 0)\n"
"Evaluation:\n"
"      --eval TOKENS        held-out records to measure the loss on\n"
"      --eval-fraction F    hold out this fraction of the training records instead\n"
"      --eval-every N       evaluate every N steps (default: once per epoch), and at the end\n"
"Checkpoints and memory:\n"
"      --save-every N       write OUTDIR/checkpoint-STEP every N steps\n"
"      --keep N             keep only the newest N checkpoints\n"
"      --resume             continue from the newest checkpoint in OUTDIR\n"
"      --grad-checkpoint    recompute each layer's activations in the backward pass\n"
"      --dry-run            print the memory plan and exit\n"
"Output:\n"
"      --log FILE           one JSON line per optimizer step\n"
"  -t, --threads N          CPU threads (default: all cores)\n"
"      --device D           cpu (default), cuda, cuda:N or auto\n"
"      --precision P        fp32, bf16 or fp16: the products' operands (default bf16\n"
"                           on a GPU, fp32 on the CPU, its only one); fp16 scales the\n"
"                           loss dynamically and skips a step that overflows\n"
"  -q, --quiet              no messages but errors\n"
"  -v, --verbose            a line per step\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"73 cannot create output, 74 I/O error, 75 stopped by a signal after saving a\n"
"checkpoint. See pp-train(1).\n");
}

enum { OPT_ALPHA = 256, OPT_RSLORA, OPT_TARGETS, OPT_LR, OPT_EPOCHS, OPT_BATCH, OPT_ACCUM, OPT_MAXSTEPS, OPT_SCHED,
       OPT_WARMUP, OPT_CLIP, OPT_WD, OPT_ONPROMPT, OPT_SEED, OPT_LOG, OPT_DROPOUT, OPT_LAYERS, OPT_INIT_ADAPTER, OPT_EVAL,
       OPT_EVAL_FRACTION, OPT_EVAL_EVERY, OPT_SAVE_EVERY, OPT_KEEP, OPT_RESUME, OPT_GRADCKPT, OPT_DRYRUN, OPT_DEVICE, OPT_FULL, OPT_INIT,
       OPT_TOKENIZER, OPT_PRECISION };

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
    {"layers", required_argument, 0, OPT_LAYERS}, {"init-adapter", required_argument, 0, OPT_INIT_ADAPTER},
    {"eval", required_argument, 0, OPT_EVAL}, {"eval-fraction", required_argument, 0, OPT_EVAL_FRACTION},
    {"eval-every", required_argument, 0, OPT_EVAL_EVERY}, {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"keep", required_argument, 0, OPT_KEEP}, {"resume", no_argument, 0, OPT_RESUME},
    {"grad-checkpoint", no_argument, 0, OPT_GRADCKPT}, {"dry-run", no_argument, 0, OPT_DRYRUN},
    {"device", required_argument, 0, OPT_DEVICE}, {"precision", required_argument, 0, OPT_PRECISION},
    {"full", no_argument, 0, OPT_FULL}, {"init", required_argument, 0, OPT_INIT}, {"tokenizer", required_argument, 0, OPT_TOKENIZER},
    {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'}, {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0},
};

/* Everything the command line sets. */
typedef struct args {
    const char *model, *data, *outdir, *log, *warmup, *layers, *init_adapter, *eval, *init, *tokenizer, *device;
    uint64_t rank, epochs, batch, accum, max_steps, seed, threads, eval_every, save_every, keep;
    double alpha, lr, clip, wd, dropout, eval_fraction;
    int rslora, on_prompt, resume, grad_ckpt, dry_run, shape_set, full;
    pp_precision precision; /* PP_PREC_AUTO: not given (the device's default) */
    unsigned targets;
    pp_schedule sched;
} args;

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

/* "0,2,8-15" into on (n layers); -1 when malformed or out of range. */
static int parse_layers(const char *s, int n, unsigned char *on)
{
    uint64_t r[256][2];
    int k = pp_cli_ranges(s, 0, r, 256);
    memset(on, 0, (size_t)n);
    for (int i = 0; i < k; i++) {
        if (r[i][1] >= (uint64_t)n) return -1;
        for (uint64_t j = r[i][0]; j <= r[i][1]; j++) on[j] = 1;
    }
    return k > 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ state */

typedef struct run {
    args a;
    pp_llama m;
    pp_backend *be;
    pp_tokens ds, evds;
    uint32_t *train_ids, *eval_ids; /* records used for training and for evaluation */
    uint64_t n_train, n_eval;
    int longest;
    pp_lora l;
    pp_full F;              /* --full */
    float *params, *grads;  /* what the optimizer updates: the adapter's, or every weight (host copies) */
    size_t n_params;
    float *bp, *bg, *bm, *bv; /* the same, and AdamW's moments, where the backend works on them */
    float *dev_mv;          /* a device's moments (2 n_params), or NULL */
    pp_trainer t;
    pp_adamw o;
    uint32_t *order;
    /* the position: everything a checkpoint keeps besides weights and moments */
    uint64_t step, total, cursor, rng_epoch;
    int epoch, bad;
    float loss_scale;       /* fp16: the dynamic loss scale (GradScaler's); else 1 */
    uint64_t scale_good;    /* fp16: steps since the scale last changed or a step overflowed */
    uint64_t overflow_at;   /* a test's injected overflow: this step's gradients become inf ($PP_TRAIN_OVERFLOW_AT) */
    long tokens_seen;
    long warmup;
    char base_sha[65], data_sha[65], config[1024], base_quant[16];
    double last_loss, last_eval;
} run;

/* On a GPU, the output layer and the loss take this many rows at a time:
 * Llama 2's logits then keep 31 MiB, not 125 KiB per token of the
 * micro-batch. The CPU takes them all at once, as it always has: blocks of
 * rows round a few gradients differently in the last bit. */
#define PP_LOGIT_ROWS 256

/* On a GPU, records longer than this keep each attention row's log-sum-exp,
 * not its probabilities (the backward pass recomputes them: attention.cu):
 * the probabilities grow with the square of the length. Shorter records keep
 * them, for the backward pass's batched products. */
#define PP_LSE_FROM 1024

/* The trainer's settings on a GPU (a run's, and its dry run's plan): in
 * bf16 or fp16 the layers' inputs are kept in that type, as the products
 * see them. */
static void gpu_opts(pp_train_opts *to, int longest, pp_precision p)
{
    to->logit_rows = PP_LOGIT_ROWS;
    const char *from = getenv("PP_TRAIN_LSE_FROM"); /* for measurements: another threshold */
    to->attention_lse = longest > (from ? atoi(from) : PP_LSE_FROM);
    to->act16 = p == PP_PREC_BF16 || p == PP_PREC_FP16;
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void catch_stop_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

static int record_len(const pp_tokens *d, uint64_t r) { return (int)(d->offsets[r + 1] - d->offsets[r]); }

/* The prompt tokens of record r that get no loss (at least the first). */
static int prompt_of(const run *R, const pp_tokens *d, uint64_t r)
{
    int p = R->a.on_prompt ? 1 : (int)d->prompt_lens[r];
    return p > 1 ? p : 1;
}

static int targets_of(const run *R, const pp_tokens *d, uint64_t r)
{
    int n = record_len(d, r), p = prompt_of(R, d, r), k = 0;
    if (!d->loss_mask || R->a.on_prompt) return n > p ? n - p : 0;
    for (int j = p; j < n; j++) k += d->loss_mask[d->offsets[r] + (uint64_t)j];
    return k;
}

static void shuffle(uint32_t *v, uint64_t n, uint64_t *rng)
{
    for (uint64_t i = n ? n - 1 : 0; i > 0; i--) {
        *rng ^= *rng >> 12, *rng ^= *rng << 25, *rng ^= *rng >> 27;
        uint64_t j = (*rng * 0x2545F4914F6CDD1Dull) % (i + 1);
        uint32_t tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
    }
}

static void data_digest(const pp_tokens *d, pp_sha256 *h)
{
    pp_sha256_update(h, d->offsets, (d->n_records + 1) * sizeof *d->offsets);
    pp_sha256_update(h, d->tokens, d->n_tokens * sizeof *d->tokens);
    pp_sha256_update(h, d->prompt_lens, d->n_records * sizeof *d->prompt_lens);
    if (d->loss_mask) pp_sha256_update(h, d->loss_mask, d->n_tokens);
}

/* Runs micro-batches of the records ids[0..n) from dataset d through the
 * trainer: training (loss scaled by scale) or evaluation. */
static pp_status micro_batches(run *R, const pp_tokens *d, const uint32_t *ids, uint64_t n, float scale, int backward,
                               uint64_t key, double *loss, int *targets)
{
    const uint32_t *tok[256]; /* --batch-size is at most 256 */
    const uint8_t *lm[256];
    int len[256], pl[256];
    uint64_t per = R->a.batch;
    for (uint64_t first = 0, mb = 0; first < n; first += per, mb++) {
        int k = 0;
        for (uint64_t i = first; i < n && i < first + per; i++) {
            uint64_t r = ids[i];
            if (targets_of(R, d, r) == 0) continue; /* nothing to learn or measure */
            tok[k] = d->tokens + d->offsets[r], len[k] = record_len(d, r), pl[k] = prompt_of(R, d, r);
            lm[k] = d->loss_mask && !R->a.on_prompt ? d->loss_mask + d->offsets[r] : NULL;
            k++;
        }
        if (!k) continue;
        R->t.mask_key = (key + mb) << 16; /* the dropout masks of micro-batch key + mb */
        R->t.loss_mask = d->loss_mask && !R->a.on_prompt ? lm : NULL; /* chat: the assistant turns only */
        PP_TRY(pp_trainer_batch(&R->t, tok, len, pl, k, scale, backward, loss, targets));
        if (backward)
            for (int i = 0; i < k; i++) R->tokens_seen += len[i];
    }
    return PP_OK;
}

static pp_status evaluate(run *R, double *out)
{
    double loss = 0;
    int targets = 0;
    const pp_tokens *d = R->a.eval ? &R->evds : &R->ds;
    PP_TRY(micro_batches(R, d, R->eval_ids, R->n_eval, 0, 0, 0, &loss, &targets));
    *out = targets ? loss / targets : NAN;
    return PP_OK;
}

/* ------------------------------------------------------------ checkpoints */

static void remove_checkpoint_dir(const char *dir)
{
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors", "trainer_state.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = pp_path_join(dir, files[i]);
        if (p) unlink(p);
        free(p);
    }
    rmdir(dir);
}

/* Steps of the complete checkpoints in outdir (checkpoint-N with a trainer
 * state), sorted; the count. */
static size_t list_checkpoints(const char *outdir, uint64_t **steps)
{
    *steps = NULL;
    DIR *d = opendir(outdir);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long s;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%llu%c", &s, &tail) != 1) continue;
        char *dir = pp_path_join(outdir, e->d_name), *st = dir ? pp_path_join(dir, "trainer_state.safetensors") : NULL;
        struct stat sb;
        int ok = st && stat(st, &sb) == 0;
        free(dir);
        free(st);
        if (!ok) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *nv = realloc(*steps, cap * sizeof *nv);
            if (!nv) break;
            *steps = nv;
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            uint64_t x = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = x;
        }
    return n;
}

/* OUTDIR/checkpoint-STEP: the adapter (PEFT's format) and the trainer
 * state, written into a temporary directory renamed into place. */
/* A device's adapter weights and moments into the host copies (for a
 * checkpoint or the output); nothing to do on the CPU. */
static void to_host(run *R)
{
    if (!R->dev_mv) return;
    R->be->ops->download(R->be, R->params, R->bp, R->n_params * sizeof(float));
    R->be->ops->download(R->be, R->o.m, R->bm, R->n_params * sizeof(float));
    R->be->ops->download(R->be, R->o.v, R->bv, R->n_params * sizeof(float));
}

static pp_status save_checkpoint(run *R)
{
    to_host(R);
    char name[64], tmpname[80];
    snprintf(name, sizeof name, "checkpoint-%llu", (unsigned long long)R->step);
    snprintf(tmpname, sizeof tmpname, ".checkpoint-%llu.tmp", (unsigned long long)R->step);
    char *dir = pp_path_join(R->a.outdir, name), *tmp = pp_path_join(R->a.outdir, tmpname), *state = tmp ? pp_path_join(tmp, "trainer_state.safetensors") : NULL;
    pp_status s = dir && tmp && state ? PP_OK : pp_fail(PP_E_NOMEM, "out of memory");
    struct stat sb;
    if (s == PP_OK && stat(dir, &sb) == 0) goto out; /* this step is saved already */
    if (s == PP_OK) {
        remove_checkpoint_dir(tmp);
        if (R->a.full && mkdir(tmp, 0777) != 0) s = pp_fail(PP_E_CANTCREAT, "%s: cannot create: %s", tmp, strerror(errno));
        else if (!R->a.full) s = pp_lora_save(&R->l, tmp, R->a.model ? R->a.model : "");
    }
    if (s == PP_OK) {
        char v[10][32];
        snprintf(v[0], 32, "%llu", (unsigned long long)R->step);
        snprintf(v[1], 32, "%d", R->epoch);
        snprintf(v[2], 32, "%llu", (unsigned long long)R->cursor);
        snprintf(v[3], 32, "%llu", (unsigned long long)R->rng_epoch);
        snprintf(v[4], 32, "%ld", R->o.t);
        snprintf(v[5], 32, "%ld", R->tokens_seen);
        snprintf(v[6], 32, "%d", R->bad);
        snprintf(v[7], 32, "%.9g", (double)R->loss_scale);
        snprintf(v[8], 32, "%llu", (unsigned long long)R->scale_good);
        const char *kv[] = {"pp.kind", "checkpoint", "pp.version", "1", "step", v[0], "epoch", v[1], "cursor", v[2],
                            "rng", v[3], "adamw.t", v[4], "tokens", v[5], "bad_steps", v[6], "loss_scale", v[7],
                            "loss_scale.good_steps", v[8], "base.sha256", R->base_sha,
                            "data.sha256", R->data_sha, "config", R->config};
        uint64_t shape[1] = {R->o.n};
        pp_st_entry e[3] = {{"adamw.m", PP_F32, 1, shape, R->o.m}, {"adamw.v", PP_F32, 1, shape, R->o.v},
                            {"params", PP_F32, 1, shape, R->params}};
        pp_writer *w = NULL;
        s = pp_writer_open(&w, state, 0);
        if (s == PP_OK) s = pp_st_write(w, e, R->a.full ? 3 : 2, kv, sizeof kv / sizeof *kv / 2);
        if (s == PP_OK) s = pp_writer_commit(w);
        else pp_writer_abort(w);
    }
    if (s == PP_OK && rename(tmp, dir) != 0) s = pp_fail(PP_E_CANTCREAT, "%s: cannot rename: %s", dir, strerror(errno));
    if (s != PP_OK) {
        remove_checkpoint_dir(tmp);
        pp_fail_ctx(s, dir);
        goto out;
    }
    pp_cli_say(2, "checkpoint %s", dir);
    if (R->a.keep) {
        uint64_t *steps;
        size_t n = list_checkpoints(R->a.outdir, &steps);
        for (size_t i = 0; i + R->a.keep < n; i++) {
            snprintf(name, sizeof name, "checkpoint-%llu", (unsigned long long)steps[i]);
            char *old = pp_path_join(R->a.outdir, name);
            if (old) remove_checkpoint_dir(old);
            free(old);
        }
        free(steps);
    }
out:
    free(dir);
    free(tmp);
    free(state);
    return s;
}

static pp_status meta_u64(pp_st_reader *st, const char *key, uint64_t *v)
{
    const char *s = pp_st_meta(st, key);
    if (!s || pp_cli_u64(s, 0, UINT64_MAX, v)) return pp_fail(PP_E_DATA, "trainer_state.safetensors: no valid \"%s\"", key);
    return PP_OK;
}

/* Restores the newest checkpoint of OUTDIR, refusing one made for another
 * base, dataset or configuration. */
static pp_status resume(run *R)
{
    uint64_t *steps;
    size_t n = list_checkpoints(R->a.outdir, &steps);
    if (!n) {
        free(steps);
        return pp_fail(PP_E_NOINPUT, "%s: --resume: no checkpoint to resume from", R->a.outdir);
    }
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%llu", (unsigned long long)steps[n - 1]);
    free(steps);
    char *dir = pp_path_join(R->a.outdir, name), *state = dir ? pp_path_join(dir, "trainer_state.safetensors") : NULL;
    pp_reader *r = NULL;
    pp_st_reader *st = NULL;
    pp_lora back = {0};
    pp_status s = dir && state ? pp_reader_open(&r, state) : pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = pp_st_open(&st, r);
    const char *kind = s == PP_OK ? pp_st_meta(st, "pp.kind") : NULL;
    if (s == PP_OK && (!kind || strcmp(kind, "checkpoint")))
        s = pp_fail(PP_E_DATA, "trainer_state.safetensors: not a pp checkpoint");
    const char *b = s == PP_OK ? pp_st_meta(st, "base.sha256") : NULL, *d = s == PP_OK ? pp_st_meta(st, "data.sha256") : NULL,
               *c = s == PP_OK ? pp_st_meta(st, "config") : NULL;
    if (s == PP_OK && (!b || strcmp(b, R->base_sha)))
        s = pp_fail(PP_E_DATA, "the checkpoint was made with another base model (sha256 %.12s..., this one %.12s...)",
                    b ? b : "?", R->base_sha);
    if (s == PP_OK && (!d || strcmp(d, R->data_sha)))
        s = pp_fail(PP_E_DATA, "the checkpoint was made with other training or evaluation data");
    if (s == PP_OK && (!c || strcmp(c, R->config)))
        s = pp_fail(PP_E_DATA, "the checkpoint was made with other settings:\n  it has:    %s\n  this run: %s", c ? c : "?",
                    R->config);
    uint64_t step = 0, epoch = 0, cursor = 0, rng = 0, t = 0, tokens = 0, bad = 0, good = 0;
    double scale = 1;
    if (s == PP_OK) s = meta_u64(st, "step", &step);
    if (s == PP_OK) s = meta_u64(st, "epoch", &epoch);
    if (s == PP_OK) s = meta_u64(st, "cursor", &cursor);
    if (s == PP_OK) s = meta_u64(st, "rng", &rng);
    if (s == PP_OK) s = meta_u64(st, "adamw.t", &t);
    if (s == PP_OK) s = meta_u64(st, "tokens", &tokens);
    if (s == PP_OK) s = meta_u64(st, "bad_steps", &bad);
    if (s == PP_OK) s = meta_u64(st, "loss_scale.good_steps", &good);
    const char *ls = s == PP_OK ? pp_st_meta(st, "loss_scale") : NULL;
    if (s == PP_OK && (!ls || pp_cli_double(ls, 1e-30, 1e30, &scale)))
        s = pp_fail(PP_E_DATA, "trainer_state.safetensors: no valid \"loss_scale\"");
    if (s == PP_OK && (step > R->total || cursor > R->n_train || epoch < 1 || epoch > 1u << 30))
        s = pp_fail(PP_E_DATA, "trainer_state.safetensors: step %llu of %llu, cursor %llu: out of range",
                    (unsigned long long)step, (unsigned long long)R->total, (unsigned long long)cursor);
    const char *names[3] = {"adamw.m", "adamw.v", "params"};
    float *dst[3] = {R->o.m, R->o.v, R->params};
    for (int i = 0; i < (R->a.full ? 3 : 2) && s == PP_OK; i++) {
        const pp_tensor_info *ti = pp_st_tensor(st, (size_t)i);
        if (!ti || strcmp(ti->name, names[i]) || ti->dtype != PP_F32 || ti->ndim != 1 || ti->shape[0] != R->o.n)
            s = pp_fail(PP_E_DATA, "trainer_state.safetensors: %s is not F32 [%zu]", names[i], R->o.n);
        else s = pp_st_read(st, ti, dst[i]);
    }
    if (s == PP_OK && !R->a.full) s = pp_lora_load(&back, &R->m.cfg, dir);
    if (s == PP_OK && !R->a.full && back.n_params != R->l.n_params)
        s = pp_fail(PP_E_DATA, "the checkpoint's adapter has another shape");
    if (s == PP_OK) {
        if (!R->a.full) memcpy(R->l.params, back.params, back.n_params * sizeof(float));
        R->step = step, R->epoch = (int)epoch, R->cursor = cursor, R->rng_epoch = rng, R->o.t = (long)t;
        R->tokens_seen = (long)tokens, R->bad = (int)bad, R->loss_scale = (float)scale, R->scale_good = good;
        pp_cli_say(1, "resuming from %s (step %llu of %llu)", dir, (unsigned long long)step, (unsigned long long)R->total);
    }
    if (s != PP_OK && dir) pp_fail_ctx(s, dir);
    pp_lora_free(&back);
    pp_st_close(st);
    pp_reader_close(r);
    free(dir);
    free(state);
    return s;
}

/* ------------------------------------------------------------ the plan */

/* Config and weight bytes of a model without reading its weights. */
static pp_status model_plan(const char *path, pp_config *cfg, uint64_t *bytes)
{
    struct stat sb;
    if (strcmp(path, "-") && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        pp_hfdir *h;
        PP_TRY(pp_hfdir_open(&h, path));
        *cfg = *pp_hfdir_config(h);
        *bytes = 0;
        for (size_t i = 0; i < pp_hfdir_count(h); i++) {
            const pp_tensor_info *t = pp_hfdir_tensor(h, i, NULL);
            *bytes += t->end - t->begin;
        }
        pp_hfdir_close(h);
        return PP_OK;
    }
    pp_reader *r;
    pp_st_reader *st = NULL;
    PP_TRY(pp_reader_open(&r, path));
    pp_status s = pp_st_open(&st, r);
    const char *c = s == PP_OK ? pp_st_meta(st, "config") : NULL;
    if (s == PP_OK && !c) s = pp_fail(PP_E_DATA, "not a pp model file (no config)");
    if (s == PP_OK) s = pp_config_parse(cfg, c, strlen(c));
    if (s == PP_OK) *bytes = pp_st_data_size(st);
    pp_st_close(st);
    pp_reader_close(r);
    return s;
}

static void plan_line(const char *what, double bytes)
{
    printf("  %-34s %10.1f MiB\n", what, bytes / 1048576.0);
}

static pp_status dry_run(run *R, const pp_train_opts *to)
{
    pp_config cfg = R->m.cfg;
    uint64_t wbytes = 0;
    if (!R->a.init) PP_TRY(model_plan(R->a.model, &cfg, &wbytes));
    size_t n = R->l.n_params;
    if (R->a.full) {
        n = (size_t)pp_config_params(&cfg);
        wbytes = 0; /* the fp32 master weights replace the stored ones */
    }
    double act = (double)pp_trainer_bytes(&cfg, &R->l, to), big = (double)pp_llama_largest_weight(&cfg);
    int gpu = R->a.device && !strncmp(R->a.device, "cuda", 4);
    pp_precision prec = R->a.precision ? R->a.precision : gpu ? PP_PREC_BF16 : PP_PREC_FP32;
    double scratch = 4.0 * big + 4.0 * (double)(R->a.threads ? R->a.threads : 1) * to->max_len;
    if (gpu) { /* backend_cuda.cu's buffers: two blocks of a weight's rows in 16 bits, or one in fp32; the operands' 16-bit
                * copies, two held ones from PP_CUDA_HOLD_MIN (2^20) values up and two for smaller ones (the
                * largest: an activation or the logits' gradient); attention_backward's (heads, n, n) */
        double in_max = cfg.hidden > cfg.dim ? cfg.hidden : cfg.dim, T = to->max_tokens;
        double chunk = big < 16777216.0 ? big : 16777216.0; /* PP_CUDA_CHUNK: weights widen in blocks of rows */
        double lr = to->logit_rows > 0 && to->logit_rows < T ? to->logit_rows : T, logit16 = lr * cfg.vocab;
        double op = logit16 > T * in_max ? logit16 : T * in_max, hold = 1048576.0;
        scratch = 4.0 * chunk + 4.0 * (op < hold ? op : hold) + (op >= hold ? 4.0 * op : 0) +
                  4.0 * cfg.n_heads * (double)to->max_len * (to->attention_lse ? 1 : to->max_len);
    }
    double total = (double)wbytes + 4.0 * n * 4 + act + scratch;
    char where[64];
    snprintf(where, sizeof where, "%s, %s", gpu ? "GPU" : "CPU", pp_precision_name(prec));
    if (R->a.full)
        printf("pp-train memory plan (%s): %d layers, dim %d, vocab %d; every weight trained: %zu parameters\n", where,
               cfg.n_layers, cfg.dim, cfg.vocab, n);
    else
        printf("pp-train memory plan (%s): %d layers, dim %d, vocab %d; LoRA r=%d on %zu parameters (%.3f%%)\n", where,
               cfg.n_layers, cfg.dim, cfg.vocab, R->l.r, n, 100.0 * (double)n / (double)pp_config_params(&cfg));
    printf("  micro-batch: %llu records, up to %d tokens (longest record %d)%s\n", (unsigned long long)R->a.batch,
           to->max_tokens, to->max_len, to->grad_checkpoint ? ", gradient checkpointing" : "");
    plan_line("frozen weights (as stored)", (double)wbytes);
    plan_line(R->a.full ? "weights (fp32 master)" : "LoRA weights (fp32)", 4.0 * n);
    plan_line(R->a.full ? "gradients (fp32)" : "LoRA gradients (fp32)", 4.0 * n);
    plan_line("AdamW moments (fp32, 2x)", 8.0 * n);
    plan_line("activations and their gradients", act);
    plan_line(gpu ? "backend scratch (16-bit copies)" : "backend scratch (dequantization)", scratch);
    plan_line(gpu ? "peak on the device" : "peak", total);
    if (gpu) printf("  (the CUDA context and cuBLAS's workspace come on top)\n");
    return PP_OK;
}

/* ------------------------------------------------------------ pp-train.json */

static pp_status write_summary(run *R, double seconds)
{
    pp_buf b = {0};
    pp_status s = pp_buf_adds(&b, "{\n  \"tool\": \"pp-train\",\n  \"version\": \"" PP_VERSION "\",\n  \"base\": ");
    const char *base = R->a.init ? R->a.init : R->a.model;
    if (s == PP_OK) s = pp_buf_json_string(&b, base, strlen(base));
    if (s == PP_OK)
        s = pp_buf_printf(&b, ",\n  \"kind\": \"%s\",\n  \"base_sha256\": \"%s\",\n  \"base_quant\": \"%s\",\n  \"tokenizer_sha256\": \"%s\",\n  \"data\": ",
                          R->a.full ? (R->a.init ? "pre-training" : "full") : "lora", R->base_sha, R->base_quant,
                          R->ds.tokenizer_sha256);
    if (s == PP_OK) s = pp_buf_json_string(&b, R->a.data, strlen(R->a.data));
    if (s == PP_OK)
        s = pp_buf_printf(&b, ",\n  \"data_sha256\": \"%s\",\n  \"train_records\": %llu,\n  \"eval_records\": %llu,\n"
                              "  \"settings\": ",
                          R->data_sha, (unsigned long long)R->n_train, (unsigned long long)R->n_eval);
    if (s == PP_OK) s = pp_buf_json_string(&b, R->config, strlen(R->config));
    if (s == PP_OK)
        s = pp_buf_printf(&b, ",\n  \"steps\": %llu,\n  \"tokens\": %ld,\n  \"seconds\": %.3f,\n  \"final_loss\": ",
                          (unsigned long long)R->step, R->tokens_seen, seconds);
    if (s == PP_OK) s = isfinite(R->last_loss) ? pp_buf_printf(&b, "%.6f", R->last_loss) : pp_buf_adds(&b, "null");
    if (s == PP_OK) s = pp_buf_adds(&b, ",\n  \"final_eval_loss\": ");
    if (s == PP_OK) s = isfinite(R->last_eval) ? pp_buf_printf(&b, "%.6f", R->last_eval) : pp_buf_adds(&b, "null");
    if (s == PP_OK)
        s = pp_buf_printf(&b, ",\n  \"device\": \"%s\",\n  \"precision\": \"%s\"", R->be->ops->name,
                          pp_precision_name(R->be->precision));
    if (s == PP_OK && !R->be->ops->host_memory)
        s = pp_buf_printf(&b, ",\n  \"peak_device_bytes\": %zu", R->be->peak_bytes);
    if (s == PP_OK) s = pp_buf_adds(&b, "\n}\n");
    char *path = pp_path_join(R->a.outdir, "pp-train.json");
    pp_writer *w = NULL;
    if (s == PP_OK && !path) s = pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = pp_writer_open(&w, path, 0);
    if (s == PP_OK) s = pp_write(w, b.p, b.len);
    if (s == PP_OK) s = pp_writer_commit(w);
    else pp_writer_abort(w);
    free(path);
    pp_buf_free(&b);
    return s;
}

/* ------------------------------------------------------------ --full output */

/* OUTDIR as a Hugging Face model directory: fp32 safetensors, config.json,
 * tokenizer.model. */
static pp_status write_model(run *R)
{
    char *where = NULL;
    pp_status s = pp_merge_write(&R->m, NULL, R->a.init ? NULL : R->a.model, R->a.outdir, PP_F32, 5000000000ull, &where);
    if (s != PP_OK && where) pp_fail_ctx(s, where);
    free(where);
    return s;
}

/* ------------------------------------------------------------ the loop */

static void progress(run *R, double loss, double rate, double t0, uint64_t start_step)
{
    double el = pp_cli_now() - t0, per = R->step > start_step ? el / (double)(R->step - start_step) : 0;
    double eta = per * (double)(R->total - R->step);
    if (pp_verbosity >= 2)
        fprintf(stderr, "pp-train: step %llu/%llu epoch %d loss %.4f lr %.3g %.0f tokens/s ETA %.0fs\n",
                (unsigned long long)R->step, (unsigned long long)R->total, R->epoch, loss, rate,
                el > 0 ? R->tokens_seen / el : 0.0, eta);
    else if (pp_verbosity >= 1 && isatty(2))
        fprintf(stderr, "\rpp-train: step %llu/%llu epoch %d loss %.4f lr %.3g %.0f tokens/s ETA %02d:%02d:%02d ",
                (unsigned long long)R->step, (unsigned long long)R->total, R->epoch, loss, rate,
                el > 0 ? R->tokens_seen / el : 0.0, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
}

static pp_status train(run *R, FILE *logf, int *interrupted)
{
    const args *a = &R->a;
    uint64_t per_step = a->batch * a->accum, start_step = R->step;
    double t0 = pp_cli_now();
    long tokens0 = R->tokens_seen;
    uint64_t eval_every = a->eval_every ? a->eval_every : (R->n_train + per_step - 1) / per_step;
    while (R->step < R->total) {
        /* the epoch's order comes from the generator's state at its start */
        uint64_t rng = R->rng_epoch;
        memcpy(R->order, R->train_ids, R->n_train * sizeof *R->order);
        shuffle(R->order, R->n_train, &rng);
        if (R->cursor >= R->n_train) {
            R->epoch++;
            R->cursor = 0;
            R->rng_epoch = rng;
            continue;
        }
        for (; R->cursor < R->n_train && R->step < R->total; R->cursor += per_step) {
            if (stop_signal) {
                *interrupted = 1;
                return R->step > 0 ? save_checkpoint(R) : PP_OK;
            }
            const uint32_t *pick = R->order + R->cursor;
            uint64_t np = R->n_train - R->cursor < per_step ? R->n_train - R->cursor : per_step;
            int count = 0;
            for (uint64_t i = 0; i < np; i++) count += targets_of(R, &R->ds, pick[i]);
            const pp_backend_ops *op = R->be->ops;
            op->zero(R->be, R->bg, R->n_params);
            double loss = 0;
            int got = 0;
            /* the gradients come scaled by S (fp16's loss scale, else 1) */
            float S = R->loss_scale, inj = R->overflow_at == R->step + 1 ? INFINITY : 1.0f;
            if (count > 0) {
                PP_TRY(micro_batches(R, &R->ds, pick, np, S * inj / (float)count, 1, R->step * a->accum, &loss, &got));
                loss /= count;
            }
            /* unscale, clip_grad_norm_ and AdamW where the gradients are */
            double norm = sqrt(op->sumsq(R->be, R->bg, R->n_params)) / S;
            float coef = pp_clip_coef(norm, (float)a->clip), f = coef < 1.0f ? coef / S : 1.0f / S;
            if (f != 1.0f && isfinite(norm)) op->scale(R->be, R->bg, R->n_params, f);
            float rate = pp_lr_at(a->sched, (float)a->lr, (long)R->step, (long)R->total, R->warmup);
            R->step++;
            int fp16 = R->be->precision == PP_PREC_FP16, skipped = !isfinite(loss) || !isfinite(norm);
            if (skipped && fp16 && isfinite(loss)) {
                /* GradScaler: an overflow skips the step and halves the scale */
                pp_cli_say(2, "step %llu: gradients overflowed at loss scale %g; update skipped, scale halved",
                           (unsigned long long)R->step, (double)S);
                R->loss_scale = S * 0.5f > 1.0f ? S * 0.5f : 1.0f;
                R->scale_good = 0;
            } else if (skipped) {
                pp_cli_say(1, "step %llu: non-finite loss or gradient, update skipped", (unsigned long long)R->step);
                if (++R->bad == 10)
                    return pp_fail(PP_E_DATA, "10 steps in a row with a non-finite loss or gradient: stopping");
            } else {
                R->bad = 0;
                if (fp16 && ++R->scale_good == 2000 && S < 16777216.0f) /* and doubles it after 2000 good steps */
                    R->loss_scale = S * 2.0f, R->scale_good = 0;
                if (count > 0) {
                    pp_adamw_hyper h = pp_adamw_next(&R->o, rate);
                    const float hv[6] = {h.b1, h.b2, h.eps, h.step, h.decay, h.bc2s};
                    op->adamw(R->be, R->bp, R->bg, R->bm, R->bv, R->n_params, R->o.n_decay, hv);
                }
                R->last_loss = loss;
            }
            double ev = NAN;
            if (R->n_eval && (R->step % eval_every == 0 || R->step == R->total)) {
                PP_TRY(evaluate(R, &ev));
                R->last_eval = ev;
                pp_cli_say(2, "step %llu: eval loss %.4f", (unsigned long long)R->step, ev);
            }
            double el = pp_cli_now() - t0, tps = el > 0 ? (double)(R->tokens_seen - tokens0) / el : 0.0;
            if (logf) {
                fprintf(logf, "{\"step\": %llu, \"epoch\": %d, ", (unsigned long long)R->step, R->epoch);
                if (isfinite(loss)) fprintf(logf, "\"loss\": %.6f, ", loss);
                else fprintf(logf, "\"loss\": null, ");
                if (skipped) fprintf(logf, "\"skipped\": true, ");
                fprintf(logf, "\"lr\": %.6g, \"grad_norm\": ", (double)rate);
                if (isfinite(norm)) fprintf(logf, "%.6f", norm);
                else fprintf(logf, "null");
                fprintf(logf, ", \"tokens\": %ld, \"tokens_per_s\": %.1f", R->tokens_seen, tps);
                if (R->be->precision == PP_PREC_FP16) fprintf(logf, ", \"loss_scale\": %g", (double)S);
                if (!isnan(ev)) fprintf(logf, ", \"eval_loss\": %.6f", ev);
                fprintf(logf, "}\n");
            }
            progress(R, loss, (double)rate, t0, start_step);
            if (a->save_every && R->step % a->save_every == 0 && R->step < R->total) {
                uint64_t at = R->cursor; /* the position after this step */
                R->cursor = at + per_step < R->n_train ? at + per_step : R->n_train;
                pp_status s = save_checkpoint(R);
                R->cursor = at;
                if (s != PP_OK) return s;
            }
        }
    }
    if (pp_verbosity >= 1 && isatty(2) && pp_verbosity < 2) fputc('\n', stderr);
    return PP_OK;
}

/* ------------------------------------------------------------ main */

/* Reads a token dataset for model m, whose tokenizer.model has digest
 * tok_sha ("" when the model has none: not checked). */
static pp_status load_tokens(const char *path, pp_tokens *d, const pp_llama *m, const char *tok_sha, const char *what)
{
    pp_reader *in = NULL;
    pp_status s = pp_reader_open(&in, path);
    if (s == PP_OK) s = pp_tokens_read(d, in);
    pp_reader_close(in);
    if (s == PP_OK && *tok_sha && strcmp(tok_sha, d->tokenizer_sha256))
        s = pp_fail(PP_E_DATA, "tokenized with another tokenizer than the model's (sha256 %.12s..., model %.12s...)",
                    d->tokenizer_sha256, tok_sha);
    if (s == PP_OK && d->vocab_size > (uint32_t)m->cfg.vocab)
        s = pp_fail(PP_E_DATA, "token ids up to %u, the model has %d", d->vocab_size, m->cfg.vocab);
    if (s == PP_OK && d->n_records == 0) s = pp_fail(PP_E_DATA, "no %s records", what);
    if (s != PP_OK) pp_fail_ctx(s, path);
    return s;
}

int main(int argc, char **argv)
{
    pp_blas_setup(argv); /* the CPU's best OpenBLAS kernels (may execute argv again) */
    pp_cli_init("pp-train");
    static run R;
    args *a = &R.a;
    *a = (args){.warmup = "0", .rank = 16, .epochs = 2, .batch = 2, .accum = 1, .alpha = 32, .lr = 2e-4, .clip = 1.0,
                .targets = 1u << PP_LORA_Q | 1u << PP_LORA_V, .sched = PP_SCHED_LINEAR};
    R.last_loss = R.last_eval = NAN;
    int c;
    uint64_t v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:d:o:r:t:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'd': a->data = optarg; break;
        case 'o': a->outdir = optarg; break;
        case 'r': if (pp_cli_u64(optarg, 1, 4096, &a->rank)) return pp_cli_usage("--rank wants 1..4096"); a->shape_set = 1; break;
        case OPT_ALPHA: if (pp_cli_double(optarg, 1e-6, 1e6, &a->alpha)) return pp_cli_usage("--alpha wants a positive number"); a->shape_set = 1; break;
        case OPT_RSLORA: a->rslora = 1; a->shape_set = 1; break;
        case OPT_TARGETS: if (parse_targets(optarg, &a->targets)) return pp_cli_usage("--targets wants q,k,v,o,gate,up,down or all-linear, not \"%s\"", optarg); a->shape_set = 1; break;
        case OPT_LAYERS: a->layers = optarg; a->shape_set = 1; break;
        case OPT_INIT_ADAPTER: a->init_adapter = optarg; break;
        case OPT_LR: if (pp_cli_double(optarg, 0, 10, &a->lr)) return pp_cli_usage("--lr wants 0..10"); break;
        case OPT_EPOCHS: if (pp_cli_u64(optarg, 1, 1000000, &a->epochs)) return pp_cli_usage("--epochs wants a count"); break;
        case OPT_BATCH: if (pp_cli_u64(optarg, 1, 256, &a->batch)) return pp_cli_usage("--batch-size wants 1..256"); break;
        case OPT_ACCUM: if (pp_cli_u64(optarg, 1, 65536, &a->accum)) return pp_cli_usage("--grad-accum wants 1..65536"); break;
        case OPT_MAXSTEPS: if (pp_cli_u64(optarg, 1, 1u << 30, &a->max_steps)) return pp_cli_usage("--max-steps wants a count"); break;
        case OPT_SCHED:
            if (!strcmp(optarg, "linear")) a->sched = PP_SCHED_LINEAR;
            else if (!strcmp(optarg, "cosine")) a->sched = PP_SCHED_COSINE;
            else if (!strcmp(optarg, "constant")) a->sched = PP_SCHED_CONSTANT;
            else return pp_cli_usage("--schedule wants linear, cosine or constant");
            break;
        case OPT_WARMUP: {
            double f;
            a->warmup = optarg;
            if (strchr(optarg, '.') ? pp_cli_double(optarg, 0, 1, &f) : pp_cli_u64(optarg, 0, 1u << 30, &v))
                return pp_cli_usage("--warmup wants steps or a fraction in [0, 1]");
            break;
        }
        case OPT_CLIP: if (pp_cli_double(optarg, 0, 1e9, &a->clip)) return pp_cli_usage("--max-grad-norm wants a number >= 0"); break;
        case OPT_WD: if (pp_cli_double(optarg, 0, 10, &a->wd)) return pp_cli_usage("--weight-decay wants 0..10"); break;
        case OPT_ONPROMPT: a->on_prompt = 1; break;
        case OPT_SEED: if (pp_cli_u64(optarg, 0, UINT64_MAX, &a->seed)) return pp_cli_usage("--seed wants a number"); break;
        case OPT_LOG: a->log = optarg; break;
        case OPT_DROPOUT: if (pp_cli_double(optarg, 0, 0.95, &a->dropout)) return pp_cli_usage("--dropout wants 0..0.95"); break;
        case OPT_EVAL: a->eval = optarg; break;
        case OPT_EVAL_FRACTION: if (pp_cli_double(optarg, 1e-9, 0.5, &a->eval_fraction)) return pp_cli_usage("--eval-fraction wants a fraction in (0, 0.5]"); break;
        case OPT_EVAL_EVERY: if (pp_cli_u64(optarg, 1, 1u << 30, &a->eval_every)) return pp_cli_usage("--eval-every wants a count"); break;
        case OPT_SAVE_EVERY: if (pp_cli_u64(optarg, 1, 1u << 30, &a->save_every)) return pp_cli_usage("--save-every wants a count"); break;
        case OPT_KEEP: if (pp_cli_u64(optarg, 1, 1u << 20, &a->keep)) return pp_cli_usage("--keep wants a count"); break;
        case OPT_RESUME: a->resume = 1; break;
        case OPT_GRADCKPT: a->grad_ckpt = 1; break;
        case OPT_DRYRUN: a->dry_run = 1; break;
        case OPT_DEVICE: a->device = optarg; break;
        case OPT_PRECISION:
            if (!strcmp(optarg, "fp32")) a->precision = PP_PREC_FP32;
            else if (!strcmp(optarg, "bf16")) a->precision = PP_PREC_BF16;
            else if (!strcmp(optarg, "fp16")) a->precision = PP_PREC_FP16;
            else return pp_cli_usage("--precision wants fp32, bf16 or fp16");
            break;
        case OPT_FULL: a->full = 1; break;
        case OPT_INIT: a->init = optarg; a->full = 1; break;
        case OPT_TOKENIZER: a->tokenizer = optarg; break;
        case 't': if (pp_cli_u64(optarg, 1, 1024, &a->threads)) return pp_cli_usage("--threads wants 1..1024"); break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); printf("%s\n", pp_blas_describe()); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (!(a->model || a->init) || !a->data || (!a->outdir && !a->dry_run))
        return pp_cli_usage("-m MODEL (or --init CONFIG.json), -d TOKENS and -o OUTDIR are required");
    if (optind != argc) return pp_cli_usage("unexpected argument \"%s\"", argv[optind]);
    if (a->model && a->init) return pp_cli_usage("-m and --init exclude each other");
    if (a->tokenizer && !a->init) return pp_cli_usage("--tokenizer goes with --init (a model brings its own)");
    if (a->init && !a->tokenizer) return pp_cli_usage("--init needs --tokenizer (the model's tokenizer.model)");
    if (a->full && (a->shape_set || a->init_adapter || a->dropout > 0))
        return pp_cli_usage("--full trains every weight: LoRA options (-r, --alpha, --targets, --layers, --rslora, --dropout, --init-adapter) do not apply");
    int stdin_uses = (a->model && !strcmp(a->model, "-")) + !strcmp(a->data, "-") + (a->eval && !strcmp(a->eval, "-")) +
                     (a->init && !strcmp(a->init, "-"));
    if (stdin_uses > 1) return pp_cli_usage("only one input can be standard input");
    if (a->eval && a->eval_fraction > 0) return pp_cli_usage("--eval and --eval-fraction exclude each other");
    if (a->init_adapter && a->shape_set)
        return pp_cli_usage("--init-adapter takes the rank, alpha, targets and layers from the adapter");
    if (a->keep && !a->save_every) return pp_cli_usage("--keep needs --save-every");
    if (a->precision > PP_PREC_FP32 && (!a->device || !strcmp(a->device, "cpu")))
        return pp_cli_usage("--precision %s needs a GPU (--device cuda): the CPU computes in fp32",
                            pp_precision_name(a->precision));
    /* the output directory is made now: a bad -o fails before the training */
    if (!a->dry_run && mkdir(a->outdir, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        return pp_cli_fail(a->outdir, pp_fail(PP_E_CANTCREAT, "cannot create: %s", strerror(e)));
    }

    FILE *logf = NULL;
    unsigned char *on = NULL;
    const char *ctx = a->model;
    int rc = 0, interrupted = 0;
    pp_status s = PP_OK;
    pp_train_opts to = {0};
    if (a->init) {
        /* pre-training: random weights for the config, the tokenizer given */
        char *text = NULL;
        size_t len = 0;
        pp_reader *in = NULL;
        ctx = a->init;
        s = pp_reader_open(&in, a->init);
        if (s == PP_OK) s = pp_read_all(in, &text, &len, 1 << 20);
        pp_reader_close(in);
        if (s == PP_OK) {
            pp_config cfg;
            s = pp_config_parse(&cfg, text, len);
            if (s == PP_OK && a->dry_run) R.m.cfg = cfg;
            else if (s == PP_OK) s = pp_llama_random(&R.m, text, len, a->seed);
        }
        free(text);
        if (s != PP_OK) goto fail;
        if (a->tokenizer) {
            ctx = a->tokenizer;
            if ((s = pp_tokenizer_files(&R.m.tok, a->tokenizer)) != PP_OK) goto fail;
        }
    } else if (a->dry_run) {
        /* the configuration from the headers only */
        pp_config cfg;
        uint64_t wb;
        if ((s = model_plan(a->model, &cfg, &wb)) != PP_OK) goto fail;
        R.m.cfg = cfg;
    } else if ((s = pp_llama_load(&R.m, a->model)) != PP_OK)
        goto fail;
    ctx = NULL;
    char tok_sha[65] = "";
    if (R.m.tok.data) pp_sha256_hex_of(R.m.tok.data, R.m.tok.n, tok_sha);
    if ((s = load_tokens(a->data, &R.ds, &R.m, tok_sha, "training")) != PP_OK) goto fail;
    if (a->eval && (s = load_tokens(a->eval, &R.evds, &R.m, tok_sha, "evaluation")) != PP_OK) goto fail;

    /* records: the held-out fraction is drawn with its own seeded shuffle */
    R.train_ids = malloc(R.ds.n_records * sizeof *R.train_ids);
    R.order = malloc(R.ds.n_records * sizeof *R.order);
    R.eval_ids = malloc((a->eval ? R.evds.n_records : R.ds.n_records) * sizeof *R.eval_ids);
    if (!R.train_ids || !R.order || !R.eval_ids) {
        s = pp_fail(PP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < R.ds.n_records; i++) R.train_ids[i] = (uint32_t)i;
    R.n_train = R.ds.n_records;
    if (a->eval) {
        for (uint64_t i = 0; i < R.evds.n_records; i++) R.eval_ids[i] = (uint32_t)i;
        R.n_eval = R.evds.n_records;
    } else if (a->eval_fraction > 0) {
        uint64_t rng = a->seed * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull;
        shuffle(R.train_ids, R.n_train, &rng);
        R.n_eval = (uint64_t)floor(a->eval_fraction * (double)R.ds.n_records);
        if (R.n_eval == 0) R.n_eval = 1;
        if (R.n_eval >= R.n_train) {
            s = pp_fail(PP_E_DATA, "--eval-fraction leaves no training record");
            goto fail;
        }
        R.n_train -= R.n_eval;
        memcpy(R.eval_ids, R.train_ids + R.n_train, R.n_eval * sizeof *R.eval_ids);
        /* both sets in record order, so that the draw alone decides */
        for (int k = 0; k < 2; k++) {
            uint32_t *p = k ? R.eval_ids : R.train_ids;
            uint64_t n = k ? R.n_eval : R.n_train;
            for (uint64_t i = 1; i < n; i++)
                for (uint64_t j = i; j > 0 && p[j - 1] > p[j]; j--) {
                    uint32_t x = p[j];
                    p[j] = p[j - 1];
                    p[j - 1] = x;
                }
        }
    }
    uint64_t all_targets = 0;
    for (uint64_t i = 0; i < R.n_train; i++) {
        all_targets += (uint64_t)targets_of(&R, &R.ds, R.train_ids[i]);
        if (record_len(&R.ds, R.train_ids[i]) > R.longest) R.longest = record_len(&R.ds, R.train_ids[i]);
    }
    for (uint64_t i = 0; i < R.n_eval; i++) {
        const pp_tokens *d = a->eval ? &R.evds : &R.ds;
        if (record_len(d, R.eval_ids[i]) > R.longest) R.longest = record_len(d, R.eval_ids[i]);
    }
    if (all_targets == 0) {
        s = pp_fail(PP_E_DATA, "nothing to train on: no record has a response token");
        goto fail;
    }
    const pp_config *cfg = &R.m.cfg;
    int context = cfg->sliding_window > 0 && cfg->sliding_window < cfg->max_pos ? cfg->sliding_window : cfg->max_pos;
    if (R.longest > context) {
        s = pp_fail(PP_E_DATA, "a record of %d tokens is longer than the context of %d (pp-tokenize --max-len)", R.longest,
                    context);
        goto fail;
    }

    /* the adapter, or none with --full */
    if (a->full) {
        if ((s = pp_lora_init(&R.l, cfg, 1, 1.0f, 0, 0)) != PP_OK) goto fail;
    } else if (a->init_adapter) {
        ctx = a->init_adapter;
        if ((s = pp_lora_load(&R.l, cfg, a->init_adapter)) != PP_OK) goto fail;
        ctx = NULL;
        a->rank = (uint64_t)R.l.r, a->alpha = R.l.alpha, a->rslora = R.l.rslora, a->targets = R.l.targets;
    } else {
        if (a->layers) {
            on = malloc((size_t)cfg->n_layers);
            if (!on || parse_layers(a->layers, cfg->n_layers, on)) {
                s = pp_fail(PP_E_USAGE, "--layers wants layer indices and ranges below %d, not \"%s\"", cfg->n_layers, a->layers);
                goto fail;
            }
        }
        if ((s = pp_lora_init_layers(&R.l, cfg, (int)a->rank, (float)a->alpha, a->rslora, a->targets, on)) != PP_OK) goto fail;
        pp_lora_init_weights(&R.l, a->seed);
    }
    R.l.dropout = (float)a->dropout;
    to = (pp_train_opts){.max_tokens = (int)a->batch * R.longest, .max_len = R.longest, .grad_checkpoint = a->grad_ckpt,
                         .dropout = (float)a->dropout, .seed = a->seed};
    if (a->dry_run) {
        if (a->device && !strncmp(a->device, "cuda", 4)) gpu_opts(&to, R.longest, a->precision ? a->precision : PP_PREC_BF16);
        s = dry_run(&R, &to);
        if (s != PP_OK) goto fail;
        goto out;
    }

    uint64_t per_step = a->batch * a->accum, steps_per_epoch = (R.n_train + per_step - 1) / per_step;
    R.total = a->max_steps ? a->max_steps : a->epochs * steps_per_epoch;
    if (strchr(a->warmup, '.')) {
        double wf;
        pp_cli_double(a->warmup, 0, 1, &wf);
        R.warmup = (long)ceil(wf * (double)R.total);
    } else {
        pp_cli_u64(a->warmup, 0, 1u << 30, &v);
        R.warmup = (long)v;
    }
    R.epoch = 1;
    R.rng_epoch = a->seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;

    /* what a checkpoint must agree on */
    if (a->init) pp_llama_sha256(&R.m, R.base_sha);
    else pp_llama_sha256_cached(&R.m, a->model, R.base_sha); /* the same digest, once per model */
    snprintf(R.base_quant, sizeof R.base_quant, "%s", R.m.quant);
    if (a->full) {
        if ((s = pp_full_init(&R.F, &R.m)) != PP_OK) goto fail;
        R.params = R.F.params, R.grads = R.F.grads, R.n_params = R.F.n;
    } else {
        R.params = R.l.params, R.grads = R.l.grads, R.n_params = R.l.n_params;
    }
    pp_sha256 h;
    pp_sha256_init(&h);
    data_digest(&R.ds, &h);
    if (a->eval) data_digest(&R.evds, &h);
    pp_sha256_hex(&h, R.data_sha);
    char layers_desc[256] = "all";
    if (!pp_lora_all_layers(&R.l)) {
        size_t at = 0;
        for (int i = 0; i < cfg->n_layers && at + 12 < sizeof layers_desc; i++)
            if (R.l.layer_on[i]) at += (size_t)snprintf(layers_desc + at, sizeof layers_desc - at, "%s%d", at ? "," : "", i);
    }
    snprintf(R.config, sizeof R.config,
             "%s r=%d alpha=%.9g rslora=%d targets=0x%x layers=%s dropout=%.9g init=%s lr=%.9g epochs=%llu batch=%llu "
             "accum=%llu steps=%llu schedule=%d warmup=%ld clip=%.9g wd=%.9g on_prompt=%d seed=%llu eval_fraction=%.9g",
             a->full ? "full" : "lora", R.l.r, (double)R.l.alpha, R.l.rslora, R.l.targets, layers_desc, a->dropout, a->init_adapter ? "adapter" : "fresh",
             a->lr, (unsigned long long)a->epochs, (unsigned long long)a->batch, (unsigned long long)a->accum,
             (unsigned long long)R.total, (int)a->sched, R.warmup, a->clip, a->wd, a->on_prompt, (unsigned long long)a->seed,
             a->eval_fraction);

    if ((s = pp_backend_open(&R.be, a->device ? a->device : "cpu", (int)a->threads)) != PP_OK) goto fail;
    if (!strcmp(R.be->ops->name, "cpu")) pp_cli_say(2, "%s", pp_blas_describe());
    R.be->precision = a->precision ? a->precision : R.be->ops->host_memory ? PP_PREC_FP32 : PP_PREC_BF16;
    if (R.be->ops->host_memory && R.be->precision != PP_PREC_FP32) {
        s = pp_fail(PP_E_USAGE, "--precision %s needs a GPU (--device cuda): the CPU computes in fp32",
                    pp_precision_name(R.be->precision));
        goto fail;
    }
    size_t clen = strlen(R.config); /* the precision is a setting a checkpoint must match */
    snprintf(R.config + clen, sizeof R.config - clen, " precision=%s", pp_precision_name(R.be->precision));
    R.loss_scale = R.be->precision == PP_PREC_FP16 ? 65536.0f : 1.0f;
    const char *inject = getenv("PP_TRAIN_OVERFLOW_AT");
    if (inject && pp_cli_u64(inject, 1, UINT64_MAX, &R.overflow_at)) R.overflow_at = 0;
    if (!R.be->ops->host_memory) gpu_opts(&to, R.longest, R.be->precision);
    /* with --full the weights go to the device with their gradients, below (after a resume) */
    if ((!a->full && (s = pp_llama_to_backend(&R.m, R.be)) != PP_OK) ||
        (s = pp_trainer_init(&R.t, &R.m, R.be, &R.l, &to)) != PP_OK ||
        (s = pp_adamw_init(&R.o, R.n_params, 0.9f, 0.999f, 1e-8f, (float)a->wd)) != PP_OK)
        goto fail;
    if (a->full) R.t.grad = &R.F.g, R.o.n_decay = R.F.n_decay; /* no decay on the norms, as the HF Trainer */
    if (a->resume && (s = resume(&R)) != PP_OK) goto fail;
    /* where the optimizer works: the host copies on the CPU; on a device, the
     * adapter's (pp_lora_to_backend_train) or every weight's (pp_full_to_backend)
     * weights and gradients, and the moments */
    R.bp = R.params, R.bg = R.grads, R.bm = R.o.m, R.bv = R.o.v;
    if (!R.be->ops->host_memory) {
        if ((s = a->full ? pp_full_to_backend(&R.F, &R.m, R.be) : pp_lora_to_backend_train(&R.l, R.be)) != PP_OK) goto fail;
        if (!(R.dev_mv = R.be->ops->alloc(R.be, 2 * R.n_params * sizeof(float) + 4))) {
            s = pp_fail(PP_E_NOMEM, "out of device memory for the optimizer");
            goto fail;
        }
        R.bp = a->full ? R.F.dev_params : R.l.dev_params, R.bg = a->full ? R.F.dev_grads : R.l.dev_grads;
        R.bm = R.dev_mv, R.bv = R.dev_mv + R.n_params;
        R.be->ops->upload(R.be, R.bm, R.o.m, R.n_params * sizeof(float)); /* a resumed run's moments */
        R.be->ops->upload(R.be, R.bv, R.o.v, R.n_params * sizeof(float));
    }
    if (a->log && !(logf = fopen(a->log, a->resume ? "a" : "w"))) {
        s = pp_fail(PP_E_CANTCREAT, "%s: cannot create", a->log);
        goto fail;
    }
    if (logf) setvbuf(logf, NULL, _IOLBF, 0); /* a line per step, visible as it comes */
    pp_cli_say(2, "%llu training records, %llu held out; %llu optimizer steps of %llu records; %zu trained parameters "
                  "(%.3f%% of %llu)",
               (unsigned long long)R.n_train, (unsigned long long)R.n_eval, (unsigned long long)R.total,
               (unsigned long long)per_step, R.n_params, 100.0 * (double)R.n_params / (double)pp_config_params(cfg),
               pp_config_params(cfg));
    double t0 = pp_cli_now();
    catch_stop_signals();
    s = train(&R, logf, &interrupted);
    if (s != PP_OK) goto fail;
    if (interrupted) {
        if (R.step > 0)
            pp_cli_say(1, "stopped by signal %d after step %llu; checkpoint saved in %s (continue with --resume)",
                       (int)stop_signal, (unsigned long long)R.step, a->outdir);
        else
            pp_cli_say(1, "stopped by signal %d before the first step; nothing saved", (int)stop_signal);
        rc = EXIT_INTERRUPTED;
        goto out;
    }
    ctx = a->outdir;
    to_host(&R);
    if (a->full) pp_full_to_host(&R.F, &R.m); /* the model's weights back to the host copies, to write them */
    if (a->full) s = write_model(&R);
    else s = pp_lora_save(&R.l, a->outdir, a->model);
    if (s != PP_OK || (s = write_summary(&R, pp_cli_now() - t0)) != PP_OK) goto fail;
    if (!R.be->ops->host_memory)
        pp_cli_say(2, "peak device memory in use: %.1f MiB", (double)R.be->peak_bytes / 1048576.0);
    if (isfinite(R.last_eval))
        pp_cli_say(1, "final loss %.4f, eval loss %.4f; %s written to %s", R.last_loss, R.last_eval,
                   a->full ? "model" : "adapter", a->outdir);
    else
        pp_cli_say(1, "final loss %.4f; %s written to %s", R.last_loss, a->full ? "model" : "adapter", a->outdir);
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    if (logf) fclose(logf);
    free(on);
    free(R.order);
    free(R.train_ids);
    free(R.eval_ids);
    if (R.dev_mv) R.be->ops->free(R.be, R.dev_mv);
    pp_adamw_free(&R.o);
    pp_trainer_free(&R.t);
    pp_lora_free(&R.l);
    pp_full_free(&R.F);
    pp_tokens_free(&R.ds);
    pp_tokens_free(&R.evds);
    pp_llama_free(&R.m); /* before its backend: it frees device memory through it */
    pp_backend_free(R.be);
    return rc;
}
