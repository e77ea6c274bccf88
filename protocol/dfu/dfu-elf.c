/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ELF32 little-endian ARM executables. Every PT_LOAD with file bytes is written at its physical (load)
 * address p_paddr: initialised data runs from RAM but is stored in flash, and a dual-core H7 image keeps
 * the CM4 part at 0x08100000 only in p_paddr. Fields are read byte-wise, so the host's endianness and
 * the file's alignment do not matter. */

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "dfu-image-private.h"

#define ELF32_EHDR_SIZE 52
#define ELF32_PHDR_SIZE 32

int dfu_image_parse_elf(const uint8_t *data, size_t size, const DfuImageLoadOptions *opts, DfuImage **ret,
                        DfuError *err) {
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        uint32_t phoff;
        uint16_t type, machine, phentsize, phnum;
        int r;

        if (size < SELFMAG)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, 0,
                                     "ELF file of %zu bytes is too short for its magic", size);
        if (memcmp(data, ELFMAG, SELFMAG) != 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIGNATURE, 0,
                                     "Not an ELF file: no \\177ELF magic");
        if (size < ELF32_EHDR_SIZE)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, 0,
                                     "ELF file of %zu bytes is shorter than its 52-byte header", size);
        if (data[EI_CLASS] != ELFCLASS32)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, EI_CLASS,
                                     "ELF class %u is not supported (only 32-bit)", data[EI_CLASS]);
        if (data[EI_DATA] != ELFDATA2LSB)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, EI_DATA,
                                     "ELF data encoding %u is not supported (only little endian)",
                                     data[EI_DATA]);
        if (data[EI_VERSION] != EV_CURRENT)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, EI_VERSION,
                                     "ELF version %u is unknown", data[EI_VERSION]);

        type = dfu_le16(data + 16);
        machine = dfu_le16(data + 18);
        phoff = dfu_le32(data + 28);
        phentsize = dfu_le16(data + 42);
        phnum = dfu_le16(data + 44);

        if (machine != EM_ARM)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, 18,
                                     "ELF machine %u is not ARM (%u)", machine, EM_ARM);
        if (type != ET_EXEC)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_VERSION, 16,
                                     "ELF type %u is not an executable", type);
        if (phnum == 0 || phnum == PN_XNUM)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, 44, "ELF file has no program headers");
        if (phentsize < ELF32_PHDR_SIZE)
                return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, 42,
                                     "ELF program header size %u is smaller than %u", phentsize,
                                     ELF32_PHDR_SIZE);
        if (phoff > size || (uint64_t) phnum * phentsize > size - phoff)
                return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, phoff,
                                     "ELF program headers (%u at offset %u) run past the end of the file",
                                     phnum, phoff);

        r = dfu_image_new(&img);
        if (r < 0)
                return r;
        img->format = DFU_IMAGE_FORMAT_ELF;

        for (unsigned i = 0; i < phnum; i++) {
                size_t at = phoff + (size_t) i * phentsize;
                const uint8_t *ph = data + at;
                uint32_t p_type = dfu_le32(ph + 0), p_offset = dfu_le32(ph + 4), p_paddr = dfu_le32(ph + 12),
                         p_filesz = dfu_le32(ph + 16), p_memsz = dfu_le32(ph + 20);

                if (p_type != PT_LOAD || p_filesz == 0)
                        continue;
                if (p_filesz > p_memsz)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_BAD_SIZE, at,
                                             "ELF program header %u: file size %u exceeds memory size %u", i,
                                             p_filesz, p_memsz);
                if (p_offset > size || p_filesz > size - p_offset)
                        return dfu_error_set(err, DFU_IMAGE_ERROR_TRUNCATED, at,
                                             "ELF program header %u: %u bytes at offset %u run past the end "
                                             "of the file", i, p_filesz, p_offset);
                r = dfu_image_add_segment(img, DFU_ALT_ANY, p_paddr, data + p_offset, p_filesz, err);
                if (r < 0) {
                        if (err && err->code != DFU_IMAGE_ERROR_NONE) {
                                char msg[sizeof err->message];

                                memcpy(msg, err->message, sizeof msg);
                                (void) dfu_error_set(err, err->code, at, "ELF program header %u: %s", i,
                                                     msg);
                        }
                        return r;
                }
        }
        if (img->n_segments == 0)
                return dfu_error_set(err, DFU_IMAGE_ERROR_EMPTY, phoff, "ELF file has no loadable data");

        *ret = TAKE_PTR(img);
        return 0;
}
