/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfuctl watch: follows devices and jobs as dfud announces them (ObjectManager InterfacesAdded/Removed,
 * PropertiesChanged below /org/dfud1, Manager.JobRemoved, and dfud itself coming and going). One line per
 * event; with --json one JSON object per line (JSON Lines). Runs until SIGINT/SIGTERM. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "bus-util.h"
#include "dfud-dbus.h"
#include "dfuctl.h"
#include "format.h"

#define WATCH_MAX_OBJECTS 4096
#define JSON_FLAGS_ONE_LINE (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MATCH_PROPERTIES_CHANGED                                                                        \
        "type='signal',sender='" DFUD_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"       \
        "member='PropertiesChanged',path_namespace='" DFUD_OBJECT_ROOT "'"

typedef enum ObjectKind {
        OBJECT_UNKNOWN,
        OBJECT_DEVICE,
        OBJECT_JOB,
} ObjectKind;

/* What watch remembers of an object: a label for removal lines, and a job's progress so partial
 * PropertiesChanged can be printed whole. */
typedef struct Object {
        char *path;
        ObjectKind kind;
        char *label;
        char *state;
        uint32_t progress;
        uint64_t bytes_done;
        uint64_t bytes_total;
        ProgressPlain plain;
} Object;

typedef struct Watch {
        sd_bus *bus;
        const Args *args;
        Object *objects;
        size_t n_objects;
} Watch;

static void object_done(Object *o) {
        free(o->path);
        free(o->label);
        free(o->state);
}

static ObjectKind kind_from_interface(const char *iface) {
        if (streq_ptr(iface, DFUD_INTERFACE_DEVICE))
                return OBJECT_DEVICE;
        if (streq_ptr(iface, DFUD_INTERFACE_JOB))
                return OBJECT_JOB;
        return OBJECT_UNKNOWN;
}

static ObjectKind kind_from_path(const char *path) {
        const char *p;

        if ((p = startswith(path, DFUD_OBJECT_DEVICE_PREFIX)) && *p == '/')
                return OBJECT_DEVICE;
        if ((p = startswith(path, DFUD_OBJECT_JOB_PREFIX)) && *p == '/')
                return OBJECT_JOB;
        return OBJECT_UNKNOWN;
}

static const char *kind_to_string(ObjectKind k) {
        return k == OBJECT_DEVICE ? "device" : k == OBJECT_JOB ? "job" : "object";
}

static Object *watch_find(Watch *w, const char *path) {
        for (size_t i = 0; i < w->n_objects; i++)
                if (streq(w->objects[i].path, path))
                        return &w->objects[i];
        return NULL;
}

static void watch_forget(Watch *w, const char *path) {
        Object *o = watch_find(w, path);

        if (!o)
                return;
        object_done(o);
        *o = w->objects[--w->n_objects];
}

/* Takes the label (device id, job id) and a job's progress from properties as JSON. */
static void object_update(Object *o, json_object *props) {
        json_object *v;

        if (json_object_object_get_ex(props, "id", &v)) {
                free(o->label);
                o->label = strdup(json_object_get_string(v));
        }
        if (json_object_object_get_ex(props, "state", &v)) {
                free(o->state);
                o->state = strdup(json_object_get_string(v));
        }
        if (json_object_object_get_ex(props, "progress", &v))
                o->progress = (uint32_t) json_object_get_uint64(v);
        if (json_object_object_get_ex(props, "bytes_done", &v))
                o->bytes_done = json_object_get_uint64(v);
        if (json_object_object_get_ex(props, "bytes_total", &v))
                o->bytes_total = json_object_get_uint64(v);
}

static Object *watch_add(Watch *w, const char *path, ObjectKind kind) {
        Object *o = watch_find(w, path), *p;

        if (o) {
                if (kind != OBJECT_UNKNOWN)
                        o->kind = kind;
                return o;
        }
        if (w->n_objects >= WATCH_MAX_OBJECTS)
                return NULL;
        p = reallocarray(w->objects, w->n_objects + 1, sizeof(Object));
        if (!p)
                return NULL;
        w->objects = p;
        o = &w->objects[w->n_objects];
        *o = (Object) { .path = strdup(path), .kind = kind != OBJECT_UNKNOWN ? kind : kind_from_path(path) };
        if (!o->path)
                return NULL;
        progress_plain_reset(&o->plain);
        w->n_objects++;
        return o;
}

/* An object seen first through PropertiesChanged: ask for the rest, so the lines can name it. */
static Object *watch_learn(Watch *w, const char *path, ObjectKind kind) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *props = NULL;
        Object *o = watch_find(w, path);

        if (o)
                return o;
        o = watch_add(w, path, kind);
        if (!o || o->kind == OBJECT_UNKNOWN)
                return o;
        if (bus_get_all_json(w->bus, path,
                             o->kind == OBJECT_DEVICE ? DFUD_INTERFACE_DEVICE : DFUD_INTERFACE_JOB, &props,
                             &error) >= 0) {
                object_update(o, props);
                if (o->kind == OBJECT_JOB)
                        /* so the next PropertiesChanged prints only what is new */
                        (void) progress_plain_step(&o->plain, o->state, progress_percent(o->bytes_done,
                                                                                         o->bytes_total,
                                                                                         o->progress));
        }
        return o;
}

static const char *object_label(const Object *o, const char *path) {
        return o && o->label ? o->label : path;
}

static void print_line(const char *fmt, ...) _printf_(1, 2);
static void print_line(const char *fmt, ...) {
        _cleanup_free_ char *text = NULL, *clean = NULL;
        char stamp[16] = "";
        time_t now = time(NULL);
        struct tm tm;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        if (!text)
                return;
        clean = string_sanitize(text);
        if (localtime_r(&now, &tm))
                strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
        printf("%s  %s\n", stamp, clean ?: "?");
        fflush(stdout);
}

static void print_event(const char *event, const char *path, json_object *props, json_object *extra) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        struct timespec ts;

        if (!o)
                return;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        json_object_object_add(o, "timestamp",
                               json_object_new_uint64((uint64_t) ts.tv_sec * USEC_PER_SEC +
                                                      (uint64_t) ts.tv_nsec / 1000));
        json_object_object_add(o, "event", json_object_new_string(event));
        if (path)
                json_object_object_add(o, "object_path", json_object_new_string(path));
        if (props)
                json_object_object_add(o, "properties", json_object_get(props));
        if (extra) {
                json_object_object_foreach(extra, k, v)
                        json_object_object_add(o, k, json_object_get(v));
        }
        fprintf(stdout, "%s\n", json_object_to_json_string_ext(o, JSON_FLAGS_ONE_LINE));
        fflush(stdout);
}

/* "mode=dfu, firmware_version=2.0" */
static char *format_changes(json_object *props, bool skip_progress) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        bool first = true;

        if (!f)
                return NULL;
        json_object_object_foreach(props, k, v) {
                if (skip_progress && (streq(k, "state") || streq(k, "progress") || streq(k, "bytes_done") ||
                                      streq(k, "bytes_total")))
                        continue;
                if (json_object_is_type(v, json_type_string))
                        fprintf(f, "%s%s=%s", first ? "" : ", ", k, json_object_get_string(v));
                else
                        fprintf(f, "%s%s=%s", first ? "" : ", ", k,
                                json_object_to_json_string_ext(v, JSON_FLAGS_ONE_LINE));
                first = false;
        }
        if (fclose(f) != 0)
                return mfree(buf);
        return buf;
}

static void print_device_summary(const char *what, const Object *o, json_object *props) {
        print_line("device %s %s (%s, %04" PRIx64 ":%04" PRIx64 "%s%s)", what, object_label(o, o->path),
                   json_get_string(props, "mode"), json_get_u64(props, "vendor_id"),
                   json_get_u64(props, "product_id"), *json_get_string(props, "serial") ? ", serial " : "",
                   json_get_string(props, "serial"));
}

static void print_job_progress(Object *o, bool force) {
        unsigned percent = progress_percent(o->bytes_done, o->bytes_total, o->progress);
        char line[256];

        if (!progress_plain_step(&o->plain, o->state, percent) && !force)
                return;
        print_line("job %s: %s", object_label(o, o->path),
                   format_progress_line(line, sizeof(line), o->state ?: "?", percent, o->bytes_done,
                                        o->bytes_total, -1));
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Watch *w = userdata;
        const char *path;
        int r;

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0)
                return 0;
        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}");
        if (r < 0)
                return 0;
        while (sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}") > 0) {
                _cleanup_(json_object_putp) json_object *props = NULL;
                const char *iface;
                ObjectKind kind;
                Object *o;

                if (sd_bus_message_read(m, "s", &iface) < 0 || json_from_properties(m, &props) < 0)
                        return 0;
                (void) sd_bus_message_exit_container(m);

                kind = kind_from_interface(iface);
                if (kind == OBJECT_UNKNOWN)
                        continue;
                if (kind == OBJECT_DEVICE)
                        device_json_fixup(props);
                o = watch_add(w, path, kind);
                if (!o)
                        continue;
                object_update(o, props);

                if (w->args->json)
                        print_event(kind == OBJECT_DEVICE ? "device-added" : "job-added", path, props, NULL);
                else if (kind == OBJECT_DEVICE)
                        print_device_summary("added", o, props);
                else {
                        print_line("job %s added for %s", object_label(o, path),
                                   json_get_string(props, "device_id"));
                        print_job_progress(o, false);
                }
        }
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Watch *w = userdata;
        const char *path, *iface;
        ObjectKind kind = OBJECT_UNKNOWN;
        Object *o;
        int r;

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0)
                return 0;
        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s");
        if (r < 0)
                return 0;
        while (sd_bus_message_read(m, "s", &iface) > 0)
                if (kind_from_interface(iface) != OBJECT_UNKNOWN)
                        kind = kind_from_interface(iface);
        if (kind == OBJECT_UNKNOWN)
                return 0;

        o = watch_find(w, path);
        if (w->args->json)
                print_event(kind == OBJECT_DEVICE ? "device-removed" : "job-object-removed", path, NULL,
                            NULL);
        else if (kind == OBJECT_DEVICE)
                print_line("device removed %s", object_label(o, path));
        /* a job's end was already printed from JobRemoved */
        watch_forget(w, path);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *props = NULL;
        _cleanup_free_ char *changes = NULL;
        Watch *w = userdata;
        const char *path = sd_bus_message_get_path(m), *iface;
        ObjectKind kind;
        Object *o;

        if (!path || sd_bus_message_read(m, "s", &iface) < 0)
                return 0;
        kind = kind_from_interface(iface);
        if (kind == OBJECT_UNKNOWN || json_from_properties(m, &props) < 0)
                return 0;
        if (kind == OBJECT_DEVICE)
                device_json_fixup(props);

        if (w->args->json) {
                print_event(kind == OBJECT_DEVICE ? "device-changed" : "job-changed", path, props, NULL);
                o = watch_add(w, path, kind);
                if (o)
                        object_update(o, props);
                return 0;
        }

        o = watch_learn(w, path, kind);
        if (!o)
                return 0;
        object_update(o, props);

        changes = format_changes(props, kind == OBJECT_JOB);
        if (kind == OBJECT_JOB)
                print_job_progress(o, false);
        if (changes && *changes)
                print_line("%s %s: %s", kind_to_string(kind), object_label(o, path), changes);
        return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Watch *w = userdata;
        const char *path, *result;
        uint64_t id;

        if (sd_bus_message_read(m, "tos", &id, &path, &result) < 0)
                return 0;

        if (w->args->json) {
                _cleanup_(json_object_putp) json_object *extra = json_object_new_object();

                if (!extra)
                        return 0;
                json_object_object_add(extra, "id", json_object_new_uint64(id));
                json_object_object_add(extra, "result", json_object_new_string(result));
                print_event("job-removed", path, NULL, extra);
        } else
                print_line("job %" PRIu64 " finished: %s", id, result);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Watch *w = userdata;
        const char *name, *old_owner, *new_owner;
        const char *event;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        event = *new_owner ? "daemon-started" : "daemon-stopped";
        if (w->args->json)
                print_event(event, NULL, NULL, NULL);
        else
                print_line("dfud %s", *new_owner ? "started" : "stopped");
        if (!*new_owner)
                while (w->n_objects > 0)
                        watch_forget(w, w->objects[0].path);
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int verb_watch(sd_bus *bus, const Args *args) {
        sd_event *event = NULL;
        Watch w = { .bus = bus, .args = args };
        int r;

        /* Installed synchronously: when the "Watching" line is out, no event can be missed. */
        r = sd_bus_match_signal(bus, NULL, DFUD_BUS_NAME, NULL, "org.freedesktop.DBus.ObjectManager",
                                "InterfacesAdded", on_interfaces_added, &w);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, DFUD_BUS_NAME, NULL, "org.freedesktop.DBus.ObjectManager",
                                        "InterfacesRemoved", on_interfaces_removed, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL, MATCH_PROPERTIES_CHANGED, on_properties_changed, &w);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, DFUD_BUS_NAME, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER,
                                        "JobRemoved", on_job_removed, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL, MATCH_DFUD_OWNER, on_name_owner_changed, &w);
        if (r < 0) {
                log_bus_error(NULL, r, "Failed to subscribe to dfud's signals");
                return DFUCTL_EXIT_FAILURE;
        }

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = event_add_signals(event, on_exit_signal, NULL);
        if (r < 0) {
                log_bus_error(NULL, r, "Failed to set up the event loop");
                sd_event_unref(event);
                return DFUCTL_EXIT_FAILURE;
        }
        (void) sd_bus_set_exit_on_disconnect(bus, true);

        if (!args->json)
                fprintf(stderr, "Watching dfud's devices and jobs; press Ctrl-C to stop.\n");
        else
                fprintf(stderr, "Watching.\n");

        r = sd_event_loop(event);

        (void) sd_bus_detach_event(bus);
        sd_event_unref(event);
        while (w.n_objects > 0)
                watch_forget(&w, w.objects[0].path);
        free(w.objects);
        if (r != 0) {
                fprintf(stderr, "dfuctl: Lost the connection to the bus.\n");
                return DFUCTL_EXIT_FAILURE;
        }
        return 0;
}
