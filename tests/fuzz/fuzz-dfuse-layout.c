/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the DfuSe memory-layout string parser (a USB string descriptor, so device-controlled).
 * Whatever parses must format back into a string that parses to the same layout, and lookups must agree
 * with the groups. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfuse-layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(x)                                                                                \
        do {                                                                                    \
                if (!(x)) {                                                                     \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #x); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[DFUSE_LAYOUT_MAX_STRING + 8], out[4096];
        DfuseLayout l, again;
        int r;

        if (size >= sizeof s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        r = dfuse_layout_parse(s, &l);
        check(r == 0 || r == -EINVAL || r == -E2BIG);
        if (r < 0)
                return 0;
        check(l.n_groups > 0 && l.n_groups <= DFUSE_LAYOUT_MAX_GROUPS);
        check(memchr(l.name, '\0', sizeof l.name));

        for (size_t i = 0; i < l.n_groups; i++) {
                const DfuseSectorGroup *g = &l.groups[i];
                uint64_t end = (uint64_t) g->address + (uint64_t) g->count * g->size;
                DfuseSector sec;

                check(g->count > 0 && g->size > 0 && g->attributes >= 1 && g->attributes <= 7);
                check(end <= (uint64_t) UINT32_MAX + 1);
                check(dfuse_layout_find_sector(&l, g->address, &sec) == 0);
                check(sec.address == g->address && sec.size == g->size && sec.attributes == g->attributes);
                check(dfuse_layout_find_sector(&l, (uint32_t) (end - 1), &sec) == 0);
                check(sec.address == (uint32_t) (end - g->size));
                if (end - g->address <= UINT32_MAX)
                        check(dfuse_layout_covers(&l, g->address, (uint32_t) (end - g->address),
                                                  g->attributes));
        }
        check(dfuse_layout_size(&l) > 0);

        /* Round trip; the formatted form of odd inputs may exceed the string limit, check what fits. */
        r = dfuse_layout_format(&l, out, sizeof out);
        check(r == 0);
        if (strlen(out) < DFUSE_LAYOUT_MAX_STRING) {
                check(dfuse_layout_parse(out, &again) == 0);
                check(again.n_groups == l.n_groups);
                check(strcmp(again.name, l.name) == 0);
                for (size_t i = 0; i < l.n_groups; i++) {
                        check(again.groups[i].address == l.groups[i].address);
                        check(again.groups[i].count == l.groups[i].count);
                        check(again.groups[i].size == l.groups[i].size);
                        check(again.groups[i].attributes == l.groups[i].attributes);
                }
        }
        return 0;
}
