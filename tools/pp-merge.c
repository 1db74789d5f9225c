/* pp-merge: a base model and a LoRA adapter in, a Hugging Face model
 * directory out, with W' = W + s·B·A folded into every adapted module. A
 * quantized base is dequantized first; the report says whether quantizing
 * the merged model again would keep the adapter. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "llama.h"
#include "lora.h"
#include "merge.h"
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

static int same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return strcmp(a, "-") && strcmp(b, "-") && stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int main(int argc, char **argv)
{
    pp_blas_setup(argv); /* the CPU's best OpenBLAS kernels (may execute argv again) */
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
        case 'V': pp_cli_version(); printf("%s\n", pp_blas_describe()); return 0;
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
    char *fpath = NULL;
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
        pp_llama_sha256_cached(&m, base, sha);
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
        if (rec.tokenizer_sha256[0] && m.tok.data) {
            pp_sha256_hex_of(m.tok.data, m.tok.n, sha);
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

    /* The dtype: the base's, bf16 for a quantized base. */
    int quantized = strcmp(m.quant, "f32") && strcmp(m.quant, "bf16") && strcmp(m.quant, "f16");
    if (dtype < 0) dtype = quantized ? PP_BF16 : !strcmp(m.quant, "f32") ? PP_F32 : !strcmp(m.quant, "f16") ? PP_F16 : PP_BF16;
    if ((s = pp_merge_write(&m, &l, base, outdir, (pp_dtype)dtype, max_shard, &fpath)) != PP_OK) {
        fctx = fpath;
        goto fail;
    }
    goto out;
fail:
    rc = pp_cli_fail(fctx, s);
out:
    if (rc && made_dir) rmdir(outdir); /* only when nothing is left in it */
    free(fpath);
    pp_lora_free(&l);
    pp_llama_free(&m);
    return rc;
}
