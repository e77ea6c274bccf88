/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Jobs end to end against the STM32 model on a virtual clock: the jump, the flash, the return of
 * the application and its version; unplug and daemon restart in the middle; every wait timing out
 * with a sentence; cancel. */

#include <string.h>

#include "dfud-dbus.h"
#include "fake-world.h"
#include "journal.h"
#include "test-util.h"

#define KIB 1024u
#define SEC 1000000ULL

static bool verbose;

static World *new_world(void) {
        World *w = calloc(1, sizeof *w);
        assert(w);
        world_init(w, "f4-rom");
        w->verbose = verbose;
        return w;
}

static void done(World *w) {
        if (verbose)
                for (size_t i = 0; i < w->job->n_log; i++)
                        fprintf(stderr, "    %s\n", job_log_get(w->job, i)->text);
        world_free(w);
        free(w);
}

static bool log_contains(Job *j, const char *needle) {
        for (size_t i = 0; i < j->n_log; i++)
                if (strstr(job_log_get(j, i)->text, needle))
                        return true;
        return false;
}

/* A job for the world's board, started. */
static void start_job(World *w, const uint8_t *fw, size_t size, uint16_t version) {
        world_new_job(w, fw, size, version);
        job_exec_start(w->exec);
}

TEST(test_dfu_mode_update) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 100 * KIB, 0x0102, 1);

        /* old content: the sectors have to be erased */
        memset(w->board->memory, 0xA5, 256 * KIB);
        world_plug(w, false);
        start_job(w, fw, 100 * KIB, 0x0102);
        assert(world_run(w, 120 * SEC));

        assert(w->job->state == JOB_SUCCEEDED);
        assert(!w->job->error_name);
        assert(w->job->progress == 100);
        assert(world_flash_equals(w, 0x08000000, fw, 100 * KIB));
        /* a device already in DFU mode skips the jump */
        assert(!world_saw_state(w, JOB_ENTERING_BOOTLOADER));
        assert(world_saw_state(w, JOB_ERASING) && world_saw_state(w, JOB_WRITING) &&
               world_saw_state(w, JOB_VERIFYING));
        assert(world_saw_state(w, JOB_LEAVING) && world_saw_state(w, JOB_WAITING_FOR_APPLICATION));
        /* the application came back with the image's version */
        assert(w->board->device->mode == DEVICE_MODE_APPLICATION && w->board->device->app_bcd == 0x0102);
        assert(w->job->flashed);
        /* 100 KiB on F4 = sectors 0-4; every one journaled */
        assert(w->job->n_verified == 5 && w->sector_changes >= 5);
        free(fw);
        done(w);
}

TEST(test_application_mode_update) {
        World *w = new_world();
        uint8_t *old = world_make_firmware(0x08000000, 64 * KIB, 0x0100, 2);
        uint8_t *fw = world_make_firmware(0x08000000, 64 * KIB, 0x0200, 3);

        /* a board running 1.00 */
        memcpy(w->board->memory, old, 64 * KIB);
        world_plug(w, true);
        assert(w->board->device->app_bcd == 0x0100);
        start_job(w, fw, 64 * KIB, 0x0200);
        assert(world_run(w, 120 * SEC));

        assert(w->job->state == JOB_SUCCEEDED);
        assert(w->states[0] == JOB_ENTERING_BOOTLOADER);
        assert(world_flash_equals(w, 0x08000000, fw, 64 * KIB));
        assert(w->board->device->mode == DEVICE_MODE_APPLICATION && w->board->device->app_bcd == 0x0200);
        assert(w->board->plugs == 3); /* app, bootloader, app */
        assert(log_contains(w->job, "Bootloader appeared on port 1-1 after"));
        free(old);
        free(fw);
        done(w);
}

TEST(test_unplug_and_resume) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 200 * KIB, 0x0300, 4);

        /* the board drops off the bus in the middle of writing sector 5 (0x08020000) */
        world_plug(w, false);
        w->board->stay_away = true;
        char fault[64];
        snprintf(fault, sizeof fault, "disconnect-at=0x%08x", 0x08020000 + 8 * KIB);
        assert(stm32_model_add_fault(w->board->model, fault) == 0);
        start_job(w, fw, 200 * KIB, 0x0300);
        assert(!world_run(w, 120 * SEC));
        assert(w->job->state == JOB_WAITING_FOR_DEVICE);
        assert(w->board->device->mode == DEVICE_MODE_ABSENT);

        /* replugged (still in its bootloader: the image is incomplete), the job resumes */
        w->board->stay_away = false;
        world_plug(w, false);
        assert(world_run(w, 240 * SEC));
        assert(w->job->state == JOB_SUCCEEDED);
        assert(world_flash_equals(w, 0x08000000, fw, 200 * KIB));
        assert(w->job->attempts == 2);
        /* the second run keeps what the first verified (the journal's sectors), re-checks the rest
         * and erases only the sector that was in flight and the vector-table sector written last */
        unsigned erased = 0, skipped = 0, runs = 0;
        for (size_t i = 0; i < w->job->n_log; i++) {
                const char *t = strstr(job_log_get(w->job, i)->text, " read back, ");
                if (t) {
                        assert(sscanf(t, " read back, %u sectors erased, %u skipped", &erased, &skipped) ==
                               2);
                        runs++;
                }
        }
        assert(runs == 1 && erased >= 1 && erased <= 2);
        free(fw);
        done(w);
}

TEST(test_restart_resume) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 200 * KIB, 0x0301, 5);
        json_object *o;
        char *error = NULL;
        Job *j;

        world_plug(w, false);
        start_job(w, fw, 200 * KIB, 0x0301);
        /* run until some sectors are verified, then "SIGKILL": only the journal survives */
        while (w->job->n_verified < 3 && w->now < 100 * SEC)
                assert(!world_run(w, w->now + 10000));
        assert(w->job->n_verified >= 3);
        assert(job_to_json(w->job, &o) == 0);
        const char *text = json_object_to_json_string(o);
        assert(job_parse_text(text, strlen(text), 5000, &j, &error) == 0);
        json_object_put(o);
        w->exec = job_exec_free(w->exec);
        job_free(w->job);
        /* in flight transfers of the dead daemon never complete */
        w->board->generation++;
        w->n_events = 0;
        w->timer = USEC_INFINITY;

        /* the restarted daemon: the job waits for its device, which is still there in DFU mode */
        (void) job_set_state(j, JOB_WAITING_FOR_DEVICE, 0);
        w->job = j;
        assert(job_exec_new(j, w->board->device, &w->host, &w->exec) == 0);
        job_exec_start(w->exec);
        assert(world_run(w, 240 * SEC));
        assert(w->job->state == JOB_SUCCEEDED);
        assert(world_flash_equals(w, 0x08000000, fw, 200 * KIB));
        free(fw);
        done(w);
}

TEST(test_bootloader_timeout) {
        World *w = new_world();
        uint8_t *old = world_make_firmware(0x08000000, 64 * KIB, 0x0100, 6);
        uint8_t *fw = world_make_firmware(0x08000000, 64 * KIB, 0x0200, 7);

        memcpy(w->board->memory, old, 64 * KIB);
        world_plug(w, true);
        w->board->ignore_detach = true;
        start_job(w, fw, 64 * KIB, 0x0200);
        assert(world_run(w, 120 * SEC));
        assert(w->job->state == JOB_FAILED);
        assert(streq(w->job->error_name, DFUD_ERROR_TIMEOUT));
        assert(streq(w->job->error_message,
                     "device did not come back in bootloader mode within 10 s on port 1-1"));
        /* nothing was written */
        assert(world_flash_equals(w, 0x08000000, old, 64 * KIB));
        assert(streq(w->board->device->last_error, w->job->error_message));
        free(old);
        free(fw);
        done(w);
}

TEST(test_application_does_not_come_back) {
        World *w = new_world();
        /* an image without a valid header: the ROM's boot check keeps the bootloader */
        uint8_t *fw = world_make_firmware(0x08000000, 32 * KIB, 0x0200, 8);
        fw[VSTM32_HEADER_OFFSET] ^= 0xff;

        world_plug(w, false);
        start_job(w, fw, 32 * KIB, 0);
        assert(world_run(w, 120 * SEC));
        assert(w->job->state == JOB_FAILED);
        assert(streq(w->job->error_name, DFUD_ERROR_TIMEOUT));
        assert(streq(w->job->error_message,
                     "device did not come back in application mode within 15 s on port 1-1 "
                     "(the bootloader came back instead: the new firmware did not start)"));
        free(fw);
        done(w);
}

TEST(test_wrong_version) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 32 * KIB, 0x0200, 9);

        world_plug(w, false);
        w->board->boot_as_app_with_version = true;
        w->board->forced_version = 0x0199;
        start_job(w, fw, 32 * KIB, 0x0200);
        assert(world_run(w, 120 * SEC));
        assert(w->job->state == JOB_FAILED);
        assert(streq(w->job->error_name, DFUD_ERROR_VERIFY_FAILED));
        assert(streq(w->job->error_message,
                     "the application came back on port 1-1 with version 1.99, but the image carries 2.00"));
        free(fw);
        done(w);
}

TEST(test_cancel) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 200 * KIB, 0x0200, 10);

        world_plug(w, false);
        start_job(w, fw, 200 * KIB, 0x0200);
        while (w->job->state != JOB_WRITING && w->now < 100 * SEC)
                assert(!world_run(w, w->now + 1000));
        assert(w->job->state == JOB_WRITING);
        job_exec_cancel(w->exec);
        assert(world_run(w, w->now + 60 * SEC));
        assert(w->job->state == JOB_CANCELLED);
        assert(streq(w->job->error_name, DFUD_ERROR_CANCELLED));
        assert(strstr(w->job->error_message, "cancelled while"));
        /* a cancel is not a failure of the device */
        assert(!w->board->device->last_error);
        free(fw);
        done(w);
}

TEST(test_absent_then_plugged) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 32 * KIB, 0x0200, 11);

        start_job(w, fw, 32 * KIB, 0x0200);
        assert(!world_run(w, 600 * SEC)); /* waits forever by default */
        assert(w->job->state == JOB_WAITING_FOR_DEVICE);
        world_plug(w, false);
        assert(world_run(w, w->now + 120 * SEC));
        assert(w->job->state == JOB_SUCCEEDED);
        free(fw);
        done(w);
}

TEST(test_read_protected) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 32 * KIB, 0x0200, 12);

        world_plug(w, false);
        assert(stm32_model_add_fault(w->board->model, "rdp") == 0);
        start_job(w, fw, 32 * KIB, 0x0200);
        assert(world_run(w, 120 * SEC));
        assert(w->job->state == JOB_FAILED);
        assert(streq(w->job->error_name, DFUD_ERROR_PROTOCOL));
        assert(w->board->device->read_protected);
        assert(device_update_health(w->board->device, true) >= 0 &&
               streq(w->board->device->health, "read-protected"));
        free(fw);
        done(w);
}

/* A transfer times out, then udev reports the device gone: an unplug, resumed on replug. */
TEST(test_timeout_then_unplug) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 64 * KIB, 0x0200, 13);

        world_plug(w, false);
        assert(stm32_model_add_fault(w->board->model, "hang-after=60") == 0);
        start_job(w, fw, 64 * KIB, 0x0200);
        while (!log_contains(w->job, "to see whether the device went away") && w->now < 100 * SEC)
                assert(!world_run(w, w->now + 100000));
        assert(w->job->state != JOB_FAILED);
        world_unplug(w);
        assert(w->job->state == JOB_WAITING_FOR_DEVICE);
        world_plug(w, false);
        assert(world_run(w, w->now + 120 * SEC));
        assert(w->job->state == JOB_SUCCEEDED);
        assert(world_flash_equals(w, 0x08000000, fw, 64 * KIB));
        free(fw);
        done(w);
}

/* A device that stops answering and stays: a Timeout failure, not an endless wait. */
TEST(test_hang) {
        World *w = new_world();
        uint8_t *fw = world_make_firmware(0x08000000, 64 * KIB, 0x0200, 14);

        world_plug(w, false);
        assert(stm32_model_add_fault(w->board->model, "hang-after=60") == 0);
        start_job(w, fw, 64 * KIB, 0x0200);
        assert(world_run(w, 300 * SEC));
        assert(w->job->state == JOB_FAILED);
        assert(streq(w->job->error_name, DFUD_ERROR_TIMEOUT));
        fprintf(stderr, "  %s\n", w->job->error_message);
        free(fw);
        done(w);
}

int main(int argc, char **argv) {
        verbose = argc > 1 && streq(argv[1], "-v");
        RUN(test_dfu_mode_update);
        RUN(test_application_mode_update);
        RUN(test_unplug_and_resume);
        RUN(test_restart_resume);
        RUN(test_bootloader_timeout);
        RUN(test_application_does_not_come_back);
        RUN(test_wrong_version);
        RUN(test_cancel);
        RUN(test_absent_then_plugged);
        RUN(test_read_protected);
        RUN(test_timeout_then_unplug);
        RUN(test_hang);
        return 0;
}
