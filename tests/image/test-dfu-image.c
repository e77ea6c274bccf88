/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image model: builder (sorting, merging, overlap and bounds checks), dfu_image_read, string tables,
 * format sniffing and the raw .bin loader. */

#include "image-test.h"

static void test_string_tables(void) {
        assert(strcmp(dfu_image_format_to_string(DFU_IMAGE_FORMAT_DFUSE), "dfuse") == 0);
        assert(strcmp(dfu_image_format_to_string(DFU_IMAGE_FORMAT_AUTO), "auto") == 0);
        assert(dfu_image_format_from_string("ihex") == DFU_IMAGE_FORMAT_IHEX);
        assert(dfu_image_format_from_string("elf") == DFU_IMAGE_FORMAT_ELF);
        assert(dfu_image_format_from_string("nope") == _DFU_IMAGE_FORMAT_INVALID);
        assert(dfu_image_format_to_string(_DFU_IMAGE_FORMAT_MAX) == NULL);
        for (int e = 0; e < _DFU_IMAGE_ERROR_MAX; e++) {
                const char *s = dfu_image_error_to_string(e);

                assert(s);
                assert(dfu_image_error_from_string(s) == (DfuImageError) e);
                assert(e == DFU_IMAGE_ERROR_NONE ? dfu_image_error_to_errno(e) == 0
                                                 : dfu_image_error_to_errno(e) < 0);
        }
        assert(strcmp(dfu_image_error_to_string(DFU_IMAGE_ERROR_BAD_CRC), "bad-crc") == 0);
        assert(dfu_image_error_to_string(-1) == NULL);
}

static void test_builder_sort_merge(void) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        uint8_t a[16], b[16], c[16], buf[64];
        DfuError err = {};

        memset(a, 0xA0, sizeof a);
        memset(b, 0xB0, sizeof b);
        memset(c, 0xC0, sizeof c);
        assert(dfu_image_new(&img) == 0);
        assert(img->vendor_id == 0xFFFF && img->product_id == 0xFFFF);

        /* Out of order: sorted by (alt, address). */
        assert(dfu_image_add_segment(img, 1, 0x1000, a, 16, &err) == 0);
        assert(dfu_image_add_segment(img, 0, 0x2000, b, 16, &err) == 0);
        assert(dfu_image_add_segment(img, 0, 0x1000, c, 16, &err) == 0);
        assert(img->n_segments == 3);
        assert(img->segments[0].alt == 0 && img->segments[0].address == 0x1000);
        assert(img->segments[1].alt == 0 && img->segments[1].address == 0x2000);
        assert(img->segments[2].alt == 1 && img->segments[2].address == 0x1000);
        assert(img->total_size == 48);

        /* Same address on another alt is not an overlap; on the same alt it is. */
        assert(dfu_image_add_segment(img, 0, 0x1008, a, 16, &err) == -EINVAL);
        assert(err.code == DFU_IMAGE_ERROR_OVERLAP);
        assert(dfu_image_add_segment(img, 0, 0x0FF8, a, 16, &err) == -EINVAL);
        assert(err.code == DFU_IMAGE_ERROR_OVERLAP);
        assert(dfu_image_add_segment(img, 0, 0x1FFF, a, 2, &err) == -EINVAL);
        assert(err.code == DFU_IMAGE_ERROR_OVERLAP);
        assert(img->n_segments == 3 && img->total_size == 48);

        /* Contiguous after, before, and bridging two segments: merged into one. */
        assert(dfu_image_add_segment(img, 0, 0x1010, a, 16, &err) == 0);
        assert(img->n_segments == 3 && img->segments[0].size == 32);
        assert(dfu_image_add_segment(img, 0, 0x0FF0, b, 16, &err) == 0);
        assert(img->n_segments == 3 && img->segments[0].address == 0x0FF0 && img->segments[0].size == 48);
        {
                _cleanup_free_ uint8_t *fill = calloc(1, 0x2000 - 0x1020);
                assert(fill);
                assert(dfu_image_add_segment(img, 0, 0x1020, fill, 0x2000 - 0x1020, &err) == 0);
        }
        assert(img->n_segments == 2);
        assert(img->segments[0].address == 0x0FF0 && img->segments[0].size == 0x2010 - 0x0FF0);
        assert(img->segments[0].data[0] == 0xB0 && img->segments[0].data[0x10] == 0xC0);
        assert(img->segments[0].data[0x20] == 0xA0 && img->segments[0].data[0x30] == 0);
        assert(img->segments[0].data[0x2000 - 0x0FF0] == 0xB0);
        assert(img->total_size == img->segments[0].size + 16);

        /* dfu_image_read: fill outside, count covered bytes, alt filter. */
        assert(dfu_image_read(img, 0, 0x0FE0, buf, 32, 0xFF) == 16);
        assert(buf[0] == 0xFF && buf[15] == 0xFF && buf[16] == 0xB0);
        assert(dfu_image_read(img, 0, 0x2008, buf, 16, 0xEE) == 8);
        assert(buf[7] == 0xB0 && buf[8] == 0xEE);
        assert(dfu_image_read(img, 1, 0x1000, buf, 16, 0) == 16 && buf[0] == 0xA0);
        assert(dfu_image_read(img, 2, 0x1000, buf, 16, 0x11) == 0 && buf[0] == 0x11);
        assert(dfu_image_read(img, DFU_ALT_ANY, 0x1000, buf, 1, 0) == 2); /* alt 0 and alt 1 */
}

static void test_builder_errors(void) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        uint8_t a[16] = {};
        DfuError err = {};

        assert(dfu_image_new(&img) == 0);
        assert(dfu_image_add_segment(img, 0, 0x1000, a, 0, &err) == -ENODATA);
        assert(err.code == DFU_IMAGE_ERROR_EMPTY);
        assert(dfu_image_add_segment(img, 0, 0xFFFFFFF8, a, 16, &err) == -EINVAL);
        assert(err.code == DFU_IMAGE_ERROR_ADDRESS_OVERFLOW);
        assert(dfu_image_add_segment(img, 0, 0xFFFFFFF0, a, 16, &err) == 0); /* ends exactly at 4 GiB */
        assert(dfu_image_add_segment(img, 0, 0, a, (size_t) DFU_IMAGE_MAX_FILE_SIZE, &err) == -EFBIG);
        assert(err.code == DFU_IMAGE_ERROR_TOO_LARGE);
        assert(img->n_segments == 1);

        /* Segment count limit: every other 1-byte slot so nothing merges. */
        dfu_image_free(TAKE_PTR(img));
        assert(dfu_image_new(&img) == 0);
        for (uint32_t i = 0; i < DFU_IMAGE_MAX_SEGMENTS; i++)
                assert(dfu_image_add_segment(img, 0, i * 2, a, 1, NULL) == 0);
        assert(dfu_image_add_segment(img, 0, DFU_IMAGE_MAX_SEGMENTS * 2, a, 1, &err) == -EFBIG);
        assert(err.code == DFU_IMAGE_ERROR_TOO_LARGE);
        /* ...but growing an existing segment still works. */
        assert(dfu_image_add_segment(img, 0, 1, a, 1, &err) == 0);
        assert(img->n_segments == DFU_IMAGE_MAX_SEGMENTS - 1);
}

static void test_sniff(void) {
        const uint8_t dfuse[] = "DfuSe\x01";
        const uint8_t elf[] = "\177ELF\x01\x01\x01";
        const uint8_t hex[] = "\r\n:00000001FF\r\n";
        uint8_t suffixed[32] = {};

        assert(dfu_image_sniff(dfuse, sizeof dfuse) == DFU_IMAGE_FORMAT_DFUSE);
        assert(dfu_image_sniff(elf, sizeof elf) == DFU_IMAGE_FORMAT_ELF);
        assert(dfu_image_sniff(hex, sizeof hex) == DFU_IMAGE_FORMAT_IHEX);
        assert(dfu_image_sniff(suffixed, sizeof suffixed) == DFU_IMAGE_FORMAT_BIN);
        memcpy(suffixed + 24, "UFD\x10", 4);
        assert(dfu_image_sniff(suffixed, sizeof suffixed) == DFU_IMAGE_FORMAT_DFU);
}

static void test_load_bin(void) {
        const uint8_t data[] = { 1, 2, 3, 4, 5 };
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_AUTO };
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;

        expect_load_error(data, sizeof data, &opts, DFU_IMAGE_ERROR_NO_ADDRESS);
        expect_load_error(data, sizeof data, NULL, DFU_IMAGE_ERROR_NO_ADDRESS);
        expect_load_error(data, 0, &opts, DFU_IMAGE_ERROR_EMPTY);
        expect_load_error(data, (size_t) DFU_IMAGE_MAX_FILE_SIZE + 1, &opts, DFU_IMAGE_ERROR_TOO_LARGE);

        opts.has_address = true;
        opts.address = 0xFFFFFFFE;
        expect_load_error(data, sizeof data, &opts, DFU_IMAGE_ERROR_ADDRESS_OVERFLOW);

        opts.address = 0x08000000;
        img = expect_load(data, sizeof data, &opts);
        assert(img->format == DFU_IMAGE_FORMAT_BIN);
        assert(!img->has_suffix);
        assert(img->n_segments == 1 && img->segments[0].address == 0x08000000 && img->segments[0].size == 5);
        assert(img->segments[0].alt == DFU_ALT_ANY);
        assert(memcmp(img->segments[0].data, data, 5) == 0);
        assert(img->total_size == 5);

        /* An explicit format overrides sniffing: a HEX-looking file loaded as bin. */
        opts.format = DFU_IMAGE_FORMAT_BIN;
        dfu_image_free(TAKE_PTR(img));
        img = expect_load((const uint8_t *) ":00000001FF\n", 12, &opts);
        assert(img->format == DFU_IMAGE_FORMAT_BIN && img->total_size == 12);

        opts.format = 99;
        expect_load_error(data, sizeof data, &opts, DFU_IMAGE_ERROR_UNKNOWN_FORMAT);
}

int main(void) {
        test_string_tables();
        test_builder_sort_merge();
        test_builder_errors();
        test_sniff();
        test_load_bin();
        return 0;
}
