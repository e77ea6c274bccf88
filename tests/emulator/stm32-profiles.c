/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The emulated devices. Descriptor data and memory maps are those of real ROMs as logged in
 * dfu-protocol.md §2.1/§2.2; timings come from the datasheet figures of §7.1/§7.2 (marked
 * [unverified here] there) and the bwPollTimeout values of §7.3. Where no source exists a value is
 * marked "assumed". */

#include <errno.h>
#include <string.h>

#include "dfu.h"
#include "macro.h"
#include "stm32-model.h"

#define KIB 1024u
#define MS 1000u

/* STM32F405/407 ROM. Erase: DS8626 typicals at x8 parallelism (16 KiB 400 ms, 64 KiB 1.2 s,
 * 128 KiB 2 s): the ROM cannot know VDD, and x8 agrees with the 2.2 s per 128 KiB sector measured
 * through the ROM (fwupd PR #6249); x32 would be 250 ms / - / 1 s. Program: 16 µs per byte at x8
 * (DS8626 typ) = 16.4 ms per KiB. Poll: 104 ms for a 2 KiB write (F745 ROM, fwupd#2696), 100 ms for
 * an erase (F405 ROM, dfu-util), 5 ms for SET_ADDRESS (fwupd PR #1944). */
static const Stm32Profile profile_f4_rom = {
        .name = "f4-rom",
        .vendor_id = 0x0483, .product_id = 0xDF11, .bcd_device = 0x2200,
        .manufacturer = "STMicroelectronics",
        .product = "STM32  BOOTLOADER",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 2048, .dfu_version = 0x011A,
        .n_regions = 4,
        .regions = {
                {
                        .alt_string = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
                        .address = 0x08000000,
                        .n_groups = 3,
                        .groups = {
                                { .count = 4, .size = 16 * KIB, .erase_us = 400 * MS },
                                { .count = 1, .size = 64 * KIB, .erase_us = 1200 * MS },
                                { .count = 7, .size = 128 * KIB, .erase_us = 2000 * MS },
                        },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
                {
                        .alt_string = "@Option Bytes  /0x1FFFC000/01*016 g",
                        .address = 0x1FFFC000,
                        .n_groups = 1,
                        .groups = { { .count = 1, .size = 16 } },
                        .writable = true, .kind = STM32_MEMORY_OPTION_BYTES,
                },
                {
                        .alt_string = "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
                        .address = 0x1FFF7800,
                        .n_groups = 2,
                        .groups = { { .count = 1, .size = 512 }, { .count = 1, .size = 16 } },
                        .writable = true, .kind = STM32_MEMORY_OTP,
                },
                {
                        .alt_string = "@Device Feature/0xFFFF0000/01*004 g",
                        .address = 0xFFFF0000,
                        .n_groups = 1,
                        .groups = { { .count = 1, .size = 4 } },
                        .writable = true, .kind = STM32_MEMORY_FEATURE,
                },
        },
        .timing = {
                .source = "DS8626 typ. x8: erase 400 ms/16K, 1.2 s/64K, 2 s/128K, program 16 us/byte; "
                          "poll 104 ms write (fwupd#2696), 100 ms erase (dfu-util), 5 ms set-address",
                .program_us_per_kib = 1024 * 16,
                .write_poll_ms = 104,
                .erase_poll_ms = 100,
                .set_address_poll_ms = 5,
                .set_address_us = 50,
                .manifest_poll_ms = 0,
                .manifest_us = 2 * MS,
        },
        .initial_err_firmware = true,
};

/* STM32F072 ROM: 128 KiB as 64 pages of 2 KiB (the F0/F3 ROM string style, §2.2). Page erase
 * 20-40 ms (§7.2, no typical given: 30 ms taken), half-word program 53 µs = 27.1 ms per KiB.
 * Poll values as the F4 ROM (assumed). Leave: stays in dfuMANIFEST for 3 more GETSTATUS. */
static const Stm32Profile profile_f072_rom = {
        .name = "f072-rom",
        .vendor_id = 0x0483, .product_id = 0xDF11, .bcd_device = 0x2200,
        .manufacturer = "STMicroelectronics",
        .product = "STM32  BOOTLOADER",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 2048, .dfu_version = 0x011A,
        .n_regions = 2,
        .regions = {
                {
                        .alt_string = "@Internal Flash  /0x08000000/64*002Kg",
                        .address = 0x08000000,
                        .n_groups = 1,
                        .groups = { { .count = 64, .size = 2 * KIB, .erase_us = 30 * MS } },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
                {
                        .alt_string = "@Option Bytes  /0x1FFFF800/01*016 e",
                        .address = 0x1FFFF800,
                        .n_groups = 1,
                        .groups = { { .count = 1, .size = 16 } },
                        .writable = true, .kind = STM32_MEMORY_OPTION_BYTES,
                },
        },
        .timing = {
                .source = "F072 DS: page erase 20-40 ms (30 ms taken), half-word program 53 us; "
                          "poll values as F4 ROM (assumed)",
                .program_us_per_kib = 512 * 53,
                .write_poll_ms = 104,
                .erase_poll_ms = 100,
                .set_address_poll_ms = 5,
                .set_address_us = 50,
                .manifest_poll_ms = 0,
                .manifest_us = 2 * MS,
        },
        .manifest_polls = 3,
        .empty_check = true,
};

/* STM32L47x ROM: transfer size 1024, 256 pages of 2 KiB (dfu-libusb#4). Page erase 22 ms typ,
 * double-word program ~90 µs = 11.5 ms per KiB (§7.2). A GETSTATUS sent before the reported
 * bwPollTimeout has elapsed is stalled (dfu-util c15ee60). Poll values as F4 ROM (assumed). */
static const Stm32Profile profile_l4_rom = {
        .name = "l4-rom",
        .vendor_id = 0x0483, .product_id = 0xDF11, .bcd_device = 0x2200,
        .manufacturer = "STMicroelectronics",
        .product = "STM32  BOOTLOADER",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 1024, .dfu_version = 0x011A,
        .n_regions = 2,
        .regions = {
                {
                        .alt_string = "@Internal Flash   /0x08000000/256*02Kg",
                        .address = 0x08000000,
                        .n_groups = 1,
                        .groups = { { .count = 256, .size = 2 * KIB, .erase_us = 22 * MS } },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
                {
                        .alt_string = "@Option Bytes   /0x1FFF7800/01*040 e",
                        .address = 0x1FFF7800,
                        .n_groups = 1,
                        .groups = { { .count = 1, .size = 40 } },
                        .writable = true, .kind = STM32_MEMORY_OPTION_BYTES,
                },
        },
        .timing = {
                .source = "L47x DS: page erase 22 ms typ, double-word program ~90 us; "
                          "poll values as F4 ROM (assumed)",
                .program_us_per_kib = 128 * 90,
                .write_poll_ms = 104,
                .erase_poll_ms = 100,
                .set_address_poll_ms = 5,
                .set_address_us = 50,
                .manifest_poll_ms = 0,
                .manifest_us = 2 * MS,
        },
        .stall_early_poll = true,
        .empty_check = true,
};

/* STM32H743 ROM: two banks of 8 x 128 KiB, bank 2 at 0x08100000, written as two address blocks
 * (§5.3). 128 KiB erase "1-4 s depending on parallelism" (§7.2): 2 s taken; program 0.1-0.6 ms
 * per 256-bit flash word: 0.3 ms taken = 9.6 ms per KiB. Poll values as F4 ROM (assumed). */
static const Stm32Profile profile_h7_rom = {
        .name = "h7-rom",
        .vendor_id = 0x0483, .product_id = 0xDF11, .bcd_device = 0x2200,
        .manufacturer = "STMicroelectronics",
        .product = "DFU in FS Mode",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 2048, .dfu_version = 0x011A,
        .n_regions = 1,
        .regions = {
                {
                        .alt_string = "@Internal Flash   /0x08000000/08*128Kg/0x08100000/08*128Kg",
                        .address = 0x08000000,
                        .n_groups = 2,
                        .groups = {
                                { .count = 8, .size = 128 * KIB, .erase_us = 2000 * MS },
                                { .count = 8, .size = 128 * KIB, .erase_us = 2000 * MS },
                        },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
        },
        .timing = {
                .source = "H743: 128 KiB erase 1-4 s (2 s taken), 256-bit word 0.1-0.6 ms (0.3 ms taken); "
                          "poll values as F4 ROM (assumed)",
                .program_us_per_kib = 32 * 300,
                .write_poll_ms = 104,
                .erase_poll_ms = 100,
                .set_address_poll_ms = 5,
                .set_address_us = 50,
                .manifest_poll_ms = 0,
                .manifest_us = 2 * MS,
        },
};

/* A custom STM32Cube (STLIB) bootloader on an F4 that lives in the first four 16 KiB sectors and
 * exposes the rest of the internal flash (the application boots at 0x08010000) and a 4 MiB QSPI
 * NOR at 0x90000000. STLIB reports FLASH_PROGRAM_TIME/FLASH_ERASE_TIME = 50 ms (§7.3). NOR figures
 * from a typical SPI NOR datasheet (64 KiB block erase 150 ms, 256-byte page 0.5 ms) [assumed]. */
static const Stm32Profile profile_qspi_loader = {
        .name = "qspi-loader",
        .vendor_id = 0x0483, .product_id = 0xDF11, .bcd_device = 0x0100,
        .manufacturer = "dfud",
        .product = "QSPI Loader",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 2048, .dfu_version = 0x011A,
        .n_regions = 2,
        .regions = {
                {
                        .alt_string = "@Internal Flash  /0x08010000/01*064Kg,07*128Kg",
                        .address = 0x08010000,
                        .n_groups = 2,
                        .groups = {
                                { .count = 1, .size = 64 * KIB, .erase_us = 1200 * MS },
                                { .count = 7, .size = 128 * KIB, .erase_us = 2000 * MS },
                        },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
                {
                        .alt_string = "@QSPI Flash /0x90000000/64*064Kg",
                        .address = 0x90000000,
                        .n_groups = 1,
                        .groups = { { .count = 64, .size = 64 * KIB, .erase_us = 150 * MS } },
                        .writable = true, .kind = STM32_MEMORY_FLASH,
                        .program_us_per_kib = 4 * 500,
                },
        },
        .timing = {
                .source = "internal flash as f4-rom; NOR 150 ms/64K block, 0.5 ms/256 B page (assumed); "
                          "STLIB poll 50 ms",
                .program_us_per_kib = 1024 * 16,
                .write_poll_ms = 50,
                .erase_poll_ms = 50,
                .set_address_poll_ms = 50,
                .set_address_us = 50,
                .manifest_poll_ms = 1,
                .manifest_us = 2 * MS,
        },
};

/* A plain DFU 1.1 device (no DfuSe commands): blocks are written in order from the start of the
 * alt's memory, erasing each 1 KiB page on first touch; manifestation tolerant. Modelled on STLIB
 * with an F103-class flash (page erase 20-40 ms, half-word ~52 µs) [assumed]. */
static const Stm32Profile profile_dfu11 = {
        .name = "dfu11",
        .vendor_id = 0x1209, .product_id = 0x0001, .bcd_device = 0x0100,
        .manufacturer = "dfud",
        .product = "plain DFU 1.1 device",
        .dfu_attributes = DFU_ATTR_CAN_DOWNLOAD | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_MANIFESTATION_TOLERANT,
        .detach_timeout_ms = 255, .transfer_size = 1024, .dfu_version = 0x0110,
        .n_regions = 1,
        .regions = {
                {
                        .alt_string = "Firmware",
                        .address = 0x08000000,
                        .n_groups = 1,
                        .groups = { { .count = 64, .size = 1 * KIB, .erase_us = 30 * MS } },
                        .writable = true, .boot = true, .kind = STM32_MEMORY_FLASH,
                },
        },
        .timing = {
                .source = "F103-class flash: page erase 20-40 ms, half-word 52 us (assumed); "
                          "STLIB poll 50 ms",
                .program_us_per_kib = 512 * 52,
                .write_poll_ms = 50,
                .erase_poll_ms = 50,
                .set_address_poll_ms = 0,
                .manifest_poll_ms = 1,
                .manifest_us = 10 * MS,
        },
};

/* The application: a CDC ACM device with a DFU runtime interface (vstm32 builds the descriptors).
 * It shares the memory of its bootloader and DETACH brings that bootloader back. */
static const Stm32Profile profile_app = {
        .name = "app",
        .vendor_id = 0x0483, .product_id = 0x5740, .bcd_device = 0x0100,
        .manufacturer = "dfud",
        .product = "vstm32 application",
        .dfu_attributes = 0x0B, .detach_timeout_ms = 255, .transfer_size = 2048, .dfu_version = 0x011A,
        .n_regions = 0,
        .timing = {
                .source = "runtime interface: DETACH then re-enumeration after ~1 ms (assumed)",
                .manifest_us = 1 * MS,
        },
        .bootloader = "f4-rom",
};

static const Stm32Profile *const profiles[] = {
        &profile_f4_rom,
        &profile_f072_rom,
        &profile_l4_rom,
        &profile_h7_rom,
        &profile_qspi_loader,
        &profile_dfu11,
        &profile_app,
};

const Stm32Profile *const *stm32_profiles(size_t *ret_n) {
        if (ret_n)
                *ret_n = ELEMENTSOF(profiles);
        return profiles;
}

const Stm32Profile *stm32_profile_find(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(profiles); i++)
                if (streq(profiles[i]->name, name))
                        return profiles[i];
        return NULL;
}
