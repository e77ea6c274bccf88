/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The persistent job journal in the state directory:
 *   jobs/<id>.json      one file per job, replaced atomically at every state change and every
 *                       verified sector (temp + fsync + rename + fsync dir)
 *   images/<sha256>     the firmware exactly as the caller passed it, so a job never depends on the
 *                       caller's file again (resume after restart, replug)
 * Temp files a crash left behind (".#…") are ignored and removed; a file that does not parse is
 * renamed to "<name>.corrupt" and reported, never fatal. Non-logging except journal_load_jobs(),
 * which reports per-file problems through a callback. */

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "util.h"

#define JOURNAL_VERSION 1
#define JOURNAL_JOBS_DIR "jobs"
#define JOURNAL_IMAGES_DIR "images"
#define JOURNAL_MAX_FILE_SIZE (32u * 1024u * 1024u)

typedef struct Journal {
        char *path;
        int dir_fd, jobs_fd, images_fd;
} Journal;

int journal_open(const char *state_dir, Journal **ret);
Journal *journal_free(Journal *jn);
DEFINE_TRIVIAL_CLEANUP_FUNC(Journal *, journal_free);

int job_to_json(const Job *j, json_object **ret);
/* -EBADMSG and *ret_error for anything that is not a valid job record. */
int job_from_json(json_object *o, size_t log_max, Job **ret, char **ret_error);
int job_parse_text(const char *text, size_t size, size_t log_max, Job **ret, char **ret_error);

int journal_save_job(Journal *jn, const Job *j);
int journal_remove_job(Journal *jn, uint64_t id);

typedef void (*JournalProblemFunc)(const char *file, int error, const char *message, void *userdata);
/* Loads every job record, sorted by id. Bad files are set aside as "*.corrupt" and reported. */
int journal_load_jobs(Journal *jn, size_t log_max, JournalProblemFunc problem, void *userdata, Job ***ret,
                      size_t *ret_n);

/* Stores data as images/<sha256> (atomically; an existing file with the right size is kept). */
int journal_store_image(Journal *jn, const uint8_t *data, size_t size, char ret_sha256[SHA256_HEX_SIZE]);
/* Reads images/<sha256> back and checks its hash: -EBADMSG if it changed, -ENOENT if gone. */
int journal_read_image(Journal *jn, const char *sha256, uint8_t **ret, size_t *ret_size);
/* Removes every stored image not listed in keep (NULL-terminated). */
int journal_gc_images(Journal *jn, const char *const *keep);
