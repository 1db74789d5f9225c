/* status.h: the one error convention of libpp.
 *
 * Library code never prints and never exits. A function that can fail returns
 * a pp_status; when it fails it also leaves a one-line explanation in a
 * thread-local buffer (pp_errmsg()), already carrying the position in the
 * input: "(byte offset N)", "(line N)", "(tensor NAME)". Tools turn the pair
 * into "pp-<tool>: <file>: <message>" and exit with pp_exit_code(status). */
#ifndef PP_STATUS_H
#define PP_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pp_status {
    PP_OK = 0,
    PP_E_USAGE,    /* bad arguments from the caller: sysexits 64 */
    PP_E_DATA,     /* malformed input data: 65 */
    PP_E_NOINPUT,  /* input missing or unreadable: 66 */
    PP_E_INTERNAL, /* a bug, or a library we call failed oddly: 70 */
    PP_E_NOMEM,    /* out of memory: 70 as well (sysexits has no better) */
    PP_E_CANTCREAT,/* output cannot be created: 73 */
    PP_E_IO        /* read or write error on an open stream: 74 */
} pp_status;

/* Records a failure: formats the message (printf-style) into the thread's
 * error buffer and returns s, so that callers write `return pp_fail(...)`. */
pp_status pp_fail(pp_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends " (...)" context to the current message, e.g. a line number added
 * by an outer layer; returns s unchanged. */
pp_status pp_fail_ctx(pp_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message of the last failure on this thread ("" if none). */
const char *pp_errmsg(void);

/* Short name of a status ("bad data", "I/O error", ...). */
const char *pp_status_name(pp_status s);

/* The sysexits.h code a tool exits with for s (0 for PP_OK). */
int pp_exit_code(pp_status s);

/* Propagate a failure: evaluates expr once and returns its status if not OK. */
#define PP_TRY(expr)                                                          \
    do {                                                                       \
        pp_status pp_try_s_ = (expr);                                          \
        if (pp_try_s_ != PP_OK) return pp_try_s_;                              \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
