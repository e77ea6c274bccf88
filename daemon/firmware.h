/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Everything that decides whether an image may go to a device, before any USB request: parse
 * (dfu_image_load), check ids, place into the device's memory map (dfu_image_place), check the
 * configured writable regions, and read the version the image carries. Non-logging. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfu-image.h"
#include "dfuse-layout.h"
#include "job.h"

typedef struct FirmwareTarget {
        uint16_t ids[2][2]; /* (vid, pid) of the application and of the bootloader; 0 = unknown */
        const DfuseLayout *const *layouts; /* by alt; NULL entries for alts without a layout */
        size_t n_layouts;              /* 0: no memory map known (plain DFU, or never seen in DFU mode) */
        char *const *writable_regions; /* NULL: any writable region */
} FirmwareTarget;

/* 0 and the placed image, or -EINVAL/-ENOMEM with a sentence in *ret_error:
 * "Intel HEX line 12: checksum 0x3A, expected 0x3B", "segment 0x08100000+4096 is outside the
 * device's memory", "region 'Option Bytes' (alt 1) is not writable by configuration". */
int firmware_prepare(const uint8_t *data, size_t size, const JobOptions *o, const FirmwareTarget *t,
                     DfuImage **ret, char **ret_error);

/* The vstm32 header (magic "VS32" at image start + 0x400) carries the version the application will
 * report as bcdDevice. Returns true and the version if the image has one. */
bool firmware_get_version(const DfuImage *img, uint16_t *ret);
