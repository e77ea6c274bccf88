/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Manager owns the event loop and wires everything to it: udev monitor, libusb fds, the job
 * timers, the bus. Modules below it (registry, journal, job-exec, usb, udev-watch) know no loop.
 * Start-up order: configuration, journal (jobs come back as waiting-for-device), USB, udev
 * monitor, enumeration, bus objects, bus name, READY=1. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-util.h"
#include "conf.h"
#include "device.h"
#include "job-exec.h"
#include "job.h"
#include "journal.h"
#include "polkit.h"
#include "registry.h"
#include "udev-watch.h"
#include "usb.h"

typedef enum BusKind {
        BUS_KIND_SYSTEM,
        BUS_KIND_USER,
        BUS_KIND_ADDRESS,
        BUS_KIND_NONE, /* tests attach a bus themselves (manager_attach_bus) */
} BusKind;

typedef struct ManagerOptions {
        const char *state_dir;
        const char *config_dir;
        BusKind bus_kind;
        const char *bus_address;
        bool usb; /* udev + libusb; off in unit tests, which feed devices through manager_usb_added() */
} ManagerOptions;

typedef struct Manager Manager;

/* Per-device data the manager keeps (Device.userdata). */
typedef struct DeviceRuntime {
        Manager *manager;
        Device *device;
        BusEmitter emitter;
        UsbDevice *probe; /* reading the alt strings of a DFU-mode device */
        unsigned probe_alt;
        char *probe_strings[DFU_MAX_ALTS];
        UsbDevice *handle; /* the job's (or EnterBootloader's) handle */
        int jump_tty_fd;
        sd_event_source *jump_timer;
} DeviceRuntime;

/* Per-job data the manager keeps (Job.userdata). */
typedef struct JobRuntime {
        Manager *manager;
        Job *job;
        BusEmitter emitter;
        sd_event_source *timer;
        bool finish_pending; /* JobRemoved and clean-up are due */
} JobRuntime;

struct Manager {
        sd_event *event;
        sd_bus *bus;
        ManagerOptions options;
        char *state_dir, *config_dir, *bus_address;

        Config *config;
        Journal *journal;
        Registry *registry;
        bool registry_dirty;

        Job **jobs; /* by id */
        size_t n_jobs;
        uint64_t next_job_id;

        UdevWatch *udev;
        sd_event_source *udev_source;
        UsbContext *usb;
        sd_event_source **usb_sources;
        size_t n_usb_sources;
        sd_event_source *usb_timer;

        sd_event_source *schedule_source;
        sd_event_source *sigterm_source, *sigint_source;
        JobHost job_host;

        struct PendingCall *pending; /* methods waiting for polkit */
        bool stopping;
};

int manager_new(const ManagerOptions *o, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Configuration, journal, USB and udev, enumeration. */
int manager_startup(Manager *m);
/* Bus per options, objects, then the name. */
int manager_connect_bus(Manager *m);
/* Objects on an existing connection (a peer-to-peer test bus); no name is requested. */
int manager_attach_bus(Manager *m, sd_bus *bus);
/* Stop every running job without changing its journal state (SIGTERM). */
void manager_stop(Manager *m);
void manager_notify_status(Manager *m);

/* udev input, also used by the tests to plug devices in. */
void manager_usb_added(Manager *m, const UsbInfo *u);
void manager_usb_removed(Manager *m, const char *syspath);
void manager_tty_changed(Manager *m, const char *parent_syspath, const char *tty_devnode);

Job *manager_get_job(Manager *m, uint64_t id);
int manager_device_path(const Device *d, char **ret);
void manager_job_path(uint64_t id, char buf[64]);
int manager_resolve_settings(Manager *m, const Device *d, DeviceSettings *ret);
int manager_job_result(const Job *j, const char **ret);

/* Method bodies shared by Manager and Device objects; they authorize and reply themselves. */
int manager_method_update(Manager *m, sd_bus_message *msg, Device *d, sd_bus_error *error);
int manager_method_enter_bootloader(Manager *m, sd_bus_message *msg, Device *d, sd_bus_error *error);
int manager_method_cancel(Manager *m, sd_bus_message *msg, Job *j, sd_bus_error *error);

/* bus objects (manager-bus.c, device-bus.c, job-bus.c) */
int manager_bus_register(Manager *m, sd_bus *bus);
int device_bus_register(Manager *m, sd_bus *bus);
int job_bus_register(Manager *m, sd_bus *bus);
int manager_bus_emit_job_removed(Manager *m, Job *j);
/* Ids as the user knows the board: the current incarnation, else the application's. */
void device_bus_ids(const Device *d, uint16_t *vid, uint16_t *pid, const char **serial);
extern const sd_bus_vtable manager_vtable[];
extern const sd_bus_vtable device_vtable[];
extern const sd_bus_vtable job_vtable[];
