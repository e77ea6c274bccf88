/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Drives a DfuEngine against the in-process STM32 model with a virtual clock: every control transfer
 * costs bus time (1 ms + 1 µs per byte, fitted to the full-speed figures of dfu-protocol.md §7.4) plus
 * whatever the model holds it for; WAIT steps advance the clock. Records what the tests assert on:
 * flash operations in order, events, requests. */

#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dfu-engine.h"
#include "dfu-image.h"
#include "dfuse-layout.h"
#include "stm32-model.h"

#define HARNESS_MAX_TRACE 8192
#define HARNESS_MAX_VERIFIED 1024

typedef struct TraceEntry {
        Stm32TraceKind kind;
        uint8_t alt;
        uint32_t address, size;
} TraceEntry;

typedef struct Harness {
        const Stm32Profile *profile;
        uint8_t *memory;
        size_t memory_size;
        Stm32Model *model;
        DfuseLayout layouts[STM32_MAX_ALTS];
        DfuDeviceInfo info;
        DfuEngine *engine;
        uint64_t now;     /* µs */
        uint64_t start;   /* now at the start of the last run */
        bool gone;
        bool notify_gone; /* tell the engine about a pending disconnect during WAITs, like dfud's udev */
        int gone_errno;   /* how a vanished device fails a transfer (default -ENODEV) */

        TraceEntry trace[HARNESS_MAX_TRACE];
        size_t n_trace;
        DfuPlanSector verified[HARNESS_MAX_VERIFIED]; /* SECTOR_VERIFIED events, VERIFIED or SKIPPED */
        size_t n_verified;
        unsigned requests[_DFU_REQUEST_MAX];
        unsigned set_alts, progress_events, phase_events, log_lines;
        DfuPhase phases[256];
        size_t n_phases;
        char **logs;
        size_t n_logs;
        bool verbose;
} Harness;

/* A fresh device with erased memory (or `fill` everywhere when fill != 0xFF). */
void harness_init(Harness *h, const char *profile, uint8_t fill);
/* The device re-enumerates on the same memory: new model, new engine; records are kept. */
void harness_reopen(Harness *h);
void harness_free(Harness *h);
void harness_fault(Harness *h, const char *spec);
/* Drives the current operation to its end: 0, or the engine's negative error. */
int harness_run(Harness *h);
int harness_update(Harness *h, const DfuImage *img, const DfuUpdateOptions *o);
bool harness_log_contains(const Harness *h, const char *needle);
void harness_print_log(const Harness *h);
/* Verified sectors collected so far (for resume). */
const DfuPlanSector *harness_verified(const Harness *h, size_t *ret_n);
/* Bytes of (alt, address) in the model's memory. */
uint8_t *harness_mem(const Harness *h, uint8_t alt, uint32_t address);
/* Index of the first/last trace entry of a kind touching [address, address+size), or -1. */
ssize_t harness_trace_find(const Harness *h, Stm32TraceKind kind, uint32_t address, uint32_t size,
                           bool last);

/* Firmware with a sane vector table and a Vstm32Header (valid for the boot model when it starts at the
 * boot region). Pseudo-random content from seed. */
uint8_t *make_firmware(uint32_t base, size_t size, uint32_t version, uint32_t seed);
/* An image of one segment, placed on the harness's layouts. */
DfuImage *make_image(Harness *h, uint32_t address, const uint8_t *data, size_t size);
/* Adds a segment and places again. */
void image_add(Harness *h, DfuImage *img, uint32_t address, const uint8_t *data, size_t size);
/* True if memory holds the image's bytes. */
bool image_in_memory(const Harness *h, const DfuImage *img);
