/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The verbs of dfuctl. Each returns the process exit code (0, DFUCTL_EXIT_FAILURE) and prints its own
 * errors. */

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "args.h"

int verb_update(sd_bus *bus, const Args *args);
int verb_watch(sd_bus *bus, const Args *args);

/* Turns a device's "memory" (a(sttus) as arrays) into objects with the keys name, address, size, alt and
 * layout, for --json and info. */
void device_json_fixup(json_object *device);

/* Sets up SIGINT/SIGTERM as sd-event sources (blocked first, as sd-event requires). */
int event_add_signals(sd_event *event, sd_event_signal_handler_t handler, void *userdata);

/* Monotonic now in µs. */
uint64_t now_usec(void);
