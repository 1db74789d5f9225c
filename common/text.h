/* text.h: growable byte buffers, UTF-8 validation, JSON string escaping. */
#ifndef PP_TEXT_H
#define PP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* A growable byte string, always NUL-terminated once anything was appended.
 * Zero-initialise ({0}) to start; pp_buf_free() releases it. */
typedef struct pp_buf {
    char *p;
    size_t len, cap;
} pp_buf;

/* Makes room for n more bytes (amortised doubling). */
pp_status pp_buf_reserve(pp_buf *b, size_t n);
pp_status pp_buf_add(pp_buf *b, const void *data, size_t n);
pp_status pp_buf_adds(pp_buf *b, const char *s);
pp_status pp_buf_printf(pp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. s must be valid UTF-8;
 * control characters, '"' and '\\' are escaped, everything else is copied. */
pp_status pp_buf_json_string(pp_buf *b, const char *s, size_t n);
void pp_buf_clear(pp_buf *b);
void pp_buf_free(pp_buf *b);

/* "dir/name", malloc'ed; NULL when out of memory. */
char *pp_path_join(const char *dir, const char *name);

/* A malloc'ed copy of s with the escapes \n, \t and \\ turned into their
 * characters (for strings given on a command line); NULL when out of memory. */
char *pp_unescape(const char *s);

/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF); otherwise 0 and the offset of the first bad byte in *bad. */
int pp_utf8_valid(const char *s, size_t n, size_t *bad);

/* Checks JSON text for what cJSON would let through into C strings: a
 * control byte inside a string (invalid JSON) or a "\u0000" escape (a NUL
 * that would cut the string short). Returns 1 if clean; otherwise 0 and the
 * offset of the offending byte in *bad. */
int pp_json_strings_clean(const char *s, size_t n, size_t *bad);

/* Key-word recall of an answer against a reference: the fraction of the
 * reference's distinct key words that the answer contains. Words are runs of
 * letters and digits (ASCII case folded; bytes >= 0x80 count as letters);
 * key words have 4 or more characters and are not among a fixed list of
 * common English words ("that", "with", "would"...). Returns the fraction in
 * [0, 1], or -1 when the reference has no key words; *hits and *total (either
 * may be NULL) get the counts. -2 when out of memory. */
double pp_keyword_recall(const char *ref, size_t nref, const char *ans, size_t nans, int *hits, int *total);

#endif
