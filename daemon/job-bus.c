/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>

#include "dfud-dbus.h"
#include "manager.h"

static int job_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                    sd_bus_error *error) {
        Manager *m = userdata;
        const char *e = startswith(path, DFUD_OBJECT_JOB_PREFIX "/");
        char *end;
        uint64_t id;
        Job *j;

        /* digits only: no sign, no spaces, no leading zero, not 0 */
        if (!e || !*e || *e < '1' || *e > '9' || strspn(e, "0123456789") != strlen(e))
                return 0;
        errno = 0;
        id = strtoull(e, &end, 10);
        if (errno != 0 || *end)
                return 0;
        j = manager_get_job(m, id);
        if (!j)
                return 0;
        *found = j;
        return 1;
}

static int job_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = calloc(m->n_jobs + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_jobs; i++) {
                char p[64];
                manager_job_path(m->jobs[i]->id, p);
                if (!(l[i] = strdup(p))) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 0;
}

#define JOB_GETTER(name)                                                                            \
        static int name(sd_bus *bus, const char *path, const char *interface, const char *property, \
                        sd_bus_message *reply, void *userdata, sd_bus_error *error)

JOB_GETTER(property_get_id) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "t", j->id);
}

JOB_GETTER(property_get_device) {
        _cleanup_free_ char *p = NULL;
        Job *j = userdata;
        int r = sd_bus_path_encode(DFUD_OBJECT_DEVICE_PREFIX, j->device_id, &p);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "o", p);
}

JOB_GETTER(property_get_device_id) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", j->device_id);
}

JOB_GETTER(property_get_state) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", job_state_to_string(j->state));
}

JOB_GETTER(property_get_progress) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) j->progress);
}

JOB_GETTER(property_get_bytes_done) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "t", j->bytes_done);
}

JOB_GETTER(property_get_bytes_total) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "t", j->bytes_total);
}

JOB_GETTER(property_get_error_name) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", strempty(j->error_name));
}

JOB_GETTER(property_get_error_message) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "s", strempty(j->error_message));
}

JOB_GETTER(property_get_created) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "t", j->created);
}

JOB_GETTER(property_get_finished) {
        Job *j = userdata;
        return sd_bus_message_append(reply, "t", j->finished);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        JobRuntime *rt = j->userdata;
        return manager_method_cancel(rt->manager, msg, j, error);
}

/* (CLOCK_REALTIME usec, line), oldest first: the DFU exchange and the daemon's events. */
static int method_get_log(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Job *j = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ts)");
        if (r < 0)
                return r;
        if (j->log_dropped > 0) {
                char line[96];
                const JobLogLine *first = job_log_get(j, 0);
                snprintf(line, sizeof line, "(%" PRIu64 " earlier lines dropped)", j->log_dropped);
                r = sd_bus_message_append(reply, "(ts)", first ? first->usec : 0, line);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < j->n_log; i++) {
                const JobLogLine *l = job_log_get(j, i);
                r = sd_bus_message_append(reply, "(ts)", l->usec, l->text);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* clang-format off */
const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", property_get_device, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceId", "s", property_get_device_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "u", property_get_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesDone", "t", property_get_bytes_done, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", property_get_bytes_total, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ErrorName", "s", property_get_error_name, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ErrorMessage", "s", property_get_error_message, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Created", "t", property_get_created, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Finished", "t", property_get_finished, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetLog",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ts)", lines),
                                method_get_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

int job_bus_register(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_fallback_vtable(bus, NULL, DFUD_OBJECT_JOB_PREFIX, DFUD_INTERFACE_JOB, job_vtable,
                                       job_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, DFUD_OBJECT_JOB_PREFIX, job_enumerate, m);
}
