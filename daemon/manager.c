/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <termios.h>

#include "bus-errors.h"
#include "cdc-jump.h"
#include "config.h"
#include "dfud-dbus.h"
#include "firmware.h"
#include "log.h"
#include "manager.h"
#include "util.h"

#define NEXT_JOB_ID_FILE "next-job-id"
#define EXPECT_SLACK_USEC (5 * USEC_PER_SEC)
#define JUMP_TTY_HOLD_USEC (5 * USEC_PER_SEC)

typedef enum PendingKind {
        PENDING_UPDATE,
        PENDING_ENTER_BOOTLOADER,
        PENDING_CANCEL,
} PendingKind;

/* A method call waiting for polkit. */
typedef struct PendingCall {
        Manager *manager;
        PendingKind kind;
        sd_bus_message *message;
        PolkitQuery *query;
        char *device_id;
        uint64_t job_id;
        uint8_t *data;
        size_t size;
        JobOptions options;
        bool has_version;
        uint16_t version;
        struct PendingCall *next;
} PendingCall;

static void schedule(Manager *m);
static void device_notify(Manager *m, Device *d);

/* ---- small helpers ---- */

static uint64_t now_rt(void) {
        return now_usec(CLOCK_REALTIME);
}

int manager_device_path(const Device *d, char **ret) {
        return sd_bus_path_encode(DFUD_OBJECT_DEVICE_PREFIX, d->id, ret);
}

void manager_job_path(uint64_t id, char buf[64]) {
        snprintf(buf, 64, DFUD_OBJECT_JOB_PREFIX "/%" PRIu64, id);
}

Job *manager_get_job(Manager *m, uint64_t id) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->id == id)
                        return m->jobs[i];
        return NULL;
}

int manager_job_result(const Job *j, const char **ret) {
        if (!job_state_is_final(j->state))
                return -EBUSY;
        *ret = job_state_to_string(j->state);
        return 0;
}

int manager_resolve_settings(Manager *m, const Device *d, DeviceSettings *ret) {
        ConfigIdentity ids[3];
        size_t n = 0;

        if (d->app.known)
                ids[n++] = (ConfigIdentity) { d->app.vendor_id, d->app.product_id, d->app.serial };
        if (d->dfu.known)
                ids[n++] = (ConfigIdentity) { d->dfu.vendor_id, d->dfu.product_id, d->dfu.serial };
        if (d->usb)
                ids[n++] =
                        (ConfigIdentity) { d->usb->desc.vendor_id, d->usb->desc.product_id, d->usb->serial };
        return config_resolve(m->config, ids, n, d->port, ret);
}

static DeviceRuntime *device_runtime(Manager *m, Device *d) {
        DeviceRuntime *dr = d->userdata;
        _cleanup_free_ char *path = NULL;

        if (dr)
                return dr;
        dr = calloc(1, sizeof *dr);
        if (!dr || manager_device_path(d, &path) < 0 ||
            bus_emitter_init(&dr->emitter, path, DFUD_INTERFACE_DEVICE) < 0) {
                free(dr);
                return NULL;
        }
        dr->manager = m;
        dr->device = d;
        dr->jump_tty_fd = -EBADF;
        d->userdata = dr;
        return dr;
}

static void device_runtime_free(Device *d) {
        DeviceRuntime *dr = d->userdata;
        if (!dr)
                return;
        usb_device_close(dr->probe);
        usb_device_close(dr->handle);
        for (size_t i = 0; i < DFU_MAX_ALTS; i++)
                free(dr->probe_strings[i]);
        if (dr->jump_tty_fd >= 0) {
                (void) tcflush(dr->jump_tty_fd, TCIOFLUSH);
                safe_close(dr->jump_tty_fd);
        }
        sd_event_source_disable_unref(dr->jump_timer);
        bus_emitter_done(&dr->emitter);
        free(dr);
        d->userdata = NULL;
}

static JobRuntime *job_runtime(Manager *m, Job *j) {
        JobRuntime *rt = j->userdata;
        char path[64];

        if (rt)
                return rt;
        rt = calloc(1, sizeof *rt);
        if (!rt)
                return NULL;
        manager_job_path(j->id, path);
        if (bus_emitter_init(&rt->emitter, path, DFUD_INTERFACE_JOB) < 0) {
                free(rt);
                return NULL;
        }
        rt->manager = m;
        rt->job = j;
        j->userdata = rt;
        return rt;
}

static void job_runtime_free(Job *j) {
        JobRuntime *rt = j->userdata;
        if (!rt)
                return;
        sd_event_source_disable_unref(rt->timer);
        bus_emitter_done(&rt->emitter);
        free(rt);
        j->userdata = NULL;
}

static Job *manager_free_job(Job *j) {
        if (!j)
                return NULL;
        job_exec_free(j->exec);
        job_runtime_free(j);
        return job_free(j);
}

static void save_job(Manager *m, Job *j) {
        int r = journal_save_job(m->journal, j);
        if (r < 0)
                /* an fsync error is not retried: the next state change writes the whole record again */
                log_error_errno(r, "Failed to write the journal of job %" PRIu64 ": %m", j->id);
}

static bool device_has_layouts(Manager *m, Device *d) {
        return d->n_layouts > 0;
}

/* ---- job host: what job-exec needs from the loop and from USB ---- */

static uint64_t host_now(void *userdata, clockid_t clock) {
        return now_usec(clock);
}

static int host_get_settings(void *userdata, Device *d, DeviceSettings *ret) {
        return manager_resolve_settings(userdata, d, ret);
}

static int host_load_image(void *userdata, Job *j, uint8_t **ret, size_t *ret_size) {
        Manager *m = userdata;
        return journal_read_image(m->journal, j->image_sha256, ret, ret_size);
}

static int host_open(void *userdata, Job *j, Device *d, uint8_t interface, Transport *ret) {
        Manager *m = userdata;
        DeviceRuntime *dr = device_runtime(m, d);
        int r;

        if (!dr)
                return -ENOMEM;
        if (!m->usb)
                return -EOPNOTSUPP;
        if (!d->usb || !d->usb->devnode)
                return -ENODEV;
        dr->handle = usb_device_close(dr->handle);
        r = usb_device_open(m->usb, d->usb->devnode, &dr->handle);
        if (r < 0)
                return r;
        r = usb_device_claim(dr->handle, interface);
        if (r < 0) {
                dr->handle = usb_device_close(dr->handle);
                return r;
        }
        *ret = usb_device_transport(dr->handle);
        return 0;
}

static void host_close(void *userdata, Job *j, Device *d) {
        DeviceRuntime *dr = d->userdata;
        if (dr)
                dr->handle = usb_device_close(dr->handle);
}

static int on_job_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        if (j->exec)
                job_exec_timer(j->exec);
        return 0;
}

static void host_set_timer(void *userdata, Job *j, uint64_t usec) {
        Manager *m = userdata;
        JobRuntime *rt = job_runtime(m, j);
        int r;

        if (!rt)
                return;
        if (usec == USEC_INFINITY) {
                if (rt->timer)
                        (void) sd_event_source_set_enabled(rt->timer, SD_EVENT_OFF);
                return;
        }
        if (!rt->timer) {
                /* bwPollTimeout waits are a few ms: the default 250 ms accuracy would slow a flash down */
                r = sd_event_add_time(m->event, &rt->timer, CLOCK_MONOTONIC, usec, 1, on_job_timer, j);
                if (r < 0)
                        log_error_errno(r, "Failed to add a timer for job %" PRIu64 ": %m", j->id);
                return;
        }
        (void) sd_event_source_set_time(rt->timer, usec);
        (void) sd_event_source_set_enabled(rt->timer, SD_EVENT_ONESHOT);
}

static void host_changed(void *userdata, Job *j, unsigned what) {
        Manager *m = userdata;
        JobRuntime *rt = job_runtime(m, j);

        if (what & (JOB_CHANGE_STATE | JOB_CHANGE_SECTOR | JOB_CHANGE_FINISHED))
                save_job(m, j);
        if (rt && (what & (JOB_CHANGE_STATE | JOB_CHANGE_PROGRESS | JOB_CHANGE_FINISHED)))
                (void) bus_emitter_change(&rt->emitter, m->bus,
                                          what & (JOB_CHANGE_STATE | JOB_CHANGE_FINISHED));
        if (what & JOB_CHANGE_DEVICE) {
                Device *d = registry_get(m->registry, j->device_id);
                if (d) {
                        m->registry_dirty = true;
                        (void) device_update_health(d, device_has_layouts(m, d));
                        DeviceRuntime *dr = device_runtime(m, d);
                        if (dr)
                                (void) bus_emitter_change(&dr->emitter, m->bus, true);
                }
        }
        if (what & JOB_CHANGE_STATE)
                manager_notify_status(m);
        if (rt && (what & JOB_CHANGE_FINISHED)) {
                /* never free the executor from inside its own callback: the schedule does it */
                rt->finish_pending = true;
                schedule(m);
        }
        if (what & (JOB_CHANGE_DEVICE | JOB_CHANGE_FINISHED))
                schedule(m);
}

/* ---- scheduling: one job per device at a time, devices in parallel ---- */

static Job *next_job_for(Manager *m, Device *d) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                if (!job_state_is_final(j->state) && streq(j->device_id, d->id))
                        return j;
        }
        return NULL;
}

static void start_job(Manager *m, Job *j, Device *d) {
        JobExec *x;
        int r;

        if (!job_runtime(m, j))
                return (void) log_oom();
        r = job_exec_new(j, d, &m->job_host, &x);
        if (r < 0)
                return (void) log_oom();
        d->current_job = j->id;
        (void) device_update_health(d, device_has_layouts(m, d));
        DeviceRuntime *dr = device_runtime(m, d);
        if (dr)
                (void) bus_emitter_change(&dr->emitter, m->bus, true);
        job_exec_start(x);
}

static void job_finished(Manager *m, Job *j) {
        JobRuntime *rt = j->userdata;
        const char *result = job_state_to_string(j->state);
        Device *d = registry_get(m->registry, j->device_id);

        rt->finish_pending = false;
        j->exec = job_exec_free(j->exec);
        if (rt->timer)
                (void) sd_event_source_set_enabled(rt->timer, SD_EVENT_OFF);
        j->image = dfu_image_free(j->image);
        if (d && d->current_job == j->id) {
                d->current_job = 0;
                (void) device_update_health(d, device_has_layouts(m, d));
                DeviceRuntime *dr = device_runtime(m, d);
                if (dr)
                        (void) bus_emitter_change(&dr->emitter, m->bus, true);
        }
        /* the final state first, then the signal clients wait for */
        bus_emitter_flush(&rt->emitter);
        (void) manager_bus_emit_job_removed(m, j);
        log_info("Job %" PRIu64 " on device '%s' %s%s%s.", j->id, j->device_id, result,
                 j->error_message ? ": " : "", strempty(j->error_message));
}

static void prune_history(Manager *m) {
        size_t finished = 0;

        for (size_t i = 0; i < m->n_jobs; i++)
                if (job_state_is_final(m->jobs[i]->state))
                        finished++;
        /* oldest first */
        for (size_t i = 0; i < m->n_jobs && finished > m->config->history_size;) {
                Job *j = m->jobs[i];
                JobRuntime *rt = j->userdata;
                if (!job_state_is_final(j->state) || (rt && rt->finish_pending)) {
                        i++;
                        continue;
                }
                if (rt)
                        (void) bus_emitter_remove(&rt->emitter, m->bus);
                (void) journal_remove_job(m->journal, j->id);
                memmove(m->jobs + i, m->jobs + i + 1, (m->n_jobs - i - 1) * sizeof(Job *));
                m->n_jobs--;
                manager_free_job(j);
                finished--;
        }

        /* images nobody refers to any more */
        const char **keep = calloc(m->n_jobs + 1, sizeof(char *));
        if (!keep)
                return;
        for (size_t i = 0; i < m->n_jobs; i++)
                keep[i] = m->jobs[i]->image_sha256;
        (void) journal_gc_images(m->journal, keep);
        free(keep);
}

static int on_schedule(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        bool pruned = false;

        for (size_t i = 0; i < m->n_jobs; i++) {
                JobRuntime *rt = m->jobs[i]->userdata;
                if (rt && rt->finish_pending) {
                        job_finished(m, m->jobs[i]);
                        pruned = true;
                }
        }
        if (pruned)
                prune_history(m);

        if (!m->stopping)
                for (size_t i = 0; i < m->registry->n_devices; i++) {
                        Device *d = m->registry->devices[i];
                        if (d->current_job != 0)
                                continue;
                        Job *j = next_job_for(m, d);
                        if (j)
                                start_job(m, j, d);
                }

        if (m->registry_dirty) {
                int r = registry_save(m->registry, m->journal->dir_fd);
                if (r < 0)
                        log_warning_errno(r, "Failed to save %s, ignoring: %m", REGISTRY_FILE);
                else
                        m->registry_dirty = false;
        }
        manager_notify_status(m);
        return 0;
}

static void schedule(Manager *m) {
        if (!m->schedule_source) {
                int r = sd_event_add_defer(m->event, &m->schedule_source, on_schedule, m);
                if (r < 0) {
                        log_error_errno(r, "Failed to schedule jobs: %m");
                        return;
                }
                (void) sd_event_source_set_priority(m->schedule_source, SD_EVENT_PRIORITY_NORMAL + 10);
        }
        (void) sd_event_source_set_enabled(m->schedule_source, SD_EVENT_ONESHOT);
}

void manager_notify_status(Manager *m) {
        unsigned running = 0, present = 0;
        for (size_t i = 0; i < m->n_jobs; i++)
                if (!job_state_is_final(m->jobs[i]->state))
                        running++;
        for (size_t i = 0; i < m->registry->n_devices; i++)
                if (m->registry->devices[i]->mode != DEVICE_MODE_ABSENT)
                        present++;
        (void) sd_notifyf(false, "STATUS=%u device%s connected, %u job%s active", present,
                          present == 1 ? "" : "s", running, running == 1 ? "" : "s");
}

/* ---- devices ---- */

static void device_notify(Manager *m, Device *d) {
        DeviceRuntime *dr = device_runtime(m, d);

        (void) device_update_health(d, device_has_layouts(m, d));
        if (dr)
                (void) bus_emitter_change(&dr->emitter, m->bus, true);
        m->registry_dirty = true;
        if (d->current_job) {
                Job *j = manager_get_job(m, d->current_job);
                if (j && j->exec)
                        job_exec_device_changed(j->exec);
        }
        schedule(m);
}

static void probe_finish(Manager *m, Device *d, bool ok) {
        DeviceRuntime *dr = d->userdata;
        size_t n = d->usb ? d->usb->desc.n_alts : 0;

        dr->probe = usb_device_close(dr->probe);
        if (ok && n > 0) {
                int r = device_set_layouts(d, dr->probe_strings, n);
                if (r < 0)
                        log_warning_errno(r, "Failed to store the memory layout of '%s', ignoring: %m",
                                          d->id);
                for (size_t i = 0; i < n; i++)
                        if (dr->probe_strings[i])
                                log_debug("Device '%s' alt %zu: %s", d->id, i, dr->probe_strings[i]);
        }
        for (size_t i = 0; i < DFU_MAX_ALTS; i++)
                dr->probe_strings[i] = mfree(dr->probe_strings[i]);
        d->probed = true;
        device_notify(m, d);
}

static void probe_next(Manager *m, Device *d);

static void on_probe_string(int r, const char *s, void *userdata) {
        Device *d = userdata;
        DeviceRuntime *dr = d->userdata;
        Manager *m = dr->manager;

        if (r < 0) {
                log_warning_errno(r, "Cannot read the alt setting strings of '%s' on port %s: %m", d->id,
                                  strna(d->port));
                probe_finish(m, d, false);
                return;
        }
        if (dr->probe_alt > 0 && !(dr->probe_strings[dr->probe_alt - 1] = strdup(s)))
                return (void) log_oom();
        probe_next(m, d);
}

static void probe_next(Manager *m, Device *d) {
        DeviceRuntime *dr = d->userdata;
        const UsbDescInfo *desc = &d->usb->desc;

        /* probe_alt: 0 = language list, k = alt k-1 */
        while (dr->probe_alt < desc->n_alts) {
                uint8_t idx = desc->alt_string[dr->probe_alt];
                dr->probe_alt++;
                if (idx == 0)
                        continue;
                int r = usb_device_get_string(dr->probe, idx, on_probe_string, d);
                if (r < 0) {
                        log_warning_errno(r, "Cannot read string %u of '%s': %m", idx, d->id);
                        probe_finish(m, d, false);
                }
                return;
        }
        probe_finish(m, d, true);
}

/* DFU mode: read the alt strings (the DfuSe memory map) asynchronously before anyone uses it. */
static void start_probe(Manager *m, Device *d) {
        DeviceRuntime *dr = device_runtime(m, d);
        int r;

        if (!dr)
                return (void) log_oom();
        if (dr->probe || d->probed)
                return;
        if (!m->usb || !d->usb || !d->usb->devnode || d->usb->desc.n_alts == 0) {
                d->probed = true;
                device_notify(m, d);
                return;
        }
        r = usb_device_open(m->usb, d->usb->devnode, &dr->probe);
        if (r >= 0) {
                dr->probe_alt = 0;
                r = usb_device_get_string(dr->probe, 0, on_probe_string, d);
        }
        if (r < 0) {
                log_warning_errno(r, "Cannot open %s to read the memory layout of '%s': %m", d->usb->devnode,
                                  d->id);
                probe_finish(m, d, false);
        }
}

static bool usb_interesting(Manager *m, const UsbInfo *u) {
        if (u->desc.has_dfu)
                return true;
        if (u->desc.vendor_id == ST_ROM_VENDOR_ID && u->desc.product_id == ST_ROM_PRODUCT_ID)
                return true;
        /* CDC ACM applications without a DFU runtime: only what the configuration names */
        return config_matches(m->config, u->desc.vendor_id, u->desc.product_id, u->serial, u->port);
}

void manager_usb_added(Manager *m, const UsbInfo *u) {
        _cleanup_(usb_info_freep) UsbInfo *copy = NULL;
        DeviceSettings s;
        int r;

        if (!usb_interesting(m, u))
                return;
        ConfigIdentity id = { u->desc.vendor_id, u->desc.product_id, u->serial };
        if (config_resolve(m->config, &id, 1, u->port, &s) >= 0) {
                bool ignore = s.ignore;
                device_settings_done(&s);
                if (ignore) {
                        log_debug("Ignoring %04x:%04x on port %s as configured.", u->desc.vendor_id,
                                  u->desc.product_id, strna(u->port));
                        return;
                }
        }

        Device *d = registry_match(m->registry, u, now_usec(CLOCK_MONOTONIC));
        bool known = d != NULL;
        bool repeated = d && d->usb && streq_ptr(d->usb->syspath, u->syspath) && d->mode == usb_info_mode(u);
        if (!d) {
                r = registry_add_for(m->registry, u, &d);
                if (r < 0)
                        return (void) log_error_errno(r, "Failed to register a device: %m");
        }
        if (!device_runtime(m, d))
                return (void) log_oom();

        r = usb_info_copy(u, &copy);
        if (r < 0)
                return (void) log_oom();
        r = device_attach(d, TAKE_PTR(copy), now_rt());
        if (r < 0)
                return (void) log_oom();

        if (!repeated)
                log_info("Device '%s' %s: %04x:%04x%s%s on port %s, %s mode%s.", d->id,
                         known ? "is back" : "found", u->desc.vendor_id, u->desc.product_id,
                         u->serial ? " serial " : "", strempty(u->serial), strna(u->port),
                         device_mode_to_string(d->mode), d->current_job ? " (job running)" : "");

        if (!repeated && d->current_job) {
                /* re-enumerations belong in the job's log too: they are half of what happened */
                Job *j = manager_get_job(m, d->current_job);
                if (j)
                        (void) job_log(j, now_rt(), "USB: %04x:%04x enumerated on port %s (%s mode).",
                                       u->desc.vendor_id, u->desc.product_id, strna(u->port),
                                       device_mode_to_string(d->mode));
        }

        if (d->mode == DEVICE_MODE_DFU && !d->probed)
                start_probe(m, d);
        else
                device_notify(m, d);
}

static void close_jump(DeviceRuntime *dr) {
        if (dr->jump_tty_fd >= 0) {
                (void) tcflush(dr->jump_tty_fd, TCIOFLUSH);
                dr->jump_tty_fd = safe_close(dr->jump_tty_fd);
        }
        dr->jump_timer = sd_event_source_disable_unref(dr->jump_timer);
}

void manager_usb_removed(Manager *m, const char *syspath) {
        Device *d = registry_get_by_syspath(m->registry, syspath);
        DeviceRuntime *dr;

        if (!d)
                return;
        dr = device_runtime(m, d);
        if (dr) {
                dr->probe = usb_device_close(dr->probe);
                if (!d->current_job)
                        dr->handle = usb_device_close(dr->handle);
                close_jump(dr);
        }
        log_info("Device '%s' left port %s.", d->id, strna(d->port));
        if (d->current_job) {
                Job *j = manager_get_job(m, d->current_job);
                if (j)
                        (void) job_log(j, now_rt(), "USB: device left port %s.", strna(d->port));
        }
        device_detach(d, now_rt());
        device_notify(m, d);
}

void manager_tty_changed(Manager *m, const char *parent_syspath, const char *tty_devnode) {
        Device *d = parent_syspath ? registry_get_by_syspath(m->registry, parent_syspath) : NULL;

        if (!parent_syspath || !d)
                return;
        if (device_set_tty(d, tty_devnode) > 0) {
                log_debug("Device '%s': tty %s.", d->id, strna(tty_devnode));
                device_notify(m, d);
        }
}

static void on_udev_event(const UdevEvent *ev, void *userdata) {
        Manager *m = userdata;

        if (ev->tty_devnode || ev->tty_parent) {
                if (ev->action == UDEV_ACTION_ADD)
                        manager_tty_changed(m, ev->tty_parent, ev->tty_devnode);
                else
                        /* the parent may already be gone from sysfs: find the tty by name */
                        for (size_t i = 0; i < m->registry->n_devices; i++) {
                                Device *d = m->registry->devices[i];
                                if (d->tty && streq_ptr(d->tty, ev->tty_devnode) && d->usb)
                                        manager_tty_changed(m, d->usb->syspath, NULL);
                        }
                return;
        }
        if (ev->action == UDEV_ACTION_ADD && ev->usb)
                manager_usb_added(m, ev->usb);
        else if (ev->action == UDEV_ACTION_REMOVE)
                manager_usb_removed(m, ev->syspath);
}

static int on_udev_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        (void) udev_watch_dispatch(m->udev);
        return 0;
}

/* ---- libusb on sd-event ---- */

static void usb_rearm_timer(Manager *m);

static int on_usb_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        (void) usb_context_dispatch(m->usb);
        usb_rearm_timer(m);
        return 0;
}

static int on_usb_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        (void) usb_context_dispatch(m->usb);
        usb_rearm_timer(m);
        return 0;
}

static void usb_rearm_timer(Manager *m) {
        if (!m->usb || !usb_context_needs_timer(m->usb))
                return;
        uint64_t t = usb_context_get_timeout(m->usb);
        if (t == USEC_INFINITY) {
                if (m->usb_timer)
                        (void) sd_event_source_set_enabled(m->usb_timer, SD_EVENT_OFF);
                return;
        }
        if (!m->usb_timer)
                (void) sd_event_add_time_relative(m->event, &m->usb_timer, CLOCK_MONOTONIC, t, 1,
                                                  on_usb_timer, m);
        else {
                (void) sd_event_source_set_time_relative(m->usb_timer, t);
                (void) sd_event_source_set_enabled(m->usb_timer, SD_EVENT_ONESHOT);
        }
}

static void on_usb_fd_added(int fd, short events, void *userdata) {
        Manager *m = userdata;
        sd_event_source *s;
        uint32_t ev = (events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0);

        sd_event_source **n = realloc(m->usb_sources, (m->n_usb_sources + 1) * sizeof(sd_event_source *));
        if (!n)
                return (void) log_oom();
        m->usb_sources = n;
        int r = sd_event_add_io(m->event, &s, fd, ev, on_usb_io, m);
        if (r < 0)
                return (void) log_error_errno(r, "Failed to watch a libusb fd: %m");
        m->usb_sources[m->n_usb_sources++] = s;
}

static void on_usb_fd_removed(int fd, void *userdata) {
        Manager *m = userdata;
        for (size_t i = 0; i < m->n_usb_sources; i++)
                if (sd_event_source_get_io_fd(m->usb_sources[i]) == fd) {
                        sd_event_source_disable_unref(m->usb_sources[i]);
                        m->usb_sources[i] = m->usb_sources[--m->n_usb_sources];
                        return;
                }
}

/* ---- life cycle ---- */

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        log_info("Received %s, stopping; unfinished jobs stay in the journal.",
                 strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
        manager_stop(m);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int manager_new(const ManagerOptions *o, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof *m);
        int r;

        if (!m)
                return -ENOMEM;
        m->options = *o;
        m->next_job_id = 1;
        m->state_dir = strdup(o->state_dir ? o->state_dir : DFUD_STATE_DIR);
        m->config_dir = strdup(o->config_dir ? o->config_dir : DFUD_CONF_DIR);
        if (!m->state_dir || !m->config_dir)
                return -ENOMEM;
        if (o->bus_address && !(m->bus_address = strdup(o->bus_address)))
                return -ENOMEM;
        m->options.state_dir = m->state_dir;
        m->options.config_dir = m->config_dir;
        m->options.bus_address = m->bus_address;
        m->job_host = (JobHost) {
                .userdata = m,
                .now = host_now,
                .get_settings = host_get_settings,
                .load_image = host_load_image,
                .open = host_open,
                .close = host_close,
                .set_timer = host_set_timer,
                .changed = host_changed,
        };

        r = sd_event_new(&m->event);
        if (r < 0)
                return r;
        /* WATCHDOG=1 pings at half of $WATCHDOG_USEC, from the loop itself: a wedged loop is noticed */
        (void) sd_event_set_watchdog(m->event, true);

        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, on_signal, m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, on_signal, m);
        if (r < 0)
                return r;

        r = registry_new(&m->registry);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        for (PendingCall *p = m->pending, *n; p; p = n) {
                n = p->next;
                polkit_query_free(p->query);
                sd_bus_message_unref(p->message);
                free(p->device_id);
                free(p->data);
                free(p);
        }
        for (size_t i = 0; i < m->n_jobs; i++)
                manager_free_job(m->jobs[i]);
        free(m->jobs);
        if (m->registry)
                for (size_t i = 0; i < m->registry->n_devices; i++)
                        device_runtime_free(m->registry->devices[i]);
        registry_free(m->registry);
        for (size_t i = 0; i < m->n_usb_sources; i++)
                sd_event_source_disable_unref(m->usb_sources[i]);
        free(m->usb_sources);
        sd_event_source_disable_unref(m->usb_timer);
        usb_context_free(m->usb);
        sd_event_source_disable_unref(m->udev_source);
        udev_watch_free(m->udev);
        sd_event_source_disable_unref(m->schedule_source);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        /* flush: the last signals (JobRemoved) should still go out; closing our end never blocks for long */
        sd_bus_flush_close_unref(m->bus);
        journal_free(m->journal);
        config_free(m->config);
        sd_event_unref(m->event);
        free(m->state_dir);
        free(m->config_dir);
        free(m->bus_address);
        return mfree(m);
}

static void on_journal_problem(const char *file, int error, const char *message, void *userdata) {
        log_error("Journal file %s is unreadable (%s); set aside as %s.corrupt.", file, message, file);
}

static int load_next_job_id(Manager *m) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        char buf[32];
        uint64_t v;

        if (read_file_at(m->journal->dir_fd, NEXT_JOB_ID_FILE, 31, &data, &size) < 0)
                return 0;
        memcpy(buf, data, size);
        buf[size] = 0;
        if (sscanf(buf, "%" SCNu64, &v) == 1 && v > m->next_job_id)
                m->next_job_id = v;
        return 0;
}

static int save_next_job_id(Manager *m) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", m->next_job_id);
        return write_file_atomic_at(m->journal->dir_fd, NEXT_JOB_ID_FILE, buf, (size_t) n, 0644);
}

static int load_state(Manager *m) {
        _cleanup_free_ char *error = NULL;
        Job **jobs = NULL;
        size_t n = 0;
        int r;

        r = registry_load(m->registry, m->journal->dir_fd, &error);
        if (r < 0) {
                log_error_errno(r, "Device registry %s/%s is unreadable (%s), starting without it.",
                                m->state_dir, REGISTRY_FILE, error ? error : strerror(-r));
                (void) renameat(m->journal->dir_fd, REGISTRY_FILE, m->journal->dir_fd,
                                REGISTRY_FILE ".corrupt");
                registry_free(m->registry);
                r = registry_new(&m->registry);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->registry->n_devices; i++) {
                Device *d = m->registry->devices[i];
                if (!device_runtime(m, d))
                        return -ENOMEM;
                (void) device_update_health(d, device_has_layouts(m, d));
        }

        r = journal_load_jobs(m->journal, m->config->log_lines, on_journal_problem, m, &jobs, &n);
        if (r < 0)
                return r;
        m->jobs = jobs;
        m->n_jobs = n;
        (void) load_next_job_id(m);

        unsigned resumed = 0;
        for (size_t i = 0; i < n; i++) {
                Job *j = jobs[i];
                if (j->id >= m->next_job_id)
                        m->next_job_id = j->id + 1;
                if (!job_runtime(m, j))
                        return -ENOMEM;
                if (job_state_is_final(j->state))
                        continue;

                /* the device may be unknown if devices.json was lost: recreate it from the job */
                if (!registry_get(m->registry, j->device_id)) {
                        Device *d;
                        r = device_new(j->device_id, &d);
                        if (r < 0)
                                return r;
                        r = registry_add(m->registry, d);
                        if (r < 0) {
                                device_free(d);
                                return r;
                        }
                        if (!device_runtime(m, d))
                                return -ENOMEM;
                }
                (void) job_log(j, now_rt(),
                               "Daemon started: waiting for the device to resume (%zu sectors verified).",
                               j->n_verified);
                (void) job_set_state(j, JOB_WAITING_FOR_DEVICE, now_rt());
                save_job(m, j);
                resumed++;
        }
        log_info("Journal: %zu jobs, %u to resume; %zu known devices.", n, resumed, m->registry->n_devices);
        prune_history(m);
        return 0;
}

int manager_startup(Manager *m) {
        int r;

        r = config_new(&m->config);
        if (r < 0)
                return r;
        r = config_load(m->config, m->config_dir);
        if (r < 0)
                return r;

        r = journal_open(m->state_dir, &m->journal);
        if (r < 0)
                return log_error_errno(r, "Failed to open the state directory %s: %m", m->state_dir);
        r = load_state(m);
        if (r < 0)
                return log_error_errno(r, "Failed to load the journal: %m");

        if (m->options.usb) {
                r = usb_context_new(&m->usb);
                if (r < 0)
                        return log_error_errno(r, "Failed to initialize libusb: %m");
                r = usb_context_watch(m->usb, on_usb_fd_added, on_usb_fd_removed, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch libusb: %m");
                usb_rearm_timer(m);

                /* the monitor is receiving before we enumerate: nothing plugged in between is lost */
                r = udev_watch_new(on_udev_event, m, &m->udev);
                if (r < 0)
                        return log_error_errno(r, "Failed to start the udev monitor: %m");
                r = sd_event_add_io(m->event, &m->udev_source, udev_watch_get_fd(m->udev), EPOLLIN,
                                    on_udev_io, m);
                if (r < 0)
                        return r;
                r = udev_watch_enumerate(m->udev);
                if (r < 0)
                        log_warning_errno(
                                r, "Failed to enumerate USB devices, continuing with hotplug only: %m");
        }
        schedule(m);
        return 0;
}

int manager_attach_bus(Manager *m, sd_bus *bus) {
        int r;

        r = bus_errors_register();
        if (r < 0)
                return r;
        m->bus = sd_bus_ref(bus);
        r = manager_bus_register(m, bus);
        if (r < 0)
                return r;
        r = device_bus_register(m, bus);
        if (r < 0)
                return r;
        r = job_bus_register(m, bus);
        if (r < 0)
                return r;
        if (!sd_bus_get_event(bus)) {
                r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
                if (r < 0)
                        return r;
        }
        /* what exists before clients can see us is not "added" later: GetManagedObjects has it */
        for (size_t i = 0; i < m->registry->n_devices; i++) {
                DeviceRuntime *dr = device_runtime(m, m->registry->devices[i]);
                if (dr) {
                        dr->emitter.announced = true;
                        dr->emitter.bus = bus;
                }
        }
        for (size_t i = 0; i < m->n_jobs; i++) {
                JobRuntime *rt = job_runtime(m, m->jobs[i]);
                if (rt) {
                        rt->emitter.announced = true;
                        rt->emitter.bus = bus;
                }
        }
        return 0;
}

int manager_connect_bus(Manager *m) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL; /* m->bus holds its own reference */
        int r;

        switch (m->options.bus_kind) {
        case BUS_KIND_SYSTEM:
                r = sd_bus_open_system_with_description(&bus, "dfud");
                break;
        case BUS_KIND_USER:
                r = sd_bus_open_user_with_description(&bus, "dfud");
                break;
        case BUS_KIND_ADDRESS:
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, m->bus_address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
                break;
        default:
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m");
        /* if the bus goes away, exit: systemd restarts us and the journal brings the jobs back */
        (void) sd_bus_set_exit_on_disconnect(bus, true);

        r = manager_attach_bus(m, bus);
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus objects: %m");
        r = sd_bus_request_name(bus, DFUD_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the bus name " DFUD_BUS_NAME ": %m");
        return 0;
}

void manager_stop(Manager *m) {
        m->stopping = true;
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                if (j->exec) {
                        job_exec_stop(j->exec);
                        (void) job_log(j, now_rt(), "Daemon stopping while %s: the job resumes on restart.",
                                       job_state_to_string(j->state));
                        save_job(m, j);
                        j->exec = job_exec_free(j->exec);
                }
        }
        if (m->registry_dirty)
                (void) registry_save(m->registry, m->journal->dir_fd);
}

/* ---- methods ---- */

static PendingCall *pending_new(Manager *m, PendingKind kind, sd_bus_message *msg) {
        PendingCall *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->manager = m;
        p->kind = kind;
        p->message = sd_bus_message_ref(msg);
        p->next = m->pending;
        m->pending = p;
        return p;
}

static void pending_free(PendingCall *p) {
        Manager *m = p->manager;
        for (PendingCall **i = &m->pending; *i; i = &(*i)->next)
                if (*i == p) {
                        *i = p->next;
                        break;
                }
        polkit_query_free(p->query);
        sd_bus_message_unref(p->message);
        free(p->device_id);
        free(p->data);
        free(p);
}

static int reply_denied(sd_bus_message *msg, int r, const char *action) {
        if (r < 0)
                return sd_bus_reply_method_errorf(msg, DFUD_ERROR_ACCESS_DENIED,
                                                  "Authorization check for %s failed: %s", action,
                                                  strerror(-r));
        return sd_bus_reply_method_errorf(msg, DFUD_ERROR_ACCESS_DENIED,
                                          "Not authorized (polkit action %s).", action);
}

static int read_options(sd_bus_message *msg, JobOptions *o, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key, *contents;
                char type;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(msg, &type, &contents);
                if (r < 0)
                        return r;
                if (streq(key, DFUD_OPTION_ADDRESS)) {
                        if (streq(contents, "t")) {
                                uint64_t v;
                                r = sd_bus_message_read(msg, "v", "t", &v);
                                if (r >= 0 && v > UINT32_MAX)
                                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                                 "Address 0x%" PRIx64 " is beyond 32 bits.",
                                                                 v);
                                o->address = (uint32_t) v;
                        } else if (streq(contents, "u"))
                                r = sd_bus_message_read(msg, "v", "u", &o->address);
                        else
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option '%s' must be of type t or u.", key);
                        o->has_address = true;
                } else if (streq(key, DFUD_OPTION_FORMAT)) {
                        const char *f;
                        if (!streq(contents, "s"))
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option '%s' must be a string.", key);
                        r = sd_bus_message_read(msg, "v", "s", &f);
                        if (r >= 0) {
                                o->format = dfu_image_format_from_string(f);
                                if ((int) o->format < 0)
                                        return sd_bus_error_setf(
                                                error, SD_BUS_ERROR_INVALID_ARGS,
                                                "Unknown format '%s' (auto, dfuse, dfu, ihex, elf, bin).",
                                                f);
                        }
                } else {
                        bool *b = streq(key, DFUD_OPTION_VERIFY)            ? &o->verify
                                  : streq(key, DFUD_OPTION_INCREMENTAL)     ? &o->incremental
                                  : streq(key, DFUD_OPTION_ALLOW_DOWNGRADE) ? &o->allow_downgrade
                                  : streq(key, DFUD_OPTION_ALLOW_PROTECTED) ? &o->allow_protected
                                  : streq(key, DFUD_OPTION_LEAVE)           ? &o->leave
                                                                            : NULL;
                        int v;
                        if (!b)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Unknown option '%s'.", key);
                        if (!streq(contents, "b"))
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option '%s' must be a boolean.", key);
                        r = sd_bus_message_read(msg, "v", "b", &v);
                        *b = v;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

static unsigned active_jobs(Manager *m) {
        unsigned n = 0;
        for (size_t i = 0; i < m->n_jobs; i++)
                if (!job_state_is_final(m->jobs[i]->state))
                        n++;
        return n;
}

static int create_job(Manager *m, PendingCall *p, Device *d, Job **ret) {
        _cleanup_(job_freep) Job *j = NULL;
        char sha[SHA256_HEX_SIZE];
        int r;

        /* the image lives in the state dir from now on: the caller's file no longer matters */
        r = journal_store_image(m->journal, p->data, p->size, sha);
        if (r < 0)
                return log_error_errno(r, "Failed to store the firmware image: %m");

        r = job_new(m->next_job_id, d->id, m->config->log_lines, &j);
        if (r < 0)
                return r;
        j->options = p->options;
        j->image_sha256 = strdup(sha);
        if (!j->image_sha256)
                return -ENOMEM;
        j->image_size = p->size;
        j->has_image_version = p->has_version;
        j->image_version = p->version;
        j->created = now_rt();

        const char *sender = sd_bus_message_get_sender(p->message);
        char v[8] = "";
        if (p->has_version)
                bcd_to_version(p->version, v);
        (void) job_log(j, j->created, "Created by %s for device '%s': %zu bytes, sha256 %s%s%s.",
                       sender ? sender : "a direct connection", d->id, p->size, sha,
                       p->has_version ? ", version " : "", v);

        Job **nj = realloc(m->jobs, (m->n_jobs + 1) * sizeof(Job *));
        if (!nj)
                return -ENOMEM;
        m->jobs = nj;

        r = journal_save_job(m->journal, j);
        if (r < 0)
                return log_error_errno(r, "Failed to write the journal of the new job: %m");
        m->next_job_id++;
        r = save_next_job_id(m);
        if (r < 0)
                log_warning_errno(r, "Failed to save the next job id, ignoring: %m");

        Job *added = TAKE_PTR(j);
        m->jobs[m->n_jobs++] = added;
        JobRuntime *rt = job_runtime(m, added);
        if (rt)
                (void) bus_emitter_announce(&rt->emitter, m->bus);
        log_info("Job %" PRIu64 " created for device '%s' (%zu bytes).", added->id, d->id, p->size);
        schedule(m);
        *ret = added;
        return 0;
}

static void on_update_authorized(int r, sd_bus_message *msg, void *userdata) {
        PendingCall *p = userdata;
        Manager *m = p->manager;
        Device *d;
        Job *j = NULL;
        char path[64];

        if (r <= 0) {
                (void) reply_denied(msg, r, DFUD_POLKIT_ACTION_UPDATE);
                goto finish;
        }
        d = registry_get(m->registry, p->device_id);
        if (!d) {
                (void) sd_bus_reply_method_errorf(msg, DFUD_ERROR_DEVICE_NOT_FOUND, "Device '%s' is gone.",
                                                  p->device_id);
                goto finish;
        }
        r = create_job(m, p, d, &j);
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(msg, SD_BUS_ERROR_FAILED, "Failed to create the job: %s",
                                                  strerror(-r));
                goto finish;
        }
        manager_job_path(j->id, path);
        (void) sd_bus_reply_method_return(msg, "to", j->id, path);
finish:
        pending_free(p);
}

int manager_method_update(Manager *m, sd_bus_message *msg, Device *d, sd_bus_error *error) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *why = NULL;
        DfuseLayout *layouts[DFU_MAX_ALTS] = {};
        _cleanup_(dfu_image_freep) DfuImage *img = NULL;
        DeviceSettings s = {};
        JobOptions o;
        size_t size;
        int fd, r, n_layouts = 0;
        PendingCall *p;

        r = sd_bus_message_read(msg, "h", &fd);
        if (r < 0)
                return r;
        r = manager_resolve_settings(m, d, &s);
        if (r < 0)
                return r;
        job_options_init(&o);
        o.verify = s.verify;
        o.incremental = s.incremental;
        o.leave = s.leave;
        r = read_options(msg, &o, error);
        if (r < 0 || sd_bus_error_is_set(error))
                goto finish;

        if (s.ignore) {
                r = sd_bus_error_setf(error, DFUD_ERROR_NOT_SUPPORTED,
                                      "Device '%s' is ignored by configuration.", d->id);
                goto finish;
        }
        if (active_jobs(m) >= m->config->max_queued_jobs) {
                r = sd_bus_error_setf(error, DFUD_ERROR_TOO_MANY_JOBS,
                                      "%u jobs are queued or running already.", active_jobs(m));
                goto finish;
        }
        if (d->mode == DEVICE_MODE_APPLICATION && device_jump_method(d, &s) == JUMP_NONE) {
                r = sd_bus_error_setf(
                        error, DFUD_ERROR_NOT_SUPPORTED,
                        "Device '%s' runs its application and has no way configured to enter its "
                        "bootloader (set \"jump\" in dfud.conf, or start it in DFU mode).",
                        d->id);
                goto finish;
        }

        /* read and check everything before any USB request */
        r = read_fd_bounded(fd, DFU_IMAGE_MAX_FILE_SIZE, &data, &size);
        if (r == -EBADF) {
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                      "The firmware must be passed as a regular file or memfd.");
                goto finish;
        }
        if (r == -EFBIG) {
                r = sd_bus_error_setf(error, DFUD_ERROR_INVALID_IMAGE,
                                      "The firmware file is larger than %u MiB.",
                                      DFU_IMAGE_MAX_FILE_SIZE / (1024 * 1024));
                goto finish;
        }
        if (r < 0) {
                r = sd_bus_error_set_errnof(error, r, "Failed to read the firmware: %m");
                goto finish;
        }
        if (size == 0) {
                r = sd_bus_error_setf(error, DFUD_ERROR_INVALID_IMAGE, "The firmware file is empty.");
                goto finish;
        }

        n_layouts = device_get_layouts(d, &s, layouts, DFU_MAX_ALTS);
        if (n_layouts < 0) {
                r = n_layouts;
                n_layouts = 0;
                goto finish;
        }
        size_t nl = 0;
        for (int i = 0; i < n_layouts; i++)
                if (layouts[i])
                        nl = (size_t) i + 1;
        FirmwareTarget t = {
                .layouts = (const DfuseLayout *const *) layouts,
                .n_layouts = nl,
                .writable_regions = s.writable_regions,
        };
        device_suffix_ids(d, t.ids);
        r = firmware_prepare(data, size, &o, &t, &img, &why);
        if (r == -ENOMEM)
                goto finish;
        if (r < 0) {
                r = sd_bus_error_setf(error, DFUD_ERROR_INVALID_IMAGE,
                                      "Invalid firmware for device '%s': %s", d->id,
                                      why ? why : "unknown error");
                goto finish;
        }

        uint16_t version = 0;
        bool has_version = firmware_get_version(img, &version);
        if (has_version && d->has_version && version < d->app_bcd && !o.allow_downgrade) {
                char have[8], want[8];
                bcd_to_version(d->app_bcd, have);
                bcd_to_version(version, want);
                r = sd_bus_error_setf(error, DFUD_ERROR_DOWNGRADE,
                                      "Device '%s' runs version %s; the image carries the older %s "
                                      "(pass allow-downgrade to install it anyway).",
                                      d->id, have, want);
                goto finish;
        }

        p = pending_new(m, PENDING_UPDATE, msg);
        if (!p) {
                r = -ENOMEM;
                goto finish;
        }
        p->device_id = strdup(d->id);
        p->data = TAKE_PTR(data);
        p->size = size;
        p->options = o;
        p->has_version = has_version;
        p->version = version;
        if (!p->device_id) {
                pending_free(p);
                r = -ENOMEM;
                goto finish;
        }
        r = polkit_check(msg, DFUD_POLKIT_ACTION_UPDATE, on_update_authorized, p, &p->query);
        if (r < 0) {
                pending_free(p);
                goto finish;
        }
        r = 1; /* the reply comes once authorized */
finish:
        for (int i = 0; i < n_layouts; i++)
                free(layouts[i]);
        device_settings_done(&s);
        return r;
}

static void on_cancel_authorized(int r, sd_bus_message *msg, void *userdata) {
        PendingCall *p = userdata;
        Manager *m = p->manager;
        Job *j;

        if (r <= 0) {
                (void) reply_denied(msg, r, DFUD_POLKIT_ACTION_MANAGE);
                goto finish;
        }
        j = manager_get_job(m, p->job_id);
        if (!j) {
                (void) sd_bus_reply_method_errorf(msg, DFUD_ERROR_JOB_NOT_FOUND, "Job %" PRIu64 " is gone.",
                                                  p->job_id);
                goto finish;
        }
        if (job_state_is_final(j->state)) {
                (void) sd_bus_reply_method_errorf(msg, DFUD_ERROR_JOB_NOT_FOUND,
                                                  "Job %" PRIu64 " already %s.", j->id,
                                                  job_state_to_string(j->state));
                goto finish;
        }
        const char *sender = sd_bus_message_get_sender(msg);
        (void) job_log(j, now_rt(), "Cancel requested by %s.", sender ? sender : "a direct connection");
        if (j->exec)
                job_exec_cancel(j->exec);
        else {
                /* queued behind another job: nothing to stop */
                (void) job_fail(j, DFUD_ERROR_CANCELLED, "cancelled while queued", now_rt());
                host_changed(m, j, JOB_CHANGE_STATE | JOB_CHANGE_FINISHED);
        }
        (void) sd_bus_reply_method_return(msg, NULL);
finish:
        pending_free(p);
}

int manager_method_cancel(Manager *m, sd_bus_message *msg, Job *j, sd_bus_error *error) {
        PendingCall *p;
        int r;

        if (job_state_is_final(j->state))
                return sd_bus_error_setf(error, DFUD_ERROR_JOB_NOT_FOUND, "Job %" PRIu64 " already %s.",
                                         j->id, job_state_to_string(j->state));
        p = pending_new(m, PENDING_CANCEL, msg);
        if (!p)
                return -ENOMEM;
        p->job_id = j->id;
        r = polkit_check(msg, DFUD_POLKIT_ACTION_MANAGE, on_cancel_authorized, p, &p->query);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        return 1;
}

static int on_jump_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        close_jump(userdata);
        return 0;
}

static void on_detach_sent(int r, size_t actual, void *userdata) {
        Device *d = userdata;
        DeviceRuntime *dr = d->userdata;

        /* a runtime that reboots before answering is fine */
        if (r < 0 && !IN_SET(-r, ENODEV, EPIPE, EIO, ETIMEDOUT))
                log_warning_errno(r, "DFU_DETACH on device '%s' failed: %m", d->id);
        else
                log_info("DFU_DETACH sent to device '%s'.", d->id);
        if (!d->current_job)
                dr->handle = usb_device_close(dr->handle);
}

static int do_enter_bootloader(Manager *m, Device *d, sd_bus_error *error) {
        DeviceRuntime *dr = device_runtime(m, d);
        DeviceSettings s;
        JumpMethod method;
        int r;

        if (!dr)
                return -ENOMEM;
        r = manager_resolve_settings(m, d, &s);
        if (r < 0)
                return r;
        method = device_jump_method(d, &s);
        uint64_t timeout = s.bootloader_timeout_usec;

        switch (method) {
        case JUMP_DETACH: {
                Transport t;
                uint8_t iface = d->usb->desc.dfu_interface;
                uint16_t wt = d->usb->desc.has_functional ? d->usb->desc.functional.detach_timeout_ms : 1000;
                r = host_open(m, NULL, d, iface, &t);
                if (r >= 0)
                        r = t.ops->control(t.data, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DETACH,
                                           MIN(wt, (uint16_t) 1000), iface, NULL, 0, 2000, on_detach_sent,
                                           d);
                if (r < 0) {
                        dr->handle = usb_device_close(dr->handle);
                        r = sd_bus_error_setf(error, DFUD_ERROR_PROTOCOL, "DFU_DETACH on port %s failed: %s",
                                              strna(d->port), strerror(-r));
                }
                break;
        }
        case JUMP_TOUCH_1200:
        case JUMP_COMMAND:
                if (!d->tty) {
                        r = sd_bus_error_setf(error, DFUD_ERROR_NOT_SUPPORTED,
                                              "Device '%s' has no serial port (yet) for the %s jump.", d->id,
                                              jump_method_to_string(method));
                        break;
                }
                close_jump(dr);
                r = cdc_jump_open_and_send(d->tty,
                                           method == JUMP_TOUCH_1200 ? CDC_JUMP_TOUCH_1200 : CDC_JUMP_TEXT_COMMAND,
                                           s.jump_command);
                if (r < 0) {
                        r = sd_bus_error_setf(error, DFUD_ERROR_PROTOCOL, "The %s jump on %s failed: %s",
                                              jump_method_to_string(method), d->tty, strerror(-r));
                        break;
                }
                dr->jump_tty_fd = r;
                /* keep the line open a moment; it is closed when the device drops off */
                (void) sd_event_add_time_relative(m->event, &dr->jump_timer, CLOCK_MONOTONIC,
                                                  JUMP_TTY_HOLD_USEC, 0, on_jump_timer, dr);
                log_info("Sent the %s jump to device '%s' on %s.", jump_method_to_string(method), d->id,
                         d->tty);
                break;
        default:
                r = sd_bus_error_setf(error, DFUD_ERROR_NOT_SUPPORTED,
                                      "Device '%s' has no way configured to enter its bootloader.", d->id);
        }
        if (r >= 0 && d->port) {
                free(d->expect_port);
                d->expect_port = strdup(d->port);
                d->expect_until = now_usec(CLOCK_MONOTONIC) + timeout + EXPECT_SLACK_USEC;
        }
        device_settings_done(&s);
        return r;
}

static void on_enter_authorized(int r, sd_bus_message *msg, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PendingCall *p = userdata;
        Manager *m = p->manager;
        Device *d;

        if (r <= 0) {
                (void) reply_denied(msg, r, DFUD_POLKIT_ACTION_MANAGE);
                goto finish;
        }
        d = registry_get(m->registry, p->device_id);
        if (!d || d->mode == DEVICE_MODE_ABSENT) {
                (void) sd_bus_reply_method_errorf(msg, DFUD_ERROR_DEVICE_GONE,
                                                  "Device '%s' is not connected.", p->device_id);
                goto finish;
        }
        if (d->current_job) {
                (void) sd_bus_reply_method_errorf(msg, DFUD_ERROR_BUSY,
                                                  "Device '%s' is busy with job %" PRIu64 ".", d->id,
                                                  d->current_job);
                goto finish;
        }
        if (d->mode == DEVICE_MODE_DFU) {
                (void) sd_bus_reply_method_return(msg, NULL);
                goto finish;
        }
        r = do_enter_bootloader(m, d, &error);
        if (r < 0 || sd_bus_error_is_set(&error)) {
                if (!sd_bus_error_is_set(&error))
                        (void) sd_bus_error_set_errnof(&error, r, "Failed to enter the bootloader: %m");
                (void) sd_bus_reply_method_error(msg, &error);
        } else
                (void) sd_bus_reply_method_return(msg, NULL);
finish:
        pending_free(p);
}

int manager_method_enter_bootloader(Manager *m, sd_bus_message *msg, Device *d, sd_bus_error *error) {
        PendingCall *p;
        int r;

        if (d->mode == DEVICE_MODE_ABSENT)
                return sd_bus_error_setf(error, DFUD_ERROR_DEVICE_GONE, "Device '%s' is not connected.",
                                         d->id);
        if (d->current_job)
                return sd_bus_error_setf(error, DFUD_ERROR_BUSY, "Device '%s' is busy with job %" PRIu64 ".",
                                         d->id, d->current_job);
        p = pending_new(m, PENDING_ENTER_BOOTLOADER, msg);
        if (!p)
                return -ENOMEM;
        p->device_id = strdup(d->id);
        if (!p->device_id) {
                pending_free(p);
                return -ENOMEM;
        }
        r = polkit_check(msg, DFUD_POLKIT_ACTION_MANAGE, on_enter_authorized, p, &p->query);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        return 1;
}
