/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DfuSe memory-layout strings: "@name/0xADDR/N*SSSmT[,N*SSSmT...][/0xADDR/...]".
 * Grammar and quirks follow dfu-util's dfuse_mem.c (dfu-protocol.md §2.2). The string comes from a USB
 * device, so it is treated as untrusted: every number is range-checked and nothing is read past the NUL. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dfuse-layout.h"
#include "macro.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decimal, as dfu-util's %u; leading zeros are the norm ("016"). */
static int parse_decimal(const char **p, uint32_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (!is_digit(*s))
                return -EINVAL;
        for (; is_digit(*s); s++) {
                v = v * 10 + (uint64_t) (*s - '0');
                if (v > UINT32_MAX)
                        return -EINVAL;
        }
        *p = s;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_hex_address(const char **p, uint32_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return -EINVAL;
        s += 2;
        if (hex_value(*s) < 0)
                return -EINVAL;
        for (int d; (d = hex_value(*s)) >= 0; s++) {
                v = (v << 4) | (uint64_t) d;
                if (v > UINT32_MAX)
                        return -EINVAL;
        }
        *p = s;
        *ret = (uint32_t) v;
        return 0;
}

static uint64_t group_end(const DfuseSectorGroup *g) {
        return (uint64_t) g->address + (uint64_t) g->count * g->size;
}

int dfuse_layout_parse(const char *s, DfuseLayout *ret) {
        DfuseLayout l = {};
        const char *p, *slash;
        size_t name_len;
        unsigned n_blocks = 0;
        bool device_feature;
        int r;

        if (!s || !ret)
                return -EINVAL;
        if (strnlen(s, DFUSE_LAYOUT_MAX_STRING) >= DFUSE_LAYOUT_MAX_STRING)
                return -E2BIG;
        if (s[0] != '@')
                return -EINVAL;

        slash = strchr(s + 1, '/');
        if (!slash)
                return -EINVAL;
        name_len = (size_t) (slash - (s + 1));
        while (name_len > 0 && s[name_len] == ' ')
                name_len--;
        memcpy(l.name, s + 1, name_len); /* < DFUSE_LAYOUT_MAX_STRING, checked above */
        l.name[name_len] = '\0';
        /* dfu-util quirk: F4 ROMs describe the 4-byte feature area as 'g' although it cannot be erased. */
        device_feature = streq(l.name, "Device Feature");

        p = slash;
        while (*p == '/') {
                uint32_t address;

                p++;
                r = parse_hex_address(&p, &address);
                if (r < 0)
                        return r;
                if (*p != '/')
                        return -EINVAL;
                p++;
                if (n_blocks >= UINT8_MAX)
                        return -E2BIG;

                uint64_t cursor = address;
                for (;;) {
                        uint32_t count, size;
                        uint8_t mult;
                        char type;

                        r = parse_decimal(&p, &count);
                        if (r < 0)
                                return r;
                        if (*p != '*')
                                return -EINVAL;
                        p++;
                        r = parse_decimal(&p, &size);
                        if (r < 0)
                                return r;

                        /* Multiplier then type letter; a space means bytes ("016 g"), and like dfu-util
                         * a type letter straight after the number means bytes too. */
                        mult = (uint8_t) *p;
                        if (mult == 'B' || mult == ' ')
                                p++;
                        else if (mult == 'K') {
                                p++;
                                if ((uint64_t) size * 1024u > UINT32_MAX)
                                        return -EINVAL;
                                size *= 1024u;
                        } else if (mult == 'M') {
                                p++;
                                if ((uint64_t) size * 1024u * 1024u > UINT32_MAX)
                                        return -EINVAL;
                                size *= 1024u * 1024u;
                        } else if (!(mult >= 'a' && mult <= 'g'))
                                return -EINVAL;

                        type = *p;
                        if (type < 'a' || type > 'g')
                                return -EINVAL;
                        p++;

                        if (count == 0 || size == 0)
                                return -EINVAL;
                        if (cursor + (uint64_t) count * size > (uint64_t) UINT32_MAX + 1)
                                return -EINVAL;
                        if (l.n_groups >= DFUSE_LAYOUT_MAX_GROUPS)
                                return -E2BIG;

                        l.groups[l.n_groups++] = (DfuseSectorGroup) {
                                .address = (uint32_t) cursor,
                                .count = count,
                                .size = size,
                                .attributes = device_feature ? (uint8_t) ('e' & 7) : (uint8_t) (type & 7),
                                .block = (uint8_t) n_blocks,
                        };
                        cursor += (uint64_t) count * size;

                        if (*p != ',')
                                break;
                        p++;
                }
                n_blocks++;
        }

        /* Some ROMs pad the descriptor string with blanks. */
        while (*p == ' ')
                p++;
        if (*p != '\0' || l.n_groups == 0)
                return -EINVAL;

        /* Overlapping blocks would make "the sector at this address" ambiguous. */
        for (size_t i = 0; i < l.n_groups; i++)
                for (size_t j = i + 1; j < l.n_groups; j++)
                        if (l.groups[i].address < group_end(&l.groups[j]) &&
                            l.groups[j].address < group_end(&l.groups[i]))
                                return -EINVAL;

        *ret = l;
        return 0;
}

static const DfuseSectorGroup *find_group(const DfuseLayout *l, uint64_t address) {
        for (size_t i = 0; i < l->n_groups && i < DFUSE_LAYOUT_MAX_GROUPS; i++)
                if (address >= l->groups[i].address && address < group_end(&l->groups[i]))
                        return &l->groups[i];
        return NULL;
}

int dfuse_layout_find_sector(const DfuseLayout *l, uint32_t address, DfuseSector *ret) {
        const DfuseSectorGroup *g;
        uint32_t index;

        if (!l)
                return -EINVAL;
        g = find_group(l, address);
        if (!g)
                return -ENOENT;
        index = (address - g->address) / g->size;
        if (ret)
                *ret = (DfuseSector) {
                        .address = g->address + index * g->size,
                        .size = g->size,
                        .attributes = g->attributes,
                };
        return 0;
}

bool dfuse_layout_covers(const DfuseLayout *l, uint32_t address, uint32_t size, uint8_t attributes) {
        uint64_t p = address, end = (uint64_t) address + size;

        if (!l || size == 0)
                return false;
        /* All sectors of a group share attributes: step a group at a time. */
        while (p < end) {
                const DfuseSectorGroup *g = find_group(l, p);
                if (!g || (g->attributes & attributes) != attributes)
                        return false;
                p = group_end(g);
        }
        return true;
}

uint64_t dfuse_layout_size(const DfuseLayout *l) {
        uint64_t total = 0;

        if (!l)
                return 0;
        for (size_t i = 0; i < l->n_groups && i < DFUSE_LAYOUT_MAX_GROUPS; i++)
                total += (uint64_t) l->groups[i].count * l->groups[i].size;
        return total;
}

int dfuse_layout_format(const DfuseLayout *l, char *buf, size_t size) {
        size_t n = 0;
        int k;

        if (!l || !buf || size == 0)
                return -EINVAL;

#define APPEND(...)                                                             \
        do {                                                                    \
                k = snprintf(buf + n, size - n, __VA_ARGS__);                   \
                if (k < 0)                                                      \
                        return -EINVAL;                                         \
                if ((size_t) k >= size - n)                                     \
                        return -ENOBUFS;                                        \
                n += (size_t) k;                                                \
        } while (0)

        buf[0] = '\0';
        APPEND("@%s", l->name);
        for (size_t i = 0; i < l->n_groups && i < DFUSE_LAYOUT_MAX_GROUPS; i++) {
                const DfuseSectorGroup *g = &l->groups[i];
                uint32_t sz = g->size;
                char mult = 'B';

                if (g->attributes == 0 || g->attributes > 7)
                        return -EINVAL;
                if (sz % (1024u * 1024u) == 0) {
                        sz /= 1024u * 1024u;
                        mult = 'M';
                } else if (sz % 1024u == 0) {
                        sz /= 1024u;
                        mult = 'K';
                }

                /* A group starts a new "/0xADDR/" block unless it continues the previous one. */
                if (i == 0 || g->block != l->groups[i - 1].block ||
                    g->address != group_end(&l->groups[i - 1]))
                        APPEND("/0x%08X/", g->address);
                else
                        APPEND(",");
                APPEND("%02u*%03u%c%c", g->count, sz, mult, (char) ('a' + g->attributes - 1));
        }
#undef APPEND
        return 0;
}
