/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <termios.h>

#include "cdc-jump.h"
#include "dfud-dbus.h"
#include "firmware.h"
#include "job-exec.h"
#include "log.h"
#include "util.h"

typedef enum ExecStep {
        STEP_IDLE,
        STEP_WAIT_DEVICE, /* absent, not probed yet, or gone mid-update */
        STEP_WAIT_TTY,    /* application found, its tty not yet */
        STEP_DETACH,      /* engine: DFU_DETACH on the runtime interface */
        STEP_RESET,       /* USB reset after DETACH for runtimes without bitWillDetach */
        STEP_WAIT_BOOTLOADER,
        STEP_UPDATE, /* engine: erase/write/verify/leave */
        STEP_GRACE,  /* a transfer failed: is the device going away (then resume) or not? */
        STEP_WAIT_APPLICATION,
        STEP_DONE,
} ExecStep;

/* A device that went away mid-update and seems to be back without a remove/add pair gets
 * another attempt after this long. */
#define RETRY_PRESENT_USEC (3 * USEC_PER_SEC)
/* How long after the expected timeout a re-enumeration on the port still counts as ours. */
#define EXPECT_SLACK_USEC (5 * USEC_PER_SEC)
#define TTY_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* An unplug often shows as a timed out or failed transfer before udev reports the removal. */
#define GRACE_USEC (3 * USEC_PER_SEC)
#define PUMP_MAX_SYNC_STEPS 100000

struct JobExec {
        Job *job;
        Device *device;
        const JobHost *host;
        ExecStep step;

        DeviceSettings settings;
        DfuEngine *engine;
        DfuDeviceInfo info;
        DfuseLayout *layouts[DFU_MAX_ALTS];
        DfuPlanSector *verified; /* what the engine was told to trust; the job's list grows meanwhile */
        DfuEngineError grace_error; /* STEP_GRACE: the failure, if the device stays */
        char grace_where[64];
        bool open;
        Transport transport;
        bool xfer_pending, engine_waiting, in_pump, cancel_requested;

        int tty_fd;
        uint64_t step_started;  /* CLOCK_MONOTONIC, for timings in the log and timeouts */
        uint64_t wait_deadline; /* of the current step; USEC_INFINITY = none */
        size_t verified_at_start;
        DfuPhase last_phase;
        bool saw_other_mode; /* while waiting, the device came back in the wrong mode */
        bool saw_gone;       /* ... after it had gone away (a "change" event is not a return) */
};

static uint64_t mono(JobExec *x) {
        return x->host->now(x->host->userdata, CLOCK_MONOTONIC);
}

static uint64_t realtime(JobExec *x) {
        return x->host->now(x->host->userdata, CLOCK_REALTIME);
}

static void changed(JobExec *x, unsigned what) {
        x->host->changed(x->host->userdata, x->job, what);
}

static void set_timer(JobExec *x, uint64_t usec) {
        x->host->set_timer(x->host->userdata, x->job, usec);
}

/* One line into the job's log (Job.GetLog, the journal) and the daemon's log. */
_printf_(3, 4) static void xlog(JobExec *x, int level, const char *format, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        (void) job_log(x->job, realtime(x), "%s", buf);
        log_full(level, "Job %" PRIu64 " (%s): %s", x->job->id, x->job->device_id, buf);
}

static double elapsed_sec(JobExec *x) {
        return (double) (mono(x) - x->step_started) / USEC_PER_SEC;
}

static const char *port_of(JobExec *x) {
        return x->device->port ? x->device->port : "?";
}

static void set_state(JobExec *x, JobState s) {
        if (job_set_state(x->job, s, realtime(x)) > 0) {
                log_debug("Job %" PRIu64 ": state %s", x->job->id, job_state_to_string(s));
                changed(x, JOB_CHANGE_STATE);
        }
}

static void close_tty(JobExec *x) {
        if (x->tty_fd < 0)
                return;
        /* drop unsent output, so close() does not wait for a drain (closing_wait, 30 s by default) */
        (void) tcflush(x->tty_fd, TCIOFLUSH);
        x->tty_fd = safe_close(x->tty_fd);
}

static void release_engine(JobExec *x) {
        if (x->open) {
                x->host->close(x->host->userdata, x->job, x->device);
                x->open = false;
        }
        x->xfer_pending = false;
        x->engine_waiting = false;
        x->engine = dfu_engine_free(x->engine);
        for (size_t i = 0; i < DFU_MAX_ALTS; i++)
                x->layouts[i] = mfree(x->layouts[i]);
        x->verified = mfree(x->verified);
}

static void load_settings(JobExec *x) {
        DeviceSettings s;
        if (x->host->get_settings(x->host->userdata, x->device, &s) >= 0) {
                device_settings_done(&x->settings);
                x->settings = s;
        }
}

static void expect_reenumeration(JobExec *x, uint64_t timeout) {
        Device *d = x->device;
        if (!d->port)
                return;
        free(d->expect_port);
        d->expect_port = strdup(d->port);
        d->expect_until = mono(x) + (timeout ? timeout : 3600 * USEC_PER_SEC) + EXPECT_SLACK_USEC;
}

static void enter_step(JobExec *x, ExecStep step, uint64_t timeout) {
        x->step = step;
        x->step_started = mono(x);
        x->wait_deadline = timeout > 0 ? x->step_started + timeout : USEC_INFINITY;
        x->saw_other_mode = false;
        x->saw_gone = x->device->mode == DEVICE_MODE_ABSENT;
        set_timer(x, x->wait_deadline);
}

_printf_(4, 5) static void finish(JobExec *x, JobState st, const char *error_name, const char *format, ...) {
        char msg[1024] = "";

        if (format) {
                va_list ap;
                va_start(ap, format);
                (void) vsnprintf(msg, sizeof msg, format, ap);
                va_end(ap);
        }
        release_engine(x);
        close_tty(x);
        set_timer(x, USEC_INFINITY);
        x->step = STEP_DONE;

        if (st == JOB_SUCCEEDED) {
                xlog(x, LOG_INFO, "Update succeeded%s%s.", msg[0] ? ": " : "", msg);
                (void) device_set_last_error(x->device, NULL);
                (void) job_set_state(x->job, JOB_SUCCEEDED, realtime(x));
        } else {
                xlog(x, st == JOB_CANCELLED ? LOG_NOTICE : LOG_ERR, "%s: %s",
                     st == JOB_CANCELLED ? "Cancelled" : "Failed", msg);
                if (st == JOB_FAILED)
                        (void) device_set_last_error(x->device, msg);
                (void) job_fail(x->job, error_name, msg, realtime(x));
        }
        changed(x, JOB_CHANGE_STATE | JOB_CHANGE_FINISHED | JOB_CHANGE_DEVICE);
}

static void advance(JobExec *x);
static void pump(JobExec *x);

static JobState phase_to_state(DfuPhase p) {
        switch (p) {
        case DFU_PHASE_DETACHING:
                return JOB_ENTERING_BOOTLOADER;
        case DFU_PHASE_READING:
                return JOB_READING;
        case DFU_PHASE_ERASING:
                return JOB_ERASING;
        case DFU_PHASE_WRITING:
                return JOB_WRITING;
        case DFU_PHASE_VERIFYING:
                return JOB_VERIFYING;
        case DFU_PHASE_LEAVING:
                return JOB_LEAVING;
        default:
                return _JOB_STATE_INVALID; /* entering dfuIDLE, done, failed: no state of its own */
        }
}

static void on_engine_event(DfuEngine *e, const DfuEvent *ev, void *userdata) {
        JobExec *x = userdata;

        switch (ev->kind) {
        case DFU_EVENT_PHASE: {
                if (ev->phase != x->last_phase && ev->phase != DFU_PHASE_DONE &&
                    ev->phase != DFU_PHASE_FAILED)
                        xlog(x, LOG_DEBUG, "Phase %s.", strna(dfu_phase_to_string(ev->phase)));
                x->last_phase = ev->phase;
                JobState s = phase_to_state(ev->phase);
                if (s >= 0 && x->step == STEP_UPDATE)
                        set_state(x, s);
                break;
        }
        case DFU_EVENT_PROGRESS: {
                /* the jump is worth 5 %, the flash 90 %, the application's return the rest */
                unsigned pct = ev->bytes_total > 0
                                       ? 5 + (unsigned) (90 * MIN(ev->bytes_done, ev->bytes_total) /
                                                         ev->bytes_total)
                                       : x->job->progress;
                if (x->step == STEP_UPDATE &&
                    job_set_progress(x->job, ev->bytes_done, ev->bytes_total, pct) > 0)
                        changed(x, JOB_CHANGE_PROGRESS);
                break;
        }
        case DFU_EVENT_SECTOR_VERIFIED:
                if (ev->sector && job_add_verified(x->job, ev->sector) >= 0)
                        changed(x, JOB_CHANGE_SECTOR);
                break;
        case DFU_EVENT_LOG:
                if (ev->message)
                        xlog(x, LOG_DEBUG, "%s", ev->message);
                break;
        }
}

static void on_control_done(int r, size_t actual, void *userdata) {
        JobExec *x = userdata;
        if (!x->engine)
                return;
        x->xfer_pending = false;
        dfu_engine_control_done(x->engine, r, actual);
        pump(x);
}

static void on_set_alt_done(int r, size_t actual, void *userdata) {
        JobExec *x = userdata;
        if (!x->engine)
                return;
        x->xfer_pending = false;
        dfu_engine_set_alt_done(x->engine, r);
        pump(x);
}

static void wait_bootloader(JobExec *x);
static void wait_application(JobExec *x);

static void on_reset_done(int r, size_t actual, void *userdata) {
        JobExec *x = userdata;
        if (x->step != STEP_RESET)
                return;
        x->xfer_pending = false;
        if (r < 0 && r != -ENODEV)
                xlog(x, LOG_WARNING, "USB reset after DFU_DETACH failed (%s), waiting anyway.",
                     strerror(-r));
        release_engine(x);
        wait_bootloader(x);
}

static const char *engine_error_name(const DfuEngineError *e) {
        switch (-e->error) {
        case ECANCELED:
                return DFUD_ERROR_CANCELLED;
        case ETIMEDOUT:
                return DFUD_ERROR_TIMEOUT;
        case ENODEV:
                return DFUD_ERROR_DEVICE_GONE;
        }
        if (e->status == DFU_STATUS_ERR_VERIFY || (e->phase == DFU_PHASE_VERIFYING && e->error != -EPROTO))
                return DFUD_ERROR_VERIFY_FAILED;
        return DFUD_ERROR_PROTOCOL;
}

static void detach_done(JobExec *x) {
        bool will_detach = x->info.functional.attributes & DFU_ATTR_WILL_DETACH;

        xlog(x, LOG_INFO, "DFU_DETACH sent on port %s%s.", port_of(x),
             will_detach ? "" : "; the device does not detach by itself, resetting it");
        if (!will_detach && x->open && x->transport.ops->reset) {
                x->step = STEP_RESET;
                int r = x->transport.ops->reset(x->transport.data, on_reset_done, x);
                if (r >= 0) {
                        x->xfer_pending = true;
                        return;
                }
                xlog(x, LOG_WARNING, "USB reset failed (%s), waiting anyway.", strerror(-r));
        }
        release_engine(x);
        wait_bootloader(x);
}

static void update_done(JobExec *x) {
        DfuEngineStats st = {};

        dfu_engine_get_stats(x->engine, &st);
        xlog(x, LOG_INFO,
             "Flash done in %.1f s: %" PRIu64 " bytes written, %" PRIu64 " read back, %" PRIu64
             " sectors erased, %" PRIu64 " skipped, %" PRIu64 " control transfers.",
             elapsed_sec(x), st.bytes_downloaded, st.bytes_uploaded, st.sectors_erased, st.sectors_skipped,
             st.control_transfers);
        release_engine(x);
        x->job->flashed = true;
        x->job->stalled_attempts = 0;
        changed(x, JOB_CHANGE_SECTOR); /* persist "flashed" */

        if (!x->job->options.leave) {
                finish(x, JOB_SUCCEEDED, NULL, "device left in DFU mode as requested");
                return;
        }
        wait_application(x);
}

static void device_lost(JobExec *x, const DfuEngineError *err, const char *where) {
        bool progress = x->job->n_verified > x->verified_at_start;

        x->job->stalled_attempts = progress ? 0 : x->job->stalled_attempts + 1;
        if (x->job->stalled_attempts >= JOB_MAX_STALLED_ATTEMPTS) {
                finish(x, JOB_FAILED, DFUD_ERROR_DEVICE_GONE,
                       "the device dropped off the bus %u times in a row while %s%s without a new verified "
                       "sector; giving up",
                       x->job->stalled_attempts, strna(dfu_phase_to_string(err->phase)), where);
                return;
        }
        xlog(x, LOG_WARNING,
             "Device went away while %s%s (%zu sectors verified so far); waiting for it to come back.",
             strna(dfu_phase_to_string(err->phase)), where, x->job->n_verified);
        set_state(x, JOB_WAITING_FOR_DEVICE);
        changed(x, JOB_CHANGE_SECTOR); /* persist the attempt counters */
        enter_step(x, STEP_WAIT_DEVICE, x->settings.device_timeout_usec);
        /* the remove event may still be on its way; if not, try again soon */
        if (x->device->mode != DEVICE_MODE_ABSENT)
                set_timer(x, MIN(x->wait_deadline, mono(x) + RETRY_PRESENT_USEC));
}

static void engine_failed(JobExec *x) {
        const DfuEngineError *e = dfu_engine_get_error(x->engine);
        DfuEngineError err = e ? *e : (DfuEngineError) { .error = -EIO };
        ExecStep step = x->step;
        char where[64] = "";

        if (!err.message[0])
                snprintf(err.message, sizeof err.message, "%s", strerror(-err.error));
        if (err.has_address)
                snprintf(where, sizeof where, " at 0x%08x", err.address);
        release_engine(x);

        if (err.error == -ECANCELED || x->cancel_requested) {
                finish(x, JOB_CANCELLED, DFUD_ERROR_CANCELLED, "cancelled while %s%s",
                       strna(dfu_phase_to_string(err.phase)), where);
                return;
        }

        if (step == STEP_DETACH) {
                /* some runtimes reboot before they answer DETACH: a lost answer is not a failure */
                if (IN_SET(-err.error, ENODEV, EPIPE, EIO, ETIMEDOUT)) {
                        xlog(x, LOG_INFO,
                             "DFU_DETACH not acknowledged (%s); the device is probably rebooting.",
                             err.message);
                        wait_bootloader(x);
                        return;
                }
                finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL, "DFU_DETACH failed on port %s: %s", port_of(x),
                       err.message);
                return;
        }

        if (err.error == -ENODEV) {
                device_lost(x, &err, where);
                return;
        }

        if (IN_SET(-err.error, ETIMEDOUT, EIO) && x->device->mode != DEVICE_MODE_ABSENT) {
                xlog(x, LOG_DEBUG, "%s; waiting %.0f s to see whether the device went away.", err.message,
                     (double) GRACE_USEC / USEC_PER_SEC);
                x->grace_error = err;
                snprintf(x->grace_where, sizeof x->grace_where, "%s", where);
                enter_step(x, STEP_GRACE, GRACE_USEC);
                return;
        }

        if (err.status == DFU_STATUS_ERR_VENDOR) {
                x->device->read_protected = true;
                changed(x, JOB_CHANGE_DEVICE);
        }
        finish(x, JOB_FAILED, engine_error_name(&err), "%s", err.message);
}

static void pump(JobExec *x) {
        unsigned n = 0;

        if (x->in_pump || !x->engine)
                return;
        x->in_pump = true;
        while (x->engine) {
                DfuStep st;
                int r;

                if (++n > PUMP_MAX_SYNC_STEPS) {
                        x->in_pump = false;
                        finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL,
                               "internal error: the DFU engine does not wait");
                        return;
                }
                r = dfu_engine_next(x->engine, &st);
                if (r < 0) {
                        x->in_pump = false;
                        finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL, "internal error: DFU engine: %s",
                               strerror(-r));
                        return;
                }
                switch (st.kind) {
                case DFU_STEP_CONTROL:
                        r = x->open ? x->transport.ops->control(x->transport.data, st.request_type,
                                                                st.request, st.value, st.index, st.data,
                                                                st.length, st.timeout_ms, on_control_done, x)
                                    : -ENODEV;
                        if (r < 0) {
                                dfu_engine_control_done(x->engine, r, 0);
                                continue;
                        }
                        x->xfer_pending = true;
                        x->in_pump = false;
                        return;
                case DFU_STEP_SET_ALT:
                        r = x->open ? x->transport.ops->set_alt(x->transport.data, x->info.interface_number,
                                                                st.alt, on_set_alt_done, x)
                                    : -ENODEV;
                        if (r < 0) {
                                dfu_engine_set_alt_done(x->engine, r);
                                continue;
                        }
                        x->xfer_pending = true;
                        x->in_pump = false;
                        return;
                case DFU_STEP_WAIT:
                        x->engine_waiting = true;
                        set_timer(x, mono(x) + st.wait_usec);
                        x->in_pump = false;
                        return;
                case DFU_STEP_DONE:
                        x->in_pump = false;
                        if (x->step == STEP_DETACH)
                                detach_done(x);
                        else
                                update_done(x);
                        return;
                case DFU_STEP_FAILED:
                        x->in_pump = false;
                        engine_failed(x);
                        return;
                }
        }
        x->in_pump = false;
}

static void fill_info(JobExec *x, const UsbDescInfo *desc, bool runtime) {
        x->info = (DfuDeviceInfo) {
                .interface_number = desc->dfu_interface,
                .functional = desc->functional,
                .runtime = runtime,
                .n_alts = MAX(desc->n_alts, (uint8_t) 1),
        };
        if (!desc->has_functional)
                /* DFU 1.0 devices without a functional descriptor: the spec's minimum */
                x->info.functional = (DfuFunctionalDescriptor) {
                        .attributes = DFU_ATTR_CAN_DOWNLOAD,
                        .detach_timeout_ms = 1000,
                        .transfer_size = 64,
                        .dfu_version = 0x0100,
                };
}

static uint64_t engine_clock(void *userdata) {
        return mono(userdata);
}

static int open_engine(JobExec *x, bool runtime) {
        int r;

        fill_info(x, &x->device->usb->desc, runtime);
        r = x->host->open(x->host->userdata, x->job, x->device, x->info.interface_number, &x->transport);
        if (r < 0)
                return r;
        x->open = true;
        if (!runtime) {
                r = device_get_layouts(x->device, &x->settings, x->layouts, DFU_MAX_ALTS);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < (size_t) r && i < x->info.n_alts; i++)
                        x->info.layouts[i] = x->layouts[i];
        }
        r = dfu_engine_new(&x->info, &x->engine);
        if (r < 0)
                return r;
        x->last_phase = DFU_PHASE_IDLE;
        dfu_engine_set_event_func(x->engine, on_engine_event, x);
        dfu_engine_set_clock(x->engine, engine_clock, x);
        return 0;
}

static void start_detach(JobExec *x) {
        int r;

        r = open_engine(x, true);
        if (r >= 0) {
                x->step = STEP_DETACH;
                uint16_t t = x->info.functional.detach_timeout_ms;
                r = dfu_engine_start_detach(x->engine, t == 0 || t > 1000 ? 1000 : t);
        }
        if (r < 0) {
                release_engine(x);
                finish(x, JOB_FAILED, r == -ENODEV ? DFUD_ERROR_DEVICE_GONE : DFUD_ERROR_PROTOCOL,
                       "cannot open the DFU runtime interface on port %s: %s", port_of(x), strerror(-r));
                return;
        }
        pump(x);
}

static void start_tty_jump(JobExec *x, JumpMethod m) {
        Device *d = x->device;
        int r;

        if (!d->tty) {
                xlog(x, LOG_INFO, "Waiting for the application's serial port on port %s.", port_of(x));
                enter_step(x, STEP_WAIT_TTY, TTY_TIMEOUT_USEC);
                return;
        }
        close_tty(x);
        r = cdc_jump_open_and_send(d->tty, m == JUMP_TOUCH_1200 ? CDC_JUMP_TOUCH_1200 : CDC_JUMP_TEXT_COMMAND,
                                   x->settings.jump_command);
        if (r < 0) {
                finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL, "%s jump on %s failed: %s",
                       jump_method_to_string(m), d->tty, strerror(-r));
                return;
        }
        x->tty_fd = r;
        xlog(x, LOG_INFO, "Sent the %s jump on %s (port %s).", jump_method_to_string(m), d->tty, port_of(x));
        /* the fd stays open until the device drops off: closing may hang up the line early */
        wait_bootloader(x);
}

static JumpMethod resolve_jump(JobExec *x) {
        return device_jump_method(x->device, &x->settings);
}

static void start_jump(JobExec *x) {
        JumpMethod m = resolve_jump(x);

        set_state(x, JOB_ENTERING_BOOTLOADER);
        x->step_started = mono(x);
        switch (m) {
        case JUMP_DETACH:
                expect_reenumeration(x, x->settings.bootloader_timeout_usec);
                start_detach(x);
                return;
        case JUMP_TOUCH_1200:
        case JUMP_COMMAND:
                expect_reenumeration(x, x->settings.bootloader_timeout_usec);
                start_tty_jump(x, m);
                return;
        default:
                finish(x, JOB_FAILED, DFUD_ERROR_NOT_SUPPORTED,
                       "the device on port %s runs its application and has no way configured to enter its "
                       "bootloader (set \"jump\" in dfud.conf, or start it in DFU mode)",
                       port_of(x));
        }
}

static void wait_bootloader(JobExec *x) {
        set_state(x, JOB_ENTERING_BOOTLOADER);
        expect_reenumeration(x, x->settings.bootloader_timeout_usec);
        enter_step(x, STEP_WAIT_BOOTLOADER, x->settings.bootloader_timeout_usec);
        if (x->device->mode == DEVICE_MODE_DFU && x->device->probed)
                advance(x);
}

static void check_application(JobExec *x) {
        Device *d = x->device;
        char have[8], want[8];

        bcd_to_version(d->app_bcd, have);
        if (x->job->has_image_version && d->app_bcd != x->job->image_version) {
                bcd_to_version(x->job->image_version, want);
                finish(x, JOB_FAILED, DFUD_ERROR_VERIFY_FAILED,
                       "the application came back on port %s with version %s, but the image carries %s",
                       port_of(x), have, want);
                return;
        }
        finish(x, JOB_SUCCEEDED, NULL, "application back on port %s after %.1f s, firmware version %s",
               port_of(x), elapsed_sec(x), have);
}

static void wait_application(JobExec *x) {
        set_state(x, JOB_WAITING_FOR_APPLICATION);
        if (job_set_progress(x->job, x->job->bytes_done, x->job->bytes_total, 95) > 0)
                changed(x, JOB_CHANGE_PROGRESS);
        expect_reenumeration(x, x->settings.application_timeout_usec);
        enter_step(x, STEP_WAIT_APPLICATION, x->settings.application_timeout_usec);
        if (x->device->mode == DEVICE_MODE_APPLICATION)
                check_application(x);
}

static int prepare_image(JobExec *x) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *error = NULL;
        size_t size;
        int r;

        r = x->host->load_image(x->host->userdata, x->job, &data, &size);
        if (r < 0) {
                finish(x, JOB_FAILED, DFUD_ERROR_INVALID_IMAGE,
                       "the stored firmware image is unreadable: %s",
                       r == -EBADMSG ? "its checksum does not match" : strerror(-r));
                return r;
        }

        size_t n = 0;
        for (size_t i = 0; i < x->info.n_alts && i < DFU_MAX_ALTS; i++)
                if (x->info.layouts[i])
                        n = i + 1;
        FirmwareTarget t = {
                .layouts = (const DfuseLayout *const *) x->info.layouts,
                .n_layouts = n,
                .writable_regions = x->settings.writable_regions,
        };
        device_suffix_ids(x->device, t.ids);
        x->job->image = dfu_image_free(x->job->image);
        r = firmware_prepare(data, size, &x->job->options, &t, &x->job->image, &error);
        if (r < 0) {
                /* the layout read from the bootloader may differ from what the image was checked against */
                finish(x, JOB_FAILED, DFUD_ERROR_INVALID_IMAGE,
                       "the image does not fit the bootloader's memory: %s", error ? error : strerror(-r));
                return r;
        }
        return 0;
}

static void start_update(JobExec *x) {
        DfuUpdateOptions o;
        int r;

        x->step = STEP_UPDATE;
        x->step_started = mono(x);
        set_timer(x, USEC_INFINITY);

        r = open_engine(x, false);
        if (r < 0) {
                release_engine(x);
                if (r == -ENODEV) {
                        enter_step(x, STEP_WAIT_DEVICE, x->settings.device_timeout_usec);
                        set_state(x, JOB_WAITING_FOR_DEVICE);
                        return;
                }
                finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL, "cannot open the DFU interface on port %s: %s",
                       port_of(x), strerror(-r));
                return;
        }
        if (prepare_image(x) < 0)
                return;

        dfu_update_options_init(&o);
        o.poll_policy = x->settings.poll_policy;
        o.busy_timeout_ms =
                (unsigned) MIN(x->settings.busy_timeout_usec / USEC_PER_MSEC, (uint64_t) UINT32_MAX);
        o.verify = x->job->options.verify;
        o.incremental = x->job->options.incremental;
        o.leave = x->job->options.leave;
        if (x->job->n_verified > 0) {
                x->verified = memdup(x->job->verified, x->job->n_verified * sizeof(DfuPlanSector));
                if (!x->verified) {
                        finish(x, JOB_FAILED, DFUD_ERROR_PROTOCOL, "out of memory");
                        return;
                }
        }
        o.n_verified = x->job->n_verified;
        o.verified = x->verified;

        bool resuming = x->job->attempts > 0;
        x->job->attempts++;
        x->verified_at_start = x->job->n_verified;
        xlog(x, LOG_INFO, "Bootloader %04x:%04x on port %s; %s (attempt %u, %zu sectors already verified).",
             x->device->dfu.vendor_id, x->device->dfu.product_id, port_of(x),
             resuming ? "resuming: what is on the device is read back and kept if right" : "writing",
             x->job->attempts, x->job->n_verified);

        r = dfu_engine_start_update(x->engine, x->job->image, &o);
        if (r < 0) {
                release_engine(x);
                finish(x, JOB_FAILED, DFUD_ERROR_INVALID_IMAGE, "the DFU engine refused the image: %s",
                       strerror(-r));
                return;
        }
        pump(x);
}

/* Decide what to do from where the device is now. */
static void advance(JobExec *x) {
        Device *d = x->device;

        if (x->cancel_requested) {
                finish(x, JOB_CANCELLED, DFUD_ERROR_CANCELLED, "cancelled");
                return;
        }
        load_settings(x);

        switch (d->mode) {
        case DEVICE_MODE_ABSENT:
                if (x->step != STEP_WAIT_DEVICE) {
                        xlog(x, LOG_INFO, "Waiting for the device to appear%s%s.",
                             d->port ? " on port " : "", strempty(d->port));
                        enter_step(x, STEP_WAIT_DEVICE, x->settings.device_timeout_usec);
                }
                set_state(x, JOB_WAITING_FOR_DEVICE);
                return;

        case DEVICE_MODE_DFU:
                if (!d->probed) {
                        if (x->step != STEP_WAIT_DEVICE && x->step != STEP_WAIT_BOOTLOADER &&
                            x->step != STEP_WAIT_APPLICATION)
                                enter_step(x, STEP_WAIT_DEVICE, x->settings.device_timeout_usec);
                        return; /* job_exec_device_changed() once its memory map is read */
                }
                if (x->step == STEP_WAIT_BOOTLOADER)
                        xlog(x, LOG_INFO, "Bootloader appeared on port %s after %.1f s.", port_of(x),
                             elapsed_sec(x));
                start_update(x);
                return;

        case DEVICE_MODE_APPLICATION:
                if (x->job->flashed) {
                        /* restarted (or replugged) after the flash: only the version is left to check */
                        x->step_started = mono(x);
                        check_application(x);
                        return;
                }
                start_jump(x);
                return;

        default:
                return;
        }
}

int job_exec_new(Job *j, Device *d, const JobHost *host, JobExec **ret) {
        JobExec *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = (JobExec) {
                .job = j,
                .device = d,
                .host = host,
                .step = STEP_IDLE,
                .tty_fd = -EBADF,
                .wait_deadline = USEC_INFINITY,
        };
        j->exec = x;
        *ret = x;
        return 0;
}

JobExec *job_exec_free(JobExec *x) {
        if (!x)
                return NULL;
        release_engine(x);
        close_tty(x);
        device_settings_done(&x->settings);
        if (x->job && x->job->exec == x)
                x->job->exec = NULL;
        return mfree(x);
}

bool job_exec_is_running(const JobExec *x) {
        return x && x->step != STEP_IDLE && x->step != STEP_DONE;
}

void job_exec_start(JobExec *x) {
        if (x->step != STEP_IDLE)
                return;
        load_settings(x);
        xlog(x, LOG_INFO, "Starting update of device '%s' (%s%s%s), image %.12s, %" PRIu64 " bytes.",
             x->device->id, device_mode_to_string(x->device->mode), x->device->port ? ", port " : "",
             strempty(x->device->port), strna(x->job->image_sha256), x->job->image_size);
        x->step_started = mono(x);
        advance(x);
}

void job_exec_device_changed(JobExec *x) {
        Device *d = x->device;

        if (d->mode == DEVICE_MODE_ABSENT) {
                x->saw_gone = true;
                /* the line went with the device; closing now cannot wait for a drain */
                close_tty(x);
        }

        switch (x->step) {
        case STEP_WAIT_DEVICE:
                if (d->mode != DEVICE_MODE_ABSENT)
                        advance(x);
                return;

        case STEP_WAIT_TTY:
                if (d->mode == DEVICE_MODE_APPLICATION && d->tty)
                        start_jump(x);
                else if (d->mode == DEVICE_MODE_DFU)
                        advance(x);
                return;

        case STEP_WAIT_BOOTLOADER:
                if (d->mode == DEVICE_MODE_DFU && d->probed)
                        advance(x);
                else if (d->mode == DEVICE_MODE_APPLICATION && x->saw_gone && !x->saw_other_mode) {
                        close_tty(x);
                        x->saw_other_mode = true;
                        xlog(x, LOG_NOTICE,
                             "The application re-enumerated on port %s instead of the bootloader.",
                             port_of(x));
                }
                return;

        case STEP_DETACH:
        case STEP_RESET:
                if (d->mode == DEVICE_MODE_ABSENT) {
                        /* gone while detaching: that is what we asked for */
                        release_engine(x);
                        wait_bootloader(x);
                } else if (d->mode == DEVICE_MODE_DFU && d->probed) {
                        release_engine(x);
                        wait_bootloader(x);
                }
                return;

        case STEP_UPDATE:
                if (d->mode == DEVICE_MODE_ABSENT || !x->open) {
                        if (x->open) {
                                x->host->close(x->host->userdata, x->job, x->device);
                                x->open = false;
                        }
                        x->xfer_pending = false;
                        if (x->engine_waiting) {
                                x->engine_waiting = false;
                                set_timer(x, USEC_INFINITY);
                        }
                        if (x->engine) {
                                dfu_engine_device_gone(x->engine);
                                pump(x);
                        }
                }
                return;

        case STEP_GRACE:
                if (d->mode == DEVICE_MODE_ABSENT)
                        device_lost(x, &x->grace_error, x->grace_where);
                return;

        case STEP_WAIT_APPLICATION:
                if (d->mode == DEVICE_MODE_APPLICATION)
                        check_application(x);
                else if (d->mode == DEVICE_MODE_DFU && d->probed && x->saw_gone && !x->saw_other_mode) {
                        x->saw_other_mode = true;
                        xlog(x, LOG_NOTICE,
                             "The bootloader re-enumerated on port %s instead of the application.",
                             port_of(x));
                }
                return;

        default:
                return;
        }
}

void job_exec_timer(JobExec *x) {
        Device *d = x->device;
        uint64_t now = mono(x);

        if (x->engine_waiting) {
                x->engine_waiting = false;
                if (x->engine) {
                        dfu_engine_wait_done(x->engine);
                        pump(x);
                }
                return;
        }

        switch (x->step) {
        case STEP_WAIT_DEVICE:
                if (d->mode != DEVICE_MODE_ABSENT && (d->mode != DEVICE_MODE_DFU || d->probed)) {
                        advance(x); /* the retry after a spurious "gone" */
                        return;
                }
                if (now < x->wait_deadline) {
                        set_timer(x, x->wait_deadline);
                        return;
                }
                finish(x, JOB_FAILED, DFUD_ERROR_TIMEOUT, "device '%s' did not appear within %.0f s%s%s",
                       d->id, (double) x->settings.device_timeout_usec / USEC_PER_SEC,
                       d->port ? " on port " : "", strempty(d->port));
                return;
        case STEP_GRACE: {
                DfuEngineError *e = &x->grace_error;
                if (e->status == DFU_STATUS_ERR_VENDOR)
                        x->device->read_protected = true;
                finish(x, JOB_FAILED, engine_error_name(e), "%s", e->message);
                return;
        }
        case STEP_WAIT_TTY:
                finish(x, JOB_FAILED, DFUD_ERROR_TIMEOUT,
                       "the application on port %s has no serial port (tty) for the %s jump", port_of(x),
                       jump_method_to_string(resolve_jump(x)));
                return;
        case STEP_WAIT_BOOTLOADER:
                finish(x, JOB_FAILED, DFUD_ERROR_TIMEOUT,
                       "device did not come back in bootloader mode within %.0f s on port %s%s",
                       (double) x->settings.bootloader_timeout_usec / USEC_PER_SEC, port_of(x),
                       x->saw_other_mode ? " (the application came back instead: the jump was ignored)"
                                         : "");
                return;
        case STEP_WAIT_APPLICATION:
                finish(x, JOB_FAILED, DFUD_ERROR_TIMEOUT,
                       "device did not come back in application mode within %.0f s on port %s%s",
                       (double) x->settings.application_timeout_usec / USEC_PER_SEC, port_of(x),
                       x->saw_other_mode || d->mode == DEVICE_MODE_DFU
                               ? " (the bootloader came back instead: the new firmware did not start)"
                               : "");
                return;
        default:
                return;
        }
}

void job_exec_cancel(JobExec *x) {
        if (x->step == STEP_DONE)
                return;
        x->cancel_requested = true;
        if (x->engine && x->step == STEP_UPDATE) {
                xlog(x, LOG_NOTICE, "Cancel requested while %s.", strna(dfu_phase_to_string(x->last_phase)));
                dfu_engine_cancel(x->engine);
                if (x->xfer_pending && x->open && x->transport.ops->cancel)
                        x->transport.ops->cancel(x->transport.data);
                else if (!x->xfer_pending) {
                        x->engine_waiting = false;
                        set_timer(x, USEC_INFINITY);
                        pump(x);
                }
                return;
        }
        finish(x, JOB_CANCELLED, DFUD_ERROR_CANCELLED, "cancelled while %s",
               job_state_to_string(x->job->state));
}

void job_exec_stop(JobExec *x) {
        release_engine(x);
        close_tty(x);
        set_timer(x, USEC_INFINITY);
        x->step = STEP_IDLE;
}
