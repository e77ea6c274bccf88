/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* DfuSe memory-layout strings (the alt-setting string descriptors), e.g.
 *   "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
 * into regions of sectors. Several "/0xADDR/" blocks may follow the name; sizes take B/K/M or a
 * space (= bytes, the "016 g" quirk); the type letter a-g is a bit mask (1 readable, 2 erasable,
 * 4 writable). Facts: dfu-protocol.md §2.2. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DFUSE_SECTOR_READABLE 0x1
#define DFUSE_SECTOR_ERASABLE 0x2
#define DFUSE_SECTOR_WRITABLE 0x4

#define DFUSE_LAYOUT_MAX_STRING 512
#define DFUSE_LAYOUT_MAX_GROUPS 64

/* A run of equally sized sectors: "04*016Kg". */
typedef struct DfuseSectorGroup {
        uint32_t address; /* first sector */
        uint32_t count;
        uint32_t size;    /* bytes per sector (the erase unit) */
        uint8_t attributes;
        uint8_t block;    /* index of the "/0xADDR/" block it came from: blocks are separate regions */
} DfuseSectorGroup;

typedef struct DfuseLayout {
        char name[DFUSE_LAYOUT_MAX_STRING]; /* trailing spaces trimmed: "Internal Flash" */
        size_t n_groups;
        DfuseSectorGroup groups[DFUSE_LAYOUT_MAX_GROUPS];
} DfuseLayout;

/* One sector, as found by address. */
typedef struct DfuseSector {
        uint32_t address;
        uint32_t size;
        uint8_t attributes;
} DfuseSector;

/* 0 on success; -EINVAL for a malformed string (no '@', bad number, unknown multiplier or type,
 * zero count/size, address overflow, overlapping groups), -E2BIG for too many groups or a string
 * longer than DFUSE_LAYOUT_MAX_STRING. Groups are kept in string order. "Device Feature" is forced to
 * 'e' (readable + writable) like dfu-util does. *ret is untouched on error. */
int dfuse_layout_parse(const char *s, DfuseLayout *ret);

/* The sector containing address: 0, or -ENOENT. */
int dfuse_layout_find_sector(const DfuseLayout *l, uint32_t address, DfuseSector *ret);

/* True if [address, address+size) lies entirely in sectors having all bits of `attributes`
 * (false for size 0). */
bool dfuse_layout_covers(const DfuseLayout *l, uint32_t address, uint32_t size, uint8_t attributes);

/* Total bytes described by the layout. */
uint64_t dfuse_layout_size(const DfuseLayout *l);

/* Formats the layout back into the DfuSe string form (for D-Bus Memory and logs), e.g.
 * "@Internal Flash/0x08000000/04*016Kg,01*064Kg,07*128Kg". 0, or -ENOBUFS if buf is too small
 * (buf then holds a truncated, NUL-terminated string), -EINVAL for a group without attributes. */
int dfuse_layout_format(const DfuseLayout *l, char *buf, size_t size);
