/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the DfuSe .dfu loader (prefix, targets, elements, suffix), through dfu_image_load() with
 * the format forced. Each input is tried as is and with its suffix CRC made valid, so mutations of the
 * target/element structure are not all stopped by the CRC check. */

#include "fuzz-image-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_DFUSE };

        if (size > FUZZ_MAX_INPUT)
                return 0;
        fuzz_load(data, size, &opts);
        {
                uint8_t *fixed = fuzz_fix_crc(data, size);

                if (fixed) {
                        fuzz_load(fixed, size, &opts);
                        free(fixed);
                }
        }
        return 0;
}
