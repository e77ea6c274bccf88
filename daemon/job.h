/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A Job: one firmware update of one device. This file is the job as data (state, progress, the
 * result, the exchange log, what is already verified on the device): what the journal persists and
 * the bus shows. job-exec.h runs it. Non-logging, no event loop. */

#include <stdbool.h>
#include <stdint.h>

#include "dfu-engine.h"
#include "dfu-image.h"
#include "macro-util.h"

typedef enum JobState {
        JOB_QUEUED,
        JOB_WAITING_FOR_DEVICE,
        JOB_ENTERING_BOOTLOADER,
        JOB_READING,
        JOB_ERASING,
        JOB_WRITING,
        JOB_VERIFYING,
        JOB_LEAVING,
        JOB_WAITING_FOR_APPLICATION,
        JOB_SUCCEEDED,
        JOB_FAILED,
        JOB_CANCELLED,
        _JOB_STATE_MAX,
        _JOB_STATE_INVALID = -EINVAL,
} JobState;

const char *job_state_to_string(JobState s);
JobState job_state_from_string(const char *s);
static inline bool job_state_is_final(JobState s) {
        return s >= JOB_SUCCEEDED;
}

typedef struct JobOptions {
        DfuImageFormat format;
        bool has_address;
        uint32_t address;
        bool verify;
        bool incremental;
        bool allow_downgrade;
        bool allow_protected;
        bool leave;
} JobOptions;

void job_options_init(JobOptions *o);

typedef struct JobLogLine {
        uint64_t usec; /* CLOCK_REALTIME */
        char *text;
} JobLogLine;

/* Resume budget: a job whose device keeps dropping off without a single new verified sector is
 * not retried forever (reliability.md G9). */
#define JOB_MAX_STALLED_ATTEMPTS 5
#define JOB_MAX_VERIFIED 65536

typedef struct JobExec JobExec;

typedef struct Job {
        uint64_t id;
        char *device_id;
        JobState state;
        JobOptions options;

        /* the firmware as the caller gave it, stored in the state dir under its SHA-256 */
        char *image_sha256;
        uint64_t image_size;
        bool has_image_version;
        uint16_t image_version;

        uint64_t bytes_done, bytes_total;
        unsigned progress; /* 0-100, never goes back within a run */
        char *error_name, *error_message;
        uint64_t created, finished; /* CLOCK_REALTIME usec, finished 0 while running */

        /* device state this job already trusts (resume) */
        DfuPlanSector *verified;
        size_t n_verified;
        unsigned attempts, stalled_attempts;
        bool flashed; /* the engine finished: only the application's return is missing */

        /* the DFU exchange log, a bounded ring */
        JobLogLine *log;
        size_t log_max, log_start, n_log;
        uint64_t log_dropped;

        /* runtime only */
        DfuImage *image; /* loaded and placed for the device */
        JobExec *exec;
        void *userdata; /* the manager's per-job data (bus emitter, timers) */
} Job;

int job_new(uint64_t id, const char *device_id, size_t log_max, Job **ret);
Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);

/* Returns 1 if the state changed. Final states set `finished`. */
int job_set_state(Job *j, JobState s, uint64_t now_realtime);
/* Sets the error (D-Bus error name + sentence) and moves to FAILED (or CANCELLED for the cancelled
 * error name). */
int job_fail(Job *j, const char *error_name, const char *message, uint64_t now_realtime);
int job_set_progress(Job *j, uint64_t done, uint64_t total, unsigned percent);
int job_log(Job *j, uint64_t now_realtime, const char *format, ...) _printf_(3, 4);
/* Iterate the log: i in [0, n_log). */
const JobLogLine *job_log_get(const Job *j, size_t i);
/* Remember a verified (or skipped) sector; replaces an entry for the same alt/address. */
int job_add_verified(Job *j, const DfuPlanSector *s);
void job_clear_verified(Job *j);
