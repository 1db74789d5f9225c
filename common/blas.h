/* blas.h: the fastest OpenBLAS kernels the CPU has, without the user's help.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it picks a
 * kernel set by CPU model. On a CPU model it does not know (a Xeon newer
 * than the library) it falls back to generic SSE3 kernels ("Prescott"),
 * three times slower than the AVX-512 ones the CPU runs. OpenBLAS reads
 * OPENBLAS_CORETYPE only when it loads, before main(); so the tools that
 * compute call pp_blas_setup() first: when the kernels OpenBLAS chose are of
 * a lower class than the CPU's instruction set (checked with CPUID and
 * XGETBV, so an OS that does not save AVX-512 state is respected), it sets
 * OPENBLAS_CORETYPE and executes the program again, once. A user's own
 * OPENBLAS_CORETYPE is left alone. */
#ifndef PP_BLAS_H
#define PP_BLAS_H

/* Instruction-set classes, in order. */
enum { PP_ISA_SSE, PP_ISA_AVX, PP_ISA_AVX2, PP_ISA_AVX512, PP_ISA_AVX512_BF16 };

/* The class of this CPU (with the OS's support for the registers). */
int pp_blas_cpu_isa(void);

/* The kernel set to ask OpenBLAS for when it chose `detected` on a CPU of
 * class isa, or NULL when its choice is as good (or unknown to pp). */
const char *pp_blas_pick(const char *detected, int isa);

/* Call first in main(): may execute argv again with OPENBLAS_CORETYPE set.
 * PP_BLAS_DETECTED=NAME pretends OpenBLAS chose NAME (for the tests). */
void pp_blas_setup(char **argv);

/* One line for -v and --version: the library, its kernels, and why. */
const char *pp_blas_describe(void);

#endif
