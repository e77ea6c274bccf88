/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dfuctl's output helpers: aligned tables, byte counts, times, the progress bar and its plain-text
 * fallback. No D-Bus here, so tests/client/test-format.c can check them directly. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* ---- tables ---- */

typedef struct Table Table;

/* A table with n_columns columns; headers are copied. */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free)

/* Right-align a column (numbers). */
void table_set_align_right(Table *t, size_t column);

/* Cells are copied; NULL or "" shows as "-". Control characters are replaced (see string_sanitize()). */
int table_add_row(Table *t, const char *const *cells);
size_t table_get_rows(const Table *t);

/* Columns separated by two spaces, header line first, no trailing blanks. Returns a malloc'd string. */
int table_format(const Table *t, char **ret);
int table_print(const Table *t, FILE *f);

/* ---- strings ---- */

/* Printed width of a UTF-8 string (code points; good enough for device names). */
size_t utf8_width(const char *s);

/* Copy with every control character (C0, DEL) replaced by '?', so device-supplied strings (USB product
 * names, serials) cannot move the cursor or change the terminal. Returns NULL on OOM. */
char *string_sanitize(const char *s);

/* "FirmwareVersion" → "firmware_version", "USBPort" → "usb_port": the --json key of a D-Bus property. */
char *camel_to_snake(const char *s);

/* ---- numbers and times ---- */

/* "512 B", "1.5 KiB", "256.0 KiB", "1.0 MiB", "2.0 GiB". */
char *format_bytes(char *buf, size_t size, uint64_t bytes);

/* "120.0/256.0 KiB": both in the unit of total (bytes when total < 1 KiB). */
char *format_bytes_pair(char *buf, size_t size, uint64_t done, uint64_t total);

/* Local time "2024-05-01 12:00:01" of a CLOCK_REALTIME timestamp in µs; 0 gives "-". */
char *format_timestamp(char *buf, size_t size, uint64_t usec);

/* "850ms", "8.1s", "2min 03s", "1h 02min". */
char *format_duration(char *buf, size_t size, uint64_t usec);

/* Percent of done/total, clamped to 0..100; `fallback` when total is 0. */
unsigned progress_percent(uint64_t done, uint64_t total, unsigned fallback);

/* ---- transfer rate ---- */

/* Bytes per second from successive (time, bytes done) samples, smoothed. A sample with fewer bytes
 * than the previous one (a new phase restarting its counter) restarts the meter. */
typedef struct RateMeter {
        uint64_t t_usec;
        uint64_t bytes;
        double rate;
        bool started;
        bool have_rate;
} RateMeter;

#define RATE_METER_MIN_INTERVAL_USEC (250 * USEC_PER_MSEC)

void rate_meter_reset(RateMeter *m);
/* Returns the current rate in bytes/s, or a negative value while unknown. */
double rate_meter_update(RateMeter *m, uint64_t now_usec, uint64_t bytes);

/* ---- progress ---- */

/* One progress bar line for a terminal `width` columns wide, at most width-1 printable characters so it
 * never wraps:
 *   "writing    [#########..........]  45%  120.0/256.0 KiB  32.1 KiB/s"
 * Bytes are left out when total is 0, the rate when rate < 0, the bar when the terminal is too narrow. */
char *format_progress_bar(char *buf, size_t size, unsigned width, const char *state, unsigned percent,
                          uint64_t done, uint64_t total, double rate);

/* The non-terminal form: "writing: 45% (120.0/256.0 KiB, 32.1 KiB/s)". */
char *format_progress_line(char *buf, size_t size, const char *state, unsigned percent, uint64_t done,
                           uint64_t total, double rate);

/* Decides when plain (non-terminal) progress is worth a line: at every phase change and every time
 * the percentage enters a new tenth. */
typedef struct ProgressPlain {
        char state[64];
        int decile;
} ProgressPlain;

void progress_plain_reset(ProgressPlain *p);
bool progress_plain_step(ProgressPlain *p, const char *state, unsigned percent);
