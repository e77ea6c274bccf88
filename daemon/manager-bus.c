/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>

#include "config.h"
#include "dfud-dbus.h"
#include "manager.h"

/* Resolve what a caller typed (id, serial or port path) to a Device. */
static int lookup_device(Manager *m, const char *key, Device **ret, sd_bus_error *error) {
        int r = registry_lookup(m->registry, key, ret);
        if (r == -ENOTUNIQ)
                return sd_bus_error_setf(error, DFUD_ERROR_DEVICE_NOT_FOUND,
                                         isempty(key) ? "Several devices are connected; name one."
                                                      : "'%s' matches several devices; use the device id.",
                                         key);
        if (r < 0)
                return sd_bus_error_setf(error, DFUD_ERROR_DEVICE_NOT_FOUND,
                                         isempty(key) ? "No device is connected." : "No device '%s'.", key);
        return 0;
}

static int method_update(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *key;
        Device *d;
        int r;

        r = sd_bus_message_read(msg, "s", &key);
        if (r < 0)
                return r;
        r = lookup_device(m, key, &d, error);
        if (r < 0)
                return r;
        return manager_method_update(m, msg, d, error);
}

static int method_list_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssqqso)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->registry->n_devices; i++) {
                Device *d = m->registry->devices[i];
                _cleanup_free_ char *path = NULL;
                const char *serial;
                uint16_t vid, pid;

                r = manager_device_path(d, &path);
                if (r < 0)
                        return r;
                device_bus_ids(d, &vid, &pid, &serial);
                r = sd_bus_message_append(reply, "(sssqqso)", d->id, device_mode_to_string(d->mode),
                                          strempty(serial), vid, pid, strempty(d->port), path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_jobs(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tossu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                char path[64];
                manager_job_path(j->id, path);
                r = sd_bus_message_append(reply, "(tossu)", j->id, path, j->device_id,
                                          job_state_to_string(j->state), (uint32_t) j->progress);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        Manager *m = userdata;
        const char *key;
        Device *d;
        int r;

        r = sd_bus_message_read(msg, "s", &key);
        if (r < 0)
                return r;
        r = lookup_device(m, key, &d, error);
        if (r < 0)
                return r;
        r = manager_device_path(d, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_version(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(msg, "s", PACKAGE_VERSION);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

/* Every method is UNPRIVILEGED for sd-bus: reading is open to anyone the D-Bus policy lets in, and
 * the mutating ones ask polkit themselves. */
/* clang-format off */
const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("DaemonVersion", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Update",
                                SD_BUS_ARGS("s", device, "h", firmware, "a{sv}", options),
                                SD_BUS_RESULT("t", id, "o", job),
                                method_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListDevices",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssqqso)", devices),
                                method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListJobs",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(tossu)", jobs),
                                method_list_jobs, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDevice",
                                SD_BUS_ARGS("s", device),
                                SD_BUS_RESULT("o", path),
                                method_get_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Version",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("s", version),
                                method_version, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("JobRemoved", SD_BUS_ARGS("t", id, "o", job, "s", result), 0),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

int manager_bus_register(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, manager_vtable, m);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(bus, NULL, DFUD_OBJECT_ROOT);
}

int manager_bus_emit_job_removed(Manager *m, Job *j) {
        const char *result;
        char path[64];

        if (!m->bus || manager_job_result(j, &result) < 0)
                return 0;
        manager_job_path(j->id, path);
        return sd_bus_emit_signal(m->bus, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "JobRemoved", "tos",
                                  j->id, path, result);
}
