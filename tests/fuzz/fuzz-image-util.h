/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Invariants every image returned by a loader must satisfy, checked after each fuzz input. A violation
 * aborts, so libFuzzer (or the corpus replay) reports it as a crash. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-image-private.h"

#define FUZZ_MAX_INPUT (256u * 1024u)

#define fuzz_assert(x)                                                                  \
        do {                                                                            \
                if (!(x)) {                                                             \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,      \
                                __LINE__, #x);                                          \
                        abort();                                                        \
                }                                                                       \
        } while (0)

static inline void fuzz_check_image(const DfuImage *img) {
        uint64_t total = 0;
        uint8_t buf[64];

        fuzz_assert(img->n_segments > 0 && img->n_segments <= DFU_IMAGE_MAX_SEGMENTS);
        for (size_t i = 0; i < img->n_segments; i++) {
                const DfuSegment *s = &img->segments[i];

                fuzz_assert(s->size > 0 && s->data);
                fuzz_assert((uint64_t) s->address + s->size <= (uint64_t) UINT32_MAX + 1);
                /* Touch the first and last byte so ASan sees a short buffer. */
                fuzz_assert(s->data[0] == s->data[0] && s->data[s->size - 1] == s->data[s->size - 1]);
                total += s->size;
                if (i > 0) {
                        const DfuSegment *p = &img->segments[i - 1];
                        fuzz_assert(p->alt < s->alt ||
                                    (p->alt == s->alt && (uint64_t) p->address + p->size <= s->address));
                }
        }
        fuzz_assert(total == img->total_size && total <= DFU_IMAGE_MAX_FILE_SIZE);

        /* Reading the first bytes back must agree with the segment. */
        {
                const DfuSegment *s = &img->segments[0];
                size_t n = s->size < sizeof buf ? s->size : sizeof buf;

                fuzz_assert(dfu_image_read(img, s->alt, s->address, buf, n, 0xFF) == n);
                fuzz_assert(memcmp(buf, s->data, n) == 0);
        }
}

/* Checks the error contract on failure: code set, message set, *ret untouched. */
static inline void fuzz_check_result(int r, const DfuImage *img, const DfuImage *sentinel,
                                     const DfuError *err) {
        if (r < 0) {
                fuzz_assert(img == sentinel);
                fuzz_assert(r == -ENOMEM || (err->code != DFU_IMAGE_ERROR_NONE && err->message[0] != '\0'));
                fuzz_assert(r == -ENOMEM || r == dfu_image_error_to_errno(err->code));
                fuzz_assert(memchr(err->message, '\0', sizeof err->message));
        } else {
                fuzz_assert(img && img != sentinel);
                fuzz_assert(err->code == DFU_IMAGE_ERROR_NONE);
                fuzz_check_image(img);
        }
}

/* A copy of the input whose DFU suffix CRC is made valid, so mutations get past the CRC check and reach
 * the structure behind it. NULL if the input has no room for a suffix. Free with free(). */
static inline uint8_t *fuzz_fix_crc(const uint8_t *data, size_t size) {
        uint8_t *copy;
        uint32_t crc;

        if (size < DFU_SUFFIX_LENGTH)
                return NULL;
        copy = malloc(size);
        if (!copy)
                return NULL;
        memcpy(copy, data, size);
        crc = dfu_crc32_update(0xFFFFFFFFu, copy, size - 4);
        copy[size - 4] = (uint8_t) crc;
        copy[size - 3] = (uint8_t) (crc >> 8);
        copy[size - 2] = (uint8_t) (crc >> 16);
        copy[size - 1] = (uint8_t) (crc >> 24);
        return copy;
}

/* Loads `data` with a fixed format and checks the outcome. */
static inline void fuzz_load(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts) {
        DfuImage sentinel_storage, *const sentinel = &sentinel_storage, *img = sentinel;
        DfuError err = {};
        int r;

        r = dfu_image_load(data, size, opts, &img, &err);
        fuzz_check_result(r, img, sentinel, &err);
        if (r >= 0)
                dfu_image_free(img);
}
