/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The org.dfud1.Error.* names (protocol/dbus/dfud-dbus.h) and their errno, in one table given to
 * sd-bus (sd_bus_error_add_map), so both sides can use sd_bus_error_get_errno(). */

#include <systemd/sd-bus.h>

extern const sd_bus_error_map dfud_bus_error_map[];

/* Register the table once per process. */
int bus_errors_register(void);
/* A named error for an errno from our own code, e.g. -EBUSY -> org.dfud1.Error.Busy. */
int bus_error_set_errnof(sd_bus_error *error, int r, const char *format, ...) _sd_printf_(3, 4);
