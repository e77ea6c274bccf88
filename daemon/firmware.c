/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>

#include "firmware.h"
#include "macro-util.h"

/* the fake test firmware's header; layout mirrors tests/emulator/stm32-model.h Vstm32Header */
#define VSTM32_HEADER_OFFSET 0x400
#define VSTM32_HEADER_MAGIC 0x32335356u

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static int set_error(char **ret_error, const char *msg) {
        if (ret_error) {
                free(*ret_error);
                *ret_error = strdup(msg);
        }
        return -EINVAL;
}

int firmware_prepare(const uint8_t *data, size_t size, const JobOptions *o, const FirmwareTarget *t,
                     DfuImage **ret, char **ret_error) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        DfuImageLoadOptions lo = {
                .format = o->format,
                .has_address = o->has_address,
                .address = o->address,
        };
        DfuError err = {};
        char msg[1024];
        int r = -EINVAL;

        if (size > DFU_IMAGE_MAX_FILE_SIZE)
                return set_error(ret_error, "file larger than the 64 MiB limit");

        /* a DFU suffix may name the application's or the bootloader's ids */
        for (size_t i = 0; i < 2; i++) {
                if (i > 0 && !(t->ids[i][0] || t->ids[i][1]))
                        continue;
                lo.vendor_id = t->ids[i][0];
                lo.product_id = t->ids[i][1];
                err = (DfuError) {};
                r = dfu_image_load(data, size, &lo, &img, &err);
                if (r >= 0 || err.code != DFU_IMAGE_ERROR_ID_MISMATCH)
                        break;
        }
        /* a raw .bin without an address goes to the start of the first region, like dfu-util -s
         * with no address and fwupd's heuristic */
        if (r < 0 && err.code == DFU_IMAGE_ERROR_NO_ADDRESS && t->n_layouts > 0 && t->layouts[0] &&
            t->layouts[0]->n_groups > 0) {
                lo.has_address = true;
                lo.address = t->layouts[0]->groups[0].address;
                err = (DfuError) {};
                r = dfu_image_load(data, size, &lo, &img, &err);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_error(ret_error,
                                 err.message[0] ? err.message : dfu_image_error_to_string(err.code));

        if (t->n_layouts > 0) {
                err = (DfuError) {};
                r = dfu_image_place(img, t->layouts, t->n_layouts, o->allow_protected, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return set_error(ret_error,
                                         err.message[0] ? err.message : dfu_image_error_to_string(err.code));

                if (t->writable_regions)
                        for (size_t i = 0; i < img->n_segments; i++) {
                                const DfuSegment *s = &img->segments[i];
                                const DfuseLayout *l = s->alt < t->n_layouts ? t->layouts[s->alt] : NULL;
                                bool ok = false;
                                for (char *const *w = t->writable_regions; l && *w && !ok; w++)
                                        ok = streq(*w, l->name);
                                if (!ok) {
                                        snprintf(msg, sizeof msg,
                                                 "segment 0x%08x+%u lies in region '%.200s' (alt %u), "
                                                 "which the configuration does not allow to be written",
                                                 s->address, s->size, l ? l->name : "?", s->alt);
                                        return set_error(ret_error, msg);
                                }
                        }
        }

        *ret = TAKE_PTR(img);
        return 0;
}

bool firmware_get_version(const DfuImage *img, uint16_t *ret) {
        uint8_t h[16];

        if (!img || img->n_segments == 0)
                return false;
        const DfuSegment *s = &img->segments[0];
        if (s->address > UINT32_MAX - VSTM32_HEADER_OFFSET)
                return false;
        if (dfu_image_read(img, s->alt, s->address + VSTM32_HEADER_OFFSET, h, sizeof h, 0xff) != sizeof h)
                return false;
        if (le32(h) != VSTM32_HEADER_MAGIC)
                return false;
        *ret = (uint16_t) le32(h + 4);
        return true;
}
