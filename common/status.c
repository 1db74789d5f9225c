#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

pp_status pp_fail(pp_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return s;
}

pp_status pp_fail_ctx(pp_status s, const char *fmt, ...)
{
    size_t n = strlen(errbuf);
    if (n + 4 >= sizeof errbuf) return s;
    errbuf[n++] = ' ';
    errbuf[n++] = '(';
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(errbuf + n, sizeof errbuf - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0) k = 0;
    n += (size_t)k;
    if (n > sizeof errbuf - 2) n = sizeof errbuf - 2;
    errbuf[n++] = ')';
    errbuf[n] = '\0';
    return s;
}

const char *pp_errmsg(void) { return errbuf; }

const char *pp_status_name(pp_status s)
{
    switch (s) {
    case PP_OK: return "ok";
    case PP_E_USAGE: return "usage error";
    case PP_E_DATA: return "bad data";
    case PP_E_NOINPUT: return "cannot open input";
    case PP_E_INTERNAL: return "internal error";
    case PP_E_NOMEM: return "out of memory";
    case PP_E_CANTCREAT: return "cannot create output";
    case PP_E_IO: return "I/O error";
    }
    return "unknown status";
}

int pp_exit_code(pp_status s)
{
    switch (s) {
    case PP_OK: return 0;
    case PP_E_USAGE: return 64;
    case PP_E_DATA: return 65;
    case PP_E_NOINPUT: return 66;
    case PP_E_INTERNAL:
    case PP_E_NOMEM: return 70;
    case PP_E_CANTCREAT: return 73;
    case PP_E_IO: return 74;
    }
    return 70;
}
