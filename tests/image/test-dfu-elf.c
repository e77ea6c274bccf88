/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ELF32 ARM: PT_LOAD placed by p_paddr (initialised data stored after .text, dual-core H7 image in two
 * banks), headers and segments bounds-checked, wrong class/endianness/machine refused. */

#include "image-test.h"

typedef struct Phdr {
        uint32_t type, offset, vaddr, paddr, filesz, memsz;
} Phdr;

static void w16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void w32(uint8_t *p, uint32_t v) {
        w16(p, (uint16_t) v);
        w16(p + 2, (uint16_t) (v >> 16));
}

/* Header, program headers at 52, then `payload` bytes of pattern i & 0xFF from offset 0x100. */
static uint8_t *make_elf(const Phdr *ph, size_t n, size_t payload, size_t *ret_size) {
        size_t size = 0x100 + payload;
        uint8_t *e = calloc(1, size);

        assert(e);
        memcpy(e, "\177ELF", 4);
        e[4] = 1; /* ELFCLASS32 */
        e[5] = 1; /* little endian */
        e[6] = 1; /* EV_CURRENT */
        w16(e + 16, 2);  /* ET_EXEC */
        w16(e + 18, 40); /* EM_ARM */
        w32(e + 20, 1);
        w32(e + 24, 0x08000199); /* entry, Thumb */
        w32(e + 28, 52);         /* phoff */
        w16(e + 40, 52);
        w16(e + 42, 32);
        w16(e + 44, (uint16_t) n);
        for (size_t i = 0; i < n; i++) {
                uint8_t *p = e + 52 + 32 * i;
                w32(p + 0, ph[i].type);
                w32(p + 4, ph[i].offset);
                w32(p + 8, ph[i].vaddr);
                w32(p + 12, ph[i].paddr);
                w32(p + 16, ph[i].filesz);
                w32(p + 20, ph[i].memsz);
                w32(p + 24, 5);
                w32(p + 28, 4);
        }
        assert(52 + 32 * n <= 0x100);
        for (size_t i = 0; i < payload; i++)
                e[0x100 + i] = (uint8_t) i;
        *ret_size = size;
        return e;
}

static void test_cortex_m_layout(void) {
        /* .text at 0x08000000 (0x200 bytes), .data runs at 0x20000000 but is stored right after .text,
         * .bss has no file bytes, a PT_NOTE is ignored. */
        const Phdr ph[] = {
                { 1, 0x100, 0x08000000, 0x08000000, 0x200, 0x200 },
                { 1, 0x300, 0x20000000, 0x08000200, 0x40, 0x40 },
                { 1, 0x340, 0x20000040, 0x20000040, 0, 0x400 },
                { 4, 0x100, 0, 0, 0x10, 0x10 },
        };
        size_t size;
        _cleanup_free_ uint8_t *e = make_elf(ph, 4, 0x240, &size);
        DfuImage *img = expect_load(e, size, NULL);

        assert(img->format == DFU_IMAGE_FORMAT_ELF);
        assert(img->n_segments == 1);
        assert(img->segments[0].address == 0x08000000 && img->segments[0].size == 0x240);
        assert(img->segments[0].alt == DFU_ALT_ANY);
        assert(memcmp(img->segments[0].data, e + 0x100, 0x240) == 0);
        dfu_image_free(img);
}

static void test_dual_core(void) {
        const Phdr ph[] = {
                { 1, 0x100, 0x08000000, 0x08000000, 0x80, 0x80 },
                { 1, 0x180, 0x08100000, 0x08100000, 0x80, 0x80 },
        };
        size_t size;
        _cleanup_free_ uint8_t *e = make_elf(ph, 2, 0x100, &size);
        DfuImage *img = expect_load(e, size, NULL);

        assert(img->n_segments == 2);
        assert(img->segments[0].address == 0x08000000 && img->segments[0].size == 0x80);
        assert(img->segments[1].address == 0x08100000 && img->segments[1].size == 0x80);
        assert(img->segments[1].data[0] == 0x80);
        dfu_image_free(img);
}

static void test_malformed(void) {
        const Phdr good[] = { { 1, 0x100, 0x08000000, 0x08000000, 0x80, 0x80 } };
        size_t size;
        _cleanup_free_ uint8_t *e = make_elf(good, 1, 0x80, &size);
        _cleanup_free_ uint8_t *m = malloc(size);
        DfuImageLoadOptions opts = { .format = DFU_IMAGE_FORMAT_ELF };

        assert(m);
#define MUT(stmt, code)                                          \
        do {                                                     \
                memcpy(m, e, size);                              \
                stmt;                                            \
                expect_load_error(m, size, &opts, (code));       \
        } while (0)

        MUT(m[4] = 2, DFU_IMAGE_ERROR_BAD_VERSION);               /* 64-bit */
        MUT(m[5] = 2, DFU_IMAGE_ERROR_BAD_VERSION);               /* big endian */
        MUT(m[6] = 0, DFU_IMAGE_ERROR_BAD_VERSION);
        MUT(w16(m + 18, 62), DFU_IMAGE_ERROR_BAD_VERSION);        /* x86-64 */
        MUT(w16(m + 16, 1), DFU_IMAGE_ERROR_BAD_VERSION);         /* relocatable object */
        MUT(w16(m + 44, 0), DFU_IMAGE_ERROR_EMPTY);
        MUT(w16(m + 42, 16), DFU_IMAGE_ERROR_BAD_SIZE);
        MUT(w32(m + 28, (uint32_t) size - 8), DFU_IMAGE_ERROR_TRUNCATED);
        MUT(w32(m + 28, 0xFFFFFFF0), DFU_IMAGE_ERROR_TRUNCATED);
        MUT(w16(m + 44, 0xFFF), DFU_IMAGE_ERROR_TRUNCATED);
        MUT(w32(m + 52 + 4, (uint32_t) size - 0x10), DFU_IMAGE_ERROR_TRUNCATED);   /* p_offset */
        MUT(w32(m + 52 + 4, 0xFFFFFF80), DFU_IMAGE_ERROR_TRUNCATED);
        MUT(w32(m + 52 + 16, 0x81), DFU_IMAGE_ERROR_BAD_SIZE);                     /* filesz > memsz */
        MUT((w32(m + 52 + 16, 0x1000), w32(m + 52 + 20, 0x1000)), DFU_IMAGE_ERROR_TRUNCATED);
        MUT(w32(m + 52 + 12, 0xFFFFFFC0), DFU_IMAGE_ERROR_ADDRESS_OVERFLOW);       /* paddr wraps */
        MUT(w32(m + 52 + 0, 2), DFU_IMAGE_ERROR_EMPTY);                            /* no PT_LOAD */
        MUT(w32(m + 52 + 16, 0), DFU_IMAGE_ERROR_EMPTY);                           /* only .bss */
        opts.format = DFU_IMAGE_FORMAT_AUTO;
        MUT(m[1] = 'e', DFU_IMAGE_ERROR_NO_ADDRESS); /* not sniffed as ELF any more: a raw binary */
        opts.format = DFU_IMAGE_FORMAT_ELF;
        MUT(m[1] = 'e', DFU_IMAGE_ERROR_BAD_SIGNATURE);
#undef MUT
        expect_load_error(e, 40, &opts, DFU_IMAGE_ERROR_TRUNCATED);
        expect_load_error(e, 3, &opts, DFU_IMAGE_ERROR_TRUNCATED);

        /* Two PT_LOADs overlapping in physical memory. */
        {
                const Phdr ov[] = {
                        { 1, 0x100, 0x08000000, 0x08000000, 0x80, 0x80 },
                        { 1, 0x100, 0x20000000, 0x08000040, 0x80, 0x80 },
                };
                size_t n;
                _cleanup_free_ uint8_t *o = make_elf(ov, 2, 0x80, &n);
                expect_load_error(o, n, NULL, DFU_IMAGE_ERROR_OVERLAP);
        }
}

int main(void) {
        test_cortex_m_layout();
        test_dual_core();
        test_malformed();
        return 0;
}
