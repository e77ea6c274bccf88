/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Files written by real tools (tests/data/make-firmware.sh: arm-none-eabi-gcc/objcopy, srec_cat,
 * dfu-suffix, dfuse-pack) load into byte-identical images whatever the format, the vstm32 header they
 * carry is valid, and placement puts them where an STM32 would take them.
 * Usage: test-image-real-tools DIR NAME:VERSION:SIZE:BASE... */

#include <inttypes.h>

#include "image-test.h"

static const char *dir;

static uint8_t *load_file(const char *name, const char *suffix, size_t *ret_size) {
        char path[4096];

        snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
        return read_file(path, ret_size);
}

static void check_vs32_header(const uint8_t *img, size_t size, uint32_t version) {
        uint8_t copy[16];
        uint32_t crc;

        assert(size >= 0x410);
        assert(dfu_le32(img + 0x400) == 0x32335356u);
        assert(dfu_le32(img + 0x404) == version);
        assert(dfu_le32(img + 0x408) == size);
        /* crc over the image with the crc field as 0 */
        memcpy(copy, img + 0x400, 16);
        crc = dfu_crc32_update(0xFFFFFFFFu, img, 0x40C);
        crc = dfu_crc32_update(crc, (const uint8_t[4]) {}, 4);
        crc = dfu_crc32_update(crc, img + 0x410, size - 0x410) ^ 0xFFFFFFFFu;
        assert(crc == dfu_le32(copy + 12));
        /* vector table: initial SP in RAM, Thumb reset handler inside the image */
        assert((dfu_le32(img) & 0xFFF00000u) == 0x20000000u);
        assert(dfu_le32(img + 4) & 1);
}

/* Loads NAME+suffix and asserts it is exactly `ref` at `base`. */
static DfuImage *check_same(const char *name, const char *suffix, const DfuImageLoadOptions *opts,
                            DfuImageFormat format, uint8_t alt, const uint8_t *ref, size_t ref_size,
                            uint32_t base) {
        size_t size;
        _cleanup_free_ uint8_t *data = load_file(name, suffix, &size);
        DfuImage *img = expect_load(data, size, opts);

        printf("  %s%-12s %-6s %zu bytes -> %zu segment(s)\n", name, suffix,
               dfu_image_format_to_string(img->format), size, img->n_segments);
        assert(img->format == format);
        assert(img->n_segments == 1);
        assert(img->segments[0].address == base);
        assert(img->segments[0].size == ref_size);
        assert(img->segments[0].alt == alt);
        assert(memcmp(img->segments[0].data, ref, ref_size) == 0);
        assert(img->total_size == ref_size);
        return img;
}

static void test_firmware(const char *name, uint32_t version, size_t expect_size, uint32_t base) {
        DfuImageLoadOptions ids = { .vendor_id = 0x0483, .product_id = 0xDF11 };
        DfuImageLoadOptions addr = ids;
        size_t ref_size, size;
        _cleanup_free_ uint8_t *ref = load_file(name, ".bin", &ref_size);
        DfuImage *img;

        addr.has_address = true;
        addr.address = base;

        assert(ref_size == expect_size);
        check_vs32_header(ref, ref_size, version);

        dfu_image_free(check_same(name, ".elf", NULL, DFU_IMAGE_FORMAT_ELF, DFU_ALT_ANY, ref, ref_size,
                                  base));
        dfu_image_free(check_same(name, ".hex", NULL, DFU_IMAGE_FORMAT_IHEX, DFU_ALT_ANY, ref, ref_size,
                                  base));
        dfu_image_free(check_same(name, "-srec.hex", NULL, DFU_IMAGE_FORMAT_IHEX, DFU_ALT_ANY, ref, ref_size,
                                  base));
        dfu_image_free(check_same(name, ".bin", &addr, DFU_IMAGE_FORMAT_BIN, DFU_ALT_ANY, ref, ref_size,
                                  base));
        img = check_same(name, "-suffix.dfu", &addr, DFU_IMAGE_FORMAT_DFU, DFU_ALT_ANY, ref, ref_size, base);
        assert(img->has_suffix && img->vendor_id == 0x0483 && img->product_id == 0xDF11);
        dfu_image_free(img);
        img = check_same(name, "-dfuse.dfu", &ids, DFU_IMAGE_FORMAT_DFUSE, 0, ref, ref_size, base);
        assert(img->has_suffix && img->vendor_id == 0x0483 && img->product_id == 0xDF11);

        /* Placed onto an STM32F407 ROM's alt settings: all of it on alt 0. */
        {
                static const char *const s[] = {
                        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
                        "@Option Bytes  /0x1FFFC000/01*016 g",
                        "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
                        "@Device Feature/0xFFFF0000/01*004 g",
                };
                DfuseLayout l[4];
                const DfuseLayout *p[4];
                DfuError err = {};

                for (size_t i = 0; i < 4; i++) {
                        assert(dfuse_layout_parse(s[i], &l[i]) == 0);
                        p[i] = &l[i];
                }
                assert(dfu_image_place(img, p, 4, false, &err) == 0);
                assert(img->n_segments == 1 && img->segments[0].alt == 0);
        }
        dfu_image_free(img);

        /* The real files, damaged. */
        {
                _cleanup_free_ uint8_t *d = load_file(name, "-dfuse.dfu", &size);
                DfuImageLoadOptions other = { .vendor_id = 0x1209, .product_id = 0x0001 };

                expect_load_error(d, size, &other, DFU_IMAGE_ERROR_ID_MISMATCH);
                expect_load_error(d, size - 1, NULL, DFU_IMAGE_ERROR_TRUNCATED);
                expect_load_error(d, size / 2, NULL, DFU_IMAGE_ERROR_TRUNCATED);
                d[size / 2] ^= 0x01;
                expect_load_error(d, size, NULL, DFU_IMAGE_ERROR_BAD_CRC);
        }
        {
                _cleanup_free_ uint8_t *d = load_file(name, "-suffix.dfu", &size);
                DfuImageLoadOptions other = { .vendor_id = 0x0483, .product_id = 0x5740 };

                expect_load_error(d, size, &other, DFU_IMAGE_ERROR_ID_MISMATCH);
                d[0x400] ^= 0x80;
                expect_load_error(d, size, NULL, DFU_IMAGE_ERROR_BAD_CRC);
        }
        {
                _cleanup_free_ uint8_t *d = load_file(name, ".hex", &size);
                char *colon;

                /* Cut before the end-of-file record. */
                expect_load_error(d, size - 13, NULL, DFU_IMAGE_ERROR_TRUNCATED);
                /* Break one data digit of the second line: its checksum no longer matches. */
                colon = memchr(d + 1, ':', size - 1);
                assert(colon);
                colon[12] = colon[12] == '0' ? '1' : '0';
                expect_load_error(d, size, NULL, DFU_IMAGE_ERROR_BAD_CHECKSUM);
        }
        {
                _cleanup_free_ uint8_t *d = load_file(name, ".elf", &size);
                expect_load_error(d, size / 2, NULL, DFU_IMAGE_ERROR_TRUNCATED);
        }
        {
                /* A raw binary needs an address. */
                expect_load_error(ref, ref_size, NULL, DFU_IMAGE_ERROR_NO_ADDRESS);
        }
}

static void test_dual_core(const char *name, uint32_t base) {
        size_t ref_size, size_elf, size_hex;
        _cleanup_free_ uint8_t *ref = load_file(name, ".bin", &ref_size);
        _cleanup_free_ uint8_t *elf = load_file(name, "-dual.elf", &size_elf);
        _cleanup_free_ uint8_t *hex = load_file(name, "-dual.hex", &size_hex);
        _cleanup_(dfu_image_freep) DfuImage *a = expect_load(elf, size_elf, NULL);
        _cleanup_(dfu_image_freep) DfuImage *b = expect_load(hex, size_hex, NULL);
        DfuseLayout h7, f4;
        const DfuseLayout *p[1];
        DfuError err = {};

        printf("  %s-dual.elf: %zu segments, %s-dual.hex: %zu segments\n", name, a->n_segments, name,
               b->n_segments);
        assert(a->n_segments == 2 && b->n_segments == 2);
        /* CM7 part: the single-core image; CM4 part: its own vector table in bank 2. */
        assert(a->segments[0].address == base && a->segments[0].size == ref_size);
        assert(memcmp(a->segments[0].data, ref, ref_size) == 0);
        assert(a->segments[1].address == base + 0x100000);
        assert(a->segments[1].size >= 8 && (dfu_le32(a->segments[1].data + 4) & 1));
        for (size_t i = 0; i < 2; i++) {
                assert(a->segments[i].address == b->segments[i].address);
                assert(a->segments[i].size == b->segments[i].size);
                assert(memcmp(a->segments[i].data, b->segments[i].data, a->segments[i].size) == 0);
        }

        /* STM32H745: both banks on alt 0; a 1 MiB F4 has no bank 2. */
        assert(dfuse_layout_parse("@Internal Flash   /0x08000000/16*128Kg", &h7) == 0);
        p[0] = &h7;
        assert(dfu_image_place(a, p, 1, false, &err) == 0);
        assert(a->n_segments == 2 && a->segments[0].alt == 0 && a->segments[1].alt == 0);
        assert(dfuse_layout_parse("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg", &f4) == 0);
        p[0] = &f4;
        assert(dfu_image_place(b, p, 1, false, &err) == -ERANGE);
        assert(err.code == DFU_IMAGE_ERROR_OUTSIDE_MEMORY && err.offset == base + 0x100000);
        printf("  %s\n", err.message);
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: %s DIR NAME:VERSION:SIZE:BASE...\n", argv[0]);
                return EXIT_FAILURE;
        }
        dir = argv[1];
        for (int i = 2; i < argc; i++) {
                char name[256];
                unsigned long version, size;
                long base;

                if (sscanf(argv[i], "%255[^:]:%lu:%lu:%li", name, &version, &size, &base) != 4) {
                        fprintf(stderr, "bad argument %s\n", argv[i]);
                        return EXIT_FAILURE;
                }
                test_firmware(name, (uint32_t) version, size, (uint32_t) base);
                test_dual_core(name, (uint32_t) base);
        }
        return 0;
}
