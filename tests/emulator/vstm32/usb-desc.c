/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dfu.h"
#include "macro.h"
#include "usb-desc.h"

/* The F4 ROM reports bcdUSB 1.00 (dfu-util device log); the app uses IADs, which need 2.00. */
#define BOOTLOADER_BCD_USB 0x0100
#define APP_BCD_USB 0x0200
#define APP_VENDOR_ID 0x0483
#define APP_PRODUCT_ID 0x5740 /* ST's Virtual COM Port */

typedef struct Writer {
        uint8_t *buf;
        size_t size, len;
} Writer;

static void put(Writer *w, const uint8_t *bytes, size_t n) {
        /* Descriptor sets are small and fixed: overflowing the buffer is a programming error. */
        if (w->len + n > w->size)
                abort();
        memcpy(w->buf + w->len, bytes, n);
        w->len += n;
}

#define PUT(w, ...)                                                      \
        do {                                                             \
                const uint8_t _b[] = { __VA_ARGS__ };                    \
                put((w), _b, sizeof(_b));                                \
        } while (0)

#define LE16(v) (uint8_t) ((v) & 0xff), (uint8_t) ((v) >> 8)

static uint8_t add_string(UsbDescriptors *d, const char *s) {
        if (!s || d->n_strings >= USB_DESC_MAX_STRINGS)
                return 0;
        d->strings[d->n_strings] = s;
        return (uint8_t) d->n_strings++;
}

static void device_descriptor(UsbDescriptors *d, uint16_t bcd_usb, uint8_t cls, uint8_t sub, uint8_t proto,
                              uint16_t vid, uint16_t pid, uint16_t bcd_device, uint8_t i_manufacturer,
                              uint8_t i_product, uint8_t i_serial) {
        Writer w = { d->device, sizeof(d->device), 0 };

        PUT(&w, 18, USB_DT_DEVICE, LE16(bcd_usb), cls, sub, proto, 64, LE16(vid), LE16(pid),
            LE16(bcd_device), i_manufacturer, i_product, i_serial, 1);
}

static void functional_descriptor(UsbDescriptors *d, uint8_t attributes, uint16_t detach_timeout,
                                  uint16_t transfer_size, uint16_t version) {
        Writer w = { d->dfu_functional, sizeof(d->dfu_functional), 0 };

        PUT(&w, 9, USB_DT_DFU, attributes, LE16(detach_timeout), LE16(transfer_size), LE16(version));
}

static void reset(UsbDescriptors *d) {
        *d = (UsbDescriptors) { .n_strings = 1, .dfu_interface = -1 };
}

void usb_desc_build_bootloader(UsbDescriptors *d, const Stm32Profile *p, const char *serial) {
        Writer w;
        uint8_t im, ip, is;

        reset(d);
        im = add_string(d, p->manufacturer);
        ip = add_string(d, p->product);
        is = add_string(d, serial);
        device_descriptor(d, BOOTLOADER_BCD_USB, 0, 0, 0, p->vendor_id, p->product_id, p->bcd_device, im, ip,
                          is);
        functional_descriptor(d, p->dfu_attributes, p->detach_timeout_ms, p->transfer_size, p->dfu_version);

        w = (Writer) { d->config, sizeof(d->config), 0 };
        PUT(&w, 9, USB_DT_CONFIG, 0, 0, 1, 1, 0, 0xC0, 50);
        for (size_t i = 0; i < p->n_regions; i++) {
                uint8_t is_alt = add_string(d, p->regions[i].alt_string);

                PUT(&w, 9, USB_DT_INTERFACE, 0, (uint8_t) i, 0, DFU_INTERFACE_CLASS, DFU_INTERFACE_SUBCLASS,
                    DFU_PROTOCOL_DFU_MODE, is_alt);
                /* A functional descriptor after every alt: each alt is a complete DFU interface. */
                put(&w, d->dfu_functional, sizeof(d->dfu_functional));
        }
        d->config[2] = (uint8_t) w.len;
        d->config[3] = (uint8_t) (w.len >> 8);
        d->config_len = w.len;
        d->dfu_interface = 0;
        d->n_interfaces = 1;
        d->n_alts[0] = (uint8_t) p->n_regions;
}

void usb_desc_build_app(UsbDescriptors *d, const Stm32Profile *app, const Stm32Profile *bootloader,
                        uint16_t version, const char *serial, bool dfu_runtime) {
        Writer w;
        uint8_t im, ip, is, iacm, idfu;
        uint16_t vid = app && app->vendor_id ? app->vendor_id : APP_VENDOR_ID;
        uint16_t pid = app && app->product_id ? app->product_id : APP_PRODUCT_ID;
        uint8_t n_if = dfu_runtime ? 3 : 2;

        reset(d);
        im = add_string(d, app && app->manufacturer ? app->manufacturer : bootloader->manufacturer);
        ip = add_string(d, app && app->product ? app->product : "STM32 Virtual ComPort");
        is = add_string(d, serial);
        iacm = add_string(d, "CDC ACM");
        idfu = dfu_runtime ? add_string(d, "@DFU Runtime") : 0;
        /* Composite with IADs: Miscellaneous / Common Class / Interface Association. */
        device_descriptor(d, APP_BCD_USB, 0xEF, 0x02, 0x01, vid, pid, version, im, ip, is);
        functional_descriptor(d, DFU_ATTR_WILL_DETACH | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_CAN_DOWNLOAD,
                              bootloader->detach_timeout_ms, bootloader->transfer_size, DFU_VERSION_DFUSE);

        w = (Writer) { d->config, sizeof(d->config), 0 };
        PUT(&w, 9, USB_DT_CONFIG, 0, 0, n_if, 1, 0, 0x80, 50);
        /* CDC ACM: IAD, communication interface with its functional descriptors, data interface. */
        PUT(&w, 8, USB_DT_IAD, APP_IF_COMM, 2, 0x02, 0x02, 0x01, iacm);
        PUT(&w, 9, USB_DT_INTERFACE, APP_IF_COMM, 0, 1, 0x02, 0x02, 0x01, iacm);
        PUT(&w, 5, USB_DT_CS_INTERFACE, 0x00, LE16(0x0110));                 /* header */
        PUT(&w, 5, USB_DT_CS_INTERFACE, 0x01, 0x00, APP_IF_DATA);            /* call management */
        PUT(&w, 4, USB_DT_CS_INTERFACE, 0x02, 0x02);                         /* ACM: line coding + state */
        PUT(&w, 5, USB_DT_CS_INTERFACE, 0x06, APP_IF_COMM, APP_IF_DATA);     /* union */
        PUT(&w, 7, USB_DT_ENDPOINT, 0x80 | APP_EP_NOTIFY, 0x03, LE16(8), 16);
        PUT(&w, 9, USB_DT_INTERFACE, APP_IF_DATA, 0, 2, 0x0A, 0x00, 0x00, 0);
        PUT(&w, 7, USB_DT_ENDPOINT, APP_EP_DATA, 0x02, LE16(APP_BULK_SIZE), 0);
        PUT(&w, 7, USB_DT_ENDPOINT, 0x80 | APP_EP_DATA, 0x02, LE16(APP_BULK_SIZE), 0);
        if (dfu_runtime) {
                PUT(&w, 8, USB_DT_IAD, APP_IF_DFU, 1, DFU_INTERFACE_CLASS, DFU_INTERFACE_SUBCLASS,
                    DFU_PROTOCOL_RUNTIME, idfu);
                PUT(&w, 9, USB_DT_INTERFACE, APP_IF_DFU, 0, 0, DFU_INTERFACE_CLASS, DFU_INTERFACE_SUBCLASS,
                    DFU_PROTOCOL_RUNTIME, idfu);
                put(&w, d->dfu_functional, sizeof(d->dfu_functional));
                d->dfu_interface = APP_IF_DFU;
        }
        d->config[2] = (uint8_t) w.len;
        d->config[3] = (uint8_t) (w.len >> 8);
        d->config_len = w.len;
        d->n_interfaces = n_if;
        for (uint8_t i = 0; i < n_if; i++)
                d->n_alts[i] = 1;
}

int usb_desc_string(const UsbDescriptors *d, uint8_t index, uint8_t *buf, size_t size) {
        const char *s;
        size_t n;

        if (size < 4)
                return -ENOBUFS;
        if (index == 0) {
                const uint8_t langids[] = { 4, USB_DT_STRING, LE16(0x0409) };
                memcpy(buf, langids, sizeof(langids));
                return sizeof(langids);
        }
        if (index >= d->n_strings || !d->strings[index])
                return -ENOENT;
        s = d->strings[index];
        n = MIN(strlen(s), MIN(size - 2, 253) / 2);
        buf[0] = (uint8_t) (2 + 2 * n);
        buf[1] = USB_DT_STRING;
        for (size_t i = 0; i < n; i++) {
                buf[2 + 2 * i] = (uint8_t) s[i];
                buf[3 + 2 * i] = 0;
        }
        return (int) (2 + 2 * n);
}
