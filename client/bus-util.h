/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dfuctl's D-Bus helpers: connecting, error messages, and turning D-Bus values into json-c objects,
 * which are the one model both the tables and --json are printed from. */

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "args.h"
#include "dfud-dbus.h"
#include "macro.h"

/* sd-bus.h brings sd_bus_flush_close_unrefp, sd_bus_message_unrefp and friends. */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)
#define _cleanup_bus_error_ _cleanup_(sd_bus_error_free)

static inline void strv_freep(char ***p) {
        if (*p)
                for (char **s = *p; *s; s++)
                        free(*s);
        free(*p);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Signals of the bus driver about dfud's name: dfud starting and stopping. */
#define MATCH_DFUD_OWNER                                                                                \
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"                  \
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" DFUD_BUS_NAME "'"

/* Connects to the bus the arguments select; 0 or a negative errno. */
int bus_connect(const Args *args, sd_bus **ret);

/* Prints "dfuctl: <message> (<error name>)" when error is set, otherwise "dfuctl: <what>: <strerror>".
 * Returns r, or -EIO when r is not negative. */
_printf_(3, 4) int log_bus_error(const sd_bus_error *error, int r, const char *fmt, ...);

/* Reads the next complete value of m (any type) as JSON: integers as numbers, 'b' as booleans,
 * strings and object paths as strings, arrays as arrays, dicts as objects, structs as arrays. */
int json_from_message(sd_bus_message *m, json_object **ret);

/* Reads an a{sv} property dict as a JSON object keyed by the properties' snake_case names. */
int json_from_properties(sd_bus_message *m, json_object **ret);

/* Properties.GetAll(iface) of path as a JSON object (see json_from_properties), plus "object_path". */
int bus_get_all_json(sd_bus *bus, const char *path, const char *iface, json_object **ret,
                     sd_bus_error *error);

/* Skips the next complete value of any type. */
int bus_message_skip_value(sd_bus_message *m);

/* Calls a Manager method returning an array of structs (ListDevices, ListJobs) and returns the object
 * paths it names, in order. Only the field's type is relied on, so the other fields can grow. */
int bus_list_paths(sd_bus *bus, const char *method, char ***ret, sd_bus_error *error);

/* JSON helpers tolerant of missing keys: "" / 0 when absent or of another type. */
const char *json_get_string(json_object *o, const char *key);
uint64_t json_get_u64(json_object *o, const char *key);

/* Prints o and a newline: pretty on a terminal, one line otherwise (and always unescaped '/'). */
void json_print(json_object *o, FILE *f);
