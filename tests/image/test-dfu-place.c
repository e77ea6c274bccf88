/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placement of image segments onto DfuSe alt settings: internal flash on alt 0, external QSPI on another
 * alt, option bytes / OTP / device feature behind allow_protected, splits at region boundaries, and
 * every refusal with its error code and an untouched image. */

#include "image-test.h"

typedef struct Device {
        DfuseLayout l[5];
        const DfuseLayout *p[5];
        size_t n;
} Device;

/* F407-like ROM plus an external QSPI alt 4. */
static void device_init(Device *d) {
        static const char *const s[] = {
                "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
                "@Option Bytes  /0x1FFFC000/01*016 e",
                "@OTP Memory /0x1FFF7800/01*512 e,01*016 e",
                "@Device Feature/0xFFFF0000/01*004 g",
                "@External Flash /0x90000000/256*64Kg",
        };
        for (size_t i = 0; i < 5; i++) {
                assert(dfuse_layout_parse(s[i], &d->l[i]) == 0);
                d->p[i] = &d->l[i];
        }
        d->n = 5;
}

static DfuImage *image(const uint32_t *addr, const uint32_t *size, const uint8_t *alt, size_t n) {
        DfuImage *img;

        assert(dfu_image_new(&img) == 0);
        for (size_t i = 0; i < n; i++) {
                uint8_t *d = malloc(size[i]);
                assert(d);
                for (uint32_t k = 0; k < size[i]; k++)
                        d[k] = (uint8_t) (addr[i] + k);
                assert(dfu_image_add_segment(img, alt ? alt[i] : DFU_ALT_ANY, addr[i], d, size[i], NULL) ==
                       0);
                free(d);
        }
        return img;
}

/* Expects failure with `code`, and the image exactly as before. */
static void expect_place_error(DfuImage *img, const Device *d, bool allow_protected, DfuImageError code) {
        DfuSegment *segs = img->segments;
        size_t n = img->n_segments;
        uint64_t total = img->total_size;
        DfuError err = {};
        int r;

        r = dfu_image_place(img, d->p, d->n, allow_protected, &err);
        if (r >= 0 || err.code != code) {
                fprintf(stderr, "expected %s, got %d %s: %s\n", dfu_image_error_to_string(code), r,
                        dfu_image_error_to_string(err.code), err.message);
                abort();
        }
        assert(r == dfu_image_error_to_errno(code));
        assert(img->segments == segs && img->n_segments == n && img->total_size == total);
        printf("  %-16s %s\n", dfu_image_error_to_string(code), err.message);
}

static void test_flash_and_qspi(void) {
        const uint32_t addr[] = { 0x08000000, 0x08020000, 0x90000000 };
        const uint32_t size[] = { 0x10000, 0x40000, 0x1000 };
        _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 3);
        DfuError err = {};
        Device d;

        device_init(&d);
        assert(dfu_image_place(img, d.p, d.n, false, &err) == 0);
        assert(err.code == DFU_IMAGE_ERROR_NONE);
        assert(img->n_segments == 3);
        assert(img->segments[0].alt == 0 && img->segments[0].address == 0x08000000);
        assert(img->segments[1].alt == 0 && img->segments[1].address == 0x08020000);
        assert(img->segments[2].alt == 4 && img->segments[2].address == 0x90000000);
        assert(img->segments[2].data[1] == 0x01);
        assert(img->total_size == 0x51000);

        /* Placing again is a no-op. */
        assert(dfu_image_place(img, d.p, d.n, false, &err) == 0);
        assert(img->n_segments == 3 && img->segments[2].alt == 4);
}

static void test_whole_flash_spans_groups(void) {
        const uint32_t addr[] = { 0x08000000 };
        const uint32_t size[] = { 1024 * 1024 };
        _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);
        Device d;

        device_init(&d);
        /* 16K, 64K and 128K groups of one block: one region, no split. */
        assert(dfu_image_place(img, d.p, d.n, false, NULL) == 0);
        assert(img->n_segments == 1 && img->segments[0].alt == 0 && img->segments[0].size == 1024 * 1024);
}

static void test_split_at_block_boundary(void) {
        const uint32_t addr[] = { 0x08001000 };
        const uint32_t size[] = { 0x3000 };
        _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);
        Device d = { .n = 2 };

        /* Two adjacent blocks on alt 0 and a third region on alt 1 right after them. */
        assert(dfuse_layout_parse("@Flash/0x08000000/02*004Kg/0x08002000/01*004Kg", &d.l[0]) == 0);
        assert(dfuse_layout_parse("@RAM/0x08003000/04*001Kg", &d.l[1]) == 0);
        d.p[0] = &d.l[0];
        d.p[1] = &d.l[1];
        assert(dfu_image_place(img, d.p, d.n, false, NULL) == 0);
        assert(img->n_segments == 3);
        assert(img->segments[0].alt == 0 && img->segments[0].address == 0x08001000);
        assert(img->segments[0].size == 0x1000);
        assert(img->segments[1].alt == 0 && img->segments[1].address == 0x08002000);
        assert(img->segments[1].size == 0x1000 && img->segments[1].data[0] == 0x00);
        assert(img->segments[2].alt == 1 && img->segments[2].address == 0x08003000);
        assert(img->segments[2].size == 0x1000);
        assert(img->total_size == 0x3000);
}

static void test_protected(void) {
        const uint32_t ob_addr[] = { 0x1FFFC000 }, ob_size[] = { 16 };
        const uint32_t otp_addr[] = { 0x1FFF7800 }, otp_size[] = { 0x210 };
        const uint32_t df_addr[] = { 0xFFFF0000 }, df_size[] = { 4 };
        Device d;

        device_init(&d);
        {
                _cleanup_(dfu_image_freep) DfuImage *img = image(ob_addr, ob_size, NULL, 1);
                expect_place_error(img, &d, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(dfu_image_place(img, d.p, d.n, true, NULL) == 0);
                assert(img->segments[0].alt == 1);
        }
        {
                _cleanup_(dfu_image_freep) DfuImage *img = image(otp_addr, otp_size, NULL, 1);
                expect_place_error(img, &d, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(dfu_image_place(img, d.p, d.n, true, NULL) == 0);
                assert(img->n_segments == 1 && img->segments[0].alt == 2);
        }
        {
                _cleanup_(dfu_image_freep) DfuImage *img = image(df_addr, df_size, NULL, 1);
                expect_place_error(img, &d, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(dfu_image_place(img, d.p, d.n, true, NULL) == 0);
                assert(img->segments[0].alt == 3);
        }
        /* Flash plus option bytes in one image: all or nothing. */
        {
                const uint32_t addr[] = { 0x08000000, 0x1FFFC000 }, size[] = { 256, 16 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 2);
                expect_place_error(img, &d, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(img->segments[0].alt == DFU_ALT_ANY);
        }
        /* System memory and names that are not flash-like. */
        {
                Device s = { .n = 1 };
                const uint32_t addr[] = { 0x1FFF0000 }, size[] = { 16 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);

                assert(dfuse_layout_parse("@System Memory /0x1FFF0000/01*030Kg", &s.l[0]) == 0);
                s.p[0] = &s.l[0];
                expect_place_error(img, &s, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(dfuse_layout_parse("@Mystery /0x1FFF0000/01*030Kg", &s.l[0]) == 0);
                expect_place_error(img, &s, false, DFU_IMAGE_ERROR_PROTECTED_REGION);
                assert(dfuse_layout_parse("@SRAM /0x1FFF0000/01*030Kg", &s.l[0]) == 0);
                assert(dfu_image_place(img, s.p, s.n, false, NULL) == 0);
        }
}

static void test_refusals(void) {
        Device d;

        device_init(&d);
        /* Past the end of internal flash. */
        {
                const uint32_t addr[] = { 0x080FFF00 }, size[] = { 0x200 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);
                expect_place_error(img, &d, false, DFU_IMAGE_ERROR_OUTSIDE_MEMORY);
        }
        /* RAM the device does not describe. */
        {
                const uint32_t addr[] = { 0x20000000 }, size[] = { 16 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);
                expect_place_error(img, &d, true, DFU_IMAGE_ERROR_OUTSIDE_MEMORY);
        }
        /* Read-only sectors. */
        {
                Device r = { .n = 1 };
                const uint32_t addr[] = { 0x08000000 }, size[] = { 0x8000 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);

                assert(dfuse_layout_parse("@Internal Flash /0x08000000/01*016Ka,01*016Kg", &r.l[0]) == 0);
                r.p[0] = &r.l[0];
                expect_place_error(img, &r, true, DFU_IMAGE_ERROR_NOT_WRITABLE);
                assert(dfuse_layout_parse("@Internal Flash /0x08000000/01*016Kg,01*016Kc", &r.l[0]) == 0);
                expect_place_error(img, &r, true, DFU_IMAGE_ERROR_NOT_WRITABLE);
        }
        /* No layouts at all. */
        {
                const uint32_t addr[] = { 0x08000000 }, size[] = { 16 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, NULL, 1);
                Device none = { .n = 0 };
                expect_place_error(img, &none, true, DFU_IMAGE_ERROR_OUTSIDE_MEMORY);
        }
}

static void test_explicit_alts(void) {
        Device d;

        device_init(&d);
        /* A DfuSe file's targets keep their alt and must fit that alt's layout. */
        {
                const uint32_t addr[] = { 0x08000000, 0x90000000 }, size[] = { 64, 64 };
                const uint8_t alt[] = { 0, 4 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, alt, 2);
                assert(dfu_image_place(img, d.p, d.n, false, NULL) == 0);
                assert(img->segments[0].alt == 0 && img->segments[1].alt == 4);
        }
        {
                const uint32_t addr[] = { 0x08000000 }, size[] = { 64 };
                const uint8_t alt[] = { 7 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, alt, 1);
                expect_place_error(img, &d, true, DFU_IMAGE_ERROR_NO_SUCH_ALT);
        }
        {
                /* Right address, wrong alt. */
                const uint32_t addr[] = { 0x08000000 }, size[] = { 64 };
                const uint8_t alt[] = { 4 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, alt, 1);
                expect_place_error(img, &d, true, DFU_IMAGE_ERROR_OUTSIDE_MEMORY);
        }
        {
                /* An alt without a layout (NULL). */
                const uint32_t addr[] = { 0x08000000 }, size[] = { 64 };
                const uint8_t alt[] = { 2 };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, alt, 1);
                d.p[2] = NULL;
                expect_place_error(img, &d, true, DFU_IMAGE_ERROR_NO_SUCH_ALT);
        }
        /* An alt-less segment placed onto alt 0 colliding with an explicit alt 0 segment. */
        {
                const uint32_t addr[] = { 0x08000000, 0x08000010 }, size[] = { 64, 64 };
                const uint8_t alt[] = { 0, DFU_ALT_ANY };
                _cleanup_(dfu_image_freep) DfuImage *img = image(addr, size, alt, 2);
                device_init(&d);
                expect_place_error(img, &d, true, DFU_IMAGE_ERROR_OVERLAP);
        }
}

int main(void) {
        test_flash_and_qspi();
        test_whole_flash_spans_groups();
        test_split_at_block_boundary();
        test_protected();
        test_refusals();
        test_explicit_alts();
        return 0;
}
