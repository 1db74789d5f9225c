#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stream.h"

int pp_verbosity = 1;
static const char *tool_name = "pp";

void pp_cli_init(const char *tool)
{
    tool_name = tool;
    pp_install_signal_cleanup();
}

int pp_cli_fail(const char *file, pp_status s)
{
    if (file)
        fprintf(stderr, "%s: %s: %s\n", tool_name, pp_display_name(file), pp_errmsg());
    else
        fprintf(stderr, "%s: %s\n", tool_name, pp_errmsg());
    return pp_exit_code(s);
}

int pp_cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool_name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", tool_name);
    return 64;
}

int pp_cli_bad_option(int c, char **argv, int optind)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    /* A short option inside a group (-xq) is named by optopt, not by argv. */
    if (optopt > 0 && optopt < 256 && !(arg[0] == '-' && arg[1] == '-')) {
        if (c == ':') return pp_cli_usage("option '-%c' needs an argument", optopt);
        return pp_cli_usage("unrecognized option '-%c'", optopt);
    }
    if (c == ':') return pp_cli_usage("option '%s' needs an argument", arg);
    return pp_cli_usage("unrecognized option '%s'", arg);
}

void pp_cli_say(int level, const char *fmt, ...)
{
    if (pp_verbosity < level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool_name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int pp_cli_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int pp_cli_double(const char *s, double min, double max, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int pp_cli_ranges(const char *s, uint64_t min, uint64_t (*r)[2], int max)
{
    int n = 0;
    const char *p = s;
    if (!p || !*p) return -1;
    while (*p) {
        if (*p < '0' || *p > '9' || n == max) return -1;
        char *end;
        errno = 0;
        unsigned long long a = strtoull(p, &end, 10), b = a;
        if (errno) return -1;
        p = end;
        if (*p == '-') {
            if (p[1] < '0' || p[1] > '9') return -1;
            b = strtoull(p + 1, &end, 10);
            if (errno || b < a) return -1;
            p = end;
        }
        if (a < min) return -1;
        r[n][0] = a, r[n][1] = b, n++;
        if (*p == ',' && p[1]) p++;
        else if (*p) return -1;
    }
    return n;
}

int pp_cli_in_ranges(uint64_t v, const uint64_t (*r)[2], int n)
{
    for (int i = 0; i < n; i++)
        if (v >= r[i][0] && v <= r[i][1]) return 1;
    return 0;
}

void pp_cli_version(void) { printf("%s (pp) %s\n", tool_name, PP_VERSION); }

double pp_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
