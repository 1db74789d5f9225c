/* safetensors.h: the container of every pp artifact, plain or zstd-compressed.
 *
 * Layout (huggingface/safetensors): u64 little-endian header length N, N bytes
 * of JSON header, then the data section. The header maps tensor names to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * data section) and may hold "__metadata__", a string-to-string map.
 *
 * The reader works on a pp_reader stream: it parses and validates the header
 * first, then hands out tensors in file order, so a compressed file or stdin
 * is read in one pass. Validation follows the reference implementation:
 * header length <= 100 MB and inside the input, UTF-8 JSON object, known
 * dtypes, overflow-checked shapes and spans, spans contiguous from 0 with no
 * gap or overlap, the data section exactly filling the rest of the input, no
 * duplicate names, no NUL in names. Zero-size and rank-0 tensors are valid. */
#ifndef PP_SAFETENSORS_H
#define PP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "stream.h"

#define PP_ST_MAX_HEADER 100000000u
#define PP_ST_MAX_DIMS 16

typedef enum pp_dtype {
    PP_BOOL, PP_U8, PP_I8, PP_F8_E5M2, PP_F8_E4M3, PP_I16, PP_U16, PP_F16,
    PP_BF16, PP_I32, PP_U32, PP_F32, PP_F64, PP_I64, PP_U64,
    PP_DTYPE_COUNT
} pp_dtype;

/* "F32", "BF16", ... */
const char *pp_dtype_name(pp_dtype t);
/* Bytes per element. */
size_t pp_dtype_size(pp_dtype t);
/* Parses a safetensors dtype name; PP_E_DATA if unknown. */
pp_status pp_dtype_parse(const char *name, pp_dtype *t);

typedef struct pp_tensor_info {
    const char *name;       /* points into the reader's header; NUL-free */
    pp_dtype dtype;
    int ndim;               /* 0 for a scalar */
    uint64_t shape[PP_ST_MAX_DIMS];
    uint64_t nelem;         /* product of shape (1 for a scalar) */
    uint64_t begin, end;    /* byte span within the data section */
} pp_tensor_info;

typedef struct pp_st_reader pp_st_reader;

/* Reads and validates the header from in (borrowed; it must outlive the
 * reader). Nothing of the data section is read yet. */
pp_status pp_st_open(pp_st_reader **out, pp_reader *in);

/* Tensors in file order (ascending begin). */
size_t pp_st_count(const pp_st_reader *st);
const pp_tensor_info *pp_st_tensor(const pp_st_reader *st, size_t i);
/* The tensor with that name, or NULL. */
const pp_tensor_info *pp_st_find(const pp_st_reader *st, const char *name);
/* Metadata value for key, or NULL. */
const char *pp_st_meta(const pp_st_reader *st, const char *key);
size_t pp_st_meta_count(const pp_st_reader *st);
void pp_st_meta_at(const pp_st_reader *st, size_t i, const char **key, const char **val);
/* Size of the data section in bytes. */
uint64_t pp_st_data_size(const pp_st_reader *st);

/* Reads the bytes of t (t->end - t->begin) into dst. Tensors must be read in
 * file order; the ones in between are skipped. */
pp_status pp_st_read(pp_st_reader *st, const pp_tensor_info *t, void *dst);

/* Reads the next n bytes of t into dst: successive calls walk through t, the
 * first call for a tensor skips to its beginning. Tensors in file order. */
pp_status pp_st_read_part(pp_st_reader *st, const pp_tensor_info *t, void *dst, size_t n);

/* Skips what is left of the data section and checks that the input ends
 * exactly there. Call after the last pp_st_read to validate the whole file. */
pp_status pp_st_finish(pp_st_reader *st);

void pp_st_close(pp_st_reader *st);

/* One tensor to write: data may be NULL with pp_st_write_header(). */
typedef struct pp_st_entry {
    const char *name;
    pp_dtype dtype;
    int ndim;
    const uint64_t *shape;
    const void *data;
} pp_st_entry;

/* Writes the length and the header for n tensors laid out in the given order,
 * metadata from n_meta key/value pairs (kv[2i], kv[2i+1]). The caller then
 * writes each tensor's bytes, in order, with pp_write(). Refuses duplicate or
 * empty names and sizes that overflow. The header is padded with spaces to a
 * multiple of 8 bytes, as the reference writer does. */
pp_status pp_st_write_header(pp_writer *w, const pp_st_entry *t, size_t n,
                             const char *const *kv, size_t n_meta);

/* pp_st_write_header() followed by every tensor's data. */
pp_status pp_st_write(pp_writer *w, const pp_st_entry *t, size_t n,
                      const char *const *kv, size_t n_meta);

/* Bytes of one entry's data, or PP_E_DATA on overflow. */
pp_status pp_st_entry_bytes(const pp_st_entry *t, uint64_t *nbytes);

#endif
