/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The journal: records round-trip, writes are atomic, crashes leave only ignorable temp files,
 * corruption is reported by name and never crashes, images are content-addressed and checked. */

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dfud-dbus.h"
#include "journal.h"
#include "test-util.h"

static Job *make_job(uint64_t id) {
        Job *j;
        DfuPlanSector s = { .alt = 0,
                            .address = 0x08004000,
                            .size = 16384,
                            .data_size = 16384,
                            .crc = 0xdeadbeef,
                            .state = DFU_SECTOR_VERIFIED };

        assert(job_new(id, "ABC123", 16, &j) == 0);
        j->state = JOB_WRITING;
        j->options.has_address = true;
        j->options.address = 0x08000000;
        j->options.format = DFU_IMAGE_FORMAT_BIN;
        j->options.allow_downgrade = true;
        j->image_sha256 = strdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        j->image_size = 4096;
        j->has_image_version = true;
        j->image_version = 0x0102;
        j->bytes_done = 2048;
        j->bytes_total = 4096;
        j->progress = 50;
        j->created = 1700000000000000ULL;
        j->attempts = 2;
        j->flashed = false;
        assert(job_add_verified(j, &s) == 1);
        s.address = 0x08008000;
        s.state = DFU_SECTOR_SKIPPED;
        assert(job_add_verified(j, &s) == 1);
        assert(job_add_verified(j, &s) == 0); /* same sector again: replaced */
        for (int i = 0; i < 20; i++)
                assert(job_log(j, 1700000000000000ULL + i, "line %d \"quoted\" \x01", i) == 0);
        return j;
}

static void assert_same(const Job *a, const Job *b) {
        assert(a->id == b->id);
        assert(streq(a->device_id, b->device_id));
        assert(a->state == b->state);
        assert(a->options.has_address == b->options.has_address && a->options.address == b->options.address);
        assert(a->options.format == b->options.format);
        assert(a->options.allow_downgrade == b->options.allow_downgrade);
        assert(a->options.leave == b->options.leave && a->options.verify == b->options.verify);
        assert(streq(a->image_sha256, b->image_sha256));
        assert(a->image_size == b->image_size);
        assert(a->has_image_version == b->has_image_version && a->image_version == b->image_version);
        assert(a->bytes_done == b->bytes_done && a->bytes_total == b->bytes_total &&
               a->progress == b->progress);
        assert(a->created == b->created && a->finished == b->finished);
        assert(a->attempts == b->attempts && a->flashed == b->flashed);
        assert(a->n_verified == b->n_verified);
        for (size_t i = 0; i < a->n_verified; i++) {
                assert(a->verified[i].address == b->verified[i].address);
                assert(a->verified[i].crc == b->verified[i].crc);
                assert(a->verified[i].state == b->verified[i].state);
        }
        assert(a->n_log == b->n_log);
        for (size_t i = 0; i < a->n_log; i++) {
                assert(job_log_get(a, i)->usec == job_log_get(b, i)->usec);
                assert(streq(job_log_get(a, i)->text, job_log_get(b, i)->text));
        }
        assert(a->log_dropped == b->log_dropped);
        assert(streq_ptr(a->error_name, b->error_name) && streq_ptr(a->error_message, b->error_message));
}

TEST(test_log_ring) {
        Job *j = make_job(1);
        /* 20 lines into a ring of 16: the oldest 4 are gone and counted */
        assert(j->n_log == 16);
        assert(j->log_dropped == 4);
        assert(streq(job_log_get(j, 0)->text, "line 4 \"quoted\" ?"));
        assert(streq(job_log_get(j, 15)->text, "line 19 \"quoted\" ?"));
        assert(!job_log_get(j, 16));
        job_free(j);
}

TEST(test_roundtrip) {
        char *dir = test_tmpdir();
        Journal *jn;
        Job *j = make_job(7), **jobs;
        size_t n;

        assert(journal_open(dir, &jn) == 0);
        assert(journal_save_job(jn, j) == 0);
        /* failed with an error: the error survives */
        Job *f = make_job(8);
        assert(job_fail(f, DFUD_ERROR_VERIFY_FAILED, "sector 0x08004000 differs", 1700000000000001ULL) == 1);
        assert(f->state == JOB_FAILED && f->finished == 1700000000000001ULL);
        assert(journal_save_job(jn, f) == 0);

        assert(journal_load_jobs(jn, 16, NULL, NULL, &jobs, &n) == 0);
        assert(n == 2);
        assert_same(j, jobs[0]);
        assert_same(f, jobs[1]);
        for (size_t i = 0; i < n; i++)
                job_free(jobs[i]);
        free(jobs);

        /* replacing keeps one file */
        j->state = JOB_VERIFYING;
        assert(journal_save_job(jn, j) == 0);
        assert(journal_load_jobs(jn, 16, NULL, NULL, &jobs, &n) == 0);
        assert(n == 2 && jobs[0]->state == JOB_VERIFYING);
        for (size_t i = 0; i < n; i++)
                job_free(jobs[i]);
        free(jobs);

        assert(journal_remove_job(jn, 8) == 0);
        assert(journal_remove_job(jn, 8) == 0); /* idempotent */
        assert(journal_load_jobs(jn, 16, NULL, NULL, &jobs, &n) == 0);
        assert(n == 1);
        job_free(jobs[0]);
        free(jobs);

        job_free(j);
        job_free(f);
        journal_free(jn);
        rm_rf(dir);
        free(dir);
}

static unsigned problems;
static char last_problem[512];
static void on_problem(const char *file, int error, const char *message, void *userdata) {
        problems++;
        assert(error == -EBADMSG);
        snprintf(last_problem, sizeof last_problem, "%s: %s", file, message);
}

TEST(test_corruption_and_temp_files) {
        char *dir = test_tmpdir(), jobs_dir[4096];
        Journal *jn;
        Job *j = make_job(3), **jobs;
        size_t n;

        assert(journal_open(dir, &jn) == 0);
        assert(journal_save_job(jn, j) == 0);
        snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", dir);

        /* a crash between write and rename leaves a temp file: ignored and cleaned up */
        assert(write_text(jobs_dir, ".#4.json.1234abcd", "{\"version\":1,\"id\":4,") == 0);
        /* a torn or garbage record: named error, set aside, no crash */
        assert(write_text(jobs_dir, "5.json", "{\"version\":1,\"id\":5,\"device\":\"x\",\"state\":\"writ") ==
               0);
        assert(write_text(jobs_dir, "6.json", "[1,2,3]") == 0);
        assert(write_text(jobs_dir, "9.json",
                          "{\"version\":1,\"id\":10,\"device\":\"x\",\"state\":\"queued\",\"options\":{},"
                          "\"image\":{\"sha256\":"
                          "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
                          "\"size\":1}}") == 0);
        assert(write_text(jobs_dir, "11.json",
                          "{\"version\":1,\"id\":11,\"device\":\"x\",\"state\":\"exploded\",\"options\":{},"
                          "\"image\":{\"sha256\":\"00\",\"size\":1}}") == 0);
        assert(write_text(jobs_dir, "README", "not a job") == 0);

        problems = 0;
        assert(journal_load_jobs(jn, 16, on_problem, NULL, &jobs, &n) == 0);
        assert(n == 1 && jobs[0]->id == 3);
        assert(problems == 4);
        job_free(jobs[0]);
        free(jobs);

        /* the temp file is gone, the corrupt ones are renamed and not reported again */
        assert(access(jobs_dir, F_OK) == 0);
        char p[8192];
        snprintf(p, sizeof p, "%s/.#4.json.1234abcd", jobs_dir);
        assert(access(p, F_OK) < 0);
        snprintf(p, sizeof p, "%s/5.json.corrupt", jobs_dir);
        assert(access(p, F_OK) == 0);
        problems = 0;
        assert(journal_load_jobs(jn, 16, on_problem, NULL, &jobs, &n) == 0);
        assert(n == 1 && problems == 0);
        job_free(jobs[0]);
        free(jobs);

        job_free(j);
        journal_free(jn);
        rm_rf(dir);
        free(dir);
}

TEST(test_parse_errors) {
        static const struct {
                const char *text, *message;
        } cases[] = {
                { "", "not valid JSON (truncated)" },
                { "{", "not valid JSON (truncated)" },
                { "{} x", "trailing data after the JSON document" },
                { "{}", "unsupported journal version" },
                { "{\"version\":2}", "unsupported journal version" },
                { "{\"version\":1}", "missing or invalid job id" },
                { "{\"version\":1,\"id\":0}", "missing or invalid job id" },
                { "{\"version\":1,\"id\":-5}", "missing or invalid job id" },
                { "{\"version\":1,\"id\":1}", "job 1: missing or invalid device" },
                { "{\"version\":1,\"id\":1,\"device\":\"a\\u0001b\"}", "job 1: missing or invalid device" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"nope\"}",
                  "job 1: missing or unknown state" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\"}",
                  "job 1: missing options" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\",\"options\":{\"format\":"
                  "\"zip\"}}",
                  "job 1: invalid image format" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\",\"options\":{\"verify\":1}"
                  "}",
                  "job 1: invalid option" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\",\"options\":{}}",
                  "job 1: missing image" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\",\"options\":{},\"image\":{"
                  "\"sha256\":"
                  "\"../../etc/passwd\",\"size\":1}}",
                  "job 1: missing or invalid image hash" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"failed\",\"options\":{},\"image\":{"
                  "\"sha256\":"
                  "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":1}}",
                  "job 1: failed without an error" },
                { "{\"version\":1,\"id\":1,\"device\":\"d\",\"state\":\"queued\",\"options\":{},\"image\":{"
                  "\"sha256\":"
                  "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":1},"
                  "\"verified\":[{\"alt\":0,\"address\":4294967295,\"size\":2,\"crc\":1}]}",
                  "job 1: invalid verified[0]" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *error = NULL;
                Job *j = NULL;
                int r = job_parse_text(cases[i].text, strlen(cases[i].text), 16, &j, &error);
                if (r != -EBADMSG || !error || !streq(error, cases[i].message)) {
                        fprintf(stderr, "case %zu: r=%d error='%s' expected '%s'\n", i, r,
                                error ? error : "(null)", cases[i].message);
                        abort();
                }
                assert(!j);
                free(error);
        }
}

static bool dir_has_temp(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        bool found = false;
        assert(d);
        while ((de = readdir(d)))
                if (filename_is_temp(de->d_name))
                        found = true;
        closedir(d);
        return found;
}

TEST(test_atomic_write) {
        char *dir = test_tmpdir();
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        uint8_t *data;
        size_t size;

        assert(fd >= 0);
        assert(write_file_atomic_at(fd, "f", "old", 3, 0600) == 0);
        assert(write_file_atomic_at(fd, "f", "new content", 11, 0600) == 0);
        assert(read_file_at(fd, "f", 100, &data, &size) == 0);
        assert(size == 11 && memcmp(data, "new content", 11) == 0);
        free(data);
        assert(!dir_has_temp(dir));
        /* a failing write (a directory in the way) leaves the old content and no temp file */
        assert(mkdirat(fd, "d", 0700) == 0);
        assert(write_file_atomic_at(fd, "d", "x", 1, 0600) < 0);
        assert(!dir_has_temp(dir));
        assert(write_file_atomic_at(fd, "a/b", "x", 1, 0600) == -EINVAL);
        /* bounded reads */
        assert(read_file_at(fd, "f", 10, &data, &size) == -EFBIG);
        close(fd);
        rm_rf(dir);
        free(dir);
}

TEST(test_images) {
        char *dir = test_tmpdir(), sha[SHA256_HEX_SIZE], sha2[SHA256_HEX_SIZE], p[4096];
        Journal *jn;
        uint8_t *data;
        size_t size;

        /* known answers */
        sha256_hex("", 0, sha);
        assert(streq(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        sha256_hex("abc", 3, sha);
        assert(streq(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        char million[1000];
        memset(million, 'a', sizeof million);
        sha256_hex(million, 56, sha); /* padding spills into a second block */
        assert(streq(sha, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"));

        assert(journal_open(dir, &jn) == 0);
        assert(journal_store_image(jn, (const uint8_t *) "firmware", 8, sha) == 0);
        assert(journal_store_image(jn, (const uint8_t *) "firmware", 8, sha2) == 0);
        assert(streq(sha, sha2));
        assert(journal_read_image(jn, sha, &data, &size) == 0);
        assert(size == 8 && memcmp(data, "firmware", 8) == 0);
        free(data);
        assert(journal_read_image(jn, "../jobs", &data, &size) == -EINVAL);

        /* a changed image is detected */
        snprintf(p, sizeof p, "%s/images", dir);
        assert(write_text(p, sha, "firmwarX") == 0);
        assert(journal_read_image(jn, sha, &data, &size) == -EBADMSG);

        assert(journal_store_image(jn, (const uint8_t *) "other", 5, sha2) == 0);
        const char *keep[] = { sha2, NULL };
        assert(journal_gc_images(jn, keep) == 0);
        assert(journal_read_image(jn, sha, &data, &size) == -ENOENT);
        assert(journal_read_image(jn, sha2, &data, &size) == 0);
        free(data);

        journal_free(jn);
        rm_rf(dir);
        free(dir);
}

int main(void) {
        RUN(test_log_ring);
        RUN(test_roundtrip);
        RUN(test_corruption_and_temp_files);
        RUN(test_parse_errors);
        RUN(test_atomic_write);
        RUN(test_images);
        return 0;
}
