/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A stand-in for dfud on a private bus, implementing protocol/dbus/ (org.dfud1.*) with simulated jobs, so
 * dfuctl's bus side (tables, --json, update progress, JobRemoved, Ctrl-C cancel, watch) is tested without
 * USB. The firmware file's first bytes choose what a job does:
 *   "BAD..."  Update() fails with InvalidImage (nothing queued)
 *   "FAIL..." the job fails half-way with VerifyFailed
 *   "SLOW..." the job takes ~10 s (for cancelling)
 *   anything else succeeds after erasing, writing and verifying.
 * The options Update() received are written to the job's log, so tests can check what dfuctl sent. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "dfud-dbus.h"
#include "macro.h"

#define MAX_JOBS 64
#define MAX_LOG 64
#define MAX_IMAGE (4u << 20)

typedef struct Device {
        const char *id;
        char *mode;
        const char *serial;
        const char *port;
        const char *product;
        const char *firmware_version;
        const char *health;
        uint16_t vendor_id;
        uint16_t product_id;
        char *path;
        struct Job *current_job;
} Device;

typedef enum JobKind { JOB_NORMAL, JOB_FAIL, JOB_SLOW } JobKind;

typedef struct Job {
        uint64_t id;
        char *path;
        Device *device;
        char *device_id;
        JobKind kind;
        char *state;
        uint32_t progress;
        uint64_t bytes_done;
        uint64_t bytes_total;
        char *error_name;
        char *error_message;
        uint64_t created;
        uint64_t finished;
        bool ended;
        unsigned ticks;
        sd_event_source *timer;
        size_t n_log;
        uint64_t log_time[MAX_LOG];
        char *log_text[MAX_LOG];
} Job;

static sd_bus *bus;
static sd_event *event;
static Device devices[] = {
        { .id = "f4-rom-0001", .serial = "0001", .port = "1-1", .product = "STM32  BOOTLOADER",
          .firmware_version = "", .health = "ok", .vendor_id = 0x0483, .product_id = 0xdf11 },
        { .id = "app-0002", .serial = "0002", .port = "1-2", .product = "vstm32 app\033[2J",
          .firmware_version = "1.0.0", .health = "ok", .vendor_id = 0x0483, .product_id = 0x5740 },
};
static Job jobs[MAX_JOBS];
static size_t n_jobs;

static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void set_str(char **p, const char *v) {
        free(*p);
        *p = strdup(v);
        if (!*p)
                abort();
}

_printf_(2, 3) static void job_log(Job *j, const char *fmt, ...) {
        va_list ap;

        if (j->n_log >= MAX_LOG)
                return;
        va_start(ap, fmt);
        if (vasprintf(&j->log_text[j->n_log], fmt, ap) < 0)
                abort();
        va_end(ap);
        j->log_time[j->n_log++] = realtime_usec();
}

static Device *device_find(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(devices); i++)
                if (streq(devices[i].id, s) || streq(devices[i].serial, s) || streq(devices[i].port, s))
                        return &devices[i];
        return NULL;
}

static void job_end(Job *j, const char *state, const char *error_name, const char *error_message) {
        j->ended = true;
        j->finished = realtime_usec();
        set_str(&j->state, state);
        set_str(&j->error_name, error_name ?: "");
        set_str(&j->error_message, error_message ?: "");
        j->timer = sd_event_source_disable_unref(j->timer);
        if (j->device->current_job == j) {
                j->device->current_job = NULL;
                (void) sd_bus_emit_properties_changed(bus, j->device->path, DFUD_INTERFACE_DEVICE,
                                                      "CurrentJob", NULL);
        }
        job_log(j, "job %s%s%s", state, error_name ? ": " : "", error_message ?: "");
        (void) sd_bus_emit_properties_changed(bus, j->path, DFUD_INTERFACE_JOB, "State", "ErrorName",
                                              "ErrorMessage", "Finished", NULL);
        (void) sd_bus_emit_signal(bus, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "JobRemoved", "tos", j->id,
                                  j->path, state);
}

static int job_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        uint64_t chunk;

        j->ticks++;
        if (streq(j->state, "queued")) {
                set_str(&j->state, "erasing");
                job_log(j, "ERASE 0x08000000");
        } else if (streq(j->state, "erasing")) {
                set_str(&j->state, "writing");
        } else if (streq(j->state, "writing")) {
                chunk = j->kind == JOB_SLOW ? MAX(j->bytes_total / 200, 1)
                                            : MAX((j->bytes_total + 9) / 10, 1);
                j->bytes_done = MIN(j->bytes_done + chunk, j->bytes_total);
                j->progress = (uint32_t) (j->bytes_total ? j->bytes_done * 100 / j->bytes_total : 100);
                job_log(j, "DNLOAD %" PRIu64 " bytes, GETSTATUS dfuDNLOAD-IDLE", chunk);
                if (j->kind == JOB_FAIL && j->bytes_done * 2 >= j->bytes_total) {
                        job_end(j, "failed", DFUD_ERROR_VERIFY_FAILED, "Verification failed at 0x08000400");
                        return 0;
                }
                if (j->bytes_done >= j->bytes_total)
                        set_str(&j->state, "verifying");
        } else if (streq(j->state, "verifying")) {
                job_end(j, "succeeded", NULL, NULL);
                return 0;
        }

        (void) sd_bus_emit_properties_changed(bus, j->path, DFUD_INTERFACE_JOB, "State", "Progress",
                                              "BytesDone", "BytesTotal", NULL);
        return sd_event_source_set_time_relative(s, j->kind == JOB_SLOW ? 50000 : 10000);
}

static int read_options(sd_bus_message *m, Job *j, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *s;
                uint64_t t;
                int b;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, DFUD_OPTION_ADDRESS)) {
                        r = sd_bus_message_read(m, "v", "t", &t);
                        if (r >= 0)
                                job_log(j, "option address=0x%" PRIx64, t);
                } else if (streq(key, DFUD_OPTION_FORMAT)) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                job_log(j, "option format=%s", s);
                } else if (streq(key, DFUD_OPTION_VERIFY) || streq(key, DFUD_OPTION_INCREMENTAL) ||
                           streq(key, DFUD_OPTION_ALLOW_DOWNGRADE) || streq(key, DFUD_OPTION_LEAVE) ||
                           streq(key, DFUD_OPTION_ALLOW_PROTECTED)) {
                        r = sd_bus_message_read(m, "v", "b", &b);
                        if (r >= 0)
                                job_log(j, "option %s=%s", key, b ? "true" : "false");
                } else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s'",
                                                 key);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Bad type for option '%s'", key);
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int do_update(sd_bus_message *m, Device *d, sd_bus_error *error) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        Job *j;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;

        data = malloc(MAX_IMAGE);
        if (!data)
                return -ENOMEM;
        for (;;) {
                ssize_t n = pread(fd, data + size, MAX_IMAGE - size, (off_t) size);
                if (n < 0)
                        return sd_bus_error_set_errnof(error, errno, "Cannot read the firmware: %m");
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size == MAX_IMAGE)
                        return sd_bus_error_set(error, DFUD_ERROR_INVALID_IMAGE,
                                                "Firmware image is too large");
        }

        if (n_jobs >= MAX_JOBS)
                return sd_bus_error_set(error, DFUD_ERROR_TOO_MANY_JOBS, "Too many jobs");
        j = &jobs[n_jobs];
        *j = (Job) { .id = n_jobs + 1, .device = d, .created = realtime_usec(), .bytes_total = size };

        r = read_options(m, j, error);
        if (r < 0 || sd_bus_error_is_set(error))
                goto undo;
        if (size == 0 || (size >= 3 && memcmp(data, "BAD", 3) == 0)) {
                r = sd_bus_error_set(error, DFUD_ERROR_INVALID_IMAGE,
                                     "Firmware image is invalid: no DFU suffix and no known format");
                goto undo;
        }
        if (d->current_job) {
                r = sd_bus_error_setf(error, DFUD_ERROR_BUSY, "Device '%s' is busy with job %" PRIu64, d->id,
                                      d->current_job->id);
                goto undo;
        }

        j->kind = size >= 4 && memcmp(data, "FAIL", 4) == 0 ? JOB_FAIL :
                  size >= 4 && memcmp(data, "SLOW", 4) == 0 ? JOB_SLOW : JOB_NORMAL;
        if (asprintf(&j->path, DFUD_OBJECT_JOB_PREFIX "/%" PRIu64, j->id) < 0)
                abort();
        set_str(&j->device_id, d->id);
        set_str(&j->state, "queued");
        set_str(&j->error_name, "");
        set_str(&j->error_message, "");
        job_log(j, "image: %zu bytes", size);
        n_jobs++;
        d->current_job = j;

        r = sd_event_add_time_relative(event, &j->timer, CLOCK_MONOTONIC, 20000, 1, job_tick, j);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(j->timer, SD_EVENT_ON);
        (void) sd_bus_emit_object_added(bus, j->path);
        (void) sd_bus_emit_properties_changed(bus, d->path, DFUD_INTERFACE_DEVICE, "CurrentJob", NULL);
        return sd_bus_reply_method_return(m, "to", j->id, j->path);

undo:
        for (size_t i = 0; i < j->n_log; i++)
                free(j->log_text[i]);
        *j = (Job) {};
        return r;
}

static int method_manager_update(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name;
        Device *d;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        d = device_find(name);
        if (!d)
                return sd_bus_error_setf(error, DFUD_ERROR_DEVICE_NOT_FOUND, "No device '%s'", name);
        return do_update(m, d, error);
}

static int method_device_update(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return do_update(m, userdata, error);
}

static int method_list_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssqqso)");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(devices); i++)
                r = sd_bus_message_append(reply, "(sssqqso)", devices[i].id, devices[i].mode,
                                          devices[i].serial, devices[i].vendor_id, devices[i].product_id,
                                          devices[i].firmware_version, devices[i].path);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_jobs(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tossu)");
        for (size_t i = 0; r >= 0 && i < n_jobs; i++)
                r = sd_bus_message_append(reply, "(tossu)", jobs[i].id, jobs[i].path, jobs[i].device_id,
                                          jobs[i].state, jobs[i].progress);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name;
        Device *d;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        d = device_find(name);
        if (!d)
                return sd_bus_error_setf(error, DFUD_ERROR_DEVICE_NOT_FOUND, "No device '%s'", name);
        return sd_bus_reply_method_return(m, "o", d->path);
}

static int method_version(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "s", "fake-0");
}

static int method_enter_bootloader(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Device *d = userdata;

        if (streq(d->mode, "dfu"))
                return sd_bus_error_setf(error, DFUD_ERROR_NOT_SUPPORTED,
                                         "Device '%s' is already in DFU mode", d->id);
        set_str(&d->mode, "dfu");
        (void) sd_bus_emit_properties_changed(bus, d->path, DFUD_INTERFACE_DEVICE, "Mode", NULL);
        return sd_bus_reply_method_return(m, NULL);
}

static int property_current_job(sd_bus *b, const char *path, const char *iface, const char *prop,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Device *d = userdata;

        return sd_bus_message_append(reply, "o", d->current_job ? d->current_job->path : "/");
}

static int property_memory(sd_bus *b, const char *path, const char *iface, const char *prop,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "a(sttus)", 1, "Internal Flash", (uint64_t) 0x08000000,
                                     (uint64_t) 1048576, (uint32_t) 0,
                                     "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg");
}

static int property_device_object(sd_bus *b, const char *path, const char *iface, const char *prop,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Job *j = userdata;

        return sd_bus_message_append(reply, "o", j->device->path);
}

static int property_last_seen(sd_bus *b, const char *path, const char *iface, const char *prop,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", realtime_usec());
}

static int property_daemon_version(sd_bus *b, const char *path, const char *iface, const char *prop,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", "fake-0");
}

static int method_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Job *j = userdata;

        if (j->ended)
                return sd_bus_error_setf(error, DFUD_ERROR_JOB_NOT_FOUND,
                                         "Job %" PRIu64 " has already ended", j->id);
        job_end(j, "cancelled", DFUD_ERROR_CANCELLED, "Cancelled by the user");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_log(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Job *j = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ts)");
        for (size_t i = 0; r >= 0 && i < j->n_log; i++)
                r = sd_bus_message_append(reply, "(ts)", j->log_time[i], j->log_text[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("DaemonVersion", "s", property_daemon_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Update", "sha{sv}", "to", method_manager_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ListDevices", "", "a(sssqqso)", method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ListJobs", "", "a(tossu)", method_list_jobs, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetDevice", "s", "o", method_get_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Version", "", "s", method_version, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL("JobRemoved", "tos", 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", NULL, offsetof(Device, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", NULL, offsetof(Device, mode), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VendorId", "q", NULL, offsetof(Device, vendor_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ProductId", "q", NULL, offsetof(Device, product_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Serial", "s", NULL, offsetof(Device, serial), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Port", "s", NULL, offsetof(Device, port), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Product", "s", NULL, offsetof(Device, product), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("FirmwareVersion", "s", NULL, offsetof(Device, firmware_version),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Memory", "a(sttus)", property_memory, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Health", "s", NULL, offsetof(Device, health), 0),
        SD_BUS_PROPERTY("LastSeen", "t", property_last_seen, 0, 0),
        SD_BUS_PROPERTY("CurrentJob", "o", property_current_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Update", "ha{sv}", "to", method_device_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("EnterBootloader", "", "", method_enter_bootloader, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", NULL, offsetof(Job, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", property_device_object, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceId", "s", NULL, offsetof(Job, device_id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", NULL, offsetof(Job, state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "u", NULL, offsetof(Job, progress), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesDone", "t", NULL, offsetof(Job, bytes_done),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BytesTotal", "t", NULL, offsetof(Job, bytes_total),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ErrorName", "s", NULL, offsetof(Job, error_name),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ErrorMessage", "s", NULL, offsetof(Job, error_message),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Created", "t", NULL, offsetof(Job, created), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Finished", "t", NULL, offsetof(Job, finished), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Cancel", "", "", method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetLog", "", "a(ts)", method_get_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Jobs live at DFUD_OBJECT_JOB_PREFIX/<id>: one fallback vtable finds them. */
static int job_find(sd_bus *b, const char *path, const char *iface, void *userdata, void **found,
                    sd_bus_error *error) {
        const char *p = startswith(path, DFUD_OBJECT_JOB_PREFIX "/");
        char *end;
        unsigned long long id;

        if (!p || !*p)
                return 0;
        id = strtoull(p, &end, 10);
        if (*end || id == 0 || id > n_jobs)
                return 0;
        *found = &jobs[id - 1];
        return 1;
}

static int job_enumerate(sd_bus *b, const char *prefix, void *userdata, char ***nodes, sd_bus_error *error) {
        char **l = calloc(n_jobs + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n_jobs; i++)
                l[i] = strdup(jobs[i].path);
        *nodes = l;
        return 1;
}

int main(int argc, char *argv[]) {
        const char *address = NULL;
        sigset_t mask;
        int r;

        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--bus-address") && i + 1 < argc)
                        address = argv[++i];
        if (!address) {
                fprintf(stderr, "usage: fake-dfud --bus-address ADDRESS\n");
                return 2;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                fprintf(stderr, "fake-dfud: cannot connect to %s: %s\n", address, strerror(-r));
                return 1;
        }

        r = sd_bus_add_object_manager(bus, NULL, DFUD_OBJECT_ROOT);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER,
                                             manager_vtable, NULL);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(devices); i++) {
                set_str(&devices[i].mode, i == 0 ? "dfu" : "application");
                r = sd_bus_path_encode(DFUD_OBJECT_DEVICE_PREFIX, devices[i].id, &devices[i].path);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(bus, NULL, devices[i].path, DFUD_INTERFACE_DEVICE,
                                                     device_vtable, &devices[i]);
        }
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(bus, NULL, DFUD_OBJECT_JOB_PREFIX, DFUD_INTERFACE_JOB,
                                               job_vtable, job_find, NULL);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, DFUD_OBJECT_JOB_PREFIX, job_enumerate, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, DFUD_BUS_NAME, 0);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r < 0) {
                fprintf(stderr, "fake-dfud: setup failed: %s\n", strerror(-r));
                return 1;
        }

        r = sd_event_loop(event);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
