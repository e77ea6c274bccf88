/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: what the daemon does with an uploaded file. The first byte picks options (address,
 * ids, allow_protected); the rest goes through format sniffing, the chosen loader, and placement onto
 * an F407-like DfuSe device with an external QSPI alt. */

#include "fuzz-image-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const layout_strings[] = {
        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
        "@Option Bytes  /0x1FFFC000/01*016 e",
        "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
        "@Device Feature/0xFFFF0000/01*004 g",
        "@External Flash /0x90000000/16*64Kg/0x90100000/1*1Ma",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static DfuseLayout layouts[5];
        static const DfuseLayout *ptrs[5];
        static bool ready;
        DfuImage sentinel_storage, *const sentinel = &sentinel_storage, *img = sentinel;
        DfuImageLoadOptions opts = {};
        _cleanup_free_ uint8_t *fixed = NULL;
        DfuError err = {};
        uint8_t flags;
        int r;

        if (!ready) {
                for (size_t i = 0; i < 5; i++) {
                        if (dfuse_layout_parse(layout_strings[i], &layouts[i]) < 0)
                                abort();
                        ptrs[i] = &layouts[i];
                }
                ready = true;
        }
        if (size < 1 || size > FUZZ_MAX_INPUT)
                return 0;
        flags = data[0];
        data++;
        size--;
        /* Flag 0x10: make a DFU suffix CRC valid so placement sees DfuSe files the fuzzer mutated. */
        if (flags & 0x10) {
                fixed = fuzz_fix_crc(data, size);
                if (fixed)
                        data = fixed;
        }

        opts.has_address = flags & 0x01;
        opts.address = flags & 0x02 ? 0x08000000 : 0x90000000;
        if (flags & 0x04) {
                opts.vendor_id = 0x0483;
                opts.product_id = 0xDF11;
        }
        r = dfu_image_load(data, size, &opts, &img, &err);
        fuzz_check_result(r, img, sentinel, &err);
        if (r < 0)
                return 0;

        {
                DfuSegment *before = img->segments;
                size_t n_before = img->n_segments;
                uint64_t total_before = img->total_size;

                /* Placement is all or nothing: on error the image must be exactly as it was. */
                r = dfu_image_place(img, ptrs, 5 - (flags >> 6), flags & 0x08, &err);
                if (r < 0) {
                        fuzz_assert(r == -ENOMEM || err.code == DFU_IMAGE_ERROR_OVERLAP ||
                                    err.code == DFU_IMAGE_ERROR_TOO_LARGE ||
                                    err.code == DFU_IMAGE_ERROR_OUTSIDE_MEMORY ||
                                    err.code == DFU_IMAGE_ERROR_NOT_WRITABLE ||
                                    err.code == DFU_IMAGE_ERROR_PROTECTED_REGION ||
                                    err.code == DFU_IMAGE_ERROR_NO_SUCH_ALT);
                        fuzz_assert(img->segments == before && img->n_segments == n_before);
                        fuzz_assert(img->total_size == total_before);
                } else {
                        fuzz_assert(img->total_size == total_before);
                        fuzz_check_image(img);
                        for (size_t i = 0; i < img->n_segments; i++) {
                                const DfuSegment *s = &img->segments[i];
                                fuzz_assert(s->alt < 5);
                                fuzz_assert(dfuse_layout_covers(ptrs[s->alt], s->address, s->size,
                                                                DFUSE_SECTOR_WRITABLE));
                        }
                }
        }
        dfu_image_free(img);
        return 0;
}
