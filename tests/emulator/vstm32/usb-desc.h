/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* USB descriptors built from the profile data: the ROM bootloader (one DFU interface, one alt per
 * memory region) and the application (IAD + CDC ACM + optional DFU runtime interface). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stm32-model.h"

#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_STRING 0x03
#define USB_DT_INTERFACE 0x04
#define USB_DT_ENDPOINT 0x05
#define USB_DT_DEVICE_QUALIFIER 0x06
#define USB_DT_IAD 0x0B
#define USB_DT_CS_INTERFACE 0x24
#define USB_DT_DFU 0x21

/* The application's interfaces and endpoints. */
#define APP_IF_COMM 0
#define APP_IF_DATA 1
#define APP_IF_DFU 2
#define APP_EP_NOTIFY 2 /* interrupt IN 0x82 */
#define APP_EP_DATA 1   /* bulk OUT 0x01, bulk IN 0x81 */
#define APP_BULK_SIZE 64

#define USB_DESC_MAX_STRINGS (4 + STM32_MAX_ALTS + 2)

typedef struct UsbDescriptors {
        uint8_t device[18];
        uint8_t config[512];
        size_t config_len;
        const char *strings[USB_DESC_MAX_STRINGS]; /* [0] unused (language ids) */
        size_t n_strings;
        uint8_t dfu_functional[9];
        int dfu_interface; /* interface carrying DFU class requests, -1 if none */
        uint8_t n_interfaces;
        uint8_t n_alts[4]; /* alt settings per interface */
} UsbDescriptors;

/* `serial` must outlive the descriptors (strings are not copied). */
void usb_desc_build_bootloader(UsbDescriptors *d, const Stm32Profile *p, const char *serial);
void usb_desc_build_app(UsbDescriptors *d, const Stm32Profile *app, const Stm32Profile *bootloader,
                        uint16_t version, const char *serial, bool dfu_runtime);
/* A string descriptor (UTF-16LE from ASCII) into buf; its length, or -ENOENT. */
int usb_desc_string(const UsbDescriptors *d, uint8_t index, uint8_t *buf, size_t size);
