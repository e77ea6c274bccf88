/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Runs a Job on its Device: the jump into the bootloader (DFU_DETACH through the engine, or the
 * 1200-baud touch / text command on the tty), the wait for the bootloader, the DFU engine
 * (erase/write/verify, resuming from the sectors the journal says are verified), leave, and the
 * wait for the application and its version. Every wait has a timeout with a sentence saying what
 * did not happen where.
 *
 * No event loop and no USB here: the owner (the manager, or a test) provides a JobHost with a
 * clock, a timer, the transport of the device's current incarnation and change notifications,
 * and calls back in when the device changes or the timer fires. */

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"
#include "device.h"
#include "job.h"
#include "transport.h"

/* What changed, for JobHost.changed(): the owner persists (STATE, SECTOR), emits bus signals
 * (all of them) and starts the next job (FINISHED). */
enum {
        JOB_CHANGE_STATE = 1 << 0,
        JOB_CHANGE_PROGRESS = 1 << 1,
        JOB_CHANGE_SECTOR = 1 << 2,
        JOB_CHANGE_FINISHED = 1 << 3,
        JOB_CHANGE_DEVICE = 1 << 4, /* the device's Health or other properties */
        JOB_CHANGE_LOG = 1 << 5,
};

typedef struct JobHost {
        void *userdata;
        uint64_t (*now)(void *userdata, clockid_t clock);
        /* Settings for the device (rules matching any of its incarnations). */
        int (*get_settings)(void *userdata, Device *d, DeviceSettings *ret);
        /* The stored firmware of the job (journal_read_image). */
        int (*load_image)(void *userdata, Job *j, uint8_t **ret, size_t *ret_size);
        /* Open the current incarnation and claim `interface`. */
        int (*open)(void *userdata, Job *j, Device *d, uint8_t interface, Transport *ret);
        void (*close)(void *userdata, Job *j, Device *d);
        /* One timer per job, CLOCK_MONOTONIC usec; USEC_INFINITY disarms. */
        void (*set_timer)(void *userdata, Job *j, uint64_t usec);
        void (*changed)(void *userdata, Job *j, unsigned what);
} JobHost;

int job_exec_new(Job *j, Device *d, const JobHost *host, JobExec **ret);
JobExec *job_exec_free(JobExec *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobExec *, job_exec_free);

/* Start, or resume a job loaded from the journal. */
void job_exec_start(JobExec *x);
/* The device appeared, was probed, changed mode, got its tty, or went away. */
void job_exec_device_changed(JobExec *x);
void job_exec_timer(JobExec *x);
void job_exec_cancel(JobExec *x);
/* Stop without changing the job's state (daemon shutdown: the journal keeps it for a restart). */
void job_exec_stop(JobExec *x);
bool job_exec_is_running(const JobExec *x);
