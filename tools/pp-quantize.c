/* pp-quantize: a Hugging Face Llama directory in, one self-contained model
 * file out (zstd-compressed safetensors: config in the metadata, tokenizer
 * inside), with the decoder's linear weights quantized the way bitsandbytes
 * stores them. */
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hfdir.h"
#include "quant.h"
#include "tokenizer.h"
#include "safetensors.h"
#include "sha256.h"
#include "spm.h"
#include "stream.h"
#include "text.h"

#define PP_MODEL_VERSION "1"

static void usage(void)
{
    printf(
"Usage: pp-quantize [OPTION]... -o OUT MODEL_DIR|MODEL_FILE\n"
"Quantize a Hugging Face Llama/Mistral model into one pp model file.\n"
"\n"
"  -t, --type T         nf4 (default), fp4, int8, bf16 or f16\n"
"  -b, --blocksize N    values per absmax block, 32..4096, a power of two (default 64)\n"
"      --double-quant   quantize the absmax values too (QLoRA; 4-bit types)\n"
"      --dtype D        dtype of the tensors left unquantized: keep (default), f32, f16, bf16\n"
"      --include PAT    also quantize 2-D tensors whose name matches PAT (fnmatch; repeatable)\n"
"      --exclude PAT    leave tensors matching PAT unquantized (repeatable; wins over --include)\n"
"  -l, --level N        zstd level 1-19 (default 3)\n"
"  -o, --output OUT     the model file to write (required; - for standard output, not a terminal)\n"
"  -q, --quiet          no report, only errors\n"
"  -v, --verbose        one line per tensor\n"
"  -h, --help           show this help\n"
"  -V, --version        show the version\n"
"\n"
"MODEL_FILE is an unquantized pp model file (written with -t bf16 or -t f16).\n"
"\n"
"By default the linear weights of the decoder layers are quantized (q, k, v, o,\n"
"gate, up, down); embeddings, norms and lm_head keep their dtype. The report on\n"
"stderr gives, per tensor class, the size before and after and the relative\n"
"quantization error RMS(W - dequant(W)) / RMS(W).\n"
"\n"
"Exit status: 0 ok, 64 usage, 65 bad data, 66 missing input, 70 internal error,\n"
"73 cannot create output, 74 I/O error. See pp-quantize(1) and pp-files(5).\n");
}

enum { OPT_DQ = 256, OPT_DTYPE, OPT_INCLUDE, OPT_EXCLUDE };

static const struct option longopts[] = {
    {"type", required_argument, 0, 't'},
    {"blocksize", required_argument, 0, 'b'},
    {"double-quant", no_argument, 0, OPT_DQ},
    {"dtype", required_argument, 0, OPT_DTYPE},
    {"include", required_argument, 0, OPT_INCLUDE},
    {"exclude", required_argument, 0, OPT_EXCLUDE},
    {"level", required_argument, 0, 'l'},
    {"output", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0},
};

typedef enum { OUT_KEEP = -1, OUT_F32 = PP_F32, OUT_F16 = PP_F16, OUT_BF16 = PP_BF16 } out_dtype;

typedef struct opts {
    const char *type;       /* nf4 fp4 int8 bf16 f16 */
    int blocksize, double_quant;
    out_dtype dtype;        /* for tensors left alone */
    const char **include, **exclude;
    int n_include, n_exclude;
} opts;

#define MAX_ENTRIES_PER_TENSOR 6
#define N_CLASSES 10

static const char *const class_names[N_CLASSES] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "norms", "lm_head",
};

static int class_of(const char *name)
{
    for (int i = 0; i < 7; i++)
        if (strstr(name, class_names[i])) return i;
    if (strstr(name, "embed_tokens")) return 7;
    if (strstr(name, "lm_head")) return 9;
    return 8;
}

typedef struct stats {
    double bytes_in, bytes_out, err2, ref2;
    int count;
} stats;

static int matches(const char *name, const char **pats, int n)
{
    for (int i = 0; i < n; i++)
        if (fnmatch(pats[i], name, 0) == 0) return 1;
    return 0;
}

static int default_quantized(const char *name)
{
    static const char *const lin[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                      "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                      "mlp.down_proj.weight"};
    if (strncmp(name, "model.layers.", 13) != 0) return 0;
    for (size_t i = 0; i < sizeof lin / sizeof *lin; i++) {
        size_t n = strlen(name), k = strlen(lin[i]);
        if (n > k && strcmp(name + n - k, lin[i]) == 0) return 1;
    }
    return 0;
}

static void widen(float *out, const void *raw, pp_dtype dt, size_t n)
{
    if (dt == PP_F32) {
        memcpy(out, raw, n * 4);
    } else {
        const uint16_t *h = raw;
        for (size_t i = 0; i < n; i++) out[i] = dt == PP_BF16 ? pp_bf16_to_f32(h[i]) : pp_f16_to_f32(h[i]);
    }
}

static void narrow(void *out, const float *x, pp_dtype dt, size_t n)
{
    if (dt == PP_F32) {
        memcpy(out, x, n * 4);
    } else {
        uint16_t *h = out;
        for (size_t i = 0; i < n; i++) h[i] = dt == PP_BF16 ? pp_f32_to_bf16(x[i]) : pp_f32_to_f16(x[i]);
    }
}

static const char *torch_dtype(pp_dtype dt)
{
    return dt == PP_F32 ? "float32" : dt == PP_F16 ? "float16" : "bfloat16";
}

/* One output tensor: its description and its bytes in the arena. */
typedef struct out_t {
    char *name;
    pp_dtype dtype;
    int ndim;
    uint64_t shape[2];
    size_t off, nbytes;
} out_t;

typedef struct plan {
    out_t *t;
    size_t n, cap;
    uint8_t *arena;
    size_t used, size;
} plan;

static pp_status add_out(plan *p, const char *name, const char *suffix, pp_dtype dt, int ndim, uint64_t d0, uint64_t d1,
                         size_t *off)
{
    if (p->n == p->cap) {
        size_t c = p->cap ? 2 * p->cap : 256;
        out_t *q = realloc(p->t, c * sizeof *q);
        if (!q) return pp_fail(PP_E_NOMEM, "out of memory");
        p->t = q;
        p->cap = c;
    }
    size_t nbytes = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1) * pp_dtype_size(dt);
    size_t at = (p->used + 7) & ~(size_t)7;
    if (at + nbytes > p->size) return pp_fail(PP_E_INTERNAL, "arena overflow (tensor %s%s)", name, suffix);
    out_t *o = &p->t[p->n++];
    size_t len = strlen(name) + strlen(suffix) + 1;
    o->name = malloc(len);
    if (!o->name) return pp_fail(PP_E_NOMEM, "out of memory");
    snprintf(o->name, len, "%s%s", name, suffix);
    o->dtype = dt;
    o->ndim = ndim;
    o->shape[0] = d0;
    o->shape[1] = d1;
    o->off = at;
    o->nbytes = nbytes;
    p->used = at + nbytes;
    *off = at;
    return PP_OK;
}

/* Bytes a tensor of n values takes in the output, with slack for alignment. */
static size_t out_bytes(const opts *o, int quantized, size_t n, pp_dtype src)
{
    size_t nb = pp_quant_blocks(n, o->blocksize);
    if (!quantized) return n * (o->dtype == OUT_KEEP ? pp_dtype_size(src) : pp_dtype_size((pp_dtype)o->dtype)) + 8;
    if (!strcmp(o->type, "bf16") || !strcmp(o->type, "f16")) return 2 * n + 8;
    if (!strcmp(o->type, "int8")) return n + 4 * nb + 512 + 24;
    return (n + 1) / 2 + 4 * nb + 64 + 4 * (nb / 256 + 1) + 1024 + 512 + 48;
}

int main(int argc, char **argv)
{
    pp_cli_init("pp-quantize");
    opts o = {"nf4", 64, 0, OUT_KEEP, NULL, NULL, 0, 0};
    const char *out_path = NULL;
    int level = 3, c;
    uint64_t v;
    static const char **pats;
    pats = calloc(2 * (size_t)argc, sizeof *pats);
    if (!pats) return pp_cli_fail(NULL, pp_fail(PP_E_NOMEM, "out of memory"));
    o.include = pats;
    o.exclude = pats + argc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:b:l:o:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "nf4") && strcmp(optarg, "fp4") && strcmp(optarg, "int8") && strcmp(optarg, "bf16") &&
                strcmp(optarg, "f16"))
                return pp_cli_usage("--type wants nf4, fp4, int8, bf16 or f16, not \"%s\"", optarg);
            o.type = optarg;
            break;
        case 'b':
            if (pp_cli_u64(optarg, 32, 4096, &v) || (v & (v - 1)))
                return pp_cli_usage("--blocksize wants a power of two in 32..4096, not \"%s\"", optarg);
            o.blocksize = (int)v;
            break;
        case OPT_DQ: o.double_quant = 1; break;
        case OPT_DTYPE:
            if (!strcmp(optarg, "keep")) o.dtype = OUT_KEEP;
            else if (!strcmp(optarg, "f32")) o.dtype = OUT_F32;
            else if (!strcmp(optarg, "f16")) o.dtype = OUT_F16;
            else if (!strcmp(optarg, "bf16")) o.dtype = OUT_BF16;
            else return pp_cli_usage("--dtype wants keep, f32, f16 or bf16, not \"%s\"", optarg);
            break;
        case OPT_INCLUDE: o.include[o.n_include++] = optarg; break;
        case OPT_EXCLUDE: o.exclude[o.n_exclude++] = optarg; break;
        case 'l':
            if (pp_cli_u64(optarg, 1, 19, &v)) return pp_cli_usage("--level wants 1..19, not \"%s\"", optarg);
            level = (int)v;
            break;
        case 'o': out_path = optarg; break;
        case 'q': pp_verbosity = 0; break;
        case 'v': pp_verbosity = 2; break;
        case 'h': usage(); return 0;
        case 'V': pp_cli_version(); return 0;
        default: return pp_cli_bad_option(c, argv, optind);
        }
    }
    if (optind + 1 != argc) return pp_cli_usage("one MODEL_DIR or MODEL_FILE expected");
    if (!out_path) return pp_cli_usage("-o OUT is required");
    if (o.double_quant && (!strcmp(o.type, "int8") || !strcmp(o.type, "bf16") || !strcmp(o.type, "f16")))
        return pp_cli_usage("--double-quant goes with nf4 or fp4");
    if (strcmp(out_path, "-") == 0 && isatty(1))
        return pp_cli_usage("refusing to write binary data to a terminal (use -o FILE or a pipe)");
    const char *dir = argv[optind];
    int is4 = !strcmp(o.type, "nf4") || !strcmp(o.type, "fp4");
    pp_qtype qt = !strcmp(o.type, "fp4") ? PP_Q_FP4 : !strcmp(o.type, "int8") ? PP_Q_INT8 : PP_Q_NF4;

    pp_hfdir *h = NULL;
    pp_writer *w = NULL;
    plan p = {0};
    float *x = NULL, *y = NULL, *am = NULL;
    void *raw = NULL;
    pp_tokfiles tok = {0};
    pp_buf json = {0};
    stats st[N_CLASSES];
    memset(st, 0, sizeof st);
    const char *ctx = dir;
    int rc = 0;
    pp_status s = pp_hfdir_open(&h, dir);
    if (s != PP_OK) goto fail;
    if ((s = pp_hfdir_tokenizer(h, &tok)) != PP_OK) goto fail;
    pp_tokenizer *check = NULL; /* the tokenizer must load before it is carried */
    if ((s = pp_tokenizer_from_files(&check, &tok)) != PP_OK) goto fail;
    pp_tokenizer_free(check);

    /* The plan: one arena sized from the headers, the largest tensor's scratch. */
    size_t n_t = pp_hfdir_count(h), arena = 0, biggest = 0;
    for (size_t i = 0; i < n_t; i++) {
        const pp_tensor_info *ti = pp_hfdir_tensor(h, i, NULL);
        int qz = (default_quantized(ti->name) || matches(ti->name, o.include, o.n_include)) &&
                 !matches(ti->name, o.exclude, o.n_exclude) && ti->ndim == 2;
        arena += out_bytes(&o, qz, (size_t)ti->nelem, ti->dtype) + 8 * MAX_ENTRIES_PER_TENSOR;
        if (ti->nelem > biggest) biggest = (size_t)ti->nelem;
    }
    arena += tok.n + tok.nconfig + 16;
    p.size = arena;
    p.arena = malloc(arena);
    x = malloc(biggest * sizeof *x + 4);
    y = malloc(biggest * sizeof *y + 4);
    raw = malloc(biggest * 4 + 4);
    am = malloc((biggest / 32 + 2) * sizeof *am);
    if (!p.arena || !x || !y || !raw || !am) {
        s = pp_fail(PP_E_NOMEM, "out of memory (%zu MiB for the output)", arena >> 20);
        goto fail;
    }
    pp_cli_say(2, "%s: %s, %zu tensors, output arena %zu MiB", dir, pp_hfdir_config(h)->arch, n_t, arena >> 20);

    for (size_t i = 0; i < n_t; i++) {
        const pp_tensor_info *ti = pp_hfdir_tensor(h, i, NULL);
        size_t n = (size_t)ti->nelem, off;
        if ((s = pp_hfdir_read(h, i, raw)) != PP_OK) goto fail;
        widen(x, raw, ti->dtype, n);
        int qz = (default_quantized(ti->name) || matches(ti->name, o.include, o.n_include)) &&
                 !matches(ti->name, o.exclude, o.n_exclude) && ti->ndim == 2;
        stats *cs = &st[class_of(ti->name)];
        cs->count++;
        cs->bytes_in += (double)(ti->end - ti->begin);
        size_t before = p.used;
        if (!qz) {
            pp_dtype dt = o.dtype == OUT_KEEP ? ti->dtype : (pp_dtype)o.dtype;
            if ((s = add_out(&p, ti->name, "", dt, ti->ndim, ti->shape[0], ti->shape[1], &off)) != PP_OK) goto fail;
            if (dt == ti->dtype) memcpy(p.arena + off, raw, ti->end - ti->begin);
            else narrow(p.arena + off, x, dt, n);
            widen(y, p.arena + off, dt, n);
        } else if (!is4 && qt != PP_Q_INT8) { /* bf16 / f16 */
            pp_dtype dt = !strcmp(o.type, "bf16") ? PP_BF16 : PP_F16;
            if ((s = add_out(&p, ti->name, "", dt, 2, ti->shape[0], ti->shape[1], &off)) != PP_OK) goto fail;
            narrow(p.arena + off, x, dt, n);
            widen(y, p.arena + off, dt, n);
        } else {
            size_t nb = pp_quant_blocks(n, o.blocksize), qoff, aoff;
            pp_buf_clear(&json);
            if (qt == PP_Q_INT8) {
                if ((s = add_out(&p, ti->name, "", PP_I8, 2, ti->shape[0], ti->shape[1], &qoff)) != PP_OK ||
                    (s = add_out(&p, ti->name, ".absmax", PP_F32, 1, nb, 0, &aoff)) != PP_OK)
                    goto fail;
                pp_quant_int8((int8_t *)(p.arena + qoff), (float *)(p.arena + aoff), x, n, o.blocksize);
                pp_dequant_int8(y, (int8_t *)(p.arena + qoff), (float *)(p.arena + aoff), n, o.blocksize);
                s = pp_quant_state_json(&json, qt, o.blocksize, torch_dtype(o.dtype == OUT_KEEP ? ti->dtype : (pp_dtype)o.dtype), ti->shape, 2, 0, 0);
            } else {
                if ((s = add_out(&p, ti->name, "", PP_U8, 2, (n + 1) / 2, 1, &qoff)) != PP_OK) goto fail;
                pp_quant4(p.arena + qoff, am, x, n, o.blocksize, qt);
                float offset = 0;
                size_t moff;
                if (!o.double_quant) {
                    if ((s = add_out(&p, ti->name, ".absmax", PP_F32, 1, nb, 0, &aoff)) != PP_OK) goto fail;
                    memcpy(p.arena + aoff, am, nb * 4);
                } else {
                    size_t nn = pp_quant_blocks(nb, PP_NESTED_BLOCKSIZE), noff;
                    if ((s = add_out(&p, ti->name, ".absmax", PP_U8, 1, nb, 0, &aoff)) != PP_OK ||
                        (s = add_out(&p, ti->name, ".nested_absmax", PP_F32, 1, nn, 0, &noff)) != PP_OK)
                        goto fail;
                    pp_quant_nested(p.arena + aoff, (float *)(p.arena + noff), &offset, am, nb);
                    pp_dequant_nested(am, p.arena + aoff, (float *)(p.arena + noff), offset, nb);
                    if ((s = add_out(&p, ti->name, ".nested_quant_map", PP_F32, 1, 256, 0, &moff)) != PP_OK) goto fail;
                    memcpy(p.arena + moff, pp_quant_dynamic_map(), 256 * 4);
                }
                if ((s = add_out(&p, ti->name, ".quant_map", PP_F32, 1, 16, 0, &moff)) != PP_OK) goto fail;
                memcpy(p.arena + moff, pp_quant_code4(qt), 16 * 4);
                pp_dequant4(y, p.arena + qoff, am, n, o.blocksize, qt);
                s = pp_quant_state_json(&json, qt, o.blocksize, torch_dtype(o.dtype == OUT_KEEP ? ti->dtype : (pp_dtype)o.dtype), ti->shape, 2,
                                        o.double_quant, offset);
            }
            if (s != PP_OK) goto fail;
            char suffix[64];
            snprintf(suffix, sizeof suffix, ".quant_state.%s__%s", qt == PP_Q_INT8 ? "pp" : "bitsandbytes", o.type);
            if ((s = add_out(&p, ti->name, suffix, PP_U8, 1, json.len, 0, &off)) != PP_OK) goto fail;
            memcpy(p.arena + off, json.p, json.len);
        }
        cs->bytes_out += (double)(p.used - before);
        double e2 = 0, r2 = 0;
        for (size_t k = 0; k < n; k++) {
            double d = (double)x[k] - (double)y[k];
            e2 += d * d;
            r2 += (double)x[k] * x[k];
        }
        cs->err2 += e2;
        cs->ref2 += r2;
        if (pp_verbosity >= 2)
            fprintf(stderr, "pp-quantize: %-48s %-5s -> %-5s rel. error %.3e\n", ti->name, pp_dtype_name(ti->dtype),
                    qz ? o.type : "kept", r2 > 0 ? sqrt(e2 / r2) : 0.0);
    }
    if ((s = pp_hfdir_finish(h)) != PP_OK) goto fail;
    size_t toff;
    if ((s = add_out(&p, pp_tokfiles_name(&tok), "", PP_U8, 1, tok.n, 0, &toff)) != PP_OK) goto fail;
    memcpy(p.arena + toff, tok.data, tok.n);
    if (tok.config) {
        if ((s = add_out(&p, "tokenizer_config.json", "", PP_U8, 1, tok.nconfig, 0, &toff)) != PP_OK) goto fail;
        memcpy(p.arena + toff, tok.config, tok.nconfig);
    }

    /* The file: header (config, quantization, tokenizer checksum), then data. */
    char sha[65], bs[16];
    pp_sha256_hex_of(tok.data, tok.n, sha);
    snprintf(bs, sizeof bs, "%d", o.blocksize);
    const char *gen = pp_hfdir_generation_json(h);
    const char *kv[] = {"pp.kind", "model", "pp.version", PP_MODEL_VERSION, "config", pp_hfdir_config_json(h),
                        "quant.type", o.type, "quant.blocksize", bs, "quant.double_quant", o.double_quant ? "true" : "false",
                        "tokenizer.sha256", sha, "format", "pt", "generation_config", gen ? gen : ""};
    pp_st_entry *e = calloc(p.n, sizeof *e);
    if (!e) {
        s = pp_fail(PP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < p.n; i++)
        e[i] = (pp_st_entry){p.t[i].name, p.t[i].dtype, p.t[i].ndim, p.t[i].shape, p.arena + p.t[i].off};
    ctx = strcmp(out_path, "-") ? out_path : "<stdout>";
    s = pp_writer_open(&w, out_path, level);
    if (s == PP_OK) s = pp_st_write(w, e, p.n, kv, sizeof kv / sizeof *kv / 2 - (gen ? 0 : 1));
    free(e);
    if (s == PP_OK) {
        s = pp_writer_commit(w);
        w = NULL;
    }
    if (s != PP_OK) goto fail;

    if (pp_verbosity >= 1) {
        double tin = 0, tout = 0;
        fprintf(stderr, "pp-quantize: %-12s %5s %12s %12s %10s\n", "class", "count", "MiB before", "MiB after", "rel.error");
        for (int k = 0; k < N_CLASSES; k++) {
            if (!st[k].count) continue;
            tin += st[k].bytes_in;
            tout += st[k].bytes_out;
            fprintf(stderr, "pp-quantize: %-12s %5d %12.2f %12.2f %10.3e\n", class_names[k], st[k].count,
                    st[k].bytes_in / 1048576.0, st[k].bytes_out / 1048576.0,
                    st[k].ref2 > 0 ? sqrt(st[k].err2 / st[k].ref2) : 0.0);
        }
        fprintf(stderr, "pp-quantize: %-12s %5s %12.2f %12.2f   (%.1f%% of the input, before zstd)\n", "total", "",
                tin / 1048576.0, tout / 1048576.0, tin > 0 ? 100.0 * tout / tin : 0.0);
    }
    goto out;
fail:
    rc = pp_cli_fail(ctx, s);
out:
    pp_writer_abort(w);
    pp_hfdir_close(h);
    for (size_t i = 0; i < p.n; i++) free(p.t[i].name);
    free(p.t);
    free(p.arena);
    free(x);
    free(y);
    free(raw);
    free(am);
    pp_tokfiles_free(&tok);
    pp_buf_free(&json);
    free(pats);
    return rc;
}
