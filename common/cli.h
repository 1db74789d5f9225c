/* cli.h: what every tool's main() shares. This is the one corner of libpp
 * that writes to stderr, and only on behalf of a tool: messages in the form
 * "pp-<tool>: <file>: <what is wrong> (<where>)", strict number parsing,
 * --version, verbosity. */
#ifndef PP_CLI_H
#define PP_CLI_H

#include <stdint.h>

#include "status.h"

#define PP_VERSION "0.1.0"

/* Verbosity: 0 with -q, 1 by default, 2 with -v. */
extern int pp_verbosity;

/* Names the tool for messages and removes temporaries on SIGINT/SIGTERM. */
void pp_cli_init(const char *tool);

/* Prints "pp-<tool>: <file>: <pp_errmsg()>" (file may be NULL) and returns the
 * exit code for s. */
int pp_cli_fail(const char *file, pp_status s);

/* Prints "pp-<tool>: <message>" and a pointer to --help; returns 64. */
int pp_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The usage error for what getopt_long() returned as c ('?' or ':') after
 * argv[optind - 1]; tools pass ":" first in their optstring and set opterr
 * to 0 so that this is the only message. Returns 64. */
int pp_cli_bad_option(int c, char **argv, int optind);

/* Prints "pp-<tool>: <message>" when pp_verbosity >= level. */
void pp_cli_say(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal string into [min, max]; 0 on success, else -1
 * ("512x", "", "-1", overflow). */
int pp_cli_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses a whole floating-point string into [min, max]; 0 on success. */
int pp_cli_double(const char *s, double min, double max, double *out);

/* A list of numbers and ranges ("1-100,250,300-310") as at most max ranges
 * [lo, hi] in r; the count, or -1 when malformed, empty, below min or with
 * more than max ranges. */
int pp_cli_ranges(const char *s, uint64_t min, uint64_t (*r)[2], int max);
/* Whether v lies in one of the n ranges. */
int pp_cli_in_ranges(uint64_t v, const uint64_t (*r)[2], int n);

/* Seconds on the monotonic clock, for rates in reports. */
double pp_cli_now(void);

/* Prints "pp-<tool> (pp) <version>" to stdout. */
void pp_cli_version(void);

#endif
