/* LoRA training against Hugging Face PEFT: the loss and every LoRA gradient
 * for a given adapter (B non-zero) on a batch of two records with prompt
 * masks, plain and rsLoRA, all seven target modules, on the tiny random
 * Llama (GQA). Fixtures: tests/fixtures/gen_lora.py. And a finite-difference
 * check of the gradients through the whole model. */
#include <cjson/cJSON.h>
#include <math.h>

#include "check.h"
#include "full.h"
#include "llama.h"
#include "merge.h"
#include "lora.h"
#include "optim.h"
#include "safetensors.h"
#include "stream.h"
#include "train.h"

static pp_st_reader *st;
static unsigned char *data;
static pp_backend *be;
static pp_llama model;

static const void *fx(const char *name, size_t *count)
{
    const pp_tensor_info *t = pp_st_find(st, name);
    if (!t) return NULL;
    if (count) *count = (size_t)t->nelem;
    return data + t->begin;
}

/* The batch: tokens, offsets, prompt lengths. */
static const int32_t *tokens;
static const int64_t *offsets;
static const int32_t *plens;
static size_t n_records;

/* Loss and gradients of the batch as the step defines them: the mean over
 * all targets of the step. With packed, both records in one micro-batch;
 * else one micro-batch each (gradient accumulation). */
static int packed = 1;

static pp_train_opts opts(int grad_checkpoint, float dropout)
{
    return (pp_train_opts){.max_tokens = 32, .max_len = 16, .grad_checkpoint = grad_checkpoint, .dropout = dropout, .seed = 3};
}

static double batch_loss(pp_trainer *t, pp_lora *l, int backward)
{
    int total = 0;
    for (size_t r = 0; r < n_records; r++) total += (int)(offsets[r + 1] - offsets[r]) - (plens[r] > 1 ? plens[r] : 1);
    if (backward) memset(l->grads, 0, l->n_params * sizeof *l->grads);
    double loss = 0;
    int targets = 0;
    static uint32_t ids[2][64];
    const uint32_t *rec[2];
    int len[2], pl[2];
    for (size_t r = 0; r < n_records && r < 2; r++) {
        len[r] = (int)(offsets[r + 1] - offsets[r]);
        pl[r] = plens[r];
        for (int i = 0; i < len[r]; i++) ids[r][i] = (uint32_t)tokens[offsets[r] + i];
        rec[r] = ids[r];
    }
    if (packed)
        CHECK_STATUS(pp_trainer_batch(t, rec, len, pl, (int)n_records, 1.0f / (float)total, backward, &loss, &targets), PP_OK);
    else
        for (size_t r = 0; r < n_records; r++)
            CHECK_STATUS(pp_trainer_batch(t, rec + r, len + r, pl + r, 1, 1.0f / (float)total, backward, &loss, &targets), PP_OK);
    CHECK(targets == total);
    return loss / total;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0 ? d / m : d;
}

/* Parameters (of count drawn from seed) whose central difference of the
 * batch loss disagrees with the gradient g. backward 1 runs the loss as a
 * training pass (dropout on, with the trainer's masks). */
static int fd_mismatches(pp_trainer *t, pp_lora *l, const float *g, uint64_t seed, int count, int backward)
{
    int bad = 0;
    for (int k = 0; k < count; k++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        size_t i = seed % l->n_params;
        float keep = l->params[i], h = 1e-2f;
        l->params[i] = keep + h;
        double up = batch_loss(t, l, backward);
        l->params[i] = keep - h;
        double down = batch_loss(t, l, backward);
        l->params[i] = keep;
        double fd = (up - down) / (2 * h);
        if (fabs(fd - g[i]) > 2e-3 * fmax(1e-2, fabs(fd))) {
            fprintf(stderr, "  parameter %zu: analytic %.6g, finite difference %.6g\n", i, (double)g[i], fd);
            bad++;
        }
    }
    return bad;
}

static void load_adapter(pp_lora *l, const char *variant)
{
    for (int ly = 0; ly < l->n_layers; ly++)
        for (int ty = 0; ty < PP_LORA_TYPES; ty++)
            for (int b = 0; b < 2; b++) {
                char key[256], name[300];
                pp_lora_key(key, sizeof key, ly, ty, b);
                snprintf(name, sizeof name, "%s.%s", variant, key);
                size_t cnt;
                const float *v = fx(name, &cnt);
                size_t k = (size_t)ly * PP_LORA_TYPES + ty, want = (size_t)l->r * (b ? l->out[ty] : l->in[ty]);
                if (!v || cnt != want) {
                    fprintf(stderr, "  fixture %s missing or of the wrong size\n", name);
                    check_failed = 1;
                    continue;
                }
                memcpy(b ? l->B[k] : l->A[k], v, want * sizeof(float));
            }
}

static void check_variant(const char *variant, int rslora, int grad_checkpoint)
{
    pp_lora l;
    CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, rslora, 0x7f), PP_OK);
    load_adapter(&l, variant);
    pp_trainer t;
    pp_train_opts o = opts(grad_checkpoint, 0);
    CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
    if (check_failed) return;
    double loss = batch_loss(&t, &l, 1);
    char name[300];
    snprintf(name, sizeof name, "%s.loss", variant);
    const float *want = fx(name, NULL);
    double e = fabs(loss - want[0]) / fabs(want[0]);
    fprintf(stderr, "  %s: loss %.7f, PEFT %.7f, relative difference %.2e\n", variant, loss, (double)want[0], e);
    CHECK(e < 1e-5);
    double worst = 0;
    for (int ly = 0; ly < l.n_layers; ly++)
        for (int ty = 0; ty < PP_LORA_TYPES; ty++)
            for (int b = 0; b < 2; b++) {
                char key[256];
                pp_lora_key(key, sizeof key, ly, ty, b);
                snprintf(name, sizeof name, "%s.grad.%s", variant, key);
                size_t cnt, k = (size_t)ly * PP_LORA_TYPES + ty;
                const float *g = fx(name, &cnt);
                if (!g) {
                    fprintf(stderr, "  fixture %s missing\n", name);
                    check_failed = 1;
                    continue;
                }
                double r = max_rel(b ? l.dB[k] : l.dA[k], g, cnt);
                if (r > worst) worst = r;
                if (!(r < 1e-4)) {
                    fprintf(stderr, "  %s: gradient off by %.2e\n", name, r);
                    check_failed = 1;
                }
            }
    fprintf(stderr, "  %s: largest relative gradient difference %.2e over %d tensors\n", variant, worst, 2 * PP_LORA_TYPES * l.n_layers);
    pp_trainer_free(&t);
    pp_lora_free(&l);
}

TEST(loss_and_gradients_equal_peft) { check_variant("plain", 0, 0); }
TEST(loss_and_gradients_equal_peft_rslora) { check_variant("rslora", 1, 0); }
TEST(loss_and_gradients_equal_peft_one_record_per_micro_batch)
{
    packed = 0;
    check_variant("plain", 0, 0);
    packed = 1;
}
TEST(loss_and_gradients_equal_peft_grad_checkpoint) { check_variant("plain", 0, 1); }

/* Recomputing the activations gives the very same gradients, bit for bit,
 * with dropout on too (its masks are recomputed, not stored). */
TEST(grad_checkpoint_is_bit_exact)
{
    for (int d = 0; d < 2; d++) {
        pp_lora l;
        CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, 0, 0x7f), PP_OK);
        load_adapter(&l, "plain");
        float *g = malloc(l.n_params * sizeof *g);
        double loss[2];
        for (int ck = 0; ck < 2; ck++) {
            pp_trainer t;
            pp_train_opts o = opts(ck, d ? 0.25f : 0);
            CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
            t.mask_key = 77;
            loss[ck] = batch_loss(&t, &l, 1);
            if (!ck) memcpy(g, l.grads, l.n_params * sizeof *g);
            pp_trainer_free(&t);
        }
        CHECK(loss[0] == loss[1] && memcmp(g, l.grads, l.n_params * sizeof *g) == 0);
        free(g);
        pp_lora_free(&l);
    }
}

/* Layer inputs kept in 16 bits (act16, as on a GPU in bf16; the CPU
 * backend has narrow and widen too): a recomputation sees what the forward
 * pass saw, so checkpointing stays bit for bit (with dropout too); and the
 * rounding really happens (the loss moves, a little). */
TEST(act16_layer_inputs)
{
    for (int d = 0; d < 2; d++) {
        pp_lora l;
        CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, 0, 0x7f), PP_OK);
        load_adapter(&l, "plain");
        float *g = malloc(l.n_params * sizeof *g);
        double loss[3];
        for (int run = 0; run < 3; run++) { /* act16 without and with checkpointing, then fp32 inputs */
            pp_trainer t;
            pp_train_opts o = opts(run == 1, d ? 0.25f : 0);
            o.act16 = run < 2;
            CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
            t.mask_key = 77;
            loss[run] = batch_loss(&t, &l, 1);
            if (run == 0) memcpy(g, l.grads, l.n_params * sizeof *g);
            if (run == 1) CHECK(memcmp(g, l.grads, l.n_params * sizeof *g) == 0);
            pp_trainer_free(&t);
        }
        double rel = fabs(loss[0] - loss[2]) / fabs(loss[2]);
        fprintf(stderr, "  act16%s: loss %.7f, fp32 inputs %.7f (relative difference %.2e)\n", d ? ", dropout" : "", loss[0],
                loss[2], rel);
        CHECK(loss[0] == loss[1]);
        CHECK(rel > 0 && rel < 1e-2);
        free(g);
        pp_lora_free(&l);
    }
}

/* Dropout: the loss changes in training, not in evaluation; the gradients
 * are those of the dropped-out function (finite differences with the same
 * masks); about a fraction p of the adapters' inputs are dropped. */
TEST(dropout)
{
    pp_lora l;
    CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, 0, 0x7f), PP_OK);
    load_adapter(&l, "plain");
    pp_trainer t0, t;
    pp_train_opts o0 = opts(0, 0), o = opts(0, 0.3f);
    CHECK_STATUS(pp_trainer_init(&t0, &model, be, &l, &o0), PP_OK);
    CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
    if (check_failed) return;
    t.mask_key = 5;
    double plain = batch_loss(&t0, &l, 0), eval = batch_loss(&t, &l, 0), train = batch_loss(&t, &l, 1);
    fprintf(stderr, "  dropout 0.3: training loss %.6f, evaluation %.6f, without dropout %.6f\n", train, eval, plain);
    CHECK(eval == plain && fabs(train - plain) > 1e-4);
    float *g = malloc(l.n_params * sizeof *g);
    memcpy(g, l.grads, l.n_params * sizeof *g);
    /* the loss of the dropped-out function: training passes, with the same masks */
    int bad = fd_mismatches(&t, &l, g, 99, 10, 1);
    CHECK(bad == 0);
    /* the masks: a fraction p dropped, the kept scaled by 1 / (1 - p) */
    float ones[4096], out[4096];
    for (int i = 0; i < 4096; i++) ones[i] = 1.0f;
    t.mask_key = 6;
    size_t dropped = 0;
    pp_trainer_dropout(&t, out, ones, 4096, 0, PP_LORA_Q);
    for (int i = 0; i < 4096; i++) {
        dropped += out[i] == 0;
        if (out[i] != 0 && fabsf(out[i] - 1 / 0.7f) > 1e-6f) bad++;
    }
    fprintf(stderr, "  dropped %zu of 4096 (p = 0.3)\n", dropped);
    CHECK(bad == 0 && dropped > 1100 && dropped < 1360);
    free(g);
    pp_trainer_free(&t);
    pp_trainer_free(&t0);
    pp_lora_free(&l);
}

/* Three AdamW steps (lr 1e-2, weight decay 0.01, clipping at 1.0, linear
 * schedule over 3 steps with 1 warm-up step) on the same batch: the loss
 * before each step, the gradient norm, the lr and the adapter after each
 * step equal PEFT + torch's. */
static void check_steps(const char *variant, int rslora)
{
    pp_lora l;
    CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, rslora, 0x7f), PP_OK);
    load_adapter(&l, variant);
    pp_trainer t;
    pp_adamw o;
    pp_train_opts to = opts(0, 0);
    CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &to), PP_OK);
    CHECK_STATUS(pp_adamw_init(&o, l.n_params, 0.9f, 0.999f, 1e-8f, 0.01f), PP_OK);
    if (check_failed) return;
    for (int k = 1; k <= 3; k++) {
        char name[300];
        double loss = batch_loss(&t, &l, 1);
        double norm = pp_clip_grad_norm(l.grads, l.n_params, 1.0f);
        float lr = pp_lr_at(PP_SCHED_LINEAR, 1e-2f, k - 1, 3, 1);
        pp_adamw_step(&o, l.params, l.grads, lr);
        snprintf(name, sizeof name, "%s.step%d.loss", variant, k);
        const float *wl = fx(name, NULL);
        snprintf(name, sizeof name, "%s.step%d.grad_norm", variant, k);
        const float *wn = fx(name, NULL);
        snprintf(name, sizeof name, "%s.step%d.lr", variant, k);
        const float *wr = fx(name, NULL);
        if (!wl || !wn || !wr) {
            check_failed = 1;
            return;
        }
        CHECK(fabs(loss - wl[0]) < 1e-5 * fabs(wl[0]) && fabs(norm - wn[0]) < 1e-4 * wn[0] && fabsf(lr - wr[0]) < 1e-9f);
        double worst = 0;
        for (int ly = 0; ly < l.n_layers; ly++)
            for (int ty = 0; ty < PP_LORA_TYPES; ty++)
                for (int b = 0; b < 2; b++) {
                    char key[256];
                    size_t cnt, i = (size_t)ly * PP_LORA_TYPES + ty;
                    pp_lora_key(key, sizeof key, ly, ty, b);
                    snprintf(name, sizeof name, "%s.step%d.%s", variant, k, key);
                    const float *w = fx(name, &cnt);
                    double r = w ? max_rel(b ? l.B[i] : l.A[i], w, cnt) : 1;
                    if (r > worst) worst = r;
                }
        fprintf(stderr, "  %s step %d: loss %.7f (PEFT %.7f), grad norm %.6f (%.6f), lr %g, adapter within %.1e\n", variant, k,
                loss, (double)wl[0], norm, (double)wn[0], (double)lr, worst);
        CHECK(worst < 1e-5);
    }
    pp_adamw_free(&o);
    pp_trainer_free(&t);
    pp_lora_free(&l);
}

TEST(adamw_steps_equal_torch) { check_steps("plain", 0); }
TEST(adamw_steps_equal_torch_rslora) { check_steps("rslora", 1); }

/* PEFT's own adapter directory loads, and inference with it unmerged gives
 * the adapted model's logits; saving and loading again changes nothing. */
TEST(peft_adapter_loads_and_gives_peft_logits)
{
    pp_lora l, back;
    CHECK_STATUS(pp_lora_load(&l, &model.cfg, "tests/fixtures/lora/peft-adapter"), PP_OK);
    if (check_failed) return;
    CHECK(l.r == 4 && l.alpha == 8 && l.scale == 2 && l.targets == 0x7f && !l.rslora);
    size_t n;
    const float *want = fx("plain.logits", &n);
    int V = model.cfg.vocab;
    float *got = malloc(n * sizeof *got);
    for (size_t r = 0; r < n_records; r++) {
        pp_infer s;
        uint32_t ids[64];
        int len = (int)(offsets[r + 1] - offsets[r]);
        for (int i = 0; i < len; i++) ids[i] = (uint32_t)tokens[offsets[r] + i];
        CHECK_STATUS(pp_infer_init(&s, &model, be, 64, 64), PP_OK);
        CHECK_STATUS(pp_infer_adapter(&s, &l, 1.0f), PP_OK);
        CHECK_STATUS(pp_infer_forward(&s, ids, len, got + (size_t)offsets[r] * V, 1), PP_OK);
        pp_infer_free(&s);
    }
    double e = max_rel(got, want, n);
    fprintf(stderr, "  logits with PEFT's adapter: relative error %.2e\n", e);
    CHECK(e < 1e-5);
    char dir[] = "/tmp/pp-test-adapter-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_STATUS(pp_lora_save(&l, dir, "tests/fixtures/llama/tiny"), PP_OK);
    CHECK_STATUS(pp_lora_load(&back, &model.cfg, dir), PP_OK);
    CHECK(back.n_params == l.n_params && memcmp(back.params, l.params, l.n_params * sizeof(float)) == 0);
    CHECK(back.r == l.r && back.alpha == l.alpha && back.targets == l.targets);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    pp_lora_free(&back);
    pp_lora_free(&l);
    free(got);
}

/* Central differences in double-checked float: a few random elements of A
 * and B against the analytic gradient. */
TEST(finite_differences)
{
    pp_lora l;
    CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, 0, 0x7f), PP_OK);
    load_adapter(&l, "plain");
    pp_trainer t;
    pp_train_opts o = opts(0, 0);
    CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
    if (check_failed) return;
    batch_loss(&t, &l, 1);
    float *g = malloc(l.n_params * sizeof *g);
    memcpy(g, l.grads, l.n_params * sizeof *g);
    CHECK(fd_mismatches(&t, &l, g, 12345, 12, 0) == 0);
    free(g);
    pp_trainer_free(&t);
    pp_lora_free(&l);
}

/* --full: every weight's gradient equals transformers' autograd on the same
 * batch (tests/fixtures/gen_full.py). */
TEST(full_gradients_equal_transformers)
{
    pp_llama m2;
    pp_full f;
    pp_lora none;
    pp_reader *r;
    pp_st_reader *ref;
    CHECK_STATUS(pp_llama_load(&m2, "tests/fixtures/llama/tiny"), PP_OK);
    CHECK_STATUS(pp_full_init(&f, &m2), PP_OK);
    CHECK_STATUS(pp_lora_init(&none, &m2.cfg, 1, 1.0f, 0, 0), PP_OK);
    CHECK_STATUS(pp_reader_open(&r, "tests/fixtures/full/full_ref.safetensors"), PP_OK);
    CHECK_STATUS(pp_st_open(&ref, r), PP_OK);
    if (check_failed) return;
    unsigned char *rd = malloc(pp_st_data_size(ref) + 1);
    for (size_t i = 0; i < pp_st_count(ref); i++) pp_st_read(ref, pp_st_tensor(ref, i), rd + pp_st_tensor(ref, i)->begin);
    pp_trainer t;
    pp_train_opts o = opts(0, 0);
    CHECK_STATUS(pp_trainer_init(&t, &m2, be, &none, &o), PP_OK);
    t.grad = &f.g;
    double loss = batch_loss(&t, &none, 1);
    const float *want = (const float *)(rd + pp_st_find(ref, "loss")->begin);
    fprintf(stderr, "  full: loss %.7f, transformers %.7f\n", loss, (double)want[0]);
    CHECK(fabs(loss - want[0]) < 1e-5 * fabs(want[0]));
    pp_merge_tensor *list;
    size_t n, seen = 0;
    double worst = 0;
    CHECK_STATUS(pp_merge_list(&list, &n, &m2, NULL), PP_OK);
    for (size_t i = 0; i < n && !check_failed; i++) {
        char name[160];
        snprintf(name, sizeof name, "grad.%s", list[i].name);
        const pp_tensor_info *ti = pp_st_find(ref, name);
        size_t off = (size_t)((const float *)list[i].w->data - f.params);
        if (!ti || ti->nelem != list[i].nelem || off + list[i].nelem > f.n) {
            fprintf(stderr, "  %s: missing or of another size\n", name);
            check_failed = 1;
            break;
        }
        double e = max_rel(f.grads + off, (const float *)(rd + ti->begin), (size_t)ti->nelem);
        if (e > worst) worst = e;
        if (!(e < 1e-4)) fprintf(stderr, "  %s: relative difference %.2e\n", name, e), check_failed = 1;
        seen++;
    }
    fprintf(stderr, "  full: %zu gradients, largest relative difference %.2e\n", seen, worst);
    CHECK(seen == pp_st_count(ref) - 1);
    free(list);
    free(rd);
    pp_trainer_free(&t);
    pp_lora_free(&none);
    pp_full_free(&f);
    pp_llama_free(&m2);
    pp_st_close(ref);
    pp_reader_close(r);
}

/* A per-token loss mask (chat records): the prompt as a mask gives the very
 * same loss as the prompt length; a token masked out of the response is one
 * target less and another loss. */
TEST(loss_mask_as_prompt_length)
{
    pp_lora l;
    CHECK_STATUS(pp_lora_init(&l, &model.cfg, 4, 8.0f, 0, 0x7f), PP_OK);
    load_adapter(&l, "plain");
    static uint32_t ids[2][64];
    static uint8_t mask[2][64];
    const uint32_t *rec[2];
    const uint8_t *lm[2] = {mask[0], mask[1]};
    int len[2], pl[2], one[2] = {1, 1};
    size_t nr = n_records < 2 ? n_records : 2;
    for (size_t r = 0; r < nr; r++) {
        len[r] = (int)(offsets[r + 1] - offsets[r]);
        pl[r] = plens[r] > 1 ? (int)plens[r] : 1;
        for (int i = 0; i < len[r]; i++) ids[r][i] = (uint32_t)tokens[offsets[r] + i], mask[r][i] = i >= pl[r];
        rec[r] = ids[r];
    }
    double loss[3] = {0, 0, 0};
    int targets[3] = {0, 0, 0};
    for (int run = 0; run < 3; run++) {
        pp_trainer t;
        pp_train_opts o = opts(0, 0);
        CHECK_STATUS(pp_trainer_init(&t, &model, be, &l, &o), PP_OK);
        if (run == 2) mask[0][len[0] - 1] = 0; /* the last target of record 0 */
        t.loss_mask = run ? lm : NULL;
        CHECK_STATUS(pp_trainer_batch(&t, rec, len, run ? one : pl, (int)nr, 1.0f, 0, &loss[run], &targets[run]), PP_OK);
        pp_trainer_free(&t);
    }
    fprintf(stderr, "  loss %.7f over %d targets; as a mask %.7f over %d; one masked %.7f over %d\n", loss[0], targets[0],
            loss[1], targets[1], loss[2], targets[2]);
    CHECK(loss[0] == loss[1] && targets[0] == targets[1]);
    CHECK(targets[2] == targets[0] - 1 && loss[2] != loss[0]);
    pp_lora_free(&l);
}

int main(void)
{
    pp_reader *r;
    if (pp_reader_open(&r, "tests/fixtures/lora/lora_ref.safetensors") != PP_OK || pp_st_open(&st, r) != PP_OK) {
        fprintf(stderr, "fixture: %s\n", pp_errmsg());
        return 2;
    }
    data = malloc(pp_st_data_size(st) + 1);
    for (size_t i = 0; i < pp_st_count(st); i++) pp_st_read(st, pp_st_tensor(st, i), data + pp_st_tensor(st, i)->begin);
    tokens = fx("batch.tokens", NULL);
    offsets = fx("batch.offsets", &n_records);
    plens = fx("batch.prompt_lens", NULL);
    n_records--;
    if (!tokens || !offsets || !plens || pp_llama_load(&model, "tests/fixtures/llama/tiny") != PP_OK) {
        fprintf(stderr, "fixture incomplete: %s\n", pp_errmsg());
        return 2;
    }
    pp_backend_cpu(&be, 2);
    RUN(loss_and_gradients_equal_peft);
    RUN(loss_and_gradients_equal_peft_rslora);
    RUN(loss_and_gradients_equal_peft_one_record_per_micro_batch);
    RUN(loss_and_gradients_equal_peft_grad_checkpoint);
    RUN(grad_checkpoint_is_bit_exact);
    RUN(loss_mask_as_prompt_length);
    RUN(act16_layer_inputs);
    RUN(dropout);
    RUN(adamw_steps_equal_torch);
    RUN(adamw_steps_equal_torch_rslora);
    RUN(finite_differences);
    RUN(full_gradients_equal_transformers);
    RUN(peft_adapter_loads_and_gives_peft_logits);
    pp_llama_free(&model);
    pp_backend_free(be);
    pp_st_close(st);
    pp_reader_close(r);
    free(data);
    return tests_failed ? 1 : 0;
}
