/* sha256.h: SHA-256 (FIPS 180-4), for checksums of tokenizers and models. */
#ifndef PP_SHA256_H
#define PP_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct pp_sha256 {
    uint32_t h[8];
    uint64_t len;           /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;
} pp_sha256;

void pp_sha256_init(pp_sha256 *c);
void pp_sha256_update(pp_sha256 *c, const void *data, size_t n);
/* Writes 64 lowercase hex digits and a NUL into hex. */
void pp_sha256_hex(pp_sha256 *c, char hex[65]);
/* Nonzero: the x86 SHA extensions are used (the CPU has them and
 * pp_sha256_scalar is 0). Setting pp_sha256_scalar turns them off (tests). */
int pp_sha256_accelerated(void);
extern int pp_sha256_scalar;

/* The hex digest of n bytes at once. */
void pp_sha256_hex_of(const void *data, size_t n, char hex[65]);

#endif
