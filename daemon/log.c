/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool timestamps = false;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_timestamps(bool b) {
        timestamps = b;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format,
                 ...) {
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;

        /* %m must see the error we were given, not whatever errno happens to be */
        errno = error;
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        /* one write() per line so lines from concurrent writers do not interleave */
        char out[2200];
        int n;
        if (timestamps) {
                struct timespec ts;
                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                n = snprintf(out, sizeof out, "<%d>[%5lld.%06ld] %s\n", level & LOG_PRIMASK,
                             (long long) ts.tv_sec, ts.tv_nsec / 1000, buf);
        } else if (max_level >= LOG_DEBUG)
                n = snprintf(out, sizeof out, "<%d>%s (%s:%d)\n", level & LOG_PRIMASK, buf, file, line);
        else
                n = snprintf(out, sizeof out, "<%d>%s\n", level & LOG_PRIMASK, buf);
        if (n > 0)
                (void) !write(STDERR_FILENO, out, MIN((size_t) n, sizeof out - 1));

        return -error;
}
