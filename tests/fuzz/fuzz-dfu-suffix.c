/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the plain DFU-suffix loader (suffix, CRC, VID/PID), through dfu_image_load() with the
 * format forced; each input is tried as is and with its suffix CRC made valid. */

#include "fuzz-image-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_DFU };

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
        /* Again as the daemon calls it for a DfuSe device: ids to match and a base address. */
        opts.vendor_id = 0x0483;
        opts.product_id = 0xDF11;
        opts.has_address = true;
        opts.address = 0x08000000;
        fuzz_load(data, size, &opts);
        return 0;
}
