/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One firmware image model for every file format: sorted, non-overlapping (address, bytes)
 * segments, optionally tagged with the DfuSe alt setting they belong to. Loaders for DfuSe .dfu,
 * DFU-suffixed files, Intel HEX, ELF32 and raw .bin. Loaders never leave a partial result:
 * on error *ret is untouched and `err` names what was wrong and where. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfuse-layout.h"

/* Sane bounds: no STM32 has more flash than this, and a caller-supplied file larger than this is
 * refused before it is parsed. */
#define DFU_IMAGE_MAX_FILE_SIZE (64u * 1024u * 1024u)
#define DFU_IMAGE_MAX_SEGMENTS 4096
#define DFU_ALT_ANY 0xFF

typedef enum DfuImageFormat {
        DFU_IMAGE_FORMAT_AUTO,
        DFU_IMAGE_FORMAT_DFUSE, /* "DfuSe" prefix + targets + suffix 0x011A */
        DFU_IMAGE_FORMAT_DFU,   /* raw payload + DFU suffix */
        DFU_IMAGE_FORMAT_IHEX,
        DFU_IMAGE_FORMAT_ELF,
        DFU_IMAGE_FORMAT_BIN,   /* needs DfuImageLoadOptions.address */
        _DFU_IMAGE_FORMAT_MAX,
        _DFU_IMAGE_FORMAT_INVALID = -22,
} DfuImageFormat;

const char *dfu_image_format_to_string(DfuImageFormat f); /* "auto", "dfuse", "dfu", "ihex", "elf", "bin" */
DfuImageFormat dfu_image_format_from_string(const char *s);

typedef enum DfuImageError {
        DFU_IMAGE_ERROR_NONE,
        DFU_IMAGE_ERROR_EMPTY,             /* zero-length file or image without data */
        DFU_IMAGE_ERROR_TOO_LARGE,         /* past DFU_IMAGE_MAX_FILE_SIZE or too many segments */
        DFU_IMAGE_ERROR_TRUNCATED,         /* a structure runs past the end of the file */
        DFU_IMAGE_ERROR_UNKNOWN_FORMAT,
        DFU_IMAGE_ERROR_BAD_SIGNATURE,     /* magic/prefix/suffix signature wrong */
        DFU_IMAGE_ERROR_BAD_VERSION,       /* e.g. DfuSe bVersion != 1, ELF class/machine/endianness */
        DFU_IMAGE_ERROR_BAD_CRC,           /* DFU suffix CRC */
        DFU_IMAGE_ERROR_BAD_CHECKSUM,      /* Intel HEX record checksum */
        DFU_IMAGE_ERROR_BAD_RECORD,        /* malformed HEX line, unknown record type, bad length */
        DFU_IMAGE_ERROR_BAD_SIZE,          /* size fields disagree with the data */
        DFU_IMAGE_ERROR_OVERLAP,           /* two segments share bytes */
        DFU_IMAGE_ERROR_ADDRESS_OVERFLOW,  /* segment wraps past 4 GiB */
        DFU_IMAGE_ERROR_NO_ADDRESS,        /* raw .bin without an address */
        DFU_IMAGE_ERROR_ID_MISMATCH,       /* suffix VID/PID is not the device's */
        DFU_IMAGE_ERROR_OUTSIDE_MEMORY,    /* placement: not inside any region of the device */
        DFU_IMAGE_ERROR_NOT_WRITABLE,      /* placement: region exists but is not writable */
        DFU_IMAGE_ERROR_PROTECTED_REGION,  /* placement: option bytes/OTP/system memory not allowed by caller */
        DFU_IMAGE_ERROR_NO_SUCH_ALT,       /* DfuSe target names an alt the device lacks */
        _DFU_IMAGE_ERROR_MAX,
        _DFU_IMAGE_ERROR_INVALID = -22,
} DfuImageError;

const char *dfu_image_error_to_string(DfuImageError e); /* stable names: "truncated", "bad-crc", ... */
DfuImageError dfu_image_error_from_string(const char *s);
/* The negative errno every function here returns alongside a DfuImageError, so callers may switch on
 * either: EMPTY -ENODATA, TOO_LARGE -EFBIG, UNKNOWN_FORMAT -EMEDIUMTYPE, NO_ADDRESS -EDESTADDRREQ,
 * ID_MISMATCH -ENODEV, OUTSIDE_MEMORY -ERANGE, NOT_WRITABLE -EROFS, PROTECTED_REGION -EPERM,
 * NO_SUCH_ALT -ENXIO, OVERLAP and ADDRESS_OVERFLOW -EINVAL, every other file defect -EBADMSG.
 * Out of memory is -ENOMEM with code NONE. */
int dfu_image_error_to_errno(DfuImageError e);

typedef struct DfuError {
        DfuImageError code;
        uint64_t offset;   /* file offset or line number where it was found, if meaningful */
        char message[256]; /* human sentence: "Intel HEX line 12: checksum 0x3A, expected 0x3B" */
} DfuError;

typedef struct DfuSegment {
        uint32_t address;
        uint32_t size; /* never 0; address + size never wraps past 4 GiB */
        uint8_t alt;   /* DfuSe alt setting; DFU_ALT_ANY when the format does not say */
        uint8_t *data;
} DfuSegment;

typedef struct DfuImage {
        DfuImageFormat format;
        uint16_t vendor_id, product_id, device_version; /* from a DFU suffix; 0xFFFF = any */
        bool has_suffix;
        size_t n_segments;
        DfuSegment *segments; /* sorted by (alt, address), never overlapping */
        uint64_t total_size;  /* sum of segment sizes */
} DfuImage;

typedef struct DfuImageLoadOptions {
        DfuImageFormat format;   /* AUTO sniffs: DfuSe prefix, ELF magic, ':' HEX, DFU suffix, else bin */
        bool has_address;
        uint32_t address;        /* base address for raw .bin (and for plain DFU payloads on DfuSe devices) */
        uint16_t vendor_id;      /* device ids to check a suffix against; 0 = do not check */
        uint16_t product_id;
} DfuImageLoadOptions;

/* Loads any supported file; opts may be NULL (auto, no address, no id check). A DFU suffix is optional
 * except for DfuSe files; when present its CRC must match and, if opts give ids, its VID/PID (0xFFFF =
 * any) must match them. A plain DFU payload goes to opts->address, or 0 when none is given (plain DFU
 * 1.1 devices write from offset 0). Returns 0, or a negative errno (see dfu_image_error_to_errno)
 * with `err` (may be NULL) filled in; *ret is untouched on error. */
int dfu_image_load(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                   DfuError *err);
DfuImage *dfu_image_free(DfuImage *img);

/* Builder used by loaders and tests: adds a segment (copied), rejecting empties, wrap-around and
 * overlaps with segments of the same alt. A segment that directly continues (or precedes) one of the
 * same alt is merged with it, so the image stays a list of maximal contiguous runs. */
int dfu_image_new(DfuImage **ret);
int dfu_image_add_segment(DfuImage *img, uint8_t alt, uint32_t address, const uint8_t *data, size_t size,
                          DfuError *err);

/* Copies the bytes of [address, address+size) of `alt` into buf; bytes the image does not cover are
 * set to `fill` (0xFF for erased flash). Returns the number of bytes that were covered. alt
 * DFU_ALT_ANY reads segments of every alt. */
size_t dfu_image_read(const DfuImage *img, uint8_t alt, uint32_t address, uint8_t *buf, size_t size,
                      uint8_t fill);

/* Placement: assign each segment to the alt setting whose layout covers it and check it may be
 * written. `layouts[i]` is alt i (NULL if the alt has no layout). Protected regions (option bytes,
 * OTP, system memory, anything whose name is not flash-like) need allow_protected. A segment that
 * crosses from one "/0xADDR/" block (or alt) into an adjacent one is split there. Afterwards every
 * segment has a real alt and lies inside one writable block. On error nothing is changed. */
int dfu_image_place(DfuImage *img, const DfuseLayout *const *layouts, size_t n_layouts, bool allow_protected,
                    DfuError *err);

/* CRC-32 (poly 0xEDB88320). dfu_crc32() is zlib-compatible (init and final xor 0xFFFFFFFF);
 * the DFU suffix stores the same without the final xor, i.e. dfu_crc32_update(0xFFFFFFFF, ...).
 * dfu_crc32_update() carries the raw register: crc32(a+b) = update(update(~0, a), b) ^ ~0. */
uint32_t dfu_crc32_update(uint32_t crc, const uint8_t *data, size_t size);
uint32_t dfu_crc32(const uint8_t *data, size_t size);
