/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What dfud needs from a device's raw descriptors (sysfs "descriptors": the device descriptor
 * followed by the active configuration): the DFU interface (runtime or DFU mode) with its alt
 * settings and functional descriptor, and whether a CDC ACM interface exists. Pure; fuzzed. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfu-engine.h"

typedef struct UsbDescInfo {
        uint16_t vendor_id, product_id, bcd_device;
        uint8_t i_serial;
        bool has_dfu;
        bool dfu_runtime; /* interface protocol 1 (else 2: DFU mode) */
        uint8_t dfu_interface;
        uint8_t n_alts;
        uint8_t alt_string[DFU_MAX_ALTS]; /* iInterface of each alt setting, by alt number */
        bool has_functional;
        DfuFunctionalDescriptor functional;
        bool has_cdc_acm;
} UsbDescInfo;

/* 0, or -EBADMSG for descriptors that do not parse (too short, bad lengths). Unknown descriptor
 * types are skipped. The first DFU interface wins. */
int usb_desc_parse(const uint8_t *buf, size_t size, UsbDescInfo *ret);
