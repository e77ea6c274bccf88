/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the ELF32 ARM loader, through dfu_image_load() with the format forced. */

#include "fuzz-image-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_ELF };

        if (size > FUZZ_MAX_INPUT)
                return 0;
        fuzz_load(data, size, &opts);
        return 0;
}
