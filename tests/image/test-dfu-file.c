/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DFU-suffixed files and DfuSe .dfu files: valid forms (several targets, named targets, both
 * DFUImageSize conventions) and every malformed form with its error code. The files here are built by
 * a small writer in this test; tests/image/test-real-tools.c checks files written by dfu-util's tools. */

#include "image-test.h"

typedef struct Buf {
        uint8_t *data;
        size_t size;
} Buf;

static void put(Buf *b, const void *p, size_t n) {
        b->data = realloc(b->data, b->size + n);
        assert(b->data);
        memcpy(b->data + b->size, p, n);
        b->size += n;
}

static void put8(Buf *b, uint8_t v) {
        put(b, &v, 1);
}

static void put16(Buf *b, uint16_t v) {
        uint8_t p[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
        put(b, p, 2);
}

static void put32(Buf *b, uint32_t v) {
        uint8_t p[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24) };
        put(b, p, 4);
}

static void wr32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

static void add_suffix(Buf *b, uint16_t vid, uint16_t pid, uint16_t bcd_dfu) {
        put16(b, 0x0200);
        put16(b, pid);
        put16(b, vid);
        put16(b, bcd_dfu);
        put(b, "UFD", 3);
        put8(b, 16);
        put32(b, dfu_crc32_update(0xFFFFFFFFu, b->data, b->size));
}

static void fix_crc(Buf *b) {
        wr32(b->data + b->size - 4, dfu_crc32_update(0xFFFFFFFFu, b->data, b->size - 4));
}

typedef struct Element {
        uint32_t address;
        uint32_t size;
        uint8_t fill;
} Element;

/* Target prefix + elements. */
static void put_target(Buf *b, uint8_t alt, const char *name, const Element *e, size_t n) {
        uint8_t tname[255] = {};
        uint32_t tsize = 0;

        for (size_t i = 0; i < n; i++)
                tsize += 8 + e[i].size;
        put(b, "Target", 6);
        put8(b, alt);
        put32(b, name ? 1 : 0);
        if (name)
                memcpy(tname, name, strlen(name));
        put(b, tname, sizeof tname);
        put32(b, tsize);
        put32(b, (uint32_t) n);
        for (size_t i = 0; i < n; i++) {
                uint8_t *d = malloc(e[i].size + 1);
                assert(d);
                memset(d, e[i].fill, e[i].size);
                put32(b, e[i].address);
                put32(b, e[i].size);
                put(b, d, e[i].size);
                free(d);
        }
}

/* DfuSe file with two targets: alt 0 (two elements) and a named alt 1. */
static Buf make_dfuse(bool size_with_suffix) {
        static const Element t0[] = { { 0x08000000, 1000, 0x11 }, { 0x08004000, 24, 0x22 } };
        static const Element t1[] = { { 0x90000000, 300, 0x33 } };
        Buf b = {};

        put(&b, "DfuSe", 5);
        put8(&b, 1);
        put32(&b, 0); /* patched below */
        put8(&b, 2);
        put_target(&b, 0, "Internal Flash", t0, 2);
        put_target(&b, 1, NULL, t1, 1);
        wr32(b.data + 6, (uint32_t) (b.size + (size_with_suffix ? 16 : 0)));
        add_suffix(&b, 0x0483, 0xDF11, 0x011A);
        return b;
}

static void test_dfuse_valid(void) {
        for (int with = 0; with <= 1; with++) {
                Buf b = make_dfuse(with);
                DfuImageLoadOptions opts = { .vendor_id = 0x0483, .product_id = 0xDF11 };
                DfuImage *img = expect_load(b.data, b.size, &opts);

                assert(img->format == DFU_IMAGE_FORMAT_DFUSE);
                assert(img->has_suffix && img->vendor_id == 0x0483 && img->product_id == 0xDF11);
                assert(img->device_version == 0x0200);
                assert(img->n_segments == 3 && img->total_size == 1324);
                assert(img->segments[0].alt == 0 && img->segments[0].address == 0x08000000);
                assert(img->segments[0].size == 1000 && img->segments[0].data[999] == 0x11);
                assert(img->segments[1].alt == 0 && img->segments[1].address == 0x08004000);
                assert(img->segments[1].size == 24 && img->segments[1].data[0] == 0x22);
                assert(img->segments[2].alt == 1 && img->segments[2].address == 0x90000000);
                assert(img->segments[2].size == 300 && img->segments[2].data[0] == 0x33);
                dfu_image_free(img);

                /* Explicit format, no id check, wildcard ids. */
                opts = (DfuImageLoadOptions) { .format = DFU_IMAGE_FORMAT_DFUSE };
                dfu_image_free(expect_load(b.data, b.size, &opts));
                free(b.data);
        }
}

static void test_dfuse_ids(void) {
        Buf b = make_dfuse(true);
        DfuImageLoadOptions opts = { .vendor_id = 0x1209, .product_id = 0xDF11 };

        expect_load_error(b.data, b.size, &opts, DFU_IMAGE_ERROR_ID_MISMATCH);
        opts = (DfuImageLoadOptions) { .vendor_id = 0x0483, .product_id = 0x5740 };
        expect_load_error(b.data, b.size, &opts, DFU_IMAGE_ERROR_ID_MISMATCH);

        /* 0xFFFF in the suffix matches any device. */
        b.data[b.size - 12] = 0xFF;
        b.data[b.size - 11] = 0xFF;
        b.data[b.size - 14] = 0xFF;
        b.data[b.size - 13] = 0xFF;
        fix_crc(&b);
        opts = (DfuImageLoadOptions) { .vendor_id = 0x1209, .product_id = 0x0001 };
        dfu_image_free(expect_load(b.data, b.size, &opts));
        free(b.data);
}

static void test_dfuse_malformed(void) {
        Buf b = make_dfuse(true);
        uint8_t *m = malloc(b.size);
        DfuImageLoadOptions opts = {};

        assert(m);

        /* Truncated anywhere: the prefix is cut or DFUImageSize is larger than the file. Below 5 bytes
         * the "DfuSe" magic is incomplete, so the format has to be named. */
        opts.format = DFU_IMAGE_FORMAT_DFUSE;
        for (size_t n = 1; n < b.size; n += (n < 20 ? 1 : 37))
                expect_load_error(b.data, n, &opts, DFU_IMAGE_ERROR_TRUNCATED);
        opts.format = DFU_IMAGE_FORMAT_AUTO;

#define MUTATE(off, val, code)                                          \
        do {                                                            \
                memcpy(m, b.data, b.size);                              \
                m[(off)] = (val);                                       \
                expect_load_error(m, b.size, &opts, (code));            \
        } while (0)
#define MUTATE_FIXCRC(off, val, code)                                   \
        do {                                                            \
                Buf c = { .data = m, .size = b.size };                  \
                memcpy(m, b.data, b.size);                              \
                m[(off)] = (val);                                       \
                fix_crc(&c);                                            \
                expect_load_error(m, b.size, &opts, (code));            \
        } while (0)

        /* Any flipped payload byte: CRC. */
        MUTATE(300, b.data[300] ^ 1, DFU_IMAGE_ERROR_BAD_CRC);
        MUTATE(b.size - 1, b.data[b.size - 1] ^ 0x80, DFU_IMAGE_ERROR_BAD_CRC);
        /* Prefix signature (format given explicitly, else it is not sniffed as DfuSe). */
        opts.format = DFU_IMAGE_FORMAT_DFUSE;
        MUTATE_FIXCRC(0, 'd', DFU_IMAGE_ERROR_BAD_SIGNATURE);
        opts.format = DFU_IMAGE_FORMAT_AUTO;
        MUTATE_FIXCRC(5, 2, DFU_IMAGE_ERROR_BAD_VERSION);
        /* DFUImageSize matching neither convention. */
        MUTATE_FIXCRC(6, (uint8_t) (b.data[6] - 3), DFU_IMAGE_ERROR_BAD_SIZE);
        /* No targets / more targets than present. */
        MUTATE_FIXCRC(10, 0, DFU_IMAGE_ERROR_EMPTY);
        MUTATE_FIXCRC(10, 3, DFU_IMAGE_ERROR_TRUNCATED);
        MUTATE_FIXCRC(10, 1, DFU_IMAGE_ERROR_BAD_SIZE); /* one target, then leftover bytes */
        /* "Target" signature. */
        MUTATE_FIXCRC(11, 't', DFU_IMAGE_ERROR_BAD_SIGNATURE);
        /* Alt 255 is reserved. */
        MUTATE_FIXCRC(11 + 6, 0xFF, DFU_IMAGE_ERROR_BAD_RECORD);
        /* dwTargetSize too large / too small for its elements. */
        MUTATE_FIXCRC(11 + 266 + 2, 0x10, DFU_IMAGE_ERROR_TRUNCATED);
        MUTATE_FIXCRC(11 + 266, (uint8_t) (b.data[11 + 266] - 1), DFU_IMAGE_ERROR_TRUNCATED);
        MUTATE_FIXCRC(11 + 266, (uint8_t) (b.data[11 + 266] + 8), DFU_IMAGE_ERROR_BAD_SIZE);
        /* dwNbElements larger than the data. */
        MUTATE_FIXCRC(11 + 270, 3, DFU_IMAGE_ERROR_TRUNCATED);
        /* Element size past the target. */
        MUTATE_FIXCRC(11 + 274 + 6, 0x01, DFU_IMAGE_ERROR_TRUNCATED);
        /* Second element moved onto the first: overlap. */
        MUTATE_FIXCRC(11 + 274 + 8 + 1000 + 1, 0x00, DFU_IMAGE_ERROR_OVERLAP);
        /* Element wrapping past 4 GiB. */
        {
                Buf c = { .data = m, .size = b.size };
                memcpy(m, b.data, b.size);
                wr32(m + 11 + 274, 0xFFFFFF00);
                fix_crc(&c);
                expect_load_error(m, b.size, &opts, DFU_IMAGE_ERROR_ADDRESS_OVERFLOW);
        }
        /* Suffix: wrong bcdDFU, wrong bLength, missing. */
        MUTATE_FIXCRC(b.size - 10, 0x00, DFU_IMAGE_ERROR_BAD_VERSION);
        MUTATE_FIXCRC(b.size - 5, 8, DFU_IMAGE_ERROR_BAD_SIZE);
        MUTATE_FIXCRC(b.size - 5, 0xFF, DFU_IMAGE_ERROR_TRUNCATED); /* 255-byte suffix eats the targets */
        MUTATE(b.size - 8, 'X', DFU_IMAGE_ERROR_BAD_SIGNATURE);
#undef MUTATE
#undef MUTATE_FIXCRC
        free(m);
        free(b.data);
}

static void test_dfuse_empty_elements(void) {
        static const Element e[] = { { 0x08000000, 0, 0 } };
        Buf b = {};

        put(&b, "DfuSe", 5);
        put8(&b, 1);
        put32(&b, 0);
        put8(&b, 1);
        put_target(&b, 0, NULL, e, 1);
        wr32(b.data + 6, (uint32_t) b.size + 16);
        add_suffix(&b, 0xFFFF, 0xFFFF, 0x011A);
        expect_load_error(b.data, b.size, NULL, DFU_IMAGE_ERROR_EMPTY);
        free(b.data);
}

/* A suffix whose bLength reaches back into the 11-byte prefix (found by review, kept as regression). */
static void test_dfuse_suffix_over_prefix(void) {
        Buf b = {};

        put(&b, "DfuSe", 5);
        put8(&b, 1);
        put32(&b, 11 + 6 + 16);
        put8(&b, 1);
        put(&b, "Target", 6);
        put16(&b, 0);
        put16(&b, 0xFFFF);
        put16(&b, 0xFFFF);
        put16(&b, 0x011A);
        put(&b, "UFD", 3);
        put8(&b, 25);
        put32(&b, dfu_crc32_update(0xFFFFFFFFu, b.data, b.size));
        expect_load_error(b.data, b.size, NULL, DFU_IMAGE_ERROR_BAD_SIZE);
        free(b.data);
}

static void test_dfu_suffix_file(void) {
        uint8_t payload[100];
        DfuImageLoadOptions opts = {};
        DfuImage *img;
        Buf b = {};

        for (size_t i = 0; i < sizeof payload; i++)
                payload[i] = (uint8_t) i;
        put(&b, payload, sizeof payload);
        add_suffix(&b, 0x0483, 0xDF11, 0x0100);

        img = expect_load(b.data, b.size, &opts);
        assert(img->format == DFU_IMAGE_FORMAT_DFU && img->has_suffix);
        assert(img->vendor_id == 0x0483 && img->product_id == 0xDF11 && img->device_version == 0x0200);
        assert(img->n_segments == 1 && img->segments[0].address == 0 && img->segments[0].size == 100);
        assert(memcmp(img->segments[0].data, payload, 100) == 0);
        dfu_image_free(img);

        opts = (DfuImageLoadOptions) { .has_address = true, .address = 0x08000000, .vendor_id = 0x0483,
                                       .product_id = 0xDF11 };
        img = expect_load(b.data, b.size, &opts);
        assert(img->segments[0].address == 0x08000000 && img->segments[0].alt == DFU_ALT_ANY);
        dfu_image_free(img);

        opts.product_id = 0xDF12;
        expect_load_error(b.data, b.size, &opts, DFU_IMAGE_ERROR_ID_MISMATCH);
        opts.product_id = 0;
        opts.vendor_id = 0x1209;
        expect_load_error(b.data, b.size, &opts, DFU_IMAGE_ERROR_ID_MISMATCH);
        opts.vendor_id = 0;

        b.data[3] ^= 0xFF;
        expect_load_error(b.data, b.size, &opts, DFU_IMAGE_ERROR_BAD_CRC);
        b.data[3] ^= 0xFF;

        /* Only a suffix: no payload. */
        {
                Buf only = {};
                add_suffix(&only, 0x0483, 0xDF11, 0x0100);
                expect_load_error(only.data, only.size, &opts, DFU_IMAGE_ERROR_EMPTY);
                free(only.data);
        }

        /* Explicit DFU format without a suffix. */
        opts.format = DFU_IMAGE_FORMAT_DFU;
        expect_load_error(payload, sizeof payload, &opts, DFU_IMAGE_ERROR_BAD_SIGNATURE);
        expect_load_error(payload, 10, &opts, DFU_IMAGE_ERROR_TRUNCATED);
        free(b.data);
}

/* A longer (vendor-extended) suffix: bLength > 16 is honoured. */
static void test_dfu_long_suffix(void) {
        uint8_t payload[40];
        DfuImage *img;
        Buf b = {};

        memset(payload, 0x5A, sizeof payload);
        put(&b, payload, sizeof payload);
        put(&b, "EXTRA", 5);
        put16(&b, 0xFFFF);
        put16(&b, 0xFFFF);
        put16(&b, 0xFFFF);
        put16(&b, 0x0100);
        put(&b, "UFD", 3);
        put8(&b, 21);
        put32(&b, dfu_crc32_update(0xFFFFFFFFu, b.data, b.size));
        img = expect_load(b.data, b.size, NULL);
        assert(img->segments[0].size == 40);
        dfu_image_free(img);
        free(b.data);
}

int main(void) {
        test_dfuse_valid();
        test_dfuse_ids();
        test_dfuse_malformed();
        test_dfuse_empty_elements();
        test_dfuse_suffix_over_prefix();
        test_dfu_suffix_file();
        test_dfu_long_suffix();
        return 0;
}
