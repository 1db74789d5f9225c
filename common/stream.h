/* stream.h: byte streams in and out of files, stdin and stdout, plain or
 * zstd-compressed, and atomic output files.
 *
 * A reader detects a zstd frame by its magic number and decompresses it
 * transparently; a truncated frame, a checksum mismatch or bytes after the last
 * frame that are not a frame are PP_E_DATA, never a silent short read. The
 * decoder window is capped at 2^PP_ZSTD_WINDOWLOG_MAX bytes.
 *
 * A writer to a file writes a temporary file in the target directory and
 * renames it over the target only in pp_writer_commit(); pp_writer_abort(), an
 * error, or SIGINT/SIGTERM (after pp_install_signal_cleanup()) remove it. */
#ifndef PP_STREAM_H
#define PP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PP_ZSTD_WINDOWLOG_MAX 27   /* 128 MiB: what zstd itself accepts without --long */
#define PP_LINE_MAX (64u << 20)    /* longest line pp_read_line returns */

typedef struct pp_reader pp_reader;
typedef struct pp_writer pp_writer;

/* Opens path for reading; "-" is stdin. On failure *out is NULL. */
pp_status pp_reader_open(pp_reader **out, const char *path);

/* A reader over n bytes at data (borrowed: it must outlive the reader). Same
 * zstd detection as a file. For tests and fuzzing. */
pp_status pp_reader_open_mem(pp_reader **out, const void *data, size_t n);

/* Reads up to cap bytes into buf. *got is 0 only at the clean end of input. */
pp_status pp_read_some(pp_reader *r, void *buf, size_t cap, size_t *got);

/* Reads exactly n bytes; the end of input before n bytes is PP_E_DATA
 * ("truncated ... (byte offset N)"). */
pp_status pp_read_exact(pp_reader *r, void *buf, size_t n);

/* Discards exactly n bytes, with the same truncation check. */
pp_status pp_read_skip(pp_reader *r, uint64_t n);

/* Succeeds only at the clean end of input: anything left is PP_E_DATA. */
pp_status pp_read_expect_end(pp_reader *r);

/* Returns the next line without its '\n' (and without a '\r' before it) in
 * *line, valid until the next call on r; *line is NULL at the end of input.
 * A line longer than PP_LINE_MAX is PP_E_DATA. */
pp_status pp_read_line(pp_reader *r, const char **line, size_t *len);

/* Reads all that is left into one malloc'ed, NUL-terminated buffer that the
 * caller frees. More than max bytes is PP_E_DATA. */
pp_status pp_read_all(pp_reader *r, char **data, size_t *n, size_t max);

/* Bytes handed out so far (decompressed), for error positions. */
uint64_t pp_reader_offset(const pp_reader *r);

/* Bytes left to read, when known without reading them: a plain regular file
 * or memory. Returns 0 and leaves *n alone when unknown (zstd, pipes). */
int pp_reader_remaining(const pp_reader *r, uint64_t *n);

/* Nonzero when the input was zstd-compressed. */
int pp_reader_is_zstd(const pp_reader *r);

/* Closes the file (not stdin) and frees r. NULL is a no-op. */
void pp_reader_close(pp_reader *r);

/* Opens path for writing; "-" is stdout. zstd_level 0 writes plain bytes,
 * 1..19 a zstd frame with its content checksum. A file is created as a
 * temporary in the same directory; nothing appears at path before commit.
 * An existing device or FIFO (/dev/null) is opened and written in place. */
pp_status pp_writer_open(pp_writer **out, const char *path, int zstd_level);

/* Appends n bytes. */
pp_status pp_write(pp_writer *w, const void *data, size_t n);

/* Ends the zstd frame, flushes, syncs and renames the temporary over the
 * target. Frees w in all cases; on failure the temporary is removed. */
pp_status pp_writer_commit(pp_writer *w);

/* Removes the temporary and frees w. NULL is a no-op. */
void pp_writer_abort(pp_writer *w);

/* Makes SIGINT, SIGTERM and SIGHUP remove every open writer's temporary file
 * before the process dies of the signal. Call once from main(). */
void pp_install_signal_cleanup(void);

/* 1 when both paths name the same existing file (same device and inode), so
 * that a tool can refuse to overwrite its input. "-" never matches. */
int pp_same_file(const char *a, const char *b);

/* path as messages show it: "<stdin>" for "-" (tools say "<stdout>" themselves). */
const char *pp_display_name(const char *path);

#ifdef __cplusplus
}
#endif

#endif
