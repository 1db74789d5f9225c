/* piececache.h: a thread's cache of pieces already encoded.
 *
 * Text repeats its words, so both BPE encoders (bpe.c, hftok.c) keep the
 * ids of each piece they encode, keyed by its bytes, in a fixed amount of
 * memory (about 13 MiB): an open-addressing table, the keys back to back,
 * the ids (and their byte lengths) back to back. When it is full it starts
 * over. Pieces longer than PP_PIECECACHE_MAX_PIECE bytes are not kept. */
#ifndef PP_PIECECACHE_H
#define PP_PIECECACHE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define PP_PIECECACHE_MAX_PIECE 256

typedef struct pp_piececache pp_piececache;

pp_status pp_piececache_new(pp_piececache **c);
void pp_piececache_free(pp_piececache *c);

/* The ids of piece s[0..n) and each one's length in bytes (pointers into
 * the cache, valid until the next put), their count in *count; 0 when the
 * piece is not there. */
int pp_piececache_get(const pp_piececache *c, const char *s, size_t n, const uint32_t **ids, const uint32_t **lens,
                      size_t *count);

/* Keeps the ids of piece s[0..n); lens may be NULL (lengths not needed). */
void pp_piececache_put(pp_piececache *c, const char *s, size_t n, const uint32_t *ids, const uint32_t *lens, size_t count);

#endif
