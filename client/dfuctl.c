/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfuctl: the command line client of dfud. It only talks D-Bus (org.dfud1); it never opens a USB device.
 * Human output is printed from the same JSON objects that --json prints, so the two cannot disagree. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "args.h"
#include "bus-util.h"
#include "dfud-dbus.h"
#include "dfuctl.h"
#include "format.h"

uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

int event_add_signals(sd_event *event, sd_event_signal_handler_t handler, void *userdata) {
        sigset_t mask;
        int r;

        /* A shell starts background commands with SIGINT ignored, and an ignored signal never reaches a
         * signalfd: dfuctl handles both itself, so take the default disposition back. */
        (void) signal(SIGINT, SIG_DFL);
        (void) signal(SIGTERM, SIG_DFL);

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(event, NULL, SIGINT, handler, userdata);
        if (r < 0)
                return r;
        return sd_event_add_signal(event, NULL, SIGTERM, handler, userdata);
}

/* Device.Memory is a(sttus): one DfuSe alternate setting each (name, start, size, alt, layout string). */
static const char *const memory_keys[] = { "name", "address", "size", "alt", "layout" };

void device_json_fixup(json_object *device) {
        json_object *memory;

        if (!json_object_object_get_ex(device, "memory", &memory) ||
            !json_object_is_type(memory, json_type_array))
                return;

        for (size_t i = 0; i < json_object_array_length(memory); i++) {
                json_object *region = json_object_array_get_idx(memory, i), *named;

                if (!json_object_is_type(region, json_type_array) ||
                    json_object_array_length(region) != ELEMENTSOF(memory_keys))
                        continue;
                named = json_object_new_object();
                if (!named)
                        return;
                for (size_t k = 0; k < ELEMENTSOF(memory_keys); k++)
                        json_object_object_add(named, memory_keys[k],
                                               json_object_get(json_object_array_get_idx(region, k)));
                json_object_array_put_idx(memory, i, named);
        }
}

/* Fetches every object a List method names, as an array of property objects. Objects that vanish in
 * between (a device unplugged, a job finished) are left out. */
static int list_objects(sd_bus *bus, const char *method, const char *iface, json_object **ret) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *array = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        int r;

        r = bus_list_paths(bus, method, &paths, &error);
        if (r < 0)
                return log_bus_error(&error, r, "Failed to call %s()", method);

        array = json_object_new_array();
        if (!array)
                return log_bus_error(NULL, -ENOMEM, "Failed to list");
        for (char **p = paths; *p; p++) {
                _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
                json_object *o = NULL;

                r = bus_get_all_json(bus, *p, iface, &o, &e);
                if (r < 0) {
                        if (sd_bus_error_has_names(&e, SD_BUS_ERROR_UNKNOWN_OBJECT,
                                                   SD_BUS_ERROR_UNKNOWN_METHOD, DFUD_ERROR_DEVICE_NOT_FOUND,
                                                   DFUD_ERROR_JOB_NOT_FOUND))
                                continue;
                        return log_bus_error(&e, r, "Failed to read %s", *p);
                }
                if (streq(iface, DFUD_INTERFACE_DEVICE))
                        device_json_fixup(o);
                json_object_array_add(array, o);
        }

        *ret = TAKE_PTR(array);
        return 0;
}

static void format_usb_id(char *buf, size_t size, json_object *dev) {
        snprintf(buf, size, "%04" PRIx64 ":%04" PRIx64, json_get_u64(dev, "vendor_id"),
                 json_get_u64(dev, "product_id"));
}

static int verb_devices(sd_bus *bus, const Args *args) {
        _cleanup_(json_object_putp) json_object *devices = NULL;
        _cleanup_(table_freep) Table *t = NULL;

        if (list_objects(bus, "ListDevices", DFUD_INTERFACE_DEVICE, &devices) < 0)
                return DFUCTL_EXIT_FAILURE;

        if (args->json) {
                json_print(devices, stdout);
                return 0;
        }

        if (json_object_array_length(devices) == 0) {
                printf("No devices.\n");
                return 0;
        }

        t = table_new(8, (const char *const[]) { "ID", "MODE", "USB", "SERIAL", "PORT", "PRODUCT",
                                                 "FIRMWARE", "HEALTH" });
        if (!t)
                return log_bus_error(NULL, -ENOMEM, "Failed to format"), DFUCTL_EXIT_FAILURE;
        for (size_t i = 0; i < json_object_array_length(devices); i++) {
                json_object *d = json_object_array_get_idx(devices, i);
                char usb[16];

                format_usb_id(usb, sizeof(usb), d);
                const char *row[] = {
                        json_get_string(d, "id"),      json_get_string(d, "mode"),
                        usb,                           json_get_string(d, "serial"),
                        json_get_string(d, "port"),    json_get_string(d, "product"),
                        json_get_string(d, "firmware_version"),
                        json_get_string(d, "health"),
                };
                if (table_add_row(t, row) < 0)
                        return log_bus_error(NULL, -ENOMEM, "Failed to format"), DFUCTL_EXIT_FAILURE;
        }
        table_print(t, stdout);
        return 0;
}

/* Manager.GetDevice(): the daemon resolves an id, serial or port path. */
static int resolve_device(sd_bus *bus, const char *device, char **ret_path) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "GetDevice",
                               &error, &reply, "s", device);
        if (r < 0)
                return log_bus_error(&error, r, "Failed to look up device '%s'", device);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_bus_error(NULL, r, "Failed to parse GetDevice() reply");
        *ret_path = strdup(path);
        return *ret_path ? 0 : log_bus_error(NULL, -ENOMEM, "Failed to look up device");
}

static void print_field(const char *label, const char *value) {
        _cleanup_free_ char *clean = string_sanitize(value && *value ? value : "-");

        printf("%18s: %s\n", label, clean ?: "?");
}

static int verb_info(sd_bus *bus, const Args *args) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *dev = NULL;
        _cleanup_free_ char *path = NULL;
        json_object *memory;
        char buf[64];
        int r;

        if (resolve_device(bus, args->argv[0], &path) < 0)
                return DFUCTL_EXIT_FAILURE;
        r = bus_get_all_json(bus, path, DFUD_INTERFACE_DEVICE, &dev, &error);
        if (r < 0)
                return log_bus_error(&error, r, "Failed to read %s", path), DFUCTL_EXIT_FAILURE;
        device_json_fixup(dev);

        if (args->json) {
                json_print(dev, stdout);
                return 0;
        }

        print_field("Id", json_get_string(dev, "id"));
        print_field("Mode", json_get_string(dev, "mode"));
        format_usb_id(buf, sizeof(buf), dev);
        print_field("USB ID", buf);
        print_field("Product", json_get_string(dev, "product"));
        print_field("Serial", json_get_string(dev, "serial"));
        print_field("Port", json_get_string(dev, "port"));
        print_field("Firmware version", json_get_string(dev, "firmware_version"));
        print_field("Health", json_get_string(dev, "health"));
        print_field("Last seen", format_timestamp(buf, sizeof(buf), json_get_u64(dev, "last_seen")));
        const char *job = json_get_string(dev, "current_job");
        print_field("Current job", streq(job, "/") ? "" : job);
        print_field("Object path", path);

        if (json_object_object_get_ex(dev, "memory", &memory) &&
            json_object_is_type(memory, json_type_array))
                for (size_t i = 0; i < json_object_array_length(memory); i++) {
                        json_object *m = json_object_array_get_idx(memory, i);
                        char line[1024], size[32];

                        snprintf(line, sizeof(line), "%s at 0x%08" PRIx64 ", %s (alt %" PRIu64 ")%s%s",
                                 json_get_string(m, "name"), json_get_u64(m, "address"),
                                 format_bytes(size, sizeof(size), json_get_u64(m, "size")),
                                 json_get_u64(m, "alt"), *json_get_string(m, "layout") ? ": " : "",
                                 json_get_string(m, "layout"));
                        print_field(i == 0 ? "Memory" : "", line);
                }
        return 0;
}

static int verb_jobs(sd_bus *bus, const Args *args) {
        _cleanup_(json_object_putp) json_object *jobs = NULL;
        _cleanup_(table_freep) Table *t = NULL;

        if (list_objects(bus, "ListJobs", DFUD_INTERFACE_JOB, &jobs) < 0)
                return DFUCTL_EXIT_FAILURE;

        if (args->json) {
                json_print(jobs, stdout);
                return 0;
        }

        if (json_object_array_length(jobs) == 0) {
                printf("No jobs.\n");
                return 0;
        }

        t = table_new(7, (const char *const[]) { "ID", "DEVICE", "STATE", "PROGRESS", "BYTES", "CREATED",
                                                 "ERROR" });
        if (!t)
                return log_bus_error(NULL, -ENOMEM, "Failed to format"), DFUCTL_EXIT_FAILURE;
        table_set_align_right(t, 0);
        table_set_align_right(t, 3);
        for (size_t i = 0; i < json_object_array_length(jobs); i++) {
                json_object *j = json_object_array_get_idx(jobs, i);
                uint64_t done = json_get_u64(j, "bytes_done"), total = json_get_u64(j, "bytes_total");
                char id[32], progress[16], bytes[64], created[64];

                snprintf(id, sizeof(id), "%" PRIu64, json_get_u64(j, "id"));
                snprintf(progress, sizeof(progress), "%u%%",
                         progress_percent(done, total, (unsigned) json_get_u64(j, "progress")));
                if (total > 0)
                        format_bytes_pair(bytes, sizeof(bytes), done, total);
                else
                        bytes[0] = 0;
                format_timestamp(created, sizeof(created), json_get_u64(j, "created"));
                const char *row[] = {
                        id, json_get_string(j, "device_id"), json_get_string(j, "state"), progress, bytes,
                        created, json_get_string(j, "error_name"),
                };
                if (table_add_row(t, row) < 0)
                        return log_bus_error(NULL, -ENOMEM, "Failed to format"), DFUCTL_EXIT_FAILURE;
        }
        table_print(t, stdout);
        return 0;
}

/* A JOB argument is a job id (or a job object path). The path comes from ListJobs (first 't' = id,
 * first 'o' = path); a job that is no longer listed is tried under the job prefix. */
static int resolve_job(sd_bus *bus, const char *arg, uint64_t *ret_id, char **ret_path) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *contents;
        char *end = NULL;
        uint64_t id;
        int r;

        if (arg[0] == '/') {
                if (!sd_bus_object_path_is_valid(arg)) {
                        fprintf(stderr, "dfuctl: invalid job object path '%s'\n", arg);
                        return -EINVAL;
                }
                *ret_id = 0;
                *ret_path = strdup(arg);
                return *ret_path ? 0 : -ENOMEM;
        }

        errno = 0;
        id = strtoull(arg, &end, 10);
        if (errno != 0 || !end || *end || arg[0] == '-' || arg[0] == '+' || !arg[0] || id == 0) {
                fprintf(stderr, "dfuctl: invalid job id '%s'\n", arg);
                return -EINVAL;
        }

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "ListJobs",
                               &error, &reply, NULL);
        if (r < 0)
                return log_bus_error(&error, r, "Failed to call ListJobs()");

        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, NULL);
        if (r < 0)
                return log_bus_error(NULL, r, "Failed to parse ListJobs() reply");
        /* (peek first: entering with NULL contents fails with -ENXIO at the end of the array) */
        while ((r = sd_bus_message_peek_type(reply, NULL, &contents)) > 0) {
                uint64_t this_id = 0;
                const char *path = NULL;
                bool have_id = false;
                char type;

                r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_STRUCT, contents);
                if (r < 0)
                        return log_bus_error(NULL, r, "Failed to parse ListJobs() reply");
                while ((r = sd_bus_message_peek_type(reply, &type, NULL)) > 0) {
                        if (type == SD_BUS_TYPE_UINT64 && !have_id) {
                                r = sd_bus_message_read_basic(reply, type, &this_id);
                                have_id = true;
                        } else if (type == SD_BUS_TYPE_OBJECT_PATH && !path)
                                r = sd_bus_message_read_basic(reply, type, &path);
                        else
                                r = bus_message_skip_value(reply);
                        if (r < 0)
                                return log_bus_error(NULL, r, "Failed to parse ListJobs() reply");
                }
                if (have_id && this_id == id && path) {
                        *ret_id = id;
                        *ret_path = strdup(path);
                        return *ret_path ? 0 : -ENOMEM;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return log_bus_error(NULL, r, "Failed to parse ListJobs() reply");
        }
        if (r < 0)
                return log_bus_error(NULL, r, "Failed to parse ListJobs() reply");

        *ret_id = id;
        if (asprintf(ret_path, DFUD_OBJECT_JOB_PREFIX "/%" PRIu64, id) < 0)
                return -ENOMEM;
        return 0;
}

static bool error_is_unknown_job(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_METHOD,
                                      SD_BUS_ERROR_UNKNOWN_INTERFACE);
}

static int verb_cancel(sd_bus *bus, const Args *args) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t id;
        int r;

        if (resolve_job(bus, args->argv[0], &id, &path) < 0)
                return DFUCTL_EXIT_FAILURE;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, path, DFUD_INTERFACE_JOB, "Cancel", &error, NULL, NULL);
        if (r < 0) {
                if (error_is_unknown_job(&error))
                        fprintf(stderr, "dfuctl: No job '%s' (%s)\n", args->argv[0],
                                DFUD_ERROR_JOB_NOT_FOUND);
                else
                        log_bus_error(&error, r, "Failed to cancel job '%s'", args->argv[0]);
                return DFUCTL_EXIT_FAILURE;
        }

        if (args->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (o) {
                        if (id > 0)
                                json_object_object_add(o, "id", json_object_new_uint64(id));
                        json_object_object_add(o, "object_path", json_object_new_string(path));
                        json_print(o, stdout);
                }
        } else
                printf("Cancelling job %s.\n", args->argv[0]);
        return 0;
}

static char *format_log_time(char *buf, size_t size, uint64_t usec, uint64_t first) {
        /* wall-clock µs print as local time; anything smaller is taken as relative (a monotonic clock) */
        if (usec >= UINT64_C(1000000000000000)) {
                time_t sec = (time_t) (usec / USEC_PER_SEC);
                struct tm tm;
                char hms[16];

                if (localtime_r(&sec, &tm) && strftime(hms, sizeof(hms), "%H:%M:%S", &tm) > 0) {
                        snprintf(buf, size, "%s.%03u", hms, (unsigned) (usec % USEC_PER_SEC / 1000));
                        return buf;
                }
        }
        usec = usec >= first ? usec - first : 0;
        snprintf(buf, size, "+%" PRIu64 ".%03us", usec / USEC_PER_SEC,
                 (unsigned) (usec % USEC_PER_SEC / 1000));
        return buf;
}

static int verb_log(sd_bus *bus, const Args *args) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *lines = NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t id, first = 0;
        int r;

        if (resolve_job(bus, args->argv[0], &id, &path) < 0)
                return DFUCTL_EXIT_FAILURE;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, path, DFUD_INTERFACE_JOB, "GetLog", &error, &reply, NULL);
        if (r < 0) {
                if (error_is_unknown_job(&error))
                        fprintf(stderr, "dfuctl: No job '%s' (%s)\n", args->argv[0],
                                DFUD_ERROR_JOB_NOT_FOUND);
                else
                        log_bus_error(&error, r, "Failed to get the log of job '%s'", args->argv[0]);
                return DFUCTL_EXIT_FAILURE;
        }

        lines = json_object_new_array();
        if (!lines)
                return log_bus_error(NULL, -ENOMEM, "Failed to read log"), DFUCTL_EXIT_FAILURE;
        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(ts)");
        if (r < 0)
                return log_bus_error(NULL, r, "Failed to parse GetLog() reply"), DFUCTL_EXIT_FAILURE;
        for (bool first_line = true;; first_line = false) {
                const char *text;
                uint64_t ts;

                r = sd_bus_message_read(reply, "(ts)", &ts, &text);
                if (r < 0)
                        return log_bus_error(NULL, r, "Failed to parse GetLog() reply"), DFUCTL_EXIT_FAILURE;
                if (r == 0)
                        break;
                if (first_line)
                        first = ts;

                if (args->json) {
                        json_object *l = json_object_new_object();
                        if (!l)
                                return log_bus_error(NULL, -ENOMEM, "Failed"), DFUCTL_EXIT_FAILURE;
                        json_object_object_add(l, "timestamp", json_object_new_uint64(ts));
                        json_object_object_add(l, "message", json_object_new_string(text));
                        json_object_array_add(lines, l);
                } else {
                        _cleanup_free_ char *clean = string_sanitize(text);
                        char t[64];

                        printf("%s  %s\n", format_log_time(t, sizeof(t), ts, first), clean ?: "?");
                }
        }

        if (args->json)
                json_print(lines, stdout);
        return 0;
}

static int verb_enter_bootloader(sd_bus *bus, const Args *args) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (resolve_device(bus, args->argv[0], &path) < 0)
                return DFUCTL_EXIT_FAILURE;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, path, DFUD_INTERFACE_DEVICE, "EnterBootloader", &error,
                               NULL, NULL);
        if (r < 0) {
                log_bus_error(&error, r, "Failed to switch '%s' into its bootloader", args->argv[0]);
                return DFUCTL_EXIT_FAILURE;
        }

        if (args->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (o) {
                        json_object_object_add(o, "device", json_object_new_string(args->argv[0]));
                        json_object_object_add(o, "object_path", json_object_new_string(path));
                        json_print(o, stdout);
                }
        } else
                printf("Device %s is switching to its bootloader.\n", args->argv[0]);
        return 0;
}

typedef int (*verb_func)(sd_bus *bus, const Args *args);

static const verb_func verb_functions[_VERB_MAX] = {
        [VERB_DEVICES] = verb_devices,
        [VERB_INFO] = verb_info,
        [VERB_UPDATE] = verb_update,
        [VERB_JOBS] = verb_jobs,
        [VERB_CANCEL] = verb_cancel,
        [VERB_WATCH] = verb_watch,
        [VERB_LOG] = verb_log,
        [VERB_ENTER_BOOTLOADER] = verb_enter_bootloader,
};

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        Args args;
        int r;

        r = args_parse(argc, argv, &args, stdout, stderr);
        if (r <= 0)
                return r < 0 ? DFUCTL_EXIT_USAGE : 0;

        r = bus_connect(&args, &bus);
        if (r < 0) {
                log_bus_error(NULL, r, "Failed to connect to the %s bus",
                              args.transport == BUS_TRANSPORT_USER ? "user" :
                              args.transport == BUS_TRANSPORT_ADDRESS ? "given" : "system");
                return DFUCTL_EXIT_FAILURE;
        }

        return verb_functions[args.verb](bus, &args);
}
