/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libusb without its own device discovery (udev is the only hotplug source): the daemon opens the
 * usbfs node udev names and wraps it (libusb_wrap_sys_device). Everything is asynchronous. This
 * module does not know the event loop: it reports the fds libusb wants watched and is dispatched
 * by its owner (manager.c). libusb errors become negative errno here, once. */

#include <stdbool.h>
#include <stdint.h>

#include "macro-util.h"
#include "transport.h"

typedef struct UsbContext UsbContext;
typedef struct UsbDevice UsbDevice;

typedef void (*UsbFdAddedFunc)(int fd, short events, void *userdata);
typedef void (*UsbFdRemovedFunc)(int fd, void *userdata);

int usb_error_to_errno(int e);

int usb_context_new(UsbContext **ret);
UsbContext *usb_context_free(UsbContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbContext *, usb_context_free);

/* Calls added() for every current fd, then for every change (libusb_set_pollfd_notifiers). */
int usb_context_watch(UsbContext *c, UsbFdAddedFunc added, UsbFdRemovedFunc removed, void *userdata);
/* false on Linux with timerfd: libusb's fds cover its timeouts too. Otherwise the owner arms a
 * timer for usb_context_get_timeout() (relative usec; USEC_INFINITY for none). */
bool usb_context_needs_timer(UsbContext *c);
uint64_t usb_context_get_timeout(UsbContext *c);
/* Handle whatever is ready, never waits. Completion callbacks run from here. */
int usb_context_dispatch(UsbContext *c);

int usb_device_open(UsbContext *c, const char *devnode, UsbDevice **ret);
/* Cancels what is in flight; no callback runs after this. The handle is released once libusb has
 * finished with the cancelled transfers. */
UsbDevice *usb_device_close(UsbDevice *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbDevice *, usb_device_close);
/* Claims the interface, detaching a kernel driver if one is bound (never cdc_acm: only DFU). */
int usb_device_claim(UsbDevice *d, uint8_t interface);
void usb_device_release(UsbDevice *d);
Transport usb_device_transport(UsbDevice *d);

typedef void (*UsbStringFunc)(int r, const char *s, void *userdata);
/* GET_DESCRIPTOR(STRING) asynchronously, as printable ASCII. Index 0 reads the language list
 * (the callback gets ""): do that first, later strings are asked in its first language. */
int usb_device_get_string(UsbDevice *d, uint8_t index, UsbStringFunc cb, void *userdata);
