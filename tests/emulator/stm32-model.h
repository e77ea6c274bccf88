/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one definition of how an emulated STM32 behaves: its profiles (descriptor data, memory map,
 * timing table) and its DFU/DfuSe state machine over a memory image. Used in-process by the engine
 * tests (virtual clock) and by vstm32 over USB/IP (real clock scaled by --time-scale).
 * No I/O, no sleeping: every call takes `now_us` and says when its reply is due. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM32_MAX_ALTS 8
#define STM32_MAX_SECTOR_GROUPS 8

/* The vstm32 firmware header that fake test firmware carries at image offset 0x400 (after the
 * vector table), so the boot model can tell a valid application and its version. */
#define VSTM32_HEADER_OFFSET 0x400
#define VSTM32_HEADER_MAGIC 0x32335356u /* "VS32" little endian */
typedef struct Vstm32Header {
        uint32_t magic;
        uint32_t version;  /* low 16 bits become the app's bcdDevice */
        uint32_t length;   /* image bytes covered by crc, from the image start */
        uint32_t crc;      /* dfu_crc32 of those bytes with this header's crc field taken as 0 */
} Vstm32Header;

typedef struct Stm32SectorGroup {
        uint32_t count;
        uint32_t size;
        uint64_t erase_us; /* datasheet erase time for one sector of this group */
} Stm32SectorGroup;

/* What a region is made of decides how it erases and programs. */
typedef enum Stm32MemoryKind {
        STM32_MEMORY_FLASH,          /* erase to 0xFF per sector, program ANDs bits (needs erased flash) */
        STM32_MEMORY_OPTION_BYTES,   /* not erasable; a write replaces the block and resets the MCU */
        STM32_MEMORY_OTP,            /* not erasable; program ANDs bits, once */
        STM32_MEMORY_FEATURE,        /* "Device Feature": not erasable, a write replaces */
} Stm32MemoryKind;

/* Sector groups follow each other without gaps from `address`. */
typedef struct Stm32Region {
        const char *alt_string;      /* the exact DfuSe alt string, "@Internal Flash  /0x08000000/..." */
        uint32_t address;
        size_t n_groups;
        Stm32SectorGroup groups[STM32_MAX_SECTOR_GROUPS];
        bool writable;
        bool boot;                   /* the region the application boots from */
        Stm32MemoryKind kind;
        uint64_t program_us_per_kib; /* 0: the profile's timing (an external NOR differs) */
} Stm32Region;

typedef struct Stm32Timing {
        const char *source;          /* where the figures come from (datasheet, measured) */
        uint64_t program_us_per_kib; /* programming time for 1 KiB */
        uint32_t write_poll_ms;      /* bwPollTimeout reported for a write (ROM: 104 ms) */
        uint32_t erase_poll_ms;      /* bwPollTimeout reported for an erase */
        uint32_t set_address_poll_ms;
        uint64_t set_address_us;     /* real busy time of SET_ADDRESS */
        uint32_t manifest_poll_ms;   /* bwPollTimeout in the dfuMANIFEST reply */
        uint64_t manifest_us;        /* plain DFU: manifestation time; DfuSe: leave-to-disconnect delay */
} Stm32Timing;

typedef struct Stm32Profile {
        const char *name;            /* "f4-rom", "f072-rom", "l4-rom", "h7-rom", "qspi-loader", "dfu11"
                                      * (plain DFU 1.1, no DfuSe), "app" (runtime, no regions) */
        uint16_t vendor_id, product_id, bcd_device;
        const char *manufacturer, *product;
        uint8_t dfu_attributes;
        uint16_t detach_timeout_ms, transfer_size, dfu_version;
        size_t n_regions;            /* one per alt setting, in alt order */
        Stm32Region regions[STM32_MAX_ALTS];
        Stm32Timing timing;
        bool initial_err_firmware;   /* first GETSTATUS says dfuERROR/errFIRMWARE (F4 ROM) */
        unsigned manifest_polls;     /* extra GETSTATUS needed in dfuMANIFEST before dropping off (F072) */
        bool stall_early_poll;       /* GETSTATUS before bwPollTimeout elapsed is stalled (L4) */
        bool empty_check;            /* boots the app only if flash is not blank (F0/G0/L4) */
        const char *bootloader;      /* for "app": the profile it re-enumerates as */
} Stm32Profile;

const Stm32Profile *stm32_profile_find(const char *name);
const Stm32Profile *const *stm32_profiles(size_t *ret_n);
/* Bytes of the memory file: all regions, back to back in alt order. The "app" profile shares its
 * bootloader's memory file (it has no regions of its own), so these resolve p->bootloader. */
size_t stm32_profile_memory_size(const Stm32Profile *p);
/* Offset of (alt, address) in the memory file, or -ERANGE. */
int64_t stm32_profile_memory_offset(const Stm32Profile *p, uint8_t alt, uint32_t address, uint32_t size);
/* Fills a fresh memory file with the erased/factory content (0xFF; F4 option bytes at their
 * defaults: RDP level 0, no write protection). */
void stm32_profile_memory_init(const Stm32Profile *p, uint8_t *memory);
/* Total size of one region (alt). */
uint32_t stm32_region_size(const Stm32Region *r);

typedef struct Stm32Model Stm32Model;

typedef enum Stm32Result {
        STM32_REPLY,        /* answer with *actual bytes (IN) / ack (OUT) at *reply_at_us */
        STM32_STALL,        /* answer with a stall (-EPIPE) at *reply_at_us */
        STM32_DISCONNECT,   /* drop off the bus now (leave, reset, fault); no answer */
        STM32_HANG,         /* never answer (fault) */
} Stm32Result;

typedef struct Stm32Setup {
        uint8_t request_type, request;
        uint16_t value, index, length;
} Stm32Setup;

/* `memory` (stm32_profile_memory_size() bytes) is not copied: vstm32 passes an mmap of the flash
 * file so every programmed byte persists across unplug and restarts. time_scale multiplies every
 * busy time (1.0 = datasheet). */
int stm32_model_new(const Stm32Profile *p, uint8_t *memory, double time_scale, Stm32Model **ret);
Stm32Model *stm32_model_free(Stm32Model *m);

/* Fault specs (repeatable), also vstm32's --fault:
 *   disconnect-after=N        drop off the bus on the Nth control transfer (counting from 1)
 *   disconnect-at=0xADDR      drop off when a write reaches this address
 *   stall=REQUEST[@N]         stall every (or the Nth) request named like dfu_request_to_string()
 *   err-verify=0xADDR / err-write=0xADDR   report errVERIFY / errWRITE for a write touching ADDR
 *   hang-after=N              stop answering from the Nth control transfer on
 *   power-loss=0xADDR         a write touching ADDR programs only its first half, then disconnect
 *   rdp                       read protection on: upload/erase/write -> errVENDOR
 * -EINVAL for an unknown spec. */
int stm32_model_add_fault(Stm32Model *m, const char *spec);

/* A class request on the DFU interface (GETSTATUS, DNLOAD, ...). `data` has room for
 * setup->length bytes: OUT data on entry, IN data on return (*actual). */
Stm32Result stm32_model_control(Stm32Model *m, uint64_t now_us, const Stm32Setup *setup, uint8_t *data,
                                size_t *actual, uint64_t *reply_at_us);
/* SET_INTERFACE: 0 or -EINVAL for an alt that does not exist, -ENODEV after a disconnect. */
int stm32_model_set_alt(Stm32Model *m, uint8_t alt);

/* The device drops off the bus by itself (after leave, DETACH with bitWillDetach, option-byte
 * write, read unprotect): true and *ret_at_us once that is decided. Requests arriving at or after
 * that time get STM32_DISCONNECT; vstm32 should detach the port at that time even if the host sends
 * nothing more. */
bool stm32_model_disconnect_pending(const Stm32Model *m, uint64_t *ret_at_us);
bool stm32_model_disconnected(const Stm32Model *m);

/* Flash operations as they happen, for tests (write order) and vstm32's log. */
typedef enum Stm32TraceKind {
        STM32_TRACE_ERASE,       /* one sector */
        STM32_TRACE_MASS_ERASE,
        STM32_TRACE_WRITE,
        STM32_TRACE_READ,
        STM32_TRACE_SET_ADDRESS,
        STM32_TRACE_LEAVE,       /* address = jump target */
        STM32_TRACE_RESET,       /* option-byte write, read unprotect */
} Stm32TraceKind;
typedef void (*Stm32TraceFunc)(void *userdata, Stm32TraceKind kind, uint8_t alt, uint32_t address,
                               uint32_t size);
void stm32_model_set_trace(Stm32Model *m, Stm32TraceFunc f, void *userdata);

/* After a DISCONNECT: what the device boots into. Returns the profile to re-enumerate as (the
 * bootloader itself, or the profile's application when the boot region holds a valid image) and
 * the application version (from the Vstm32Header) in *ret_version. */
const Stm32Profile *stm32_model_boot(const Stm32Model *m, uint16_t *ret_version);
/* Same check on a raw memory image, for vstm32 at start-up. */
bool stm32_memory_valid_app(const Stm32Profile *p, const uint8_t *memory, uint16_t *ret_version);

typedef struct Stm32Stats {
        uint64_t control_transfers;
        uint64_t busy_us;        /* time the device was really busy (erase + program), scaled */
        uint64_t bytes_written;
        uint64_t bytes_read;
        uint64_t sectors_erased;
        uint64_t early_poll_stalls;
        uint64_t set_address_commands;
        uint64_t erase_commands;
        uint64_t getstatus_requests;
        uint64_t held_us;        /* how long replies were held because the device was busy */
} Stm32Stats;
void stm32_model_get_stats(const Stm32Model *m, Stm32Stats *ret);
/* Current DFU state byte (dfu.h DfuState), for tests. */
int stm32_model_get_state(const Stm32Model *m);
