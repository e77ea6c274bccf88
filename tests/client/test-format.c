/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfuctl's output helpers (client/format.c): tables, byte counts, times, progress bar and plain lines,
 * the rate meter and the --json key names. */

#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"

#define check_streq(a, b)                                                                               \
        do {                                                                                            \
                const char *_a = (a), *_b = (b);                                                        \
                if (strcmp(_a, _b) != 0) {                                                              \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, _a, _b);       \
                        abort();                                                                        \
                }                                                                                       \
        } while (0)

static void test_table(void) {
        _cleanup_(table_freep) Table *t = table_new(3, (const char *const[]) { "ID", "MODE", "SERIAL" });
        _cleanup_free_ char *s = NULL;

        assert(t);
        assert(table_get_rows(t) == 0);
        assert(table_add_row(t, (const char *const[]) { "f4-rom-0001", "dfu", "0001" }) == 0);
        assert(table_add_row(t, (const char *const[]) { "app", "", NULL }) == 0);
        assert(table_get_rows(t) == 2);
        assert(table_format(t, &s) == 0);
        check_streq(s,
                    "ID           MODE  SERIAL\n"
                    "f4-rom-0001  dfu   0001\n"
                    "app          -     -\n");
}

static void test_table_align_right_and_utf8(void) {
        _cleanup_(table_freep) Table *t = table_new(2, (const char *const[]) { "ID", "NAME" });
        _cleanup_free_ char *s = NULL;

        table_set_align_right(t, 0);
        assert(table_add_row(t, (const char *const[]) { "7", "Gerät" }) == 0);
        assert(table_add_row(t, (const char *const[]) { "123", "x\033[2Jy" }) == 0);
        assert(table_format(t, &s) == 0);
        /* "Gerät" is 5 columns wide; the escape sequence is neutralised */
        check_streq(s,
                    " ID  NAME\n"
                    "  7  Gerät\n"
                    "123  x?[2Jy\n");
}

static void test_strings(void) {
        static const struct {
                const char *in, *out;
        } snake[] = {
                { "Id", "id" },
                { "FirmwareVersion", "firmware_version" },
                { "VendorId", "vendor_id" },
                { "BytesDone", "bytes_done" },
                { "USBPort", "usb_port" },
                { "LastSeen", "last_seen" },
                { "Crc32Value", "crc32_value" },
                { "already_snake", "already_snake" },
        };

        for (size_t i = 0; i < ELEMENTSOF(snake); i++) {
                _cleanup_free_ char *s = camel_to_snake(snake[i].in);
                check_streq(s, snake[i].out);
        }

        _cleanup_free_ char *c = string_sanitize("a\tb\x7f" "c\n");
        check_streq(c, "a?b?c?");
        assert(utf8_width("") == 0);
        assert(utf8_width("abc") == 3);
        assert(utf8_width("äöü") == 3);
}

static void test_bytes(void) {
        char b[64];

        check_streq(format_bytes(b, sizeof(b), 0), "0 B");
        check_streq(format_bytes(b, sizeof(b), 1023), "1023 B");
        check_streq(format_bytes(b, sizeof(b), 1024), "1.0 KiB");
        check_streq(format_bytes(b, sizeof(b), 1536), "1.5 KiB");
        check_streq(format_bytes(b, sizeof(b), 256 * 1024), "256.0 KiB");
        check_streq(format_bytes(b, sizeof(b), 1024 * 1024), "1.0 MiB");
        check_streq(format_bytes(b, sizeof(b), UINT64_C(3) << 30), "3.0 GiB");

        check_streq(format_bytes_pair(b, sizeof(b), 100, 512), "100/512 B");
        check_streq(format_bytes_pair(b, sizeof(b), 120 * 1024, 256 * 1024), "120.0/256.0 KiB");
        check_streq(format_bytes_pair(b, sizeof(b), 512 * 1024, 2 * 1024 * 1024), "0.5/2.0 MiB");
}

static void test_times(void) {
        char b[64];

        setenv("TZ", "UTC", 1);
        tzset();
        check_streq(format_timestamp(b, sizeof(b), 0), "-");
        check_streq(format_timestamp(b, sizeof(b), UINT64_C(1714564801) * USEC_PER_SEC + 999),
                    "2024-05-01 12:00:01");

        check_streq(format_duration(b, sizeof(b), 850 * USEC_PER_MSEC), "850ms");
        check_streq(format_duration(b, sizeof(b), 8100 * USEC_PER_MSEC), "8.1s");
        check_streq(format_duration(b, sizeof(b), 123 * USEC_PER_SEC), "2min 03s");
        check_streq(format_duration(b, sizeof(b), 3720 * USEC_PER_SEC), "1h 02min");
}

static void test_percent(void) {
        assert(progress_percent(0, 0, 42) == 42);
        assert(progress_percent(0, 0, 420) == 100);
        assert(progress_percent(0, 100, 7) == 0);
        assert(progress_percent(45, 100, 0) == 45);
        assert(progress_percent(99, 100, 0) == 99);
        assert(progress_percent(150, 100, 0) == 100);
        assert(progress_percent(UINT64_C(1) << 40, UINT64_C(1) << 41, 0) == 50);
}

static void test_rate_meter(void) {
        RateMeter m;
        double r;

        rate_meter_reset(&m);
        assert(rate_meter_update(&m, 1000000, 0) < 0);                /* first sample: no rate yet */
        assert(rate_meter_update(&m, 1100000, 1000) < 0);             /* under 250 ms: still none */
        r = rate_meter_update(&m, 2000000, 32768);                    /* 32 KiB in 1 s */
        assert(r > 32767 && r < 32769);
        r = rate_meter_update(&m, 2100000, 40000);                    /* too soon: previous figure */
        assert(r > 32767 && r < 32769);
        r = rate_meter_update(&m, 3000000, 32768 + 16384);            /* 16 KiB/s now: smoothed to 24 */
        assert(r > 24575 && r < 24577);
        assert(rate_meter_update(&m, 3500000, 10) < 0);               /* counter went back: restart */
        r = rate_meter_update(&m, 4500000, 10 + 2048);
        assert(r > 2047 && r < 2049);
}

static void test_progress_bar(void) {
        char b[512];

        /* 80 columns: never more than 79 characters, so the terminal does not wrap */
        format_progress_bar(b, sizeof(b), 80, "writing", 45, 120 * 1024, 256 * 1024, 32.1 * 1024);
        assert(strlen(b) == 79);
        assert(strncmp(b, "writing     [", 13) == 0);
        assert(strstr(b, "]  45%  120.0/256.0 KiB  32.1 KiB/s"));
        /* 45% of the bar is filled */
        const char *open = strchr(b, '['), *close = strchr(b, ']');
        size_t bar = close - open - 1, fill = strspn(open + 1, "#");
        assert(fill == bar * 45 / 100);
        assert(strspn(open + 1 + fill, ".") == bar - fill);

        /* no bytes known, no rate */
        format_progress_bar(b, sizeof(b), 60, "entering-bootloader", 0, 0, 0, -1);
        assert(strlen(b) == 59);
        assert(strncmp(b, "entering-bootloader [....", 25) == 0);
        assert(strstr(b, "]   0%"));
        assert(!strstr(b, "KiB"));

        format_progress_bar(b, sizeof(b), 60, "verifying", 100, 4096, 4096, -1);
        assert(strstr(b, "[####"));
        assert(!strchr(b, '.') || strchr(b, '.') > strchr(b, ']'));
        assert(strstr(b, "] 100%  4.0/4.0 KiB"));

        /* narrow terminal: no bar, cut to width-1 */
        format_progress_bar(b, sizeof(b), 30, "writing", 45, 120 * 1024, 256 * 1024, 32.1 * 1024);
        assert(strlen(b) == 29);
        assert(!strchr(b, '['));
        assert(strncmp(b, "writing      45%", 16) == 0);

        /* tiny buffer: truncated, terminated */
        format_progress_bar(b, 8, 80, "writing", 45, 1, 2, -1);
        assert(strlen(b) == 7);
}

static void test_progress_line(void) {
        char b[256];

        check_streq(format_progress_line(b, sizeof(b), "writing", 45, 120 * 1024, 256 * 1024, 32.1 * 1024),
                    "writing: 45% (120.0/256.0 KiB, 32.1 KiB/s)");
        check_streq(format_progress_line(b, sizeof(b), "queued", 0, 0, 0, -1), "queued: 0%");
        check_streq(format_progress_line(b, sizeof(b), "verifying", 100, 4096, 4096, -1),
                    "verifying: 100% (4.0/4.0 KiB)");
}

static void test_progress_plain(void) {
        ProgressPlain p;

        progress_plain_reset(&p);
        assert(progress_plain_step(&p, "queued", 0));     /* first phase */
        assert(!progress_plain_step(&p, "queued", 0));
        assert(progress_plain_step(&p, "writing", 0));    /* phase change */
        assert(!progress_plain_step(&p, "writing", 5));
        assert(progress_plain_step(&p, "writing", 10));   /* next tenth */
        assert(!progress_plain_step(&p, "writing", 19));
        assert(progress_plain_step(&p, "writing", 45));   /* jumps skip the tenths in between */
        assert(!progress_plain_step(&p, "writing", 49));
        assert(progress_plain_step(&p, "writing", 100));
        assert(!progress_plain_step(&p, "writing", 100));
        assert(progress_plain_step(&p, "verifying", 0));
        assert(progress_plain_step(&p, "succeeded", 100));
}

int main(void) {
        test_table();
        test_table_align_right_and_utf8();
        test_strings();
        test_bytes();
        test_times();
        test_percent();
        test_rate_meter();
        test_progress_bar();
        test_progress_line();
        test_progress_plain();
        printf("test-format: OK\n");
        return 0;
}
