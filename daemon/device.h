/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A Device is one board, whatever it currently enumerates as: its application (CDC ACM and/or DFU
 * runtime) and its bootloader (DFU mode) are two incarnations of the same Device object. The
 * registry (registry.h) decides which Device a new USB device is. Non-logging, no event loop. */

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "dfuse-layout.h"
#include "macro-util.h"
#include "usb-desc.h"

typedef enum DeviceMode {
        DEVICE_MODE_APPLICATION,
        DEVICE_MODE_DFU,
        DEVICE_MODE_ABSENT,
        _DEVICE_MODE_MAX,
        _DEVICE_MODE_INVALID = -EINVAL,
} DeviceMode;

const char *device_mode_to_string(DeviceMode m);
DeviceMode device_mode_from_string(const char *s);

/* One enumeration of a USB device as udev reports it. */
typedef struct UsbInfo {
        char *syspath;
        char *port;    /* the sysname: bus-port path "1-1.2", stable for a physical socket */
        char *devnode; /* /dev/bus/usb/BBB/DDD */
        char *serial, *manufacturer, *product;
        UsbDescInfo desc; /* ids, bcdDevice, DFU and CDC interfaces */
} UsbInfo;

UsbInfo *usb_info_free(UsbInfo *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbInfo *, usb_info_free);
int usb_info_copy(const UsbInfo *u, UsbInfo **ret);
/* DFU mode = a DFU interface with protocol 2; everything else we watch is the application. */
DeviceMode usb_info_mode(const UsbInfo *u);

/* What a Device looks like in one mode: learned when it is seen, persisted (registry.c). */
typedef struct Incarnation {
        bool known;
        uint16_t vendor_id, product_id;
        char *serial; /* NULL: the device has none */
} Incarnation;

typedef struct Device {
        char *id; /* stable: the object path label and what dfuctl names */
        DeviceMode mode;
        Incarnation app, dfu;
        char *port; /* last port seen */
        char *product;
        bool has_version;
        uint16_t app_bcd;            /* bcdDevice of the application, the firmware version */
        char *layouts[DFU_MAX_ALTS]; /* alt strings, learned in DFU mode (persisted) */
        size_t n_layouts;
        char *health;
        uint64_t last_seen; /* CLOCK_REALTIME usec */
        char *last_error;   /* last failed update, for Health */

        /* present state (not persisted) */
        UsbInfo *usb;
        char *tty;   /* devnode of the CDC ACM tty, if any */
        bool probed; /* DFU mode: alt strings read, layouts current */
        bool read_protected;

        /* the next enumeration on this port is this device whatever its ids (we made it jump) */
        char *expect_port;
        uint64_t expect_until; /* CLOCK_MONOTONIC usec */

        uint64_t current_job; /* 0 = none */
        void *userdata;       /* the manager's per-device data (bus emitter, USB handle) */
} Device;

int device_new(const char *id, Device **ret);
Device *device_free(Device *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Device *, device_free);

/* The incarnation for mode (app for APPLICATION, dfu for DFU). */
Incarnation *device_incarnation(Device *d, DeviceMode mode);
int incarnation_set(Incarnation *i, uint16_t vid, uint16_t pid, const char *serial);
bool incarnation_equal(const Incarnation *i, uint16_t vid, uint16_t pid, const char *serial);

/* Bind the current USB enumeration to this device: learns the incarnation, port, product and
 * (application) version. Takes ownership of u. Returns 1 if a property visible on the bus changed. */
int device_attach(Device *d, UsbInfo *u, uint64_t now_realtime);
/* The device went away. Returns 1 if it was present. */
int device_detach(Device *d, uint64_t now_realtime);

int device_set_layouts(Device *d, char *const *layouts, size_t n);
int device_set_tty(Device *d, const char *tty);
/* "1.02" from the application's bcdDevice, or "" if never seen in application mode. */
void device_firmware_version(const Device *d, char ret[8]);
/* The (vid, pid) a firmware file's DFU suffix may name for this board: its application's and its
 * bootloader's; a board not seen in DFU mode yet is expected back as the ST system bootloader. */
void device_suffix_ids(const Device *d, uint16_t ret[2][2]);

/* The STM32 system bootloader (ROM) every STM32 board can be started into. */
#define ST_ROM_VENDOR_ID 0x0483
#define ST_ROM_PRODUCT_ID 0xdf11
/* Recomputes the Health string from what we know; returns 1 if it changed. */
int device_update_health(Device *d, bool has_layouts);
int device_set_last_error(Device *d, const char *error);

/* The jump method in effect: "auto" resolved against what the application offers (DFU runtime
 * interface -> detach, else a CDC ACM tty -> 1200-baud), JUMP_NONE if there is none. */
JumpMethod device_jump_method(const Device *d, const DeviceSettings *s);

/* Parse the known layout strings (learned, else the configured defaults) into an array indexed
 * by alt. The caller frees each entry. Returns the number of alts, 0 if none is known. */
int device_get_layouts(const Device *d, const DeviceSettings *s, DfuseLayout **ret_layouts, size_t max);
