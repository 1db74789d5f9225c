/* quant.h: blockwise weight quantization, bit-identical to bitsandbytes.
 *
 * NF4 and FP4 follow bitsandbytes' CUDA kernels (csrc/kernels.cu:
 * kQuantizeBlockwise with dQuantizeNF4 / dQuantizeFP4): one fp32 absmax per
 * block of the row-major flattened weight, the input widened to fp32 and
 * multiplied by 1.0f/absmax, the kernel's own decision thresholds compared
 * with x > t, two values per byte with the first in the high nibble. An
 * all-zero block has absmax 0, so every scaled value is 0 * inf = NaN, which
 * falls through every comparison: code 0 (NF4) or 0 (FP4), as on the GPU.
 *
 * Double quantization (QLoRA) quantizes the absmax values themselves: their
 * float32 mean is subtracted (the offset) and the rest is quantized blockwise
 * (256) with bitsandbytes' signed 8-bit dynamic map, nearest code by the
 * kernel's binary search (dQuantize, deterministic rounding).
 *
 * INT8 is pp's own symmetric blockwise format: q = round(x * 127 / absmax). */
#ifndef PP_QUANT_H
#define PP_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "status.h"


typedef enum pp_qtype { PP_Q_NF4, PP_Q_FP4, PP_Q_INT8 } pp_qtype;

/* The 16 code values (bitsandbytes' get_4bit_type, float32) of a 4-bit type. */
const float *pp_quant_code4(pp_qtype t);
/* The 256 values of bitsandbytes' create_dynamic_map(signed=True), float32. */
const float *pp_quant_dynamic_map(void);

/* Number of blocks of blocksize covering n values. */
size_t pp_quant_blocks(size_t n, int blocksize);

/* Quantizes x[0..n) to 4 bits: packed receives (n + 1) / 2 bytes, absmax one
 * float per block. t is PP_Q_NF4 or PP_Q_FP4. */
void pp_quant4(uint8_t *packed, float *absmax, const float *x, size_t n, int blocksize, pp_qtype t);

/* out[i] = code[q_i] * absmax[i / blocksize] (float32 multiply, as the kernel). */
void pp_dequant4(float *out, const uint8_t *packed, const float *absmax, size_t n, int blocksize, pp_qtype t);

/* Double quantization of nblocks absmax values: q (nblocks bytes), nested
 * absmax (one per 256), offset (the float32 mean, accumulated in double). */
void pp_quant_nested(uint8_t *q, float *nested_absmax, float *offset, const float *absmax, size_t nblocks);
void pp_dequant_nested(float *absmax, const uint8_t *q, const float *nested_absmax, float offset, size_t nblocks);

/* INT8: q receives n bytes, absmax one float per block. */
void pp_quant_int8(int8_t *q, float *absmax, const float *x, size_t n, int blocksize);
void pp_dequant_int8(float *out, const int8_t *q, const float *absmax, size_t n, int blocksize);

/* Appends the JSON that bitsandbytes packs into NAME.quant_state.bitsandbytes__T
 * (QuantState.as_dict(packed=True), json.dumps): quant_type, blocksize, dtype
 * ("float32", "float16", "bfloat16"), shape, and with double quantization
 * nested_blocksize, nested_dtype and nested_offset written as Python's repr of
 * the float32 offset (shortest digits that read back exactly). For INT8 the
 * same keys without the nested ones. */
struct pp_buf;
pp_status pp_quant_state_json(struct pp_buf *out, pp_qtype t, int blocksize, const char *dtype,
                              const uint64_t *shape, int ndim, int double_quant, float offset);

/* bfloat16 and float16 bit patterns widened to float (exact). */
float pp_bf16_to_f32(uint16_t h);
float pp_f16_to_f32(uint16_t h);
/* float rounded to bfloat16 / float16, round to nearest even (NaN kept NaN). */
uint16_t pp_f32_to_bf16(float f);
uint16_t pp_f32_to_f16(float f);

#endif
