/* Small pieces: UTF-8 validation, JSON escaping, SHA-256, number parsing, statuses. */
#include "check.h"
#include "cli.h"
#include "sha256.h"
#include "text.h"

TEST(utf8_validation)
{
    static const struct {
        const char *s;
        int ok;
        size_t bad;
    } c[] = {
        {"plain ascii", 1, 0},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 1, 0},
        {"\xf4\x8f\xbf\xbf", 1, 0},          /* U+10FFFF */
        {"ab\x80", 0, 2},                    /* lone continuation */
        {"\xc0\xaf", 0, 0},                  /* overlong '/' */
        {"\xc1\xbf", 0, 0},
        {"\xe0\x80\xaf", 0, 0},              /* overlong */
        {"x\xed\xa0\x80", 0, 1},             /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0, 0},          /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0, 0},
        {"\xe2\x82", 0, 0},                  /* truncated */
        {"\xff", 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        size_t bad = 99;
        int ok = pp_utf8_valid(c[i].s, strlen(c[i].s), &bad);
        if (ok != c[i].ok || (!ok && bad != c[i].bad)) {
            fprintf(stderr, "  case %zu: valid %d bad %zu\n", i, ok, bad);
            check_failed = 1;
        }
    }
}

TEST(json_string_escaping)
{
    pp_buf b = {0};
    const char s[] = "a\"b\\c\nd\te\x01\x1f \xc3\xa9/";
    CHECK_STATUS(pp_buf_json_string(&b, s, sizeof s - 1), PP_OK);
    CHECK(strcmp(b.p, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f \xc3\xa9/\"") == 0);
    pp_buf_clear(&b);
    CHECK_STATUS(pp_buf_json_string(&b, "", 0), PP_OK);
    CHECK(strcmp(b.p, "\"\"") == 0);
    pp_buf_free(&b);
}

static void sha(const void *d, size_t n, char hex[65])
{
    pp_sha256 c;
    pp_sha256_init(&c);
    pp_sha256_update(&c, d, n);
    pp_sha256_hex(&c, hex);
}

TEST(sha256_known_answers)
{
    char h[65];
    sha("", 0, h);
    CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    sha("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: padding edge */
    sha(m, strlen(m), h);
    CHECK(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    /* a million 'a's, fed in uneven pieces */
    pp_sha256 c;
    pp_sha256_init(&c);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        pp_sha256_update(&c, a, k);
        left -= k;
    }
    pp_sha256_hex(&c, h);
    CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
}

/* The x86 SHA extensions and the scalar code agree on every length around
 * the block and padding edges, and on a large buffer fed in pieces. */
TEST(sha256_extensions_equal_scalar)
{
    static uint8_t buf[1 << 20];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, buf[i] = (uint8_t)x;
    fprintf(stderr, "  SHA extensions: %s\n", pp_sha256_accelerated() ? "used" : "not on this CPU");
    char a[65], b[65];
    for (size_t n = 0; n < 300; n++) {
        pp_sha256_scalar = 1;
        sha(buf + 3, n, a);
        pp_sha256_scalar = 0;
        sha(buf + 3, n, b);
        CHECK(strcmp(a, b) == 0);
    }
    for (int mode = 0; mode < 2; mode++) {
        pp_sha256_scalar = mode;
        pp_sha256 c;
        pp_sha256_init(&c);
        for (size_t at = 0, k = 1; at < sizeof buf; at += k, k = k * 3 % 65537 + 1)
            pp_sha256_update(&c, buf + at, at + k <= sizeof buf ? k : sizeof buf - at);
        pp_sha256_hex(&c, mode ? a : b);
    }
    pp_sha256_scalar = 0;
    CHECK(strcmp(a, b) == 0);
}

TEST(strict_number_parsing)
{
    uint64_t v;
    CHECK(pp_cli_u64("512", 0, 1000, &v) == 0 && v == 512);
    CHECK(pp_cli_u64("512x", 0, 1000, &v) != 0);
    CHECK(pp_cli_u64("", 0, 1000, &v) != 0);
    CHECK(pp_cli_u64("-1", 0, 1000, &v) != 0);
    CHECK(pp_cli_u64(" 5", 0, 1000, &v) != 0);
    CHECK(pp_cli_u64("1001", 0, 1000, &v) != 0);
    CHECK(pp_cli_u64("99999999999999999999999", 0, UINT64_MAX, &v) != 0);
    double d;
    CHECK(pp_cli_double("0.7", 0, 2, &d) == 0 && d == 0.7);
    CHECK(pp_cli_double("0.7.1", 0, 2, &d) != 0);
    CHECK(pp_cli_double("nan", 0, 2, &d) != 0);
    CHECK(pp_cli_double("inf", 0, 1e300, &d) != 0);
}

TEST(statuses_map_to_sysexits)
{
    CHECK(pp_exit_code(PP_OK) == 0);
    CHECK(pp_exit_code(PP_E_USAGE) == 64);
    CHECK(pp_exit_code(PP_E_DATA) == 65);
    CHECK(pp_exit_code(PP_E_NOINPUT) == 66);
    CHECK(pp_exit_code(PP_E_INTERNAL) == 70);
    CHECK(pp_exit_code(PP_E_CANTCREAT) == 73);
    CHECK(pp_exit_code(PP_E_IO) == 74);
    pp_fail(PP_E_DATA, "bad %s", "thing");
    pp_fail_ctx(PP_E_DATA, "line %d", 7);
    CHECK(strcmp(pp_errmsg(), "bad thing (line 7)") == 0);
}

TEST(keyword_recall)
{
    static const char ref[] = "Fitzwilliam Darcy owns Pemberley, in Derbyshire; Darcy's friend is Bingley.";
    int h = -1, t = -1;
    /* key words: fitzwilliam darcy owns pemberley derbyshire friend bingley ("is", "in", "s" too short) */
    CHECK(pp_keyword_recall(ref, strlen(ref), "", 0, &h, &t) == 0 && h == 0 && t == 7);
    CHECK(pp_keyword_recall(ref, strlen(ref), ref, strlen(ref), &h, &t) == 1 && h == 7);
    const char ans[] = "DARCY lives at pemberley with his FRIEND Bingley-ish";
    CHECK(pp_keyword_recall(ref, strlen(ref), ans, strlen(ans), &h, &t) == 4.0 / 7 && h == 4 && t == 7);
    /* "Pemberley" in the answer as part of "Pemberleys" is another word */
    CHECK(pp_keyword_recall("Pemberley", 9, "Pemberleys", 10, &h, &t) == 0 && h == 0 && t == 1);
    /* stop words and short words only: no key words, no score */
    CHECK(pp_keyword_recall("that was with them at", 21, "x", 1, &h, &t) == -1 && t == 0);
    CHECK(pp_keyword_recall("caf\xc3\xa9s open", 11, "CAF\xc3\xa9S", 6, &h, &t) == 0.5 && h == 1 && t == 2);
}

int main(void)
{
    RUN(utf8_validation);
    RUN(json_string_escaping);
    RUN(sha256_known_answers);
    RUN(sha256_extensions_equal_scalar);
    RUN(strict_number_parsing);
    RUN(statuses_map_to_sysexits);
    RUN(keyword_recall);
    return tests_failed ? 1 : 0;
}
