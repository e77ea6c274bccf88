/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared helpers for the image unit tests: plain assert, and a check that a failed load left *ret
 * alone and reported the expected DfuImageError. */

#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-image-private.h"

#define SENTINEL_IMAGE ((DfuImage *) (uintptr_t) 0x5a5a5a5a)

/* Loads and expects failure with `code`; prints the message so test logs show what users would read. */
static inline void expect_load_error(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts,
                                     DfuImageError code) {
        DfuImage *img = SENTINEL_IMAGE;
        DfuError err = {};
        int r;

        r = dfu_image_load(data, size, opts, &img, &err);
        if (r >= 0 || err.code != code) {
                fprintf(stderr, "expected %s, got r=%d code=%s: %s\n", dfu_image_error_to_string(code), r,
                        dfu_image_error_to_string(err.code), err.message);
                abort();
        }
        assert(r == dfu_image_error_to_errno(code));
        assert(img == SENTINEL_IMAGE);
        assert(err.message[0] != '\0');
        printf("  %-16s %s\n", dfu_image_error_to_string(code), err.message);
}

static inline DfuImage *expect_load(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts) {
        DfuImage *img = NULL;
        DfuError err = {};
        int r;

        r = dfu_image_load(data, size, opts, &img, &err);
        if (r < 0) {
                fprintf(stderr, "load failed: r=%d code=%s: %s\n", r, dfu_image_error_to_string(err.code),
                        err.message);
                abort();
        }
        assert(img);
        assert(err.code == DFU_IMAGE_ERROR_NONE);
        return img;
}

/* Reads a whole file; aborts on error. */
static inline uint8_t *read_file(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "rbe");
        uint8_t *buf = NULL;
        size_t size = 0, cap = 0, n;

        if (!f) {
                fprintf(stderr, "cannot open %s\n", path);
                abort();
        }
        do {
                if (size == cap) {
                        cap = cap ? cap * 2 : 65536;
                        buf = realloc(buf, cap);
                        assert(buf);
                }
                n = fread(buf + size, 1, cap - size, f);
                size += n;
        } while (n > 0);
        fclose(f);
        *ret_size = size;
        return buf;
}
