/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DFU suffix (DFU 1.1 appendix B) and ST DfuSe .dfu files (UM0391); layouts in dfu-protocol.md §3. */

#include <errno.h>
#include <string.h>

#include "dfu-image-private.h"

#define DFU_VERSION_DFUSE_FILE 0x011A

int dfu_suffix_parse(const uint8_t *data, size_t size, DfuSuffix *ret, DfuError *err) {
        const uint8_t *s;
        DfuSuffix suffix;
        uint32_t crc;

        if (!data || size < DFU_SUFFIX_LENGTH)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, 0,
                                     "File of %zu bytes is too short for a DFU suffix", size);
        s = data + size - DFU_SUFFIX_LENGTH;
        if (memcmp(s + 8, "UFD", 3) != 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIGNATURE, size - DFU_SUFFIX_LENGTH + 8,
                                     "No DFU suffix: signature at offset %zu is not \"UFD\"",
                                     size - DFU_SUFFIX_LENGTH + 8);

        suffix = (DfuSuffix) {
                .device_version = dfu_le16(s + 0),
                .product_id = dfu_le16(s + 2),
                .vendor_id = dfu_le16(s + 4),
                .dfu_version = dfu_le16(s + 6),
                .length = s[11],
                .crc = dfu_le32(s + 12),
        };
        /* bLength may announce a longer (vendor-extended) suffix, never a shorter one. */
        if (suffix.length < DFU_SUFFIX_LENGTH || suffix.length > size)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, size - DFU_SUFFIX_LENGTH + 11,
                                     "DFU suffix length %u is invalid for a file of %zu bytes",
                                     suffix.length, size);

        /* The suffix stores the CRC register without the final xor, over everything but dwCRC. */
        crc = dfu_crc32_update(0xFFFFFFFFu, data, size - 4);
        if (crc != suffix.crc)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_CRC, size - 4,
                                     "DFU suffix CRC 0x%08X does not match the file's 0x%08X", suffix.crc,
                                     crc);
        if (ret)
                *ret = suffix;
        return 0;
}

int dfu_suffix_check_ids(const DfuSuffix *suffix, const DfuImageLoadOptions *opts, DfuError *err) {
        if (opts->vendor_id != 0 && suffix->vendor_id != 0xFFFF && suffix->vendor_id != opts->vendor_id)
                return dfu_error_set(err, DFU_IMAGE_ERROR_ID_MISMATCH, 0,
                                     "File is for %04x:%04x, not for device %04x:%04x", suffix->vendor_id,
                                     suffix->product_id, opts->vendor_id, opts->product_id);
        if (opts->product_id != 0 && suffix->product_id != 0xFFFF && suffix->product_id != opts->product_id)
                return dfu_error_set(err, DFU_IMAGE_ERROR_ID_MISMATCH, 0,
                                     "File is for %04x:%04x, not for device %04x:%04x", suffix->vendor_id,
                                     suffix->product_id, opts->vendor_id, opts->product_id);
        return 0;
}

static void image_set_suffix(DfuImage *img, const DfuSuffix *suffix) {
        img->has_suffix = true;
        img->vendor_id = suffix->vendor_id;
        img->product_id = suffix->product_id;
        img->device_version = suffix->device_version;
}

int dfu_image_parse_dfu(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                        DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        DfuSuffix suffix;
        size_t payload;
        int r;

        r = dfu_suffix_parse(data, size, &suffix, err);
        if (r < 0)
                return r;
        r = dfu_suffix_check_ids(&suffix, opts, err);
        if (r < 0)
                return r;
        payload = size - suffix.length;
        if (payload == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 0, "DFU file has a suffix but no payload");

        r = dfu_image_new(&img);
        if (r < 0)
                return r;
        img->format = DFU_IMAGE_FORMAT_DFU;
        image_set_suffix(img, &suffix);
        r = dfu_image_add_segment(img, DFU_ALT_ANY, opts->has_address ? opts->address : 0, data, payload,
                                  err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(img);
        return 0;
}

int dfu_image_parse_dfuse(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                          DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        uint32_t image_size;
        unsigned n_targets;
        size_t end, off;
        DfuSuffix suffix;
        int r;

        if (size < DFUSE_PREFIX_LENGTH)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, 0,
                                     "DfuSe file of %zu bytes is shorter than its %u-byte prefix", size,
                                     DFUSE_PREFIX_LENGTH);
        if (memcmp(data, "DfuSe", 5) != 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIGNATURE, 0, "No \"DfuSe\" signature");
        if (data[5] != 0x01)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, 5,
                                     "DfuSe file version %u is not supported (only 1)", data[5]);
        image_size = dfu_le32(data + 6);
        n_targets = data[10];
        if (image_size > size)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, size,
                                     "DfuSe file is truncated: DFUImageSize is %u bytes but the file has "
                                     "%zu", image_size, size);

        r = dfu_suffix_parse(data, size, &suffix, err);
        if (r < 0)
                return r;
        if (suffix.dfu_version != DFU_VERSION_DFUSE_FILE)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, size - DFU_SUFFIX_LENGTH + 6,
                                     "DfuSe file suffix has bcdDFU 0x%04X, expected 0x011A",
                                     suffix.dfu_version);
        r = dfu_suffix_check_ids(&suffix, opts, err);
        if (r < 0)
                return r;

        end = size - suffix.length;
        if (end < DFUSE_PREFIX_LENGTH)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, size - DFU_SUFFIX_LENGTH + 11,
                                     "DFU suffix of %u bytes overlaps the DfuSe prefix", suffix.length);
        /* UM0391 counts the suffix in DFUImageSize; dfuse-pack before ee6b393 did not. Accept both. */
        if (image_size != size && image_size != end)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, 6,
                                     "DFUImageSize %u matches neither the file (%zu) nor the file without "
                                     "suffix (%zu)", image_size, size, end);
        if (n_targets == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 10, "DfuSe file has no targets");

        r = dfu_image_new(&img);
        if (r < 0)
                return r;
        img->format = DFU_IMAGE_FORMAT_DFUSE;
        image_set_suffix(img, &suffix);

        off = DFUSE_PREFIX_LENGTH;
        for (unsigned t = 0; t < n_targets; t++) {
                const uint8_t *tp = data + off;
                uint32_t target_size, n_elements;
                size_t target_end;
                uint8_t alt;

                if (end - off < DFUSE_TARGET_PREFIX_LENGTH)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, off,
                                             "DfuSe target %u prefix at offset %zu runs past the end of the "
                                             "image", t, off);
                if (memcmp(tp, "Target", 6) != 0)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIGNATURE, off,
                                             "DfuSe target %u at offset %zu lacks the \"Target\" signature",
                                             t, off);
                alt = tp[6];
                target_size = dfu_le32(tp + 266);
                n_elements = dfu_le32(tp + 270);
                if (alt == DFU_ALT_ANY)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, off + 6,
                                             "DfuSe target %u uses reserved alt setting 255", t);
                off += DFUSE_TARGET_PREFIX_LENGTH;
                if (target_size > end - off)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, off - 8,
                                             "DfuSe target %u size %u at offset %zu runs past the end of "
                                             "the image", t, target_size, off - 8);
                target_end = off + target_size;

                for (uint32_t e = 0; e < n_elements; e++) {
                        uint32_t address, element_size;

                        if (target_end - off < DFUSE_ELEMENT_HEADER_LENGTH)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, off,
                                                     "DfuSe target %u element %u header at offset %zu runs "
                                                     "past the target", t, e, off);
                        address = dfu_le32(data + off);
                        element_size = dfu_le32(data + off + 4);
                        off += DFUSE_ELEMENT_HEADER_LENGTH;
                        if (element_size > target_end - off)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, off - 4,
                                                     "DfuSe target %u element %u (%u bytes at 0x%08X) runs "
                                                     "past the target", t, e, element_size, address);
                        /* An empty element writes nothing; dfu-util accepts it too. */
                        if (element_size > 0) {
                                r = dfu_image_add_segment(img, alt, address, data + off, element_size, err);
                                if (r < 0) {
                                        if (err && err->code != DFU_IMAGE_ERROR_NONE) {
                                                char msg[sizeof err->message];

                                                memcpy(msg, err->message, sizeof msg);
                                                (void) dfu_error_set(err, err->code,
                                                                     off - DFUSE_ELEMENT_HEADER_LENGTH,
                                                                     "DfuSe target %u element %u: %s", t, e,
                                                                     msg);
                                        }
                                        return r;
                                }
                        }
                        off += element_size;
                }
                if (off != target_end)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, off,
                                             "DfuSe target %u: dwTargetSize %u disagrees with its %u "
                                             "elements", t, target_size, n_elements);
        }
        if (off != end)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, off,
                                     "DfuSe file has %zu unexpected bytes after its last target", end - off);
        if (img->n_segments == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 0, "DfuSe file contains no data");

        *ret = TAKE_PTR(img);
        return 0;
}
