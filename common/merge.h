/* merge.h: folding a LoRA adapter into its base model, W' = W + s·B·A, and
 * writing the result as a Hugging Face model directory (pp-merge).
 *
 * The merged model is produced one tensor at a time: pp_merge_list() names
 * the output tensors in Hugging Face's state-dict order, each pointing at its
 * weight in the loaded base (pp_llama); pp_merge_tensor_values() widens (or
 * dequantizes) one of them and adds the adapter's update; the caller narrows
 * it to the output dtype and writes it. No copy of the whole model is made. */
#ifndef PP_MERGE_H
#define PP_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "llama.h"
#include "lora.h"
#include "safetensors.h"
#include "status.h"

/* One tensor of the merged model. */
typedef struct pp_merge_tensor {
    char name[96];          /* Hugging Face's: model.layers.0.self_attn.q_proj.weight */
    const pp_weight *w;     /* the base's weight (a norm is held as fp32) */
    int layer, type;        /* the LoRA module (PP_LORA_*), type -1 for the rest */
    int ndim;               /* 1 (norms) or 2 */
    uint64_t shape[2];
    uint64_t nelem;
    int shard;              /* output file index, set by pp_merge_shard() */
} pp_merge_tensor;

/* The tensors of m in the order transformers' state_dict() lists them
 * (embed_tokens; per layer q, k, v, o, gate, up, down, input_layernorm,
 * post_attention_layernorm; norm; lm_head unless the embeddings are tied).
 * A malloc'ed array in *out (free() it), its length in *n. type is set for
 * the modules l adapts (l may be NULL: none). */
pp_status pp_merge_list(pp_merge_tensor **out, size_t *n, const pp_llama *m, const pp_lora *l);

/* Splits the tensors into files of at most max_bytes (elem_size bytes per
 * value), as huggingface_hub's split_torch_state_dict_into_shards() does:
 * in list order, a tensor that would tip the current file over the limit
 * starts a new one, a tensor larger than the limit gets a file of its own,
 * and files are numbered in the order they are closed (so the same tensors
 * land in the same numbered files as with save_pretrained). Sets each
 * tensor's shard and returns the number of files. */
size_t pp_merge_shard(pp_merge_tensor *t, size_t n, size_t elem_size, uint64_t max_bytes);

/* The values of w widened to fp32 (dequantized for NF4/FP4/INT8): out holds
 * rows * cols floats. */
void pp_weight_widen(float *out, const pp_weight *w);

/* delta (out, in) = s · B·A for layer's module type of l, s = l->scale: the
 * float32 product B·A, then multiplied by s, as PEFT's merge computes it. */
void pp_lora_delta(float *delta, const pp_lora *l, int layer, int type);

/* The merged values of t into out (t->nelem floats): the base's weight
 * widened, plus s·B·A when t is adapted. delta (t->nelem floats) receives
 * s·B·A for an adapted tensor and is untouched otherwise. */
void pp_merge_tensor_values(float *out, float *delta, const pp_merge_tensor *t, const pp_lora *l);

/* sqrt(sum x²), accumulated in double. */
double pp_frobenius(const float *x, size_t n);

/* ‖x − dequant(quant(x))‖_F for quantization type t (PP_W_NF4, PP_W_FP4 or
 * PP_W_INT8) with blocksize: what quantizing x again would lose. Scratch:
 * y (n floats), q ((n + 1) / 2 bytes for 4 bits, n for INT8), absmax (one
 * float per block). */
double pp_requant_error(const float *x, size_t n, pp_wtype t, int blocksize, float *y, uint8_t *q, float *absmax);

/* x rounded to dtype (PP_F32, PP_BF16, PP_F16) into out (n values of that
 * dtype), and, when back is not NULL, widened again into back. */
void pp_narrow(void *out, float *back, const float *x, pp_dtype dtype, size_t n);

/* config.json for the merged model, malloc'ed into *json: the base's own
 * config (a directory's config.json, or the "config" metadata of a pp model
 * file) with "torch_dtype" and "dtype" set to torch_dtype ("float32",
 * "bfloat16", "float16"). When the base is standard input ("-") its config
 * cannot be read again, and base NULL means there is none: one is written
 * from cfg. */
pp_status pp_merge_config_json(char **json, const char *base, const pp_config *cfg, const char *torch_dtype);

/* Writes m, with l's update s·B·A folded into every module l adapts (l may be
 * NULL: m as it is), as a Hugging Face model directory outdir, which must
 * exist: config.json, model.safetensors (or model-0000K-of-0000N.safetensors
 * split at max_shard bytes as pp_merge_shard() does, and
 * model.safetensors.index.json), tokenizer.model when m has one and, when
 * base is a directory, its generation_config.json and tokenizer JSON files.
 * base is the path m was loaded from ("-" for standard input), read again
 * for config.json (pp_merge_config_json()) and the side files; NULL means
 * none: config.json is written from m->cfg. Tensors are written in dtype
 * (PP_F32, PP_BF16, PP_F16): an unadapted one whose weight already has that
 * dtype byte for byte, the others widened (dequantized) and narrowed. Every
 * file is a temporary until all of them are complete, config.json is
 * committed last, and weight files of an earlier run that this one did not
 * write are removed. With l, -v prints |s·B·A|_F, |W'|_F and the
 * requantization and rounding errors of each adapted module, and a warning
 * says when s·B·A is below the error of quantizing W' again. Reports with
 * pp_cli_say(): "merged N modules ..." with l, "wrote OUTDIR: ..." without.
 * On failure *fail_path is the file to name in the message (malloc'ed, or
 * NULL; free() it); it is NULL on success. Nothing is removed from outdir on
 * failure beyond this call's own temporaries. */
pp_status pp_merge_write(const pp_llama *m, const pp_lora *l, const char *base, const char *outdir, pp_dtype dtype,
                         uint64_t max_shard, char **fail_path);

/* What pp-train recorded about an adapter's base (ADAPTER/pp-train.json). */
typedef struct pp_train_record {
    int present;            /* 0: no pp-train.json (e.g. a PEFT adapter) */
    char base_sha256[65];   /* pp_llama_sha256 of the base it trained on, or "" */
    char base_quant[16];    /* that base's quant ("f32", "bf16", "nf4", ...), or "" */
    char tokenizer_sha256[65]; /* SHA-256 of its tokenizer.model, or "" */
} pp_train_record;

/* Reads dir/pp-train.json when it exists; a file that is not a JSON object or
 * holds a key of the wrong type is PP_E_DATA. */
pp_status pp_train_record_read(pp_train_record *r, const char *dir);

#endif
