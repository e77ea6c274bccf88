/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DfuSe memory-layout strings: the real ROM strings of dfu-protocol.md §2.2, every quirk, and every
 * malformed form with its errno. */

#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dfuse-layout.h"

#define KB 1024u

static void test_f4_internal_flash(void) {
        DfuseLayout l;
        DfuseSector s;
        char buf[256];

        assert(dfuse_layout_parse("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg", &l) == 0);
        assert(strcmp(l.name, "Internal Flash") == 0);
        assert(l.n_groups == 3);
        assert(l.groups[0].address == 0x08000000 && l.groups[0].count == 4 && l.groups[0].size == 16 * KB);
        assert(l.groups[1].address == 0x08010000 && l.groups[1].count == 1 && l.groups[1].size == 64 * KB);
        assert(l.groups[2].address == 0x08020000 && l.groups[2].count == 7 && l.groups[2].size == 128 * KB);
        for (size_t i = 0; i < 3; i++) {
                assert(l.groups[i].attributes ==
                       (DFUSE_SECTOR_READABLE | DFUSE_SECTOR_ERASABLE | DFUSE_SECTOR_WRITABLE));
                assert(l.groups[i].block == 0);
        }
        assert(dfuse_layout_size(&l) == 1024 * KB);

        assert(dfuse_layout_find_sector(&l, 0x08000000, &s) == 0);
        assert(s.address == 0x08000000 && s.size == 16 * KB);
        assert(dfuse_layout_find_sector(&l, 0x0800FFFF, &s) == 0);
        assert(s.address == 0x0800C000 && s.size == 16 * KB);
        assert(dfuse_layout_find_sector(&l, 0x08010000, &s) == 0);
        assert(s.address == 0x08010000 && s.size == 64 * KB);
        assert(dfuse_layout_find_sector(&l, 0x080FFFFF, &s) == 0);
        assert(s.address == 0x080E0000 && s.size == 128 * KB);
        assert(dfuse_layout_find_sector(&l, 0x08100000, &s) == -ENOENT);
        assert(dfuse_layout_find_sector(&l, 0x07FFFFFF, &s) == -ENOENT);

        assert(dfuse_layout_covers(&l, 0x08000000, 1024 * KB,
                                   DFUSE_SECTOR_WRITABLE | DFUSE_SECTOR_ERASABLE));
        assert(!dfuse_layout_covers(&l, 0x08000000, 1024 * KB + 1, DFUSE_SECTOR_WRITABLE));
        assert(!dfuse_layout_covers(&l, 0x07FFFFFF, 2, DFUSE_SECTOR_WRITABLE));
        assert(!dfuse_layout_covers(&l, 0x08000000, 0, DFUSE_SECTOR_WRITABLE));

        assert(dfuse_layout_format(&l, buf, sizeof buf) == 0);
        assert(strcmp(buf, "@Internal Flash/0x08000000/04*016Kg,01*064Kg,07*128Kg") == 0);
        assert(dfuse_layout_format(&l, buf, 10) == -ENOBUFS);
        assert(strlen(buf) < 10);
}

static void test_space_quirk_and_types(void) {
        DfuseLayout l;

        /* F4 option bytes: "016 g" is 16 bytes (a space instead of the multiplier). */
        assert(dfuse_layout_parse("@Option Bytes  /0x1FFFC000/01*016 g", &l) == 0);
        assert(strcmp(l.name, "Option Bytes") == 0);
        assert(l.n_groups == 1 && l.groups[0].size == 16 && l.groups[0].address == 0x1FFFC000);
        assert(l.groups[0].attributes == 7);

        /* OTP: two groups, the second right after 512 bytes. */
        assert(dfuse_layout_parse("@OTP Memory /0x1FFF7800/01*512 g,01*016 g", &l) == 0);
        assert(l.n_groups == 2 && l.groups[1].address == 0x1FFF7A00 && l.groups[1].size == 16);

        /* Newer ROMs: 'e' = readable + writable, not erasable. */
        assert(dfuse_layout_parse("@Option Bytes  /0x1FFFF800/01*016 e", &l) == 0);
        assert(l.groups[0].attributes == (DFUSE_SECTOR_READABLE | DFUSE_SECTOR_WRITABLE));

        /* Each letter a..g is the bit mask letter & 7. */
        for (char t = 'a'; t <= 'g'; t++) {
                char s[64];

                snprintf(s, sizeof s, "@X/0x20000000/02*001K%c", t);
                assert(dfuse_layout_parse(s, &l) == 0);
                assert(l.groups[0].attributes == (t & 7));
        }

        /* B and M multipliers, and a type letter straight after the number (bytes, like dfu-util). */
        assert(dfuse_layout_parse("@X/0x90000000/16*001Mg,01*512Ba,04*256g", &l) == 0);
        assert(l.groups[0].size == 1024 * KB && l.groups[0].count == 16);
        assert(l.groups[1].address == 0x91000000 && l.groups[1].size == 512 && l.groups[1].attributes == 1);
        assert(l.groups[2].address == 0x91000200 && l.groups[2].size == 256);

        /* Three-digit counts and four-digit sizes (F1/F3 strings). */
        assert(dfuse_layout_parse("@Internal Flash  /0x08000000/128*0002Kg", &l) == 0);
        assert(l.groups[0].count == 128 && l.groups[0].size == 2 * KB);
        assert(dfuse_layout_size(&l) == 256 * KB);

        /* Trailing blanks after the last group are padding. */
        assert(dfuse_layout_parse("@Internal Flash   /0x08000000/256*02Kg   ", &l) == 0);
        assert(strcmp(l.name, "Internal Flash") == 0);
}

static void test_device_feature_quirk(void) {
        DfuseLayout l;

        assert(dfuse_layout_parse("@Device Feature/0xFFFF0000/01*004 g", &l) == 0);
        assert(strcmp(l.name, "Device Feature") == 0);
        assert(l.groups[0].attributes == (DFUSE_SECTOR_READABLE | DFUSE_SECTOR_WRITABLE));
        assert(l.groups[0].size == 4);
}

static void test_multiple_blocks(void) {
        DfuseLayout l;
        char buf[256];

        assert(dfuse_layout_parse("@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e", &l) == 0);
        assert(strcmp(l.name, "Option Bytes") == 0);
        assert(l.n_groups == 2);
        assert(l.groups[0].address == 0x1FFF7800 && l.groups[0].size == 48 && l.groups[0].block == 0);
        assert(l.groups[1].address == 0x1FFFF800 && l.groups[1].size == 48 && l.groups[1].block == 1);
        assert(dfuse_layout_find_sector(&l, 0x1FFF7830, NULL) == -ENOENT);
        assert(dfuse_layout_find_sector(&l, 0x1FFFF82F, NULL) == 0);
        assert(dfuse_layout_format(&l, buf, sizeof buf) == 0);
        assert(strcmp(buf, "@Option Bytes/0x1FFF7800/01*048Be/0x1FFFF800/01*048Be") == 0);

        /* Adjacent blocks stay separate regions. */
        assert(dfuse_layout_parse("@Flash/0x08000000/02*004Kg/0x08002000/02*004Kg", &l) == 0);
        assert(l.n_groups == 2 && l.groups[1].block == 1);
        assert(dfuse_layout_covers(&l, 0x08000000, 16 * KB, DFUSE_SECTOR_WRITABLE));
        assert(dfuse_layout_format(&l, buf, sizeof buf) == 0);
        assert(strcmp(buf, "@Flash/0x08000000/02*004Kg/0x08002000/02*004Kg") == 0);

        /* Region ending exactly at 4 GiB. */
        assert(dfuse_layout_parse("@Top/0xFFFF0000/01*064Kg", &l) == 0);
        assert(dfuse_layout_covers(&l, 0xFFFFFFFF, 1, DFUSE_SECTOR_WRITABLE));
        assert(dfuse_layout_parse("@All/0x00000000/65536*65536Bg", &l) == 0);
        assert(dfuse_layout_size(&l) == 0x100000000ull);
}

static void test_stm32mp1_and_uboot_strings(void) {
        DfuseLayout l;

        assert(dfuse_layout_parse("@Partition0 /0x00/1*256Ke", &l) == 0);
        assert(strcmp(l.name, "Partition0") == 0);
        assert(l.groups[0].address == 0 && l.groups[0].size == 256 * KB);
        assert(dfuse_layout_parse("@virtual /0xF1/1*512Ba", &l) == 0);
        assert(l.groups[0].address == 0xF1 && l.groups[0].attributes == DFUSE_SECTOR_READABLE);
        assert(dfuse_layout_parse("@FSBL /0x01/1*1Me", &l) == 0);
        assert(l.groups[0].size == 1024 * KB);
        /* Empty name is allowed. */
        assert(dfuse_layout_parse("@/0x08000000/1*1Kg", &l) == 0 && l.name[0] == '\0');
}

static void test_malformed(void) {
        static const char *const bad[] = {
                "",
                "Internal Flash/0x08000000/04*016Kg",        /* no '@' */
                "@Internal Flash",                           /* no address block */
                "@Internal Flash/",                          /* nothing after '/' */
                "@Internal Flash/08000000/04*016Kg",         /* address without 0x */
                "@Internal Flash/0x/04*016Kg",               /* empty hex */
                "@Internal Flash/0x1FFFFFFFF/01*016Kg",      /* address > 32 bits */
                "@Internal Flash/0x08000000",                /* no '/' after the address */
                "@Internal Flash/0x08000000/",               /* no group */
                "@Internal Flash/0x08000000/04016Kg",        /* no '*' */
                "@Internal Flash/0x08000000/*016Kg",         /* no count */
                "@Internal Flash/0x08000000/04*Kg",          /* no size */
                "@Internal Flash/0x08000000/04*016Xg",       /* unknown multiplier */
                "@Internal Flash/0x08000000/04*016Kh",       /* unknown type */
                "@Internal Flash/0x08000000/04*016K",        /* no type */
                "@Internal Flash/0x08000000/04*016KG",       /* upper-case type */
                "@Internal Flash/0x08000000/00*016Kg",       /* zero count */
                "@Internal Flash/0x08000000/04*000Kg",       /* zero size */
                "@Internal Flash/0x08000000/04*016Kg,",      /* dangling comma */
                "@Internal Flash/0x08000000/04*016Kg;",      /* junk */
                "@Internal Flash/0x08000000/04*016Kgx",      /* junk after type */
                "@Internal Flash/0x08000000/04*016Kg/",      /* dangling block */
                "@X/0xFFFF0000/01*065Kg",                    /* runs past 4 GiB */
                "@X/0x08000000/4294967296*1Kg",              /* count overflow */
                "@X/0x08000000/1*4194304Kg",                 /* size overflow with K */
                "@X/0x08000000/1*4096Mg",                    /* size overflow with M */
                "@X/0x08000000/02*004Kg/0x08001000/01*004Kg", /* overlapping blocks */
        };
        DfuseLayout l, before;

        memset(&before, 0x5a, sizeof before);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                int r;

                l = before;
                r = dfuse_layout_parse(bad[i], &l);
                if (r != -EINVAL) {
                        fprintf(stderr, "\"%s\": expected -EINVAL, got %d\n", bad[i], r);
                        assert(false);
                }
                assert(memcmp(&l, &before, sizeof l) == 0);
        }
        assert(dfuse_layout_parse(NULL, &l) == -EINVAL);
}

static void test_too_big(void) {
        char s[DFUSE_LAYOUT_MAX_STRING + 16];
        DfuseLayout l;
        size_t n;

        /* 65 groups > DFUSE_LAYOUT_MAX_GROUPS */
        n = (size_t) snprintf(s, sizeof s, "@X/0x08000000/1*1Kg");
        for (int i = 1; i < DFUSE_LAYOUT_MAX_GROUPS + 1; i++)
                n += (size_t) snprintf(s + n, sizeof s - n, ",1*1Kg");
        assert(n < sizeof s);
        assert(dfuse_layout_parse(s, &l) == -E2BIG);

        /* over-long string */
        memset(s, 'a', sizeof s - 1);
        s[0] = '@';
        s[sizeof s - 1] = '\0';
        assert(dfuse_layout_parse(s, &l) == -E2BIG);
}

int main(void) {
        test_f4_internal_flash();
        test_space_quirk_and_types();
        test_device_feature_quirk();
        test_multiple_blocks();
        test_stm32mp1_and_uboot_strings();
        test_malformed();
        test_too_big();
        return 0;
}
