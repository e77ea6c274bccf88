/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "dfud-dbus.h"
#include "journal.h"

int journal_open(const char *state_dir, Journal **ret) {
        _cleanup_(journal_freep) Journal *jn = calloc(1, sizeof *jn);
        int r;

        if (!jn)
                return -ENOMEM;
        jn->dir_fd = jn->jobs_fd = jn->images_fd = -EBADF;
        jn->path = strdup(state_dir);
        if (!jn->path)
                return -ENOMEM;
        r = mkdir_p(state_dir, 0755);
        if (r < 0)
                return r;
        jn->dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (jn->dir_fd < 0)
                return -errno;
        if (mkdirat(jn->dir_fd, JOURNAL_JOBS_DIR, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (mkdirat(jn->dir_fd, JOURNAL_IMAGES_DIR, 0700) < 0 && errno != EEXIST)
                return -errno;
        jn->jobs_fd = openat(jn->dir_fd, JOURNAL_JOBS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (jn->jobs_fd < 0)
                return -errno;
        jn->images_fd = openat(jn->dir_fd, JOURNAL_IMAGES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (jn->images_fd < 0)
                return -errno;
        /* new directories must survive a crash too */
        (void) fsync_dir_fd(jn->dir_fd);
        *ret = TAKE_PTR(jn);
        return 0;
}

Journal *journal_free(Journal *jn) {
        if (!jn)
                return NULL;
        safe_close(jn->dir_fd);
        safe_close(jn->jobs_fd);
        safe_close(jn->images_fd);
        free(jn->path);
        return mfree(jn);
}

static void add_string(json_object *o, const char *key, const char *s) {
        if (s)
                json_object_object_add(o, key, json_object_new_string(s));
}

static void add_u64(json_object *o, const char *key, uint64_t v) {
        json_object_object_add(o, key, json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v));
}

int job_to_json(const Job *j, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *opts, *img, *arr;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "version", json_object_new_int(JOURNAL_VERSION));
        add_u64(o, "id", j->id);
        add_string(o, "device", j->device_id);
        add_string(o, "state", job_state_to_string(j->state));

        opts = json_object_new_object();
        if (!opts)
                return -ENOMEM;
        json_object_object_add(o, "options", opts);
        add_string(opts, "format", dfu_image_format_to_string(j->options.format));
        if (j->options.has_address)
                add_u64(opts, "address", j->options.address);
        json_object_object_add(opts, "verify", json_object_new_boolean(j->options.verify));
        json_object_object_add(opts, "incremental", json_object_new_boolean(j->options.incremental));
        json_object_object_add(opts, "allow-downgrade", json_object_new_boolean(j->options.allow_downgrade));
        json_object_object_add(opts, "allow-protected", json_object_new_boolean(j->options.allow_protected));
        json_object_object_add(opts, "leave", json_object_new_boolean(j->options.leave));

        img = json_object_new_object();
        if (!img)
                return -ENOMEM;
        json_object_object_add(o, "image", img);
        add_string(img, "sha256", j->image_sha256);
        add_u64(img, "size", j->image_size);
        if (j->has_image_version)
                add_u64(img, "version", j->image_version);

        add_u64(o, "bytes-done", j->bytes_done);
        add_u64(o, "bytes-total", j->bytes_total);
        add_u64(o, "progress", j->progress);
        add_string(o, "error-name", j->error_name);
        add_string(o, "error-message", j->error_message);
        add_u64(o, "created", j->created);
        add_u64(o, "finished", j->finished);
        add_u64(o, "attempts", j->attempts);
        add_u64(o, "stalled-attempts", j->stalled_attempts);
        json_object_object_add(o, "flashed", json_object_new_boolean(j->flashed));

        arr = json_object_new_array_ext((int) j->n_verified);
        if (!arr)
                return -ENOMEM;
        json_object_object_add(o, "verified", arr);
        for (size_t i = 0; i < j->n_verified; i++) {
                const DfuPlanSector *s = &j->verified[i];
                json_object *e = json_object_new_object();
                if (!e)
                        return -ENOMEM;
                json_object_array_add(arr, e);
                add_u64(e, "alt", s->alt);
                add_u64(e, "address", s->address);
                add_u64(e, "size", s->size);
                add_u64(e, "data-size", s->data_size);
                add_u64(e, "crc", s->crc);
                add_string(e, "state", s->state == DFU_SECTOR_SKIPPED ? "skipped" : "verified");
        }

        arr = json_object_new_array_ext((int) j->n_log);
        if (!arr)
                return -ENOMEM;
        json_object_object_add(o, "log", arr);
        for (size_t i = 0; i < j->n_log; i++) {
                const JobLogLine *l = job_log_get(j, i);
                json_object *e = json_object_new_array_ext(2);
                if (!e)
                        return -ENOMEM;
                json_object_array_add(arr, e);
                json_object_array_add(e, json_object_new_int64((int64_t) l->usec));
                json_object_array_add(e, json_object_new_string(l->text));
        }
        add_u64(o, "log-dropped", j->log_dropped);

        *ret = TAKE_PTR(o);
        return 0;
}

_printf_(2, 3) static int fail(char **ret_error, const char *format, ...) {
        va_list ap;
        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EBADMSG;
}

/* 1 found, 0 absent, -EBADMSG wrong type or range */
static int get_u64(json_object *o, const char *key, uint64_t max, uint64_t *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t i = json_object_get_int64(v);
        if (i < 0 || (uint64_t) i > max)
                return -EBADMSG;
        *ret = (uint64_t) i;
        return 1;
}

static int get_bool(json_object *o, const char *key, bool *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 1;
}

/* strings must be printable ASCII: they go to logs and onto the bus */
static int get_string(json_object *o, const char *key, size_t max, const char **ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        const char *s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s) || strlen(s) > max || !string_is_safe(s))
                return -EBADMSG;
        *ret = s;
        return 1;
}

static bool is_sha256(const char *s) {
        if (strlen(s) != SHA256_HEX_SIZE - 1)
                return false;
        for (const char *p = s; *p; p++)
                if (!strchr("0123456789abcdef", *p))
                        return false;
        return true;
}

int job_from_json(json_object *o, size_t log_max, Job **ret, char **ret_error) {
        _cleanup_(job_freep) Job *j = NULL;
        json_object *opts, *img, *arr;
        const char *s = NULL, *device = NULL, *n = NULL, *m = NULL;
        uint64_t v = 0, id = 0;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return fail(ret_error, "not a JSON object");
        if (get_u64(o, "version", UINT32_MAX, &v) <= 0 || v != JOURNAL_VERSION)
                return fail(ret_error, "unsupported journal version");
        if (get_u64(o, "id", INT64_MAX, &id) <= 0 || id == 0)
                return fail(ret_error, "missing or invalid job id");
        if (get_string(o, "device", 256, &device) <= 0 || isempty(device))
                return fail(ret_error, "job %" PRIu64 ": missing or invalid device", id);

        r = job_new(id, device, log_max, &j);
        if (r < 0)
                return r;

        if (get_string(o, "state", 64, &s) <= 0 || (int) (j->state = job_state_from_string(s)) < 0)
                return fail(ret_error, "job %" PRIu64 ": missing or unknown state", id);

        if (!json_object_object_get_ex(o, "options", &opts) || !json_object_is_type(opts, json_type_object))
                return fail(ret_error, "job %" PRIu64 ": missing options", id);
        s = NULL;
        if (get_string(opts, "format", 32, &s) < 0 ||
            (s && (int) (j->options.format = dfu_image_format_from_string(s)) < 0))
                return fail(ret_error, "job %" PRIu64 ": invalid image format", id);
        r = get_u64(opts, "address", UINT32_MAX, &v);
        if (r < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid address", id);
        if (r > 0) {
                j->options.has_address = true;
                j->options.address = (uint32_t) v;
        }
        if (get_bool(opts, "verify", &j->options.verify) < 0 ||
            get_bool(opts, "incremental", &j->options.incremental) < 0 ||
            get_bool(opts, "allow-downgrade", &j->options.allow_downgrade) < 0 ||
            get_bool(opts, "allow-protected", &j->options.allow_protected) < 0 ||
            get_bool(opts, "leave", &j->options.leave) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid option", id);

        if (!json_object_object_get_ex(o, "image", &img) || !json_object_is_type(img, json_type_object))
                return fail(ret_error, "job %" PRIu64 ": missing image", id);
        s = NULL;
        if (get_string(img, "sha256", 64, &s) <= 0 || !is_sha256(s))
                return fail(ret_error, "job %" PRIu64 ": missing or invalid image hash", id);
        if (!(j->image_sha256 = strdup(s)))
                return -ENOMEM;
        if (get_u64(img, "size", DFU_IMAGE_MAX_FILE_SIZE, &j->image_size) <= 0 || j->image_size == 0)
                return fail(ret_error, "job %" PRIu64 ": invalid image size", id);
        r = get_u64(img, "version", UINT16_MAX, &v);
        if (r < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid image version", id);
        if (r > 0) {
                j->has_image_version = true;
                j->image_version = (uint16_t) v;
        }

        if (get_u64(o, "bytes-done", UINT32_MAX * 4ULL, &j->bytes_done) < 0 ||
            get_u64(o, "bytes-total", UINT32_MAX * 4ULL, &j->bytes_total) < 0 ||
            get_u64(o, "created", INT64_MAX, &j->created) < 0 ||
            get_u64(o, "finished", INT64_MAX, &j->finished) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid counters", id);
        v = 0;
        if (get_u64(o, "progress", 100, &v) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid progress", id);
        j->progress = (unsigned) v;
        v = 0;
        if (get_u64(o, "attempts", UINT32_MAX, &v) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid attempts", id);
        j->attempts = (unsigned) v;
        v = 0;
        if (get_u64(o, "stalled-attempts", UINT32_MAX, &v) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid attempts", id);
        j->stalled_attempts = (unsigned) v;
        if (get_bool(o, "flashed", &j->flashed) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid flashed flag", id);

        if (get_string(o, "error-name", 255, &n) < 0 || get_string(o, "error-message", 4096, &m) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid error", id);
        if ((n && !(j->error_name = strdup(n))) || (m && !(j->error_message = strdup(m))))
                return -ENOMEM;
        if (j->state == JOB_FAILED && !j->error_name)
                return fail(ret_error, "job %" PRIu64 ": failed without an error", id);

        if (json_object_object_get_ex(o, "verified", &arr)) {
                if (!json_object_is_type(arr, json_type_array) ||
                    json_object_array_length(arr) > JOB_MAX_VERIFIED)
                        return fail(ret_error, "job %" PRIu64 ": invalid verified list", id);
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *e = json_object_array_get_idx(arr, i);
                        uint64_t alt, address, size, data_size = 0, crc;
                        const char *st = NULL;
                        if (!json_object_is_type(e, json_type_object) || get_u64(e, "alt", 255, &alt) <= 0 ||
                            get_u64(e, "address", UINT32_MAX, &address) <= 0 ||
                            get_u64(e, "size", UINT32_MAX, &size) <= 0 || size == 0 ||
                            address + size - 1 > UINT32_MAX ||
                            get_u64(e, "data-size", UINT32_MAX, &data_size) < 0 || data_size > size ||
                            get_u64(e, "crc", UINT32_MAX, &crc) <= 0 ||
                            get_string(e, "state", 16, &st) < 0 ||
                            (st && !streq(st, "verified") && !streq(st, "skipped")))
                                return fail(ret_error, "job %" PRIu64 ": invalid verified[%zu]", id, i);
                        DfuPlanSector sec = {
                                .alt = (uint8_t) alt,
                                .address = (uint32_t) address,
                                .size = (uint32_t) size,
                                .data_size = (uint32_t) data_size,
                                .crc = (uint32_t) crc,
                                .state = st && streq(st, "skipped") ? DFU_SECTOR_SKIPPED
                                                                    : DFU_SECTOR_VERIFIED,
                        };
                        r = job_add_verified(j, &sec);
                        if (r < 0)
                                return r;
                }
        }

        if (json_object_object_get_ex(o, "log", &arr)) {
                if (!json_object_is_type(arr, json_type_array))
                        return fail(ret_error, "job %" PRIu64 ": invalid log", id);
                size_t nl = json_object_array_length(arr);
                for (size_t i = 0; i < nl; i++) {
                        json_object *e = json_object_array_get_idx(arr, i), *t, *x;
                        if (!json_object_is_type(e, json_type_array) || json_object_array_length(e) != 2 ||
                            !json_object_is_type(t = json_object_array_get_idx(e, 0), json_type_int) ||
                            !json_object_is_type(x = json_object_array_get_idx(e, 1), json_type_string) ||
                            json_object_get_int64(t) < 0)
                                return fail(ret_error, "job %" PRIu64 ": invalid log[%zu]", id, i);
                        r = job_log(j, (uint64_t) json_object_get_int64(t), "%s", json_object_get_string(x));
                        if (r < 0)
                                return r;
                }
        }
        v = 0;
        if (get_u64(o, "log-dropped", INT64_MAX, &v) < 0)
                return fail(ret_error, "job %" PRIu64 ": invalid log-dropped", id);
        j->log_dropped += v;

        *ret = TAKE_PTR(j);
        return 0;
}

int job_parse_text(const char *text, size_t size, size_t log_max, Job **ret, char **ret_error) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (size > JOURNAL_MAX_FILE_SIZE || size > INT32_MAX)
                return fail(ret_error, "file too large");
        json_tokener *tok = json_tokener_new_ex(32);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) size);
        enum json_tokener_error e = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o || e != json_tokener_success)
                return fail(ret_error, "not valid JSON (%s)",
                            e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e));
        for (size_t i = end; i < size; i++)
                if (!strchr(" \t\r\n", text[i]))
                        return fail(ret_error, "trailing data after the JSON document");
        return job_from_json(o, log_max, ret, ret_error);
}

static void job_file_name(uint64_t id, char buf[64]) {
        snprintf(buf, 64, "%" PRIu64 ".json", id);
}

int journal_save_job(Journal *jn, const Job *j) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        char name[64];
        int r;

        r = job_to_json(j, &o);
        if (r < 0)
                return r;
        const char *s =
                json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        job_file_name(j->id, name);
        return write_file_atomic_at(jn->jobs_fd, name, s, strlen(s), 0600);
}

int journal_remove_job(Journal *jn, uint64_t id) {
        char name[64];
        job_file_name(id, name);
        if (unlinkat(jn->jobs_fd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return fsync_dir_fd(jn->jobs_fd);
}

static int job_cmp(const void *a, const void *b) {
        const Job *x = *(Job *const *) a, *y = *(Job *const *) b;
        return x->id < y->id ? -1 : x->id > y->id;
}

int journal_load_jobs(Journal *jn, size_t log_max, JournalProblemFunc problem, void *userdata, Job ***ret,
                      size_t *ret_n) {
        Job **jobs = NULL;
        size_t n = 0;
        int r = 0;

        int fd = dup(jn->jobs_fd);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d);

        struct dirent *de;
        while ((de = readdir(d))) {
                const char *name = de->d_name;
                if (streq(name, ".") || streq(name, ".."))
                        continue;
                if (filename_is_temp(name)) {
                        /* a write that never reached its rename: the previous version is intact */
                        (void) unlinkat(jn->jobs_fd, name, 0);
                        continue;
                }
                const char *e = strrchr(name, '.');
                if (!e || !streq(e, ".json"))
                        continue;

                _cleanup_free_ uint8_t *data = NULL;
                _cleanup_free_ char *error = NULL;
                Job *j = NULL;
                size_t size;
                r = read_file_at(jn->jobs_fd, name, JOURNAL_MAX_FILE_SIZE, &data, &size);
                if (r == -ENOMEM)
                        break;
                if (r >= 0)
                        r = job_parse_text((const char *) data, size, log_max, &j, &error);
                if (r == -ENOMEM)
                        break;
                if (r >= 0) {
                        char expected[64];
                        job_file_name(j->id, expected);
                        if (!streq(expected, name)) {
                                r = -EBADMSG;
                                error = mfree(error);
                                (void) asprintf(&error, "file name does not match job id %" PRIu64, j->id);
                                j = job_free(j);
                        }
                }
                if (r >= 0) {
                        for (size_t i = 0; i < n && j; i++)
                                if (jobs[i]->id == j->id)
                                        j = job_free(j);
                        if (!j)
                                continue;
                        Job **nj = realloc(jobs, (n + 1) * sizeof(Job *));
                        if (!nj) {
                                job_free(j);
                                r = -ENOMEM;
                                break;
                        }
                        jobs = nj;
                        jobs[n++] = j;
                        continue;
                }

                if (problem)
                        problem(name, r, error ? error : strerror(-r), userdata);
                char corrupt[300];
                snprintf(corrupt, sizeof corrupt, "%s.corrupt", name);
                (void) renameat(jn->jobs_fd, name, jn->jobs_fd, corrupt);
                r = 0;
        }
        closedir(d);

        if (r == -ENOMEM) {
                for (size_t i = 0; i < n; i++)
                        job_free(jobs[i]);
                free(jobs);
                return r;
        }
        if (n > 0)
                qsort(jobs, n, sizeof(Job *), job_cmp);
        *ret = jobs;
        *ret_n = n;
        return 0;
}

int journal_store_image(Journal *jn, const uint8_t *data, size_t size, char ret_sha256[SHA256_HEX_SIZE]) {
        struct stat st;

        sha256_hex(data, size, ret_sha256);
        if (fstatat(jn->images_fd, ret_sha256, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode) &&
            (uint64_t) st.st_size == size)
                return 0;
        return write_file_atomic_at(jn->images_fd, ret_sha256, data, size, 0600);
}

int journal_read_image(Journal *jn, const char *sha256, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *data = NULL;
        char check[SHA256_HEX_SIZE];
        size_t size;
        int r;

        if (!is_sha256(sha256))
                return -EINVAL;
        r = read_file_at(jn->images_fd, sha256, DFU_IMAGE_MAX_FILE_SIZE, &data, &size);
        if (r < 0)
                return r;
        sha256_hex(data, size, check);
        if (!streq(check, sha256))
                return -EBADMSG;
        *ret = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

int journal_gc_images(Journal *jn, const char *const *keep) {
        int fd = dup(jn->images_fd);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                bool k = streq(de->d_name, ".") || streq(de->d_name, "..");
                for (const char *const *i = keep; !k && i && *i; i++)
                        k = streq(*i, de->d_name);
                if (!k)
                        (void) unlinkat(jn->images_fd, de->d_name, 0);
        }
        closedir(d);
        return 0;
}
