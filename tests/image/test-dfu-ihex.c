/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Intel HEX: record types 00/01/02/04/05 (and 03), CRLF, merging of contiguous records, gaps, and every
 * malformed form with its error code and line number. */

#include "image-test.h"

static char text[1 << 16];
static size_t text_len;

/* Appends one record with a correct checksum (or `bad_sum` added to it). */
static void rec(uint8_t type, uint16_t offset, const uint8_t *data, uint8_t n, uint8_t bad_sum,
                const char *eol) {
        uint8_t sum = (uint8_t) (n + (offset >> 8) + (offset & 0xFF) + type);

        text_len += (size_t) snprintf(text + text_len, sizeof text - text_len, ":%02X%04X%02X", n, offset,
                                      type);
        for (uint8_t i = 0; i < n; i++) {
                sum = (uint8_t) (sum + data[i]);
                text_len += (size_t) snprintf(text + text_len, sizeof text - text_len, "%02X", data[i]);
        }
        text_len += (size_t) snprintf(text + text_len, sizeof text - text_len, "%02X%s",
                                      (uint8_t) (-sum + bad_sum), eol);
        assert(text_len < sizeof text);
}

static void reset(void) {
        text_len = 0;
        text[0] = '\0';
}

static void ext_linear(uint16_t upper, const char *eol) {
        uint8_t d[2] = { (uint8_t) (upper >> 8), (uint8_t) upper };
        rec(0x04, 0, d, 2, 0, eol);
}

static void eof_rec(const char *eol) {
        rec(0x01, 0, NULL, 0, 0, eol);
}

static void test_valid(void) {
        static const char *const eols[] = { "\n", "\r\n" };
        uint8_t data[64], start[4] = { 0x08, 0x00, 0x01, 0x01 };

        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 7);

        for (size_t k = 0; k < 2; k++) {
                const char *eol = eols[k];
                DfuImage *img;

                reset();
                ext_linear(0x0800, eol);
                /* 64 contiguous bytes in 16-byte records, across the 64 KiB boundary via a new 04. */
                rec(0x00, 0xFFE0, data, 16, 0, eol);
                rec(0x00, 0xFFF0, data + 16, 16, 0, eol);
                ext_linear(0x0801, eol);
                rec(0x00, 0x0000, data + 32, 16, 0, eol);
                rec(0x00, 0x0010, data + 48, 16, 0, eol);
                /* A gap, then a second run; zero-length data records are harmless. */
                rec(0x00, 0x1000, data, 8, 0, eol);
                rec(0x00, 0x2000, data, 0, 0, eol);
                /* Extended segment address: 0x2000 << 4 = 0x20000 + 0x10. */
                {
                        uint8_t seg[2] = { 0x20, 0x00 };
                        rec(0x02, 0, seg, 2, 0, eol);
                }
                rec(0x00, 0x0010, data, 4, 0, eol);
                rec(0x05, 0, start, 4, 0, eol);
                rec(0x03, 0, start, 4, 0, eol);
                eof_rec(eol);

                img = expect_load((const uint8_t *) text, text_len, NULL);
                assert(img->format == DFU_IMAGE_FORMAT_IHEX && !img->has_suffix);
                assert(img->n_segments == 3);
                assert(img->segments[0].address == 0x00020010 && img->segments[0].size == 4);
                assert(img->segments[1].address == 0x0800FFE0 && img->segments[1].size == 64);
                assert(memcmp(img->segments[1].data, data, 64) == 0);
                assert(img->segments[2].address == 0x08011000 && img->segments[2].size == 8);
                assert(img->segments[1].alt == DFU_ALT_ANY);
                assert(img->total_size == 76);
                dfu_image_free(img);
        }

        /* Records out of order still merge into one segment; lower-case digits; trailing junk after the
         * end-of-file record (a DFU suffix someone appended) is ignored. */
        {
                DfuImage *img;

                reset();
                rec(0x00, 0x0010, data + 16, 16, 0, "\n");
                rec(0x00, 0x0000, data, 16, 0, "\n");
                rec(0x00, 0x0020, data + 32, 16, 0, "\n");
                eof_rec("\n");
                for (size_t i = 0; i < text_len; i++)
                        if (text[i] >= 'A' && text[i] <= 'F')
                                text[i] = (char) (text[i] - 'A' + 'a');
                memcpy(text + text_len, "\x00\x02UFD\x10garbage", 13);
                img = expect_load((const uint8_t *) text, text_len + 13,
                                  &(DfuImageLoadOptions) { .format = DFU_IMAGE_FORMAT_IHEX });
                assert(img->n_segments == 1 && img->segments[0].address == 0 && img->segments[0].size == 48);
                assert(memcmp(img->segments[0].data, data, 48) == 0);
                dfu_image_free(img);
        }

        /* Blank lines and no newline after the end record. */
        {
                static const char s[] = "\n\n:0400000001020304F2\r\n\r\n:00000001FF";
                DfuImage *img = expect_load((const uint8_t *) s, sizeof s - 1, NULL);
                assert(img->n_segments == 1 && img->segments[0].size == 4 && img->segments[0].data[3] == 4);
                dfu_image_free(img);
        }
}

static void expect_hex_error(const char *s, DfuImageError code, unsigned line) {
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_IHEX };
        DfuImage *img = SENTINEL_IMAGE;
        DfuError err = {};

        expect_load_error((const uint8_t *) s, strlen(s), &opts, code);
        assert(dfu_image_load((const uint8_t *) s, strlen(s), &opts, &img, &err) < 0);
        if (err.offset != line) {
                fprintf(stderr, "expected line %u, got %llu: %s\n", line, (unsigned long long) err.offset,
                        err.message);
                abort();
        }
}

static void test_malformed(void) {
        uint8_t d[16] = {};

        expect_hex_error(":0400000001020304F3\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_CHECKSUM, 1);
        expect_hex_error(":0400000001020304F2\n:00000001FE\n", DFU_IMAGE_ERROR_BAD_CHECKSUM, 2);
        expect_hex_error(":0400000001020304F2\n", DFU_IMAGE_ERROR_TRUNCATED, 1);             /* no EOF */
        expect_hex_error(":0400000001020304", DFU_IMAGE_ERROR_BAD_RECORD, 1);                 /* count */
        expect_hex_error(":0400000001020304F\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 1); /* odd */
        expect_hex_error(":0500000001020304F2\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);
        expect_hex_error(":04000000010203G4F2\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);
        expect_hex_error(":0400000001020304F2\nfoo\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 2);
        expect_hex_error(":00000006FA\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);    /* type 06 */
        expect_hex_error(":0100000100FE\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);                 /* EOF + data */
        expect_hex_error(":0100000400FB\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);  /* 04 len 1 */
        expect_hex_error(":020000020000FC\n:0100000500FA\n:00000001FF\n", DFU_IMAGE_ERROR_BAD_RECORD, 2);
        expect_hex_error(":0A\n", DFU_IMAGE_ERROR_BAD_RECORD, 1);
        expect_hex_error(":00000001FF\n", DFU_IMAGE_ERROR_EMPTY, 1);
        expect_load_error((const uint8_t *) "\n\n", 2,
                          &(DfuImageLoadOptions) { .format = DFU_IMAGE_FORMAT_IHEX },
                          DFU_IMAGE_ERROR_TRUNCATED);

        /* Overlapping records. */
        reset();
        rec(0x00, 0x0000, d, 16, 0, "\n");
        rec(0x00, 0x0008, d, 16, 0, "\n");
        eof_rec("\n");
        expect_hex_error(text, DFU_IMAGE_ERROR_OVERLAP, 2);
        reset();
        rec(0x00, 0x0100, d, 16, 0, "\n");
        rec(0x00, 0x0000, d, 16, 0, "\r\n");
        rec(0x00, 0x0010, d, 16, 0, "\n");
        rec(0x00, 0x00F8, d, 16, 0, "\n");
        eof_rec("\n");
        expect_hex_error(text, DFU_IMAGE_ERROR_OVERLAP, 4);

        /* Data past 4 GiB. */
        reset();
        ext_linear(0xFFFF, "\n");
        rec(0x00, 0xFFF8, d, 16, 0, "\n");
        eof_rec("\n");
        expect_hex_error(text, DFU_IMAGE_ERROR_ADDRESS_OVERFLOW, 2);

        /* A 600-character line. */
        {
                char long_line[700];
                memset(long_line, '0', sizeof long_line);
                long_line[0] = ':';
                strcpy(long_line + 600, "\n:00000001FF\n");
                expect_hex_error(long_line, DFU_IMAGE_ERROR_BAD_RECORD, 1);
        }
}

int main(void) {
        test_valid();
        test_malformed();
        return 0;
}
