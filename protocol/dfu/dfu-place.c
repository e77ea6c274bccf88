/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placement: map each segment onto the alt setting whose DfuSe layout holds it, split at region ("/0xADDR/"
 * block) boundaries, and refuse anything that is not plain writable memory unless the caller allows it. */

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "dfu-image-private.h"

static bool word_in(const char *w, size_t n, const char *const *list) {
        for (; *list; list++)
                if (strlen(*list) == n && strncasecmp(w, *list, n) == 0)
                        return true;
        return false;
}

/* Option bytes, OTP, the F4 feature area and system memory brick or permanently change a part when
 * written wrongly, so only memories named like flash or RAM are writable by default. */
static bool layout_is_protected(const DfuseLayout *l) {
        static const char *const deny[] = { "option", "otp", "feature", "system", "bootloader", NULL };
        static const char *const allow[] = { "flash", "qspi", "ospi", "octospi", "xspi", "nor", "ram",
                                             "sram", "eeprom", NULL };
        bool allowed = false;
        const char *p = l->name;

        while (*p) {
                size_t n = 0;

                while (*p && !isalnum((unsigned char) *p))
                        p++;
                while (isalnum((unsigned char) p[n]))
                        n++;
                if (n == 0)
                        break;
                if (word_in(p, n, deny))
                        return true;
                if (word_in(p, n, allow))
                        allowed = true;
                p += n;
        }
        return !allowed;
}

static const DfuseSectorGroup *layout_group_at(const DfuseLayout *l, uint64_t address) {
        for (size_t i = 0; i < l->n_groups && i < DFUSE_LAYOUT_MAX_GROUPS; i++) {
                const DfuseSectorGroup *g = &l->groups[i];

                if (address >= g->address && address < (uint64_t) g->address + (uint64_t) g->count * g->size)
                        return g;
        }
        return NULL;
}

/* End of the region holding `g`: the groups of its "/0xADDR/" block that follow it without a gap.
 * Hand-built layouts may list groups out of order, hence the repeated passes. */
static uint64_t block_end(const DfuseLayout *l, const DfuseSectorGroup *g) {
        uint64_t end = (uint64_t) g->address + (uint64_t) g->count * g->size;
        bool grown = true;

        while (grown) {
                grown = false;
                for (size_t i = 0; i < l->n_groups && i < DFUSE_LAYOUT_MAX_GROUPS; i++) {
                        const DfuseSectorGroup *o = &l->groups[i];

                        if (o->block == g->block && o->address == end && o->count > 0 && o->size > 0) {
                                end += (uint64_t) o->count * o->size;
                                grown = true;
                        }
                }
        }
        return end;
}

static int place_segment(DfuImage *placed, const DfuSegment *s, const DfuseLayout *const *layouts,
                         size_t n_layouts, bool allow_protected, DfuError *err) {
        uint64_t pos = s->address, end = (uint64_t) s->address + s->size;
        int r;

        if (s->alt != DFU_ALT_ANY && (s->alt >= n_layouts || !layouts[s->alt]))
                return dfu_error_set(err, DFU_IMAGE_ERROR_NO_SUCH_ALT, s->address,
                                     "Image targets alt setting %u, which the device does not have", s->alt);

        while (pos < end) {
                const DfuseSectorGroup *g = NULL;
                const DfuseLayout *l = NULL;
                uint64_t piece_end;
                size_t alt;

                if (s->alt != DFU_ALT_ANY) {
                        alt = s->alt;
                        l = layouts[alt];
                        g = layout_group_at(l, pos);
                        if (!g)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_OUTSIDE_MEMORY, pos,
                                                     "Address 0x%08llX is outside alt %zu \"%s\"",
                                                     (unsigned long long) pos, alt, l->name);
                } else {
                        for (alt = 0; alt < n_layouts && alt < DFU_ALT_ANY; alt++) {
                                if (!layouts[alt])
                                        continue;
                                g = layout_group_at(layouts[alt], pos);
                                if (g) {
                                        l = layouts[alt];
                                        break;
                                }
                        }
                        if (!g)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_OUTSIDE_MEMORY, pos,
                                                     "Address 0x%08llX is outside every memory region of "
                                                     "the device", (unsigned long long) pos);
                }

                piece_end = MIN(end, block_end(l, g));
                for (uint64_t q = pos; q < piece_end;) {
                        const DfuseSectorGroup *h = layout_group_at(l, q);

                        if (!h) /* cannot happen: block_end() only spans contiguous groups */
                                return dfu_error_set(err, DFU_IMAGE_ERROR_OUTSIDE_MEMORY, q,
                                                     "Address 0x%08llX is outside alt %zu \"%s\"",
                                                     (unsigned long long) q, alt, l->name);
                        if (!(h->attributes & DFUSE_SECTOR_WRITABLE))
                                return dfu_error_set(err, DFU_IMAGE_ERROR_NOT_WRITABLE, q,
                                                     "Address 0x%08llX in alt %zu \"%s\" is not writable",
                                                     (unsigned long long) q, alt, l->name);
                        q = (uint64_t) h->address + (uint64_t) h->count * h->size;
                }
                if (!allow_protected && layout_is_protected(l))
                        return dfu_error_set(err, DFU_IMAGE_ERROR_PROTECTED_REGION, pos,
                                             "Address 0x%08llX is in protected memory \"%s\" (alt %zu); "
                                             "writing it must be allowed explicitly",
                                             (unsigned long long) pos, l->name, alt);

                r = dfu_image_insert(placed, (uint8_t) alt, (uint32_t) pos, s->data + (pos - s->address),
                                     (size_t) (piece_end - pos), /* merge= */ false, err);
                if (r < 0)
                        return r;
                pos = piece_end;
        }
        return 0;
}

int dfu_image_place(DfuImage *img, const DfuseLayout *const *layouts, size_t n_layouts, bool allow_protected,
                    DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *placed = NULL;
        DfuSegment *old;
        size_t n_old;
        int r;

        if (err)
                *err = (DfuError) {};
        if (!img || (!layouts && n_layouts > 0))
                return -EINVAL;
        if (img->n_segments == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 0, "Image contains no data");

        r = dfu_image_new(&placed);
        if (r < 0)
                return r;
        for (size_t i = 0; i < img->n_segments; i++) {
                r = place_segment(placed, &img->segments[i], layouts, n_layouts, allow_protected, err);
                if (r < 0)
                        return r;
        }

        /* Swap the placed segments in; the old ones are freed with `placed`. */
        old = img->segments;
        n_old = img->n_segments;
        img->segments = placed->segments;
        img->n_segments = placed->n_segments;
        img->total_size = placed->total_size;
        placed->segments = old;
        placed->n_segments = n_old;
        return 0;
}
