/* test_money.c - exact decimal parsing, formatting and arithmetic. */
#include <math.h>

#include "check.h"
#include "money.h"

static void parse_format(const char *in, const char *want)
{
    money_t m;
    char out[MONEY_STR_MAX];
    int rc = money_parse(in, &m);
    CHECK(rc == 0, "parse %s", in);
    if (rc == 0) {
        money_format(m, out);
        CHECK_STR(out, want);
    }
}

static void rejects(const char *in)
{
    money_t m;
    CHECK(money_parse(in, &m) < 0, "should reject '%s'", in);
}

static void from_double(double d, const char *want)
{
    money_t m;
    char out[MONEY_STR_MAX];
    CHECK(money_from_double(d, &m) == 0, "from_double %.17g", d);
    money_format(m, out);
    CHECK_STR(out, want);
}

static void rounds(const char *in, int decimals, const char *want)
{
    money_t m = 0;
    char out[MONEY_STR_MAX];
    CHECK(money_parse(in, &m) == 0, "parse %s", in);
    money_format(money_round(m, decimals), out);
    CHECK_STR(out, want);
}

int main(void)
{
    rounds("0.00000000004999999999", 10, "0");
    rounds("0.00000000005", 10, "0.0000000001");
    rounds("-0.00000000005", 10, "-0.0000000001");
    rounds("1.23456789012345", 10, "1.2345678901");
    rounds("2.5", 0, "3");
    rounds("0.00000000000000000001", 20, "0.00000000000000000001");
    parse_format("0", "0");
    parse_format("0.0000025", "0.0000025");
    parse_format("2.5e-06", "0.0000025");
    parse_format("5E-8", "0.00000005");
    parse_format("3.814697265625e-08", "0.00000003814697265625");
    parse_format("12", "12");
    parse_format("100.50", "100.5");
    parse_format("-1.25", "-1.25");
    parse_format("1e3", "1000");
    parse_format("0.00000000000000000001", "0.00000000000000000001");
    parse_format("123456789012345678", "123456789012345678");
    rejects("");
    rejects("abc");
    rejects("1.2.3");
    rejects("1e");
    rejects("0.000000000000000000001"); /* 21 decimals: would need rounding */
    rejects("1e19");                     /* beyond DECIMAL(38,20) */
    rejects("1 ");
    rejects("nan");

    money_t a, b, r;
    char out[MONEY_STR_MAX];
    money_parse("0.00000005", &a);
    CHECK(money_mul_int(a, 1000, &r) == 0, "mul");
    money_parse("0.00000008", &b);
    money_t r2;
    CHECK(money_mul_int(b, 500, &r2) == 0 && money_add(r, r2, &r) == 0, "mul+add");
    money_format(r, out);
    CHECK_STR(out, "0.00009");
    money_parse("99999999999999999", &a);
    CHECK(money_mul_int(a, 100, &r) < 0, "overflow beyond DECIMAL(38,20) detected");

    from_double(0.1, "0.1");
    from_double(100, "100");
    from_double(10.5, "10.5");
    from_double(2.5e-06, "0.0000025");
    CHECK(money_from_double(NAN, &r) < 0, "NaN refused");
    CHECK(money_from_double(INFINITY, &r) < 0, "inf refused");
    CHECK(money_from_double(1e30, &r) < 0, "huge refused");
    return check_summary("test_money");
}
