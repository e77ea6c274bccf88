/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The raw descriptors a device hands us (sysfs "descriptors"). */

#include "usb-desc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        UsbDescInfo info;
        if (usb_desc_parse(data, size, &info) >= 0 && info.n_alts > DFU_MAX_ALTS)
                __builtin_trap();
        return 0;
}
