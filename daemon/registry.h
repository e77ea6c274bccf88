/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device registry: which Device a USB enumeration belongs to. The application and the
 * bootloader of one board come and go under different ids, so a Device is matched, in order, by
 *   1. the same sysfs device (a repeated "add" is a no-op),
 *   2. a re-enumeration we caused ourselves (jump, leave) on the port we expect it on,
 *   3. a known incarnation with the same VID/PID/serial, or the same serial in the other mode,
 *   4. the port path, for an absent device that has not been seen in this mode (or has no serial).
 * Matches learn the incarnation, so the pairing persists (devices.json in the state directory). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "device.h"

#define REGISTRY_FILE "devices.json"
#define REGISTRY_MAX_DEVICES 4096

typedef struct Registry {
        Device **devices;
        size_t n_devices;
} Registry;

int registry_new(Registry **ret);
Registry *registry_free(Registry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Registry *, registry_free);

Device *registry_get(const Registry *r, const char *id);
Device *registry_get_by_syspath(const Registry *r, const char *syspath);
/* What a user typed: an id, a serial (either mode) or a port path. Empty: the only device there
 * is. NULL with -ENXIO (unknown) or -ENOTUNIQ (ambiguous). */
int registry_lookup(const Registry *r, const char *key, Device **ret);

/* The Device this enumeration is, or NULL for a board never seen. */
Device *registry_match(const Registry *r, const UsbInfo *u, uint64_t now_monotonic);
/* A new Device for u (not attached yet), with a fresh unique id derived from its serial or port. */
int registry_add_for(Registry *r, const UsbInfo *u, Device **ret);
int registry_add(Registry *r, Device *d);     /* takes ownership */
void registry_remove(Registry *r, Device *d); /* does not free */

/* devices.json <-> registry. Parsing failures give -EBADMSG and *ret_error. */
int registry_to_json(const Registry *r, json_object **ret);
int registry_from_json(Registry *r, json_object *o, char **ret_error);
int registry_save(const Registry *r, int dir_fd);
int registry_load(Registry *r, int dir_fd, char **ret_error);
