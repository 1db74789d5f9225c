#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define IOBUF (1u << 17)

/* ---------------------------------------------------------------- reading */

struct pp_reader {
    int fd;                 /* -1 for memory */
    int own_fd;             /* close(fd) on close */
    const uint8_t *mem;     /* memory source, or NULL */
    size_t mem_len, mem_pos;
    int raw_eof;

    ZSTD_DCtx *dctx;        /* NULL for plain input */
    size_t frame_hint;      /* last ZSTD_decompressStream() result: 0 = between frames */
    uint8_t *in;            /* raw bytes (zstd input) */
    size_t in_len, in_pos;

    uint8_t *buf;           /* bytes ready for the caller */
    size_t buf_len, buf_pos;
    uint64_t off;           /* bytes handed out */

    int64_t size;           /* plain regular file or memory: total bytes, else -1 */
    char *line;             /* pp_read_line's assembly buffer */
    size_t line_cap;
};

/* Reads raw bytes from the source. *got == 0 means end of input. */
static pp_status raw_read(pp_reader *r, uint8_t *dst, size_t cap, size_t *got)
{
    *got = 0;
    if (r->raw_eof) return PP_OK;
    if (r->mem) {
        size_t n = r->mem_len - r->mem_pos;
        if (n > cap) n = cap;
        memcpy(dst, r->mem + r->mem_pos, n);
        r->mem_pos += n;
        *got = n;
        if (n == 0) r->raw_eof = 1;
        return PP_OK;
    }
    for (;;) {
        ssize_t k = read(r->fd, dst, cap);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return pp_fail(PP_E_IO, "read error: %s", strerror(errno));
        if (k == 0) r->raw_eof = 1;
        *got = (size_t)k;
        return PP_OK;
    }
}

/* Fills r->buf with the next bytes; leaves buf_len == 0 at the end of input. */
static pp_status refill(pp_reader *r)
{
    r->buf_pos = r->buf_len = 0;
    if (!r->dctx) return raw_read(r, r->buf, IOBUF, &r->buf_len);

    while (r->buf_len == 0) {
        if (r->in_pos == r->in_len) {
            size_t got;
            PP_TRY(raw_read(r, r->in, IOBUF, &got));
            r->in_len = got;
            r->in_pos = 0;
            if (got == 0) {
                if (r->frame_hint != 0)
                    return pp_fail(PP_E_DATA, "truncated zstd frame (byte offset %llu)",
                                   (unsigned long long)r->off);
                return PP_OK;
            }
        }
        ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer out = {r->buf, IOBUF, 0};
        size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
        if (ZSTD_isError(ret))
            return pp_fail(PP_E_DATA, "corrupt zstd data: %s (byte offset %llu)",
                           ZSTD_getErrorName(ret), (unsigned long long)r->off);
        r->frame_hint = ret;
        r->in_pos = in.pos;
        r->buf_len = out.pos;
    }
    return PP_OK;
}

static pp_status reader_init(pp_reader *r)
{
    r->buf = malloc(IOBUF);
    r->in = malloc(IOBUF);
    if (!r->buf || !r->in) return pp_fail(PP_E_NOMEM, "out of memory");
    /* Peek at the first bytes to choose plain or zstd. */
    size_t n = 0;
    while (n < 4 && !r->raw_eof) {
        size_t got;
        PP_TRY(raw_read(r, r->in + n, 4 - n, &got));
        n += got;
    }
    static const uint8_t magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    if (n == 4 && memcmp(r->in, magic, 4) == 0) {
        r->dctx = ZSTD_createDCtx();
        if (!r->dctx) return pp_fail(PP_E_NOMEM, "out of memory");
        ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, PP_ZSTD_WINDOWLOG_MAX);
        r->in_len = n;
        r->frame_hint = 1;
        r->size = -1;
    } else {
        memcpy(r->buf, r->in, n);
        r->buf_len = n;
    }
    return PP_OK;
}

static pp_status reader_new(pp_reader **out, pp_reader *r)
{
    pp_status s = reader_init(r);
    if (s != PP_OK) {
        pp_reader_close(r);
        return s;
    }
    *out = r;
    return PP_OK;
}

pp_status pp_reader_open(pp_reader **out, const char *path)
{
    *out = NULL;
    pp_reader *r = calloc(1, sizeof *r);
    if (!r) return pp_fail(PP_E_NOMEM, "out of memory");
    r->size = -1;
    if (strcmp(path, "-") == 0) {
        r->fd = 0;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            int e = errno;
            free(r);
            return pp_fail(e == ENOENT || e == EACCES || e == ENOTDIR ? PP_E_NOINPUT : PP_E_IO,
                           "cannot open: %s", strerror(e));
        }
        struct stat st;
        int have_st = fstat(r->fd, &st) == 0;
        if (have_st && S_ISDIR(st.st_mode)) {
            close(r->fd);
            free(r);
            return pp_fail(PP_E_NOINPUT, "is a directory");
        }
        if (have_st && S_ISREG(st.st_mode)) r->size = st.st_size;
        r->own_fd = 1;
    }
    return reader_new(out, r);
}

pp_status pp_reader_open_mem(pp_reader **out, const void *data, size_t n)
{
    *out = NULL;
    pp_reader *r = calloc(1, sizeof *r);
    if (!r) return pp_fail(PP_E_NOMEM, "out of memory");
    r->fd = -1;
    r->mem = data ? data : (const uint8_t *)"";
    r->mem_len = n;
    r->size = (int64_t)n;
    return reader_new(out, r);
}

pp_status pp_read_some(pp_reader *r, void *dst, size_t cap, size_t *got)
{
    *got = 0;
    if (cap == 0) return PP_OK;
    if (r->buf_pos == r->buf_len) PP_TRY(refill(r));
    size_t n = r->buf_len - r->buf_pos;
    if (n > cap) n = cap;
    memcpy(dst, r->buf + r->buf_pos, n);
    r->buf_pos += n;
    r->off += n;
    *got = n;
    return PP_OK;
}

pp_status pp_read_exact(pp_reader *r, void *dst, size_t n)
{
    uint8_t *p = dst;
    while (n > 0) {
        size_t got;
        PP_TRY(pp_read_some(r, p, n, &got));
        if (got == 0)
            return pp_fail(PP_E_DATA, "truncated: input ends %zu bytes early (byte offset %llu)",
                           n, (unsigned long long)r->off);
        p += got;
        n -= got;
    }
    return PP_OK;
}

pp_status pp_read_skip(pp_reader *r, uint64_t n)
{
    /* A plain regular file seeks over what is not in the buffer. */
    uint64_t buffered = r->buf_len - r->buf_pos;
    if (!r->dctx && r->fd >= 0 && r->size >= 0 && n > buffered && n - buffered <= (uint64_t)r->size - r->off - buffered) {
        if (lseek(r->fd, (off_t)(n - buffered), SEEK_CUR) >= 0) {
            r->off += n;
            r->buf_pos = r->buf_len = 0;
            return PP_OK;
        }
    }
    while (n > 0) {
        if (r->buf_pos == r->buf_len) PP_TRY(refill(r));
        size_t avail = r->buf_len - r->buf_pos;
        if (avail == 0)
            return pp_fail(PP_E_DATA, "truncated: input ends %llu bytes early (byte offset %llu)",
                           (unsigned long long)n, (unsigned long long)r->off);
        size_t k = avail < n ? avail : (size_t)n;
        r->buf_pos += k;
        r->off += k;
        n -= k;
    }
    return PP_OK;
}

pp_status pp_read_expect_end(pp_reader *r)
{
    if (r->buf_pos == r->buf_len) PP_TRY(refill(r));
    if (r->buf_len > r->buf_pos)
        return pp_fail(PP_E_DATA, "unexpected data after the end (byte offset %llu)",
                       (unsigned long long)r->off);
    return PP_OK;
}

pp_status pp_read_line(pp_reader *r, const char **line, size_t *len)
{
    size_t n = 0; /* bytes assembled in r->line */
    *line = NULL;
    *len = 0;
    for (;;) {
        if (r->buf_pos == r->buf_len) {
            PP_TRY(refill(r));
            if (r->buf_len == 0) { /* end of input: a last line without '\n' */
                if (n == 0) return PP_OK;
                break;
            }
        }
        uint8_t *start = r->buf + r->buf_pos;
        size_t avail = r->buf_len - r->buf_pos;
        uint8_t *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        if (n + take > PP_LINE_MAX)
            return pp_fail(PP_E_DATA, "line longer than %u bytes (byte offset %llu)",
                           PP_LINE_MAX, (unsigned long long)r->off);
        if (nl && n == 0) { /* the whole line is in the buffer: no copy */
            r->buf_pos += take + 1;
            r->off += take + 1;
            *line = (const char *)start;
            *len = take;
            goto strip;
        }
        if (n + take + 1 > r->line_cap) {
            size_t cap = r->line_cap ? r->line_cap : 4096;
            while (cap < n + take + 1) cap *= 2;
            char *p = realloc(r->line, cap);
            if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
            r->line = p;
            r->line_cap = cap;
        }
        memcpy(r->line + n, start, take);
        n += take;
        r->buf_pos += take + (nl ? 1 : 0);
        r->off += take + (nl ? 1 : 0);
        if (nl) break;
    }
    *line = r->line;
    *len = n;
strip:
    if (*len > 0 && (*line)[*len - 1] == '\r') (*len)--;
    return PP_OK;
}

pp_status pp_read_all(pp_reader *r, char **data, size_t *n, size_t max)
{
    size_t cap = 1 << 16, len = 0;
    char *p = malloc(cap);
    if (!p) return pp_fail(PP_E_NOMEM, "out of memory");
    for (;;) {
        if (len + 1 == cap) {
            if (cap > max) {
                free(p);
                return pp_fail(PP_E_DATA, "input larger than %zu bytes", max);
            }
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                return pp_fail(PP_E_NOMEM, "out of memory");
            }
            p = q;
            cap *= 2;
        }
        size_t got;
        pp_status s = pp_read_some(r, p + len, cap - 1 - len, &got);
        if (s != PP_OK) {
            free(p);
            return s;
        }
        if (got == 0) break;
        len += got;
        if (len > max) {
            free(p);
            return pp_fail(PP_E_DATA, "input larger than %zu bytes", max);
        }
    }
    p[len] = '\0';
    *data = p;
    *n = len;
    return PP_OK;
}

uint64_t pp_reader_offset(const pp_reader *r) { return r->off; }

int pp_reader_remaining(const pp_reader *r, uint64_t *n)
{
    if (r->size < 0 || (uint64_t)r->size < r->off) return 0;
    *n = (uint64_t)r->size - r->off;
    return 1;
}
int pp_reader_is_zstd(const pp_reader *r) { return r->dctx != NULL; }

void pp_reader_close(pp_reader *r)
{
    if (!r) return;
    if (r->own_fd) close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->buf);
    free(r->line);
    free(r);
}

/* ------------------------------------------------- temporary file registry */

/* Paths of the temporaries open right now, for the signal handler. Fixed
 * storage so that the handler touches no allocator. */
#define TMP_SLOTS 32
static char tmp_paths[TMP_SLOTS][4096];
static volatile sig_atomic_t tmp_used[TMP_SLOTS];

static int tmp_register(const char *path)
{
    if (strlen(path) >= sizeof tmp_paths[0]) return -1;
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (!tmp_used[i]) {
            strcpy(tmp_paths[i], path);
            tmp_used[i] = 1;
            return i;
        }
    }
    return -1;
}

static void tmp_unregister(int slot)
{
    if (slot >= 0) tmp_used[slot] = 0;
}

static void on_signal(int sig)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (tmp_used[i]) unlink(tmp_paths[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void pp_install_signal_cleanup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* A signal ignored by our parent (nohup, a background job) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---------------------------------------------------------------- writing */

struct pp_writer {
    int fd;
    int is_stdout;
    char *path, *tmp;       /* target and temporary (files only) */
    int slot;               /* temporary registry slot */
    ZSTD_CCtx *cctx;        /* NULL for plain output */
    uint8_t *buf;           /* plain: pending bytes; zstd: compressed output */
    size_t buf_len;
};

static pp_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return pp_fail(PP_E_IO, "write error: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
    return PP_OK;
}

static void writer_free(pp_writer *w)
{
    if (w->tmp) {
        unlink(w->tmp);
        tmp_unregister(w->slot);
    }
    if (w->fd >= 0 && !w->is_stdout) close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->buf);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* The file a symlink names, existing or not (malloc'ed), or NULL. */
static char *link_target(const char *path)
{
    char *r = realpath(path, NULL), buf[4096];
    if (r) return r;
    ssize_t k = readlink(path, buf, sizeof buf - 1);
    if (k <= 0) return NULL;
    buf[k] = '\0';
    const char *slash = strrchr(path, '/');
    size_t dl = buf[0] == '/' || !slash ? 0 : (size_t)(slash - path) + 1;
    r = malloc(dl + (size_t)k + 1);
    if (!r) return NULL;
    memcpy(r, path, dl);
    memcpy(r + dl, buf, (size_t)k + 1);
    return r;
}

pp_status pp_writer_open(pp_writer **out, const char *path, int zstd_level)
{
    *out = NULL;
    pp_writer *w = calloc(1, sizeof *w);
    if (!w) return pp_fail(PP_E_NOMEM, "out of memory");
    w->fd = -1;
    w->slot = -1;
    w->buf = malloc(IOBUF);
    if (!w->buf) {
        writer_free(w);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    if (zstd_level > 19) zstd_level = 19;
    if (zstd_level > 0) {
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx) {
            writer_free(w);
            return pp_fail(PP_E_NOMEM, "out of memory");
        }
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, zstd_level);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        /* Levels 1..19 use windows of at most 8 MiB, far below the decoder cap. */
    }
    if (strcmp(path, "-") == 0) {
        w->fd = 1;
        w->is_stdout = 1;
        *out = w;
        return PP_OK;
    }
    /* Through a symlink, the file it names is the one replaced: the
     * temporary goes beside the target, and the link stays a link. */
    struct stat st;
    char *resolved = NULL;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && (resolved = link_target(path)) != NULL) path = resolved;
    /* A device or a pipe (-o /dev/null, /dev/stdout, a FIFO) is written in
     * place: renaming a file over it would replace the device node. */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        w->fd = open(path, O_WRONLY | O_CLOEXEC);
        int e = errno;
        free(resolved);
        if (w->fd < 0) {
            writer_free(w);
            return pp_fail(PP_E_CANTCREAT, "cannot open: %s", strerror(e));
        }
        *out = w;
        return PP_OK;
    }
    w->path = strdup(path);
    free(resolved);
    if (!w->path) {
        writer_free(w);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    path = w->path;
    /* The temporary lives beside the target, so that rename() is atomic. */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tlen = dirlen + strlen(base) + 16;
    w->tmp = malloc(tlen);
    if (!w->path || !w->tmp) {
        writer_free(w);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    snprintf(w->tmp, tlen, "%.*s.%s.XXXXXX", (int)dirlen, path, base);
    if (*base == '\0') {
        free(w->tmp);
        w->tmp = NULL;
        writer_free(w);
        return pp_fail(PP_E_CANTCREAT, "is a directory");
    }
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        writer_free(w);
        return pp_fail(PP_E_CANTCREAT, "cannot create: %s", strerror(e));
    }
    w->slot = tmp_register(w->tmp);
    mode_t mask = umask(0);
    umask(mask);
    fchmod(w->fd, 0666 & ~mask);
    *out = w;
    return PP_OK;
}

/* Compresses (or copies) n bytes with the given zstd directive and writes out
 * whatever the buffer accumulates. */
static pp_status zstd_push(pp_writer *w, const void *data, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->buf, IOBUF, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return pp_fail(PP_E_INTERNAL, "zstd: %s", ZSTD_getErrorName(left));
        PP_TRY(write_all(w->fd, w->buf, out.pos));
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0) return PP_OK;
    }
}

pp_status pp_write(pp_writer *w, const void *data, size_t n)
{
    if (w->cctx) return zstd_push(w, data, n, ZSTD_e_continue);
    if (w->buf_len + n > IOBUF) {
        PP_TRY(write_all(w->fd, w->buf, w->buf_len));
        w->buf_len = 0;
        if (n > IOBUF) return write_all(w->fd, data, n);
    }
    memcpy(w->buf + w->buf_len, data, n);
    w->buf_len += n;
    return PP_OK;
}

pp_status pp_writer_commit(pp_writer *w)
{
    pp_status s;
    if (w->cctx)
        s = zstd_push(w, NULL, 0, ZSTD_e_end);
    else
        s = write_all(w->fd, w->buf, w->buf_len);
    w->buf_len = 0;
    if (s == PP_OK && w->tmp) {
        if (fsync(w->fd) != 0 && errno != EINVAL)
            s = pp_fail(PP_E_IO, "fsync: %s", strerror(errno));
        if (s == PP_OK && close(w->fd) != 0)
            s = pp_fail(PP_E_IO, "close: %s", strerror(errno));
        w->fd = -1;
        if (s == PP_OK && rename(w->tmp, w->path) != 0)
            s = pp_fail(PP_E_CANTCREAT, "cannot rename into place: %s", strerror(errno));
        if (s == PP_OK) {
            tmp_unregister(w->slot);
            free(w->tmp);
            w->tmp = NULL;
        }
    }
    writer_free(w);
    return s;
}

void pp_writer_abort(pp_writer *w)
{
    if (w) writer_free(w);
}

int pp_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0) return 0;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0 || !S_ISREG(sa.st_mode)) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

const char *pp_display_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}
