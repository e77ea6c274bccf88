/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image model shared by every loader: a sorted list of non-overlapping (alt, address, bytes)
 * segments, its builder, and the format dispatcher. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dfu-image-private.h"

static const char *const dfu_image_format_table[_DFU_IMAGE_FORMAT_MAX] = {
        [DFU_IMAGE_FORMAT_AUTO] = "auto",
        [DFU_IMAGE_FORMAT_DFUSE] = "dfuse",
        [DFU_IMAGE_FORMAT_DFU] = "dfu",
        [DFU_IMAGE_FORMAT_IHEX] = "ihex",
        [DFU_IMAGE_FORMAT_ELF] = "elf",
        [DFU_IMAGE_FORMAT_BIN] = "bin",
};

DEFINE_STRING_TABLE_LOOKUP(dfu_image_format, DfuImageFormat);

static const char *const dfu_image_error_table[_DFU_IMAGE_ERROR_MAX] = {
        [DFU_IMAGE_ERROR_NONE] = "none",
        [DFU_IMAGE_ERROR_EMPTY] = "empty",
        [DFU_IMAGE_ERROR_TOO_LARGE] = "too-large",
        [DFU_IMAGE_ERROR_TRUNCATED] = "truncated",
        [DFU_IMAGE_ERROR_UNKNOWN_FORMAT] = "unknown-format",
        [DFU_IMAGE_ERROR_BAD_SIGNATURE] = "bad-signature",
        [DFU_IMAGE_ERROR_BAD_VERSION] = "bad-version",
        [DFU_IMAGE_ERROR_BAD_CRC] = "bad-crc",
        [DFU_IMAGE_ERROR_BAD_CHECKSUM] = "bad-checksum",
        [DFU_IMAGE_ERROR_BAD_RECORD] = "bad-record",
        [DFU_IMAGE_ERROR_BAD_SIZE] = "bad-size",
        [DFU_IMAGE_ERROR_OVERLAP] = "overlap",
        [DFU_IMAGE_ERROR_ADDRESS_OVERFLOW] = "address-overflow",
        [DFU_IMAGE_ERROR_NO_ADDRESS] = "no-address",
        [DFU_IMAGE_ERROR_ID_MISMATCH] = "id-mismatch",
        [DFU_IMAGE_ERROR_OUTSIDE_MEMORY] = "outside-memory",
        [DFU_IMAGE_ERROR_NOT_WRITABLE] = "not-writable",
        [DFU_IMAGE_ERROR_PROTECTED_REGION] = "protected-region",
        [DFU_IMAGE_ERROR_NO_SUCH_ALT] = "no-such-alt",
};

DEFINE_STRING_TABLE_LOOKUP(dfu_image_error, DfuImageError);

int dfu_image_error_to_errno(DfuImageError e) {
        switch (e) {
        case DFU_IMAGE_ERROR_NONE:
                return 0;
        case DFU_IMAGE_ERROR_EMPTY:
                return -ENODATA;
        case DFU_IMAGE_ERROR_TOO_LARGE:
                return -EFBIG;
        case DFU_IMAGE_ERROR_UNKNOWN_FORMAT:
                return -EMEDIUMTYPE;
        case DFU_IMAGE_ERROR_NO_ADDRESS:
                return -EDESTADDRREQ;
        case DFU_IMAGE_ERROR_ID_MISMATCH:
                return -ENODEV;
        case DFU_IMAGE_ERROR_OUTSIDE_MEMORY:
                return -ERANGE;
        case DFU_IMAGE_ERROR_NOT_WRITABLE:
                return -EROFS;
        case DFU_IMAGE_ERROR_PROTECTED_REGION:
                return -EPERM;
        case DFU_IMAGE_ERROR_NO_SUCH_ALT:
                return -ENXIO;
        case DFU_IMAGE_ERROR_OVERLAP:
        case DFU_IMAGE_ERROR_ADDRESS_OVERFLOW:
                return -EINVAL;
        default:
                return -EBADMSG;
        }
}

int dfu_error_set(DfuError *err, DfuImageError code, uint64_t offset, const char *fmt, ...) {
        if (err) {
                va_list ap;

                err->code = code;
                err->offset = offset;
                va_start(ap, fmt);
                (void) vsnprintf(err->message, sizeof err->message, fmt, ap);
                va_end(ap);
        }
        return dfu_image_error_to_errno(code);
}

static void dfu_error_clear(DfuError *err) {
        if (err)
                *err = (DfuError) {};
}

int dfu_image_new(DfuImage **ret) {
        DfuImage *img;

        if (!ret)
                return -EINVAL;
        img = calloc(1, sizeof *img);
        if (!img)
                return -ENOMEM;
        img->format = DFU_IMAGE_FORMAT_AUTO;
        img->vendor_id = img->product_id = img->device_version = 0xFFFF;
        *ret = img;
        return 0;
}

DfuImage *dfu_image_free(DfuImage *img) {
        if (!img)
                return NULL;
        for (size_t i = 0; i < img->n_segments; i++)
                free(img->segments[i].data);
        free(img->segments);
        return mfree(img);
}

static int segment_cmp(uint8_t alt_a, uint32_t addr_a, uint8_t alt_b, uint32_t addr_b) {
        if (alt_a != alt_b)
                return alt_a < alt_b ? -1 : 1;
        if (addr_a != addr_b)
                return addr_a < addr_b ? -1 : 1;
        return 0;
}

static uint64_t segment_end(const DfuSegment *s) {
        return (uint64_t) s->address + s->size;
}

/* Index of the first segment that sorts after (alt, address). */
static size_t insertion_point(const DfuImage *img, uint8_t alt, uint32_t address) {
        size_t lo = 0, hi = img->n_segments;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (segment_cmp(img->segments[mid].alt, img->segments[mid].address, alt, address) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

const DfuSegment *dfu_image_find_overlap(const DfuImage *img, uint8_t alt, uint32_t address, size_t size) {
        uint64_t end = (uint64_t) address + size;
        size_t i;

        if (!img || size == 0)
                return NULL;
        i = insertion_point(img, alt, address);
        if (i > 0 && img->segments[i - 1].alt == alt && segment_end(&img->segments[i - 1]) > address)
                return &img->segments[i - 1];
        if (i < img->n_segments && img->segments[i].alt == alt && img->segments[i].address < end)
                return &img->segments[i];
        return NULL;
}

int dfu_image_insert(DfuImage *img, uint8_t alt, uint32_t address, const uint8_t *data, size_t size,
                     bool merge, DfuError *err) {
        DfuSegment *prev, *next;
        uint64_t end = (uint64_t) address + size;
        size_t lo;

        if (!img || (!data && size > 0))
                return -EINVAL;
        if (size == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, address, "Segment at 0x%08X has no data",
                                     address);
        if (end > (uint64_t) UINT32_MAX + 1)
                return dfu_error_set(err, DFU_IMAGE_ERROR_ADDRESS_OVERFLOW, address,
                                     "Segment at 0x%08X of %zu bytes wraps past 4 GiB", address, size);
        if (img->total_size + size > DFU_IMAGE_MAX_FILE_SIZE)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TOO_LARGE, address,
                                     "Image data exceeds %u bytes", DFU_IMAGE_MAX_FILE_SIZE);

        lo = insertion_point(img, alt, address);
        prev = lo > 0 && img->segments[lo - 1].alt == alt ? &img->segments[lo - 1] : NULL;
        next = lo < img->n_segments && img->segments[lo].alt == alt ? &img->segments[lo] : NULL;

        if (prev && segment_end(prev) > address)
                return dfu_error_set(err, DFU_IMAGE_ERROR_OVERLAP, address,
                                     "Segment 0x%08X-0x%08llX overlaps 0x%08X-0x%08llX", address,
                                     (unsigned long long) end - 1, prev->address,
                                     (unsigned long long) segment_end(prev) - 1);
        if (next && next->address < end)
                return dfu_error_set(err, DFU_IMAGE_ERROR_OVERLAP, address,
                                     "Segment 0x%08X-0x%08llX overlaps 0x%08X-0x%08llX", address,
                                     (unsigned long long) end - 1, next->address,
                                     (unsigned long long) segment_end(next) - 1);

        /* Contiguous with a neighbour: grow it instead of adding a segment. */
        if (merge && prev && segment_end(prev) == address) {
                bool join_next = next && next->address == end;
                size_t total = prev->size + size + (join_next ? next->size : 0);
                uint8_t *buf = realloc(prev->data, total);

                if (!buf)
                        return -ENOMEM;
                memcpy(buf + prev->size, data, size);
                if (join_next) {
                        memcpy(buf + prev->size + size, next->data, next->size);
                        free(next->data);
                        memmove(next, next + 1, (img->n_segments - lo - 1) * sizeof *next);
                        img->n_segments--;
                }
                prev->data = buf;
                prev->size = (uint32_t) total;
                img->total_size += size;
                return 0;
        }
        if (merge && next && next->address == end) {
                uint8_t *buf = malloc(size + next->size);

                if (!buf)
                        return -ENOMEM;
                memcpy(buf, data, size);
                memcpy(buf + size, next->data, next->size);
                free(next->data);
                next->data = buf;
                next->address = address;
                next->size += (uint32_t) size;
                img->total_size += size;
                return 0;
        }

        if (img->n_segments >= DFU_IMAGE_MAX_SEGMENTS)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TOO_LARGE, address, "More than %u segments",
                                     DFU_IMAGE_MAX_SEGMENTS);

        _cleanup_free_ uint8_t *copy = malloc(size);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, size);

        DfuSegment *segs = realloc(img->segments, (img->n_segments + 1) * sizeof *segs);
        if (!segs)
                return -ENOMEM;
        img->segments = segs;
        memmove(segs + lo + 1, segs + lo, (img->n_segments - lo) * sizeof *segs);
        segs[lo] = (DfuSegment) {
                .address = address,
                .size = (uint32_t) size,
                .alt = alt,
                .data = TAKE_PTR(copy),
        };
        img->n_segments++;
        img->total_size += size;
        return 0;
}

int dfu_image_add_segment(DfuImage *img, uint8_t alt, uint32_t address, const uint8_t *data, size_t size,
                          DfuError *err) {
        return dfu_image_insert(img, alt, address, data, size, /* merge= */ true, err);
}

size_t dfu_image_read(const DfuImage *img, uint8_t alt, uint32_t address, uint8_t *buf, size_t size,
                      uint8_t fill) {
        uint64_t start = address, end = (uint64_t) address + size;
        size_t covered = 0;

        if (!buf || size == 0)
                return 0;
        memset(buf, fill, size);
        if (!img)
                return 0;

        for (size_t i = 0; i < img->n_segments; i++) {
                const DfuSegment *s = &img->segments[i];
                uint64_t lo, hi;

                if (alt != DFU_ALT_ANY && s->alt != alt)
                        continue;
                lo = MAX(start, (uint64_t) s->address);
                hi = MIN(end, segment_end(s));
                if (lo >= hi)
                        continue;
                memcpy(buf + (lo - start), s->data + (lo - s->address), hi - lo);
                covered += hi - lo;
        }
        return covered;
}

bool dfu_suffix_present(const uint8_t *data, size_t size) {
        const uint8_t *s;

        if (!data || size < DFU_SUFFIX_LENGTH)
                return false;
        s = data + size - DFU_SUFFIX_LENGTH;
        return s[8] == 'U' && s[9] == 'F' && s[10] == 'D' && s[11] >= DFU_SUFFIX_LENGTH && s[11] <= size;
}

DfuImageFormat dfu_image_sniff(const uint8_t *data, size_t size) {
        size_t i = 0;

        if (!data || size == 0)
                return DFU_IMAGE_FORMAT_BIN;
        if (size >= 5 && memcmp(data, "DfuSe", 5) == 0)
                return DFU_IMAGE_FORMAT_DFUSE;
        if (size >= 4 && memcmp(data, "\177ELF", 4) == 0)
                return DFU_IMAGE_FORMAT_ELF;
        /* HEX files may start with blank lines; a binary that starts with ':' is vanishingly unlikely to
         * also be a valid HEX file, and if it is not the HEX parser says so clearly. */
        while (i < size && (data[i] == '\r' || data[i] == '\n'))
                i++;
        if (i < size && data[i] == ':')
                return DFU_IMAGE_FORMAT_IHEX;
        if (dfu_suffix_present(data, size))
                return DFU_IMAGE_FORMAT_DFU;
        return DFU_IMAGE_FORMAT_BIN;
}

static int parse_bin(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                     DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        int r;

        if (!opts->has_address)
                return dfu_error_set(err, DFU_IMAGE_ERROR_NO_ADDRESS, 0,
                                     "Raw binary image needs a target address");
        r = dfu_image_new(&img);
        if (r < 0)
                return r;
        img->format = DFU_IMAGE_FORMAT_BIN;
        r = dfu_image_add_segment(img, DFU_ALT_ANY, opts->address, data, size, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(img);
        return 0;
}

int dfu_image_load(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                   DfuError *err) {
        static const DfuImageLoadOptions no_opts = {};
        DfuImage *img = NULL;
        DfuImageFormat format;
        int r;

        dfu_error_clear(err);
        if (!ret || (!data && size > 0))
                return -EINVAL;
        if (!opts)
                opts = &no_opts;
        if (size == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 0, "Image file is empty");
        if (size > DFU_IMAGE_MAX_FILE_SIZE)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TOO_LARGE, 0,
                                     "Image file of %zu bytes exceeds the limit of %u bytes", size,
                                     DFU_IMAGE_MAX_FILE_SIZE);

        format = opts->format == DFU_IMAGE_FORMAT_AUTO ? dfu_image_sniff(data, size) : opts->format;
        switch (format) {
        case DFU_IMAGE_FORMAT_DFUSE:
                r = dfu_image_parse_dfuse(data, size, opts, &img, err);
                break;
        case DFU_IMAGE_FORMAT_DFU:
                r = dfu_image_parse_dfu(data, size, opts, &img, err);
                break;
        case DFU_IMAGE_FORMAT_IHEX:
                r = dfu_image_parse_ihex(data, size, opts, &img, err);
                break;
        case DFU_IMAGE_FORMAT_ELF:
                r = dfu_image_parse_elf(data, size, opts, &img, err);
                break;
        case DFU_IMAGE_FORMAT_BIN:
                r = parse_bin(data, size, opts, &img, err);
                break;
        default:
                return dfu_error_set(err, DFU_IMAGE_ERROR_UNKNOWN_FORMAT, 0, "Unknown image format %d",
                                     (int) format);
        }
        if (r < 0) {
                /* Allocation failures carry no DfuImageError; say so rather than leave a stale code. */
                if (r == -ENOMEM)
                        (void) dfu_error_set(err, DFU_IMAGE_ERROR_NONE, 0, "Out of memory");
                return r;
        }
        if (img->n_segments == 0) {
                dfu_image_free(img);
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 0, "Image contains no data");
        }
        *ret = img;
        return 0;
}
