/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "dfu.h"
#include "usb-desc.h"

#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_INTERFACE 0x04
#define USB_CLASS_COMM 0x02
#define USB_CDC_SUBCLASS_ACM 0x02

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

int usb_desc_parse(const uint8_t *buf, size_t size, UsbDescInfo *ret) {
        UsbDescInfo info = {};
        bool in_dfu = false;

        if (size < 18 || buf[0] < 18 || buf[1] != USB_DT_DEVICE)
                return -EBADMSG;
        info.vendor_id = le16(buf + 8);
        info.product_id = le16(buf + 10);
        info.bcd_device = le16(buf + 12);
        info.i_serial = buf[16];

        /* then descriptors, each led by bLength and bDescriptorType */
        for (size_t off = buf[0]; off < size;) {
                const uint8_t *d = buf + off;
                size_t left = size - off;
                if (left < 2 || d[0] < 2 || d[0] > left)
                        return -EBADMSG;
                uint8_t len = d[0], type = d[1];

                if (type == USB_DT_INTERFACE) {
                        if (len < 9)
                                return -EBADMSG;
                        uint8_t number = d[2], alt = d[3], cls = d[5], sub = d[6], proto = d[7], istr = d[8];
                        in_dfu = false;
                        if (cls == USB_CLASS_COMM && sub == USB_CDC_SUBCLASS_ACM)
                                info.has_cdc_acm = true;
                        if (cls == DFU_INTERFACE_CLASS && sub == DFU_INTERFACE_SUBCLASS &&
                            (proto == DFU_PROTOCOL_RUNTIME || proto == DFU_PROTOCOL_DFU_MODE) &&
                            (!info.has_dfu || info.dfu_interface == number)) {
                                in_dfu = true;
                                info.has_dfu = true;
                                info.dfu_interface = number;
                                info.dfu_runtime = proto == DFU_PROTOCOL_RUNTIME;
                                if (alt < DFU_MAX_ALTS) {
                                        info.alt_string[alt] = istr;
                                        if (alt + 1 > info.n_alts)
                                                info.n_alts = alt + 1;
                                }
                        }
                } else if (type == DFU_FUNCTIONAL_DESCRIPTOR_TYPE && in_dfu && !info.has_functional) {
                        DfuFunctionalDescriptor f;
                        if (dfu_functional_descriptor_find(d, len, &f) >= 0) {
                                info.functional = f;
                                info.has_functional = true;
                        }
                }
                off += len;
        }

        *ret = info;
        return 0;
}
