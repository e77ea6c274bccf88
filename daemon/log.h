/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging: one line per message on stderr with a "<N>" syslog priority prefix, which journald (and
 * systemd's StandardError=journal) turns into the priority. Only daemon code logs; protocol/ never
 * logs above debug. The *_errno() variants set errno = -r first, so "%m" is right, and return the
 * negative error, so `return log_error_errno(r, "Failed to …: %m");` works. */

#include <errno.h>
#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
/* Prefix messages with a monotonic timestamp (tests and --debug on a terminal). */
void log_set_timestamps(bool b);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                 \
        ({                                                                                \
                int _l = (level), _e = (error);                                           \
                (log_get_max_level() >= _l)                                               \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -(_e < 0 ? -_e : _e);                                           \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
