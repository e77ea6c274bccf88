/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The udev side: a monitor for usb/usb_device and tty, enabled before the initial enumeration so
 * nothing falls between the two (a device seen twice is fine: "add" is idempotent upstream).
 * Turns udev devices into UsbInfo. Knows no event loop: the owner polls udev_watch_get_fd() and
 * calls udev_watch_dispatch(). */

#include <libudev.h>

#include "device.h"

typedef enum UdevAction {
        UDEV_ACTION_ADD, /* add, change, bind, and every device found by the enumeration */
        UDEV_ACTION_REMOVE,
} UdevAction;

typedef struct UdevEvent {
        UdevAction action;
        const char *syspath;
        /* usb_device: the parsed enumeration (NULL on remove or if it cannot be read) */
        const UsbInfo *usb;
        /* tty: its device node and the syspath of the usb_device it belongs to */
        const char *tty_devnode;
        const char *tty_parent;
} UdevEvent;

typedef void (*UdevWatchFunc)(const UdevEvent *ev, void *userdata);

typedef struct UdevWatch UdevWatch;

int udev_watch_new(UdevWatchFunc cb, void *userdata, UdevWatch **ret);
UdevWatch *udev_watch_free(UdevWatch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(UdevWatch *, udev_watch_free);
int udev_watch_get_fd(UdevWatch *w);
int udev_watch_dispatch(UdevWatch *w);
/* Report every initialized usb_device, then every tty, as "add". */
int udev_watch_enumerate(UdevWatch *w);

/* For tests and the monitor: UsbInfo from a udev device. -ENODATA if it has no descriptors. */
int usb_info_from_udev(struct udev_device *d, UsbInfo **ret);
