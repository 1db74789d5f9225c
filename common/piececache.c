#include "piececache.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS (1u << 16)
#define KEY_BYTES (4u << 20)
#define IDS (1u << 20)

typedef struct slot {
    uint64_t h;
    uint32_t key, key_len, ids, n_ids;
} slot;

struct pp_piececache {
    slot *slots;            /* (SLOTS) key_len 0: empty */
    char *keys;             /* (KEY_BYTES) */
    uint32_t *ids, *lens;   /* (IDS) each */
    uint32_t n_slots, keys_len, ids_len;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

pp_status pp_piececache_new(pp_piececache **out)
{
    pp_piececache *c = calloc(1, sizeof *c);
    if (c) {
        c->slots = calloc(SLOTS, sizeof *c->slots);
        c->keys = malloc(KEY_BYTES);
        c->ids = malloc(IDS * sizeof *c->ids);
        c->lens = malloc(IDS * sizeof *c->lens);
    }
    if (!c || !c->slots || !c->keys || !c->ids || !c->lens) {
        pp_piececache_free(c);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    *out = c;
    return PP_OK;
}

void pp_piececache_free(pp_piececache *c)
{
    if (!c) return;
    free(c->slots);
    free(c->keys);
    free(c->ids);
    free(c->lens);
    free(c);
}

/* The slot of s: where it is, or the empty slot where it would go. */
static uint32_t find(const pp_piececache *c, uint64_t h, const char *s, size_t n)
{
    uint32_t i = (uint32_t)h & (SLOTS - 1);
    for (;; i = (i + 1) & (SLOTS - 1)) {
        const slot *e = &c->slots[i];
        if (e->key_len == 0 || (e->h == h && e->key_len == n && memcmp(c->keys + e->key, s, n) == 0)) return i;
    }
}

int pp_piececache_get(const pp_piececache *c, const char *s, size_t n, const uint32_t **ids, const uint32_t **lens,
                      size_t *count)
{
    if (n == 0 || n > PP_PIECECACHE_MAX_PIECE) return 0;
    const slot *e = &c->slots[find(c, hash(s, n), s, n)];
    if (e->key_len == 0) return 0;
    *ids = c->ids + e->ids;
    *lens = c->lens + e->ids;
    *count = e->n_ids;
    return 1;
}

void pp_piececache_put(pp_piececache *c, const char *s, size_t n, const uint32_t *ids, const uint32_t *lens, size_t count)
{
    if (n == 0 || n > PP_PIECECACHE_MAX_PIECE || count > IDS) return;
    uint64_t h = hash(s, n);
    if (c->n_slots >= SLOTS / 2 || c->keys_len + n > KEY_BYTES || c->ids_len + count > IDS) {
        memset(c->slots, 0, SLOTS * sizeof *c->slots); /* full: start over */
        c->n_slots = c->keys_len = c->ids_len = 0;
    }
    uint32_t i = find(c, h, s, n);
    if (c->slots[i].key_len) return; /* there already */
    c->slots[i] = (slot){h, c->keys_len, (uint32_t)n, c->ids_len, (uint32_t)count};
    memcpy(c->keys + c->keys_len, s, n);
    if (count) {
        memcpy(c->ids + c->ids_len, ids, count * sizeof *ids);
        if (lens) memcpy(c->lens + c->ids_len, lens, count * sizeof *lens);
        else memset(c->lens + c->ids_len, 0, count * sizeof *lens);
    }
    c->keys_len += (uint32_t)n;
    c->ids_len += (uint32_t)count;
    c->n_slots++;
}
