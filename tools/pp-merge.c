/* pp-merge: a base model and a LoRA adapter in, a Hugging Face model
 * directory out, with W' = W + s·B·A folded into every adapted module. A
 * quantized base is dequantized first; the report says whether quantizing
 * the merged model again would keep the adapter. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "llama.h"
#include "lora.h"
#include "merge.h"
#include "quant.h"
#include "sha256.h"
#include "stream.h"
#include "text.h"

static void usage(void)
{
    printf(
"Usage: pp-merge -m BASE -a ADAPTER -o OUTDIR [OPTION]...\n"
"Merge a LoRA adapter into its base model: W' = W + s*B*A for every adapted\n"
"module, written as a Hugging Face model directory (safetensors).\n"
"\n"
"  -m, --model BASE          Hugging Face directory or pp model file (- for standard input)\n"
"  -a, --adapter DIR         PEFT LoRA adapter directory (pp-train's or Hugging Face's)\n"
"  -o, --output OUTDIR       the model directory to write (created if needed)\n"
"      --dtype D             f32, bf16 or f16 (default: the base's dtype; bf16 for a\n"
"                            quantized base)\n"
"      --max-shard-size SIZE largest weights file, bytes with an optional KB, MB, GB or TB\n"
"                            suffix (powers of 1000, as transformers; default 5GB)\n"
"      --force               merge even when pp-train.json says the adapter was trained\n"
"                            on another base or tokenizer\n"
"  -q, --quiet               no report, only errors\n"
"  -v, --verbose             the norms of every adapted module and notes on the checks\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"OUTDIR receives config.json, model.safetensors (or model-0000K-of-0000N.safetensors\n"
"and model.safetensors.index.json), tokenizer.model and, from a base directory,\n"
"generation_config.json and the tokenizer's JSON files. Tensors the adapter does\n"
"not touch are copied unchanged. For each adapted module the tool compares\n"
"|s*B*A|_F with |W' - dequant(quant(W'))|_F, the error of quantizing the merged\n"
"weight again (in the base's format, NF4 block 64 for an unquantized base), and\n"
"warns when the adapter is smaller than that error.\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data (also: adapter and base do not match),\n"
"66 missing input, 70 internal error, 73 cannot create output, 74 I/O error.\n"
"See pp-merge(1).\n");
}

enum { OPT_DTYPE = 256, OPT_SHARD, OPT_FORCE };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"adapter", required_argument, 0, 'a'},
    {"output", required_argument, 0, 'o'},
    {"dtype", required_argument, 0, OPT_DTYPE},
    {"max-shard-size", required_argument, 0, OPT_SHARD},
    {"force", no_argument, 0, OPT_FORCE},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

/* "5GB", "200MB", "4096": decimal units as transformers' max_shard_size. */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"TB", 1000000000000ull}};
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 19) return -1;
    char num[20];
    memcpy(num, s, digits);
    num[digits] = '\0';
    uint64_t v;
    if (pp_cli_u64(num, 1, UINT64_MAX, &v)) return -1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcasecmp(s + digits, units[i].unit)) {
            if (v > UINT64_MAX / units[i].mul) return -1;
            *out = v * units[i].mul;
            return 0;
        }
    return -1;
}

static const char *dtype_word(pp_dtype d) { return d == PP_F32 ? "f32" : d == PP_F16 ? "f16" : "bf16"; }
static const char *torch_dtype(pp_dtype d) { return d == PP_F32 ? "float32" : d == PP_F16 ? "float16" : "bfloat16"; }

static char *join2(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return strcmp(a, "-") && strcmp(b, "-") && stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Writes n bytes to dir/name atomically; *ctx names the file on failure. */
static pp_status write_file(const char *dir, const char *name, const void *data, size_t n, char **ctx)
{
    pp_writer *w = NULL;
    free(*ctx);
    *ctx = join2(dir, name);
    if (!*ctx) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status s = pp_writer_open(&w, *ctx, 0);
    if (s == PP_OK) s = pp_write(w, data, n);
    if (s == PP_OK) return pp_writer_commit(w);
    pp_writer_abort(w);
    return s;
}

/* A file of a base directory copied when present (what transformers and
 * llama.cpp read besides the weights). */
static pp_status copy_side_file(const char *base, const char *out, const char *name, char **ctx)
{
    char *src = join2(base, name), *data = NULL;
    pp_reader *r = NULL;
    size_t n = 0;
    struct stat st;
    pp_status s = PP_OK;
    if (!src) return pp_fail(PP_E_NOMEM, "out of memory");
    if (stat(src, &st) == 0 && S_ISREG(st.st_mode)) {
        free(*ctx);
        *ctx = src;
        src = NULL;
        s = pp_reader_open(&r, *ctx);
        if (s == PP_OK) s = pp_read_all(r, &data, &n, 1u << 30);
        pp_reader_close(r);
        if (s == PP_OK) s = write_file(out, name, data, n, ctx);
    }
    free(src);
    free(data);
    return s;
}

/* Removes weight files of an earlier run that this one did not write, as
 * transformers' save_pretrained does: a stale index would name old shards. */
static void remove_stale(const char *dir, char **keep, size_t n_keep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strcmp(nm, "model.safetensors") && strcmp(nm, "model.safetensors.index.json") &&
            fnmatch("model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors", nm, 0))
            continue;
        int ours = 0;
        for (size_t i = 0; i < n_keep && !ours; i++) ours = !strcmp(keep[i], nm);
        if (ours) continue;
        char *p = join2(dir, nm);
        if (p && unlink(p) == 0) pp_cli_say(2, "%s: removed (left by an earlier run)", p);
        free(p);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const pp_merge_tensor *const *)a)->name, (*(const pp_merge_tensor *const *)b)->name);
}

int main(int argc, char **argv)
{
    pp_cli_init("pp-merge");
    const char *base = NULL, *adapter = NULL, *outdir = NULL;
    int dtype = -1, force = 0, c;
    uint64_t max_shard = 5000000000ull;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:a:o:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': base = optarg; break;
        case 'a': adapter = optarg; break;
        case 'o': outdir = optarg; break;
        case OPT_DTYPE:
            if (!strcmp(optarg, "f32")) dtype = PP_F32;
            else if (!strcmp(optarg, "bf16")) dtype = PP_BF16;
            else if (!strcmp(optarg, "f16")) dtype = PP_F16;
            else return pp_cli_usage("--dtype wants f32, bf16 or f16, not \"%s\"", optarg);
            break;
        case OPT_SHARD:
            if (parse_size(optarg, &max_shard))
                return pp_cli_usage("--max-shard-size wants a size in bytes (e.g. 5GB, 200MB, 4096), not \"%s\"", optarg);
            break;
        case OPT_FORCE: force = 1; break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (optind != argc) return pp_cli_usage("unexpected argument \"%s\"", argv[optind]);
    if (!base || !adapter || !outdir) return pp_cli_usage("-m BASE, -a ADAPTER and -o OUTDIR are required");
    if (!strcmp(outdir, "-")) return pp_cli_usage("OUTDIR is a directory; standard output cannot hold one");
    if (same_dir(outdir, base)) return pp_cli_usage("output %s is the base model's directory", outdir);
    if (same_dir(outdir, adapter)) return pp_cli_usage("output %s is the adapter's directory", outdir);

    pp_llama m = {0};
    pp_lora l = {0};
    pp_merge_tensor *t = NULL, **sorted = NULL;
    pp_writer **w = NULL;
    char **files = NULL, *cfg_json = NULL, *ctx = NULL;
    float *vals = NULL, *delta = NULL, *absmax = NULL;
    uint8_t *obuf = NULL, *q = NULL;
    pp_buf idx = {0};
    size_t n_t = 0, n_files = 0, n_shards = 0;
    int rc = 0, made_dir = 0;
    const char *fctx = outdir;
    pp_status s = PP_OK;

    /* The output directory first: a bad one fails before the model loads. */
    struct stat st;
    if (mkdir(outdir, 0777) == 0) made_dir = 1;
    else if (errno != EEXIST || stat(outdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s = pp_fail(PP_E_CANTCREAT, "cannot create the directory: %s", errno == EEXIST ? "not a directory" : strerror(errno));
        goto fail;
    }

    double t0 = pp_cli_now();
    fctx = base;
    if ((s = pp_llama_load(&m, base)) != PP_OK) goto fail;
    fctx = adapter;
    if ((s = pp_lora_load(&l, &m.cfg, adapter)) != PP_OK) {
        if (s == PP_E_DATA) pp_fail_ctx(s, "the adapter does not fit base %s", pp_display_name(base));
        goto fail;
    }
    pp_cli_say(2, "%s: %s, %d layers, %s; adapter r %d, alpha %g, scale %g%s", pp_display_name(base), m.cfg.arch,
               m.cfg.n_layers, m.quant, l.r, (double)l.alpha, (double)l.scale, l.rslora ? " (rsLoRA)" : "");

    /* Was the adapter trained on this base? pp-train says so; PEFT does not. */
    pp_train_record rec;
    if ((s = pp_train_record_read(&rec, adapter)) != PP_OK) goto fail;
    if (!rec.present) {
        pp_cli_say(2, "note: %s has no pp-train.json: only the shapes are checked", adapter);
    } else {
        char sha[65];
        pp_llama_sha256(&m, sha);
        if (rec.base_sha256[0] && !strcmp(rec.base_quant, m.quant) && strcmp(rec.base_sha256, sha)) {
            if (!force) {
                s = pp_fail(PP_E_DATA, "pp-train.json: the adapter was trained on another %s base (base_sha256 %.16s..., "
                                       "this base %.16s...); --force merges anyway", m.quant, rec.base_sha256, sha);
                goto fail;
            }
            pp_cli_say(1, "warning: the adapter was trained on another %s base (base_sha256 %.16s..., this base %.16s...); "
                          "merging anyway (--force)", m.quant, rec.base_sha256, sha);
        } else if (rec.base_sha256[0] && strcmp(rec.base_quant, m.quant)) {
            pp_cli_say(2, "note: the adapter was trained on a %s base, this base is %s: their digests differ by nature "
                          "(a QLoRA adapter is merged into the unquantized original), not compared",
                       rec.base_quant[0] ? rec.base_quant : "?", m.quant);
        } else if (rec.base_sha256[0]) {
            pp_cli_say(2, "note: base_sha256 matches pp-train.json (%.16s...)", sha);
        }
        if (rec.tokenizer_sha256[0] && m.tokenizer) {
            pp_sha256 sc;
            pp_sha256_init(&sc);
            pp_sha256_update(&sc, m.tokenizer, m.tokenizer_len);
            pp_sha256_hex(&sc, sha);
            if (strcmp(sha, rec.tokenizer_sha256)) {
                if (!force) {
                    s = pp_fail(PP_E_DATA, "pp-train.json: the adapter was trained with another tokenizer "
                                           "(tokenizer_sha256 %.16s..., the base's %.16s...); --force merges anyway",
                                rec.tokenizer_sha256, sha);
                    goto fail;
                }
                pp_cli_say(1, "warning: the adapter was trained with another tokenizer; merging anyway (--force)");
            }
        }
    }

    /* The plan: dtype, tensors, files. */
    int quantized = strcmp(m.quant, "f32") && strcmp(m.quant, "bf16") && strcmp(m.quant, "f16");
    if (dtype < 0) dtype = quantized ? PP_BF16 : !strcmp(m.quant, "f32") ? PP_F32 : !strcmp(m.quant, "f16") ? PP_F16 : PP_BF16;
    size_t esize = pp_dtype_size((pp_dtype)dtype);
    fctx = outdir;
    if ((s = pp_merge_list(&t, &n_t, &m, &l)) != PP_OK) goto fail;
    n_shards = pp_merge_shard(t, n_t, esize, max_shard);
    size_t big = 0, big_adapted = 0, blocks = 1;
    uint64_t total_size = 0, total_params = 0;
    for (size_t i = 0; i < n_t; i++) {
        if (t[i].nelem > big) big = (size_t)t[i].nelem;
        if (t[i].type >= 0 && t[i].nelem > big_adapted) big_adapted = (size_t)t[i].nelem;
        if (t[i].type >= 0) { /* absmax of the requantization: the base's blocksize, or 64 */
            size_t nb = pp_quant_blocks((size_t)t[i].nelem, t[i].w->type >= PP_W_NF4 ? t[i].w->blocksize : 64);
            if (nb > blocks) blocks = nb;
        }
        total_size += t[i].nelem * esize;
        total_params += t[i].nelem;
    }
    vals = malloc(big * sizeof *vals + 4);
    obuf = malloc(big * esize + 4);
    delta = malloc(big_adapted * sizeof *delta + 4);
    q = malloc(big_adapted + 4);
    absmax = malloc(blocks * sizeof *absmax);
    w = calloc(n_shards, sizeof *w);
    files = calloc(n_shards + 1, sizeof *files);
    sorted = calloc(n_t, sizeof *sorted);
    if (!vals || !obuf || !delta || !q || !absmax || !w || !files || !sorted) {
        s = pp_fail(PP_E_NOMEM, "out of memory (%zu MiB of scratch)", (big * (4 + esize) + big_adapted * 9) >> 20);
        goto fail;
    }
    pp_cli_say(2, "output: %s, %zu tensors in %zu file%s, %.2f MiB; scratch %.2f MiB", dtype_word((pp_dtype)dtype), n_t,
               n_shards, n_shards == 1 ? "" : "s", total_size / 1048576.0, (big * (4 + esize) + big_adapted * 9) / 1048576.0);

    /* Every file stays a temporary until all of them are complete. */
    for (size_t k = 0; k < n_shards; k++) {
        char name[64];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, n_shards);
        if (!(files[n_files++] = strdup(name)) || !(ctx = join2(outdir, name))) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        fctx = ctx;
        size_t cnt = 0;
        pp_st_entry *e = calloc(n_t, sizeof *e);
        if (!e) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n_t; i++)
            if (t[i].shard == (int)k) e[cnt++] = (pp_st_entry){t[i].name, (pp_dtype)dtype, t[i].ndim, t[i].shape, NULL};
        const char *kv[] = {"format", "pt"};
        s = pp_writer_open(&w[k], ctx, 0);
        if (s == PP_OK) s = pp_st_write_header(w[k], e, cnt, kv, 1);
        free(e);
        free(ctx);
        ctx = NULL;
        fctx = outdir;
        if (s != PP_OK) goto fail;
    }

    /* The tensors, one at a time, each into its file in list order. */
    const char *qname = "nf4";
    int n_adapted = 0, n_lost = 0, worst = -1;
    double worst_ratio = 0;
    if (pp_verbosity >= 2)
        fprintf(stderr, "pp-merge: %-44s %11s %11s %11s %11s\n", "module", "|s*B*A|_F", "|W'|_F", "requant_F", "rounding_F");
    for (size_t i = 0; i < n_t; i++) {
        const pp_merge_tensor *e = &t[i];
        size_t n = (size_t)e->nelem;
        const void *bytes = obuf;
        int kept = e->type < 0 && e->ndim == 2 &&
                   ((dtype == PP_F32 && e->w->type == PP_W_F32) || (dtype == PP_BF16 && e->w->type == PP_W_BF16) ||
                    (dtype == PP_F16 && e->w->type == PP_W_F16));
        if (kept) {
            bytes = e->w->data; /* byte for byte */
        } else if (e->type < 0) {
            pp_weight_widen(vals, e->w);
            pp_narrow(obuf, NULL, vals, (pp_dtype)dtype, n);
        } else {
            pp_merge_tensor_values(vals, delta, e, &l);
            double dn = pp_frobenius(delta, n), wn = pp_frobenius(vals, n);
            pp_narrow(obuf, delta, vals, (pp_dtype)dtype, n); /* delta: W' as written */
            double rnd = 0;
            for (size_t k = 0; k < n; k++) rnd += ((double)vals[k] - delta[k]) * ((double)vals[k] - delta[k]);
            pp_wtype qt = e->w->type >= PP_W_NF4 ? e->w->type : PP_W_NF4;
            int bs = e->w->type >= PP_W_NF4 ? e->w->blocksize : 64;
            qname = qt == PP_W_FP4 ? "fp4" : qt == PP_W_INT8 ? "int8" : "nf4";
            double rq = pp_requant_error(delta, n, qt, bs, vals, q, absmax);
            n_adapted++;
            if (dn < rq) {
                n_lost++;
                if (worst < 0 || dn / rq < worst_ratio) worst = (int)i, worst_ratio = dn / rq;
            }
            if (pp_verbosity >= 2)
                fprintf(stderr, "pp-merge: %-44s %11.4e %11.4e %11.4e %11.4e%s\n", e->name, dn, wn, rq, sqrt(rnd),
                        dn < rq ? "  below requant" : "");
        }
        if ((s = pp_write(w[e->shard], bytes, n * esize)) != PP_OK) {
            fctx = files[e->shard];
            goto fail;
        }
    }

    /* The index (sorted keys, as transformers' json.dumps(sort_keys=True)). */
    if (n_shards > 1) {
        for (size_t i = 0; i < n_t; i++) sorted[i] = &t[i];
        qsort(sorted, n_t, sizeof *sorted, by_name);
        s = pp_buf_printf(&idx, "{\n  \"metadata\": {\n    \"total_parameters\": %llu,\n    \"total_size\": %llu\n  },\n"
                                "  \"weight_map\": {\n", (unsigned long long)total_params, (unsigned long long)total_size);
        for (size_t i = 0; i < n_t && s == PP_OK; i++)
            s = pp_buf_printf(&idx, "    \"%s\": \"%s\"%s\n", sorted[i]->name, files[sorted[i]->shard], i + 1 < n_t ? "," : "");
        if (s == PP_OK) s = pp_buf_adds(&idx, "  }\n}\n");
        if (s != PP_OK) goto fail;
    }
    if ((s = pp_merge_config_json(&cfg_json, base, &m.cfg, torch_dtype((pp_dtype)dtype))) != PP_OK) {
        fctx = base;
        goto fail;
    }

    /* Commit: the weights, the index, the tokenizer and side files, config.json last. */
    for (size_t k = 0; k < n_shards; k++) {
        s = pp_writer_commit(w[k]);
        w[k] = NULL;
        if (s != PP_OK) {
            fctx = files[k];
            goto fail;
        }
    }
    if (n_shards > 1) {
        if (!(files[n_files++] = strdup("model.safetensors.index.json"))) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        if ((s = write_file(outdir, "model.safetensors.index.json", idx.p, idx.len, &ctx)) != PP_OK) goto fail_ctx;
    }
    if (m.tokenizer && (s = write_file(outdir, "tokenizer.model", m.tokenizer, m.tokenizer_len, &ctx)) != PP_OK) goto fail_ctx;
    if (strcmp(base, "-") && stat(base, &st) == 0 && S_ISDIR(st.st_mode)) {
        static const char *const side[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json", "added_tokens.json"};
        for (size_t i = 0; i < sizeof side / sizeof *side; i++)
            if ((s = copy_side_file(base, outdir, side[i], &ctx)) != PP_OK) goto fail_ctx;
    }
    if ((s = write_file(outdir, "config.json", cfg_json, strlen(cfg_json), &ctx)) != PP_OK) goto fail_ctx;
    remove_stale(outdir, files, n_files);

    if (n_lost > 0)
        pp_cli_say(1, "warning: in %d of %d adapted modules |s*B*A| is below the error of quantizing the merged weight "
                      "to %s again (worst: %s, %.2g times it): pp-quantize on this output would lose the adapter there%s",
                   n_lost, n_adapted, qname, t[worst].name, worst_ratio, pp_verbosity >= 2 ? "" : " (-v lists the modules)");
    pp_cli_say(1, "merged %d modules (r %d, scale %g) into %s: %s, %s, %zu file%s, %.2f MiB, %.1f s", n_adapted, l.r,
               (double)l.scale, pp_display_name(base), outdir, dtype_word((pp_dtype)dtype), n_shards,
               n_shards == 1 ? "" : "s", total_size / 1048576.0, pp_cli_now() - t0);
    goto out;
fail_ctx:
    fctx = ctx;
fail:
    rc = pp_cli_fail(fctx, s);
out:
    for (size_t k = 0; w && k < n_shards; k++) pp_writer_abort(w[k]);
    if (rc && made_dir) rmdir(outdir); /* only when nothing is left in it */
    for (size_t k = 0; files && k < n_files; k++) free(files[k]);
    free(files);
    free(w);
    free(t);
    free(sorted);
    free(vals);
    free(obuf);
    free(delta);
    free(q);
    free(absmax);
    free(cfg_json);
    free(ctx);
    pp_buf_free(&idx);
    pp_lora_free(&l);
    pp_llama_free(&m);
    return rc;
}
