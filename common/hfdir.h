/* hfdir.h: a Hugging Face Llama directory: config.json, the weights in one
 * model.safetensors or in shards listed by model.safetensors.index.json, and
 * tokenizer.model. Opening reads and checks every header: each tensor the
 * config implies must be present once, with its shape and a float dtype
 * (F32, F16, BF16); a missing key, tensor or shard is an error naming it. */
#ifndef PP_HFDIR_H
#define PP_HFDIR_H

#include "config.h"
#include "safetensors.h"

typedef struct pp_hfdir pp_hfdir;

/* dir may also be an unquantized pp model file (bf16 or f16): its config,
 * weights and tokenizer stand in for the directory's. */
pp_status pp_hfdir_open(pp_hfdir **out, const char *dir);
void pp_hfdir_close(pp_hfdir *h);

const pp_config *pp_hfdir_config(const pp_hfdir *h);
/* config.json as found (NUL-terminated). */
const char *pp_hfdir_config_json(const pp_hfdir *h);

/* The weights the model uses, in reading order (shard by shard, file order
 * within a shard): count, and for each its shard and header entry. */
size_t pp_hfdir_count(const pp_hfdir *h);
const pp_tensor_info *pp_hfdir_tensor(const pp_hfdir *h, size_t i, size_t *shard);
const char *pp_hfdir_shard_path(const pp_hfdir *h, size_t shard);

/* Reads tensor i (call in order of i). Errors name the shard. */
pp_status pp_hfdir_read(pp_hfdir *h, size_t i, void *dst);
/* After the last read: every shard must end where its header says. */
pp_status pp_hfdir_finish(pp_hfdir *h);

/* The files that define a model's tokenizer, as a directory holds them and a
 * pp model file carries them (U8 tensors named after the files). */
typedef struct pp_tokfiles {
    char *data;             /* tokenizer.json or tokenizer.model bytes (malloc'ed), or NULL */
    size_t n;
    int json;               /* 1: data is tokenizer.json */
    char *config;           /* tokenizer_config.json (malloc'ed, NUL-terminated), or NULL */
    size_t nconfig;
} pp_tokfiles;

/* The tensor or file name of f's main file. */
const char *pp_tokfiles_name(const pp_tokfiles *f);
void pp_tokfiles_free(pp_tokfiles *f);
/* A directory's tokenizer: tokenizer.json wins over tokenizer.model, as in
 * transformers; tokenizer_config.json when present. PP_E_NOINPUT names the
 * files missing. */
pp_status pp_tokfiles_from_dir(pp_tokfiles *f, const char *dir);
/* The same from a safetensors file's U8 tensors (the whole file is read). */
pp_status pp_tokfiles_from_st(pp_tokfiles *f, pp_st_reader *st);

/* The model's tokenizer files; PP_E_NOINPUT when it has none. */
pp_status pp_hfdir_tokenizer(const pp_hfdir *h, pp_tokfiles *f);

/* generation_config.json as found (NUL-terminated), or NULL. */
const char *pp_hfdir_generation_json(const pp_hfdir *h);
/* A pp model file's generation_config (metadata): its eos ids added to c;
 * with copy non-NULL, a malloc'ed copy of the text (NULL when none). */
pp_status pp_model_file_generation(const pp_st_reader *st, pp_config *c, char **copy);

/* Checks a pp model file's header (pp.kind "model", pp.version "1", a
 * config) and points *config at its config.json text (owned by st). */
pp_status pp_model_file_config(const pp_st_reader *st, const char **config);

/* The names of the model's weights for cfg, in the model's own order; n set
 * to the count. Returns a malloc'ed array of malloc'ed strings (free with
 * pp_names_free). */
char **pp_llama_weight_names(const pp_config *cfg, size_t *n);
void pp_names_free(char **names, size_t n);
/* The expected shape of weight name under cfg (ndim 1 or 2); 0 if unknown. */
int pp_llama_weight_shape(const pp_config *cfg, const char *name, uint64_t shape[2]);

#endif
