/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>

#include "dfud-dbus.h"
#include "job.h"

static const char *const job_state_table[_JOB_STATE_MAX] = { DFUD_JOB_STATES };
DEFINE_STRING_TABLE_LOOKUP(job_state, JobState);

void job_options_init(JobOptions *o) {
        *o = (JobOptions) {
                .format = DFU_IMAGE_FORMAT_AUTO,
                .verify = true,
                .incremental = true,
                .leave = true,
        };
}

int job_new(uint64_t id, const char *device_id, size_t log_max, Job **ret) {
        _cleanup_(job_freep) Job *j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->id = id;
        j->state = JOB_QUEUED;
        job_options_init(&j->options);
        j->log_max = MAX(log_max, (size_t) 10);
        j->device_id = strdup(device_id);
        j->log = calloc(j->log_max, sizeof(JobLogLine));
        if (!j->device_id || !j->log)
                return -ENOMEM;
        *ret = TAKE_PTR(j);
        return 0;
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        free(j->device_id);
        free(j->image_sha256);
        free(j->error_name);
        free(j->error_message);
        free(j->verified);
        for (size_t i = 0; j->log && i < j->n_log; i++)
                free(j->log[(j->log_start + i) % j->log_max].text);
        free(j->log);
        dfu_image_free(j->image);
        return mfree(j);
}

int job_set_state(Job *j, JobState s, uint64_t now_realtime) {
        if (j->state == s)
                return 0;
        j->state = s;
        if (job_state_is_final(s)) {
                j->finished = now_realtime;
                if (s == JOB_SUCCEEDED)
                        j->progress = 100;
        }
        return 1;
}

int job_fail(Job *j, const char *error_name, const char *message, uint64_t now_realtime) {
        char *n = strdup(error_name), *m = strdup(message);
        if (!n || !m) {
                free(n);
                free(m);
                return -ENOMEM;
        }
        free(j->error_name);
        free(j->error_message);
        j->error_name = n;
        j->error_message = m;
        return job_set_state(j, streq(error_name, DFUD_ERROR_CANCELLED) ? JOB_CANCELLED : JOB_FAILED,
                             now_realtime);
}

int job_set_progress(Job *j, uint64_t done, uint64_t total, unsigned percent) {
        percent = MIN(percent, 100u);
        if (percent < j->progress)
                percent = j->progress;
        if (j->bytes_done == done && j->bytes_total == total && j->progress == percent)
                return 0;
        j->bytes_done = done;
        j->bytes_total = total;
        j->progress = percent;
        return 1;
}

int job_log(Job *j, uint64_t now_realtime, const char *format, ...) {
        va_list ap;
        char *text;

        va_start(ap, format);
        int r = vasprintf(&text, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        /* device-supplied strings may end up here: keep the log printable */
        for (char *p = text; *p; p++)
                if ((unsigned char) *p < ' ' || (unsigned char) *p >= 127)
                        *p = '?';

        if (j->n_log == j->log_max) {
                free(j->log[j->log_start].text);
                j->log_start = (j->log_start + 1) % j->log_max;
                j->n_log--;
                j->log_dropped++;
        }
        j->log[(j->log_start + j->n_log) % j->log_max] = (JobLogLine) { .usec = now_realtime, .text = text };
        j->n_log++;
        return 0;
}

const JobLogLine *job_log_get(const Job *j, size_t i) {
        if (i >= j->n_log)
                return NULL;
        return &j->log[(j->log_start + i) % j->log_max];
}

int job_add_verified(Job *j, const DfuPlanSector *s) {
        for (size_t i = 0; i < j->n_verified; i++)
                if (j->verified[i].alt == s->alt && j->verified[i].address == s->address) {
                        j->verified[i] = *s;
                        return 0;
                }
        if (j->n_verified >= JOB_MAX_VERIFIED)
                return -E2BIG;
        DfuPlanSector *n = realloc(j->verified, (j->n_verified + 1) * sizeof(DfuPlanSector));
        if (!n)
                return -ENOMEM;
        j->verified = n;
        j->verified[j->n_verified++] = *s;
        return 1;
}

void job_clear_verified(Job *j) {
        j->verified = mfree(j->verified);
        j->n_verified = 0;
}
