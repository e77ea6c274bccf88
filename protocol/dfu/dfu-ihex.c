/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Intel HEX: records 00 data, 01 end of file, 02 extended segment address, 03 start segment address
 * (ignored), 04 extended linear address, 05 start linear address (ignored). LF or CRLF line ends.
 * Consecutive records are gathered into one run before they reach the image builder, so a 1 MiB file
 * does not become 65536 reallocations. Anything after the end-of-file record is ignored: some tools
 * append a DFU suffix to HEX files. */

#include <errno.h>
#include <string.h>

#include "dfu-image-private.h"

#define IHEX_MAX_DATA 255

typedef struct Run {
        uint32_t start;
        uint8_t *buf;
        size_t len, cap;
} Run;

static void run_done(Run *run) {
        free(run->buf);
}

static int hex_nibble(uint8_t c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int run_flush(Run *run, DfuImage *img, unsigned line, DfuError *err) {
        int r;

        if (run->len == 0)
                return 0;
        r = dfu_image_add_segment(img, DFU_ALT_ANY, run->start, run->buf, run->len, err);
        if (r < 0) {
                if (err && err->code != DFU_IMAGE_ERROR_NONE) {
                        char msg[sizeof err->message];

                        memcpy(msg, err->message, sizeof msg);
                        (void) dfu_error_set(err, err->code, line, "Intel HEX line %u: %s", line, msg);
                }
                return r;
        }
        run->len = 0;
        return 0;
}

static int run_append(Run *run, uint32_t address, const uint8_t *data, size_t n) {
        if (run->len > 0 && address != (uint64_t) run->start + run->len)
                return -EAGAIN; /* not contiguous: caller flushes first */
        if (run->len == 0)
                run->start = address;
        if (run->len + n > run->cap) {
                size_t cap = MAX(run->cap * 2, (size_t) 4096);
                uint8_t *b;

                while (cap < run->len + n)
                        cap *= 2;
                b = realloc(run->buf, cap);
                if (!b)
                        return -ENOMEM;
                run->buf = b;
                run->cap = cap;
        }
        memcpy(run->buf + run->len, data, n);
        run->len += n;
        return 0;
}

int dfu_image_parse_ihex(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                         DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        _cleanup_(run_done) Run run = {};
        uint32_t base = 0;
        unsigned line = 0;
        bool eof = false;
        size_t pos = 0;
        int r;

        r = dfu_image_new(&img);
        if (r < 0)
                return r;
        img->format = DFU_IMAGE_FORMAT_IHEX;

        while (pos < size && !eof) {
                const uint8_t *nl = memchr(data + pos, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - (data + pos)) : size - pos;
                const uint8_t *l = data + pos;
                uint8_t rec[5 + IHEX_MAX_DATA];
                const DfuSegment *o;
                size_t n_bytes;
                uint8_t sum = 0, count, type;
                uint32_t offset;

                pos += len + (nl ? 1 : 0);
                line++;
                while (len > 0 && (l[len - 1] == '\r' || l[len - 1] == ' ' || l[len - 1] == '\t'))
                        len--;
                if (len == 0)
                        continue;

                if (l[0] != ':')
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                             "Intel HEX line %u: does not start with ':'", line);
                if (len < 11 || (len - 1) % 2 != 0 || (len - 1) / 2 > sizeof rec)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                             "Intel HEX line %u: invalid record length of %zu characters",
                                             line, len);
                n_bytes = (len - 1) / 2;
                for (size_t i = 0; i < n_bytes; i++) {
                        int hi = hex_nibble(l[1 + 2 * i]), lo = hex_nibble(l[2 + 2 * i]);

                        if (hi < 0 || lo < 0)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                                     "Intel HEX line %u: invalid hex digit at column %zu",
                                                     line, (hi < 0 ? 2 : 3) + 2 * i);
                        rec[i] = (uint8_t) (hi << 4 | lo);
                }

                count = rec[0];
                if (n_bytes != (size_t) count + 5)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                             "Intel HEX line %u: byte count %u does not match the %zu data "
                                             "bytes present", line, count, n_bytes - 5);
                for (size_t i = 0; i < n_bytes - 1; i++)
                        sum += rec[i];
                sum = (uint8_t) -sum;
                if (sum != rec[n_bytes - 1])
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_CHECKSUM, line,
                                             "Intel HEX line %u: checksum 0x%02X, expected 0x%02X", line,
                                             rec[n_bytes - 1], sum);

                offset = (uint32_t) rec[1] << 8 | rec[2];
                type = rec[3];
                switch (type) {
                case 0x00: {
                        uint64_t address = (uint64_t) base + offset;

                        if (count == 0)
                                break;
                        if (address + count > (uint64_t) UINT32_MAX + 1)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_ADDRESS_OVERFLOW, line,
                                                     "Intel HEX line %u: data at 0x%llX wraps past 4 GiB",
                                                     line, (unsigned long long) address);
                        r = run_append(&run, (uint32_t) address, rec + 4, count);
                        if (r == -EAGAIN) {
                                r = run_flush(&run, img, line, err);
                                if (r < 0)
                                        return r;
                                r = run_append(&run, (uint32_t) address, rec + 4, count);
                        }
                        if (r < 0)
                                return r;
                        /* Checked per record, so the error names the line that overlaps. */
                        o = dfu_image_find_overlap(img, DFU_ALT_ANY, (uint32_t) address, count);
                        if (o)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_OVERLAP, line,
                                                     "Intel HEX line %u: data at 0x%08llX-0x%08llX overlaps "
                                                     "earlier data at 0x%08X-0x%08llX", line,
                                                     (unsigned long long) address,
                                                     (unsigned long long) address + count - 1, o->address,
                                                     (unsigned long long) o->address + o->size - 1);
                        break;
                }
                case 0x01:
                        if (count != 0)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                                     "Intel HEX line %u: end-of-file record with %u data "
                                                     "bytes", line, count);
                        eof = true;
                        break;
                case 0x02:
                case 0x04:
                        if (count != 2)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                                     "Intel HEX line %u: address record type %02X with %u "
                                                     "data bytes, expected 2", line, type, count);
                        base = ((uint32_t) rec[4] << 8 | rec[5]) << (type == 0x02 ? 4 : 16);
                        break;
                case 0x03:
                case 0x05:
                        /* Entry point: the device boots from its vector table, nothing to do. */
                        if (count != 4)
                                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                                     "Intel HEX line %u: start address record type %02X "
                                                     "with %u data bytes, expected 4", line, type, count);
                        break;
                default:
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_RECORD, line,
                                             "Intel HEX line %u: unknown record type %02X", line, type);
                }
        }

        if (!eof)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, line,
                                     "Intel HEX file ends at line %u without an end-of-file record", line);
        r = run_flush(&run, img, line, err);
        if (r < 0)
                return r;
        if (img->n_segments == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, line, "Intel HEX file contains no data");

        *ret = TAKE_PTR(img);
        return 0;
}
