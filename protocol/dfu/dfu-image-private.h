/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internals shared by the image loaders, exported for unit tests and fuzz targets. Each parser takes
 * the whole file, validates it completely and returns a new image or nothing. */

#include "dfu-image.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DfuImage *, dfu_image_free);

#define DFU_SUFFIX_LENGTH 16
#define DFUSE_PREFIX_LENGTH 11
#define DFUSE_TARGET_PREFIX_LENGTH 274
#define DFUSE_ELEMENT_HEADER_LENGTH 8

static inline uint16_t dfu_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t dfu_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Fills err (may be NULL) and returns the errno that goes with `code`. */
int dfu_error_set(DfuError *err, DfuImageError code, uint64_t offset, const char *fmt, ...)
        _printf_(4, 5);

/* dfu_image_add_segment() with merging of contiguous neighbours optional: placement keeps the pieces
 * it split at region boundaries apart. */
int dfu_image_insert(DfuImage *img, uint8_t alt, uint32_t address, const uint8_t *data, size_t size,
                     bool merge, DfuError *err);

/* The segment of `alt` sharing bytes with [address, address+size), or NULL. */
const DfuSegment *dfu_image_find_overlap(const DfuImage *img, uint8_t alt, uint32_t address, size_t size);

/* A parsed DFU suffix (dfu-protocol.md §3.1). */
typedef struct DfuSuffix {
        uint16_t device_version, product_id, vendor_id, dfu_version;
        uint8_t length; /* bLength, >= 16 */
        uint32_t crc;
} DfuSuffix;

/* True if the file ends in something shaped like a DFU suffix ("UFD" signature, bLength >= 16);
 * the CRC is not checked. */
bool dfu_suffix_present(const uint8_t *data, size_t size);
/* Parses and CRC-checks the suffix: 0, or BAD_SIGNATURE / BAD_SIZE / BAD_CRC. */
int dfu_suffix_parse(const uint8_t *data, size_t size, DfuSuffix *ret, DfuError *err);
/* 0, or ID_MISMATCH when opts give ids the suffix does not accept. */
int dfu_suffix_check_ids(const DfuSuffix *suffix, const DfuImageLoadOptions *opts, DfuError *err);

/* The parsers behind dfu_image_load(); opts is never NULL here. Size limits are checked by the caller. */
int dfu_image_parse_dfuse(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                          DfuError *err);
int dfu_image_parse_dfu(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                        DfuError *err);
int dfu_image_parse_ihex(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                         DfuError *err);
int dfu_image_parse_elf(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                        DfuError *err);

/* What dfu_image_load() would pick for DFU_IMAGE_FORMAT_AUTO. */
DfuImageFormat dfu_image_sniff(const uint8_t *data, size_t size);
