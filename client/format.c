/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"

struct Table {
        size_t n_columns;
        char **cells; /* row-major, the header is row 0 */
        size_t n_cells;
        size_t n_allocated;
        bool *align_right;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t;

        if (n_columns == 0)
                return NULL;
        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        t->align_right = calloc(n_columns, sizeof(bool));
        if (!t->align_right || table_add_row(t, headers) < 0)
                return table_free(t);
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t->align_right);
        return mfree(t);
}

void table_set_align_right(Table *t, size_t column) {
        if (t && column < t->n_columns)
                t->align_right[column] = true;
}

int table_add_row(Table *t, const char *const *cells) {
        if (!t || !cells)
                return -EINVAL;

        if (t->n_cells + t->n_columns > t->n_allocated) {
                size_t n = MAX(t->n_allocated * 2, t->n_cells + t->n_columns);
                char **p = reallocarray(t->cells, n, sizeof(char *));
                if (!p)
                        return -ENOMEM;
                t->cells = p;
                t->n_allocated = n;
        }

        for (size_t i = 0; i < t->n_columns; i++) {
                char *c = string_sanitize(cells[i] && cells[i][0] ? cells[i] : "-");
                if (!c) {
                        /* drop the half-added row */
                        for (size_t j = 0; j < i; j++)
                                free(t->cells[t->n_cells + j]);
                        return -ENOMEM;
                }
                t->cells[t->n_cells + i] = c;
        }
        t->n_cells += t->n_columns;
        return 0;
}

size_t table_get_rows(const Table *t) {
        return t ? t->n_cells / t->n_columns - 1 : 0;
}

int table_format(const Table *t, char **ret) {
        _cleanup_free_ size_t *widths = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f;

        if (!t || !ret)
                return -EINVAL;

        widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                widths[i % t->n_columns] = MAX(widths[i % t->n_columns], utf8_width(t->cells[i]));

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (size_t r = 0; r < t->n_cells / t->n_columns; r++)
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *cell = t->cells[r * t->n_columns + c];
                        bool last = c + 1 == t->n_columns;
                        size_t pad = widths[c] - utf8_width(cell);

                        if (t->align_right[c])
                                fprintf(f, "%*s%s", (int) pad, "", cell);
                        else if (last)
                                fputs(cell, f);
                        else
                                fprintf(f, "%s%*s", cell, (int) pad, "");
                        fputs(last ? "\n" : "  ", f);
                }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int table_print(const Table *t, FILE *f) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = table_format(t, &s);
        if (r < 0)
                return r;
        fputs(s, f);
        return 0;
}

size_t utf8_width(const char *s) {
        size_t n = 0;

        for (; s && *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        n++;
        return n;
}

char *string_sanitize(const char *s) {
        char *copy = strdup(s ?: "");

        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return copy;
}

char *camel_to_snake(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(n * 2 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = s[i];
                if (isupper(c) && i > 0) {
                        unsigned char prev = s[i - 1], next = s[i + 1];
                        /* a word starts at an upper-case letter after a lower-case one, and at the last
                         * capital of an acronym followed by lower case ("USBPort": "usb_port") */
                        if (islower(prev) || isdigit(prev) || (isupper(prev) && islower(next)))
                                *o++ = '_';
                }
                *o++ = tolower(c);
        }
        *o = 0;
        return out;
}

static const char *const byte_units[] = { "B", "KiB", "MiB", "GiB", "TiB" };

static unsigned byte_unit(uint64_t v) {
        unsigned u = 0;

        while (u + 1 < ELEMENTSOF(byte_units) && v >= (UINT64_C(1) << (10 * (u + 1))))
                u++;
        return u;
}

char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        unsigned u = byte_unit(bytes);

        if (u == 0)
                snprintf(buf, size, "%" PRIu64 " B", bytes);
        else
                snprintf(buf, size, "%.1f %s", (double) bytes / (double) (UINT64_C(1) << (10 * u)),
                         byte_units[u]);
        return buf;
}

char *format_bytes_pair(char *buf, size_t size, uint64_t done, uint64_t total) {
        unsigned u = byte_unit(total);
        double div = (double) (UINT64_C(1) << (10 * u));

        if (u == 0)
                snprintf(buf, size, "%" PRIu64 "/%" PRIu64 " B", done, total);
        else
                snprintf(buf, size, "%.1f/%.1f %s", (double) done / div, (double) total / div,
                         byte_units[u]);
        return buf;
}

char *format_timestamp(char *buf, size_t size, uint64_t usec) {
        time_t sec = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&sec, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, size, "-");
        return buf;
}

char *format_duration(char *buf, size_t size, uint64_t usec) {
        uint64_t s = usec / USEC_PER_SEC;

        if (usec < USEC_PER_SEC)
                snprintf(buf, size, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
        else if (s < 60)
                snprintf(buf, size, "%.1fs", (double) usec / USEC_PER_SEC);
        else if (s < 3600)
                snprintf(buf, size, "%" PRIu64 "min %02" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRIu64 "h %02" PRIu64 "min", s / 3600, s / 60 % 60);
        return buf;
}

unsigned progress_percent(uint64_t done, uint64_t total, unsigned fallback) {
        if (total == 0)
                return MIN(fallback, 100u);
        if (done >= total)
                return 100;
        /* no overflow for any realistic size: flash images are far below 2^57 bytes */
        return (unsigned) (done * 100 / total);
}

void rate_meter_reset(RateMeter *m) {
        *m = (RateMeter) {};
}

double rate_meter_update(RateMeter *m, uint64_t now_usec, uint64_t bytes) {
        double inst;

        if (!m->started || bytes < m->bytes || now_usec < m->t_usec) {
                *m = (RateMeter) { .t_usec = now_usec, .bytes = bytes, .started = true };
                return -1;
        }
        /* too short an interval gives a noisy figure: keep the old sample point and wait */
        if (now_usec - m->t_usec < RATE_METER_MIN_INTERVAL_USEC)
                return m->have_rate ? m->rate : -1;

        inst = (double) (bytes - m->bytes) * USEC_PER_SEC / (double) (now_usec - m->t_usec);
        m->rate = m->have_rate ? 0.5 * m->rate + 0.5 * inst : inst;
        m->have_rate = true;
        m->t_usec = now_usec;
        m->bytes = bytes;
        return m->rate;
}

/* Appends to buf at *len, never past size; the result stays NUL-terminated. */
_printf_(4, 5) static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
        va_list ap;
        int n;

        if (*len + 1 >= size)
                return;
        va_start(ap, fmt);
        n = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (n > 0)
                *len = MIN(*len + (size_t) n, size - 1);
}

/* "  45%  120.0/256.0 KiB  32.1 KiB/s": everything right of the bar. */
static void format_progress_tail(char *buf, size_t size, unsigned percent, uint64_t done, uint64_t total,
                                 double rate) {
        size_t len = 0;
        char b[64];

        buf[0] = 0;
        append(buf, size, &len, " %3u%%", MIN(percent, 100u));
        if (total > 0)
                append(buf, size, &len, "  %s", format_bytes_pair(b, sizeof(b), done, total));
        if (rate >= 0)
                append(buf, size, &len, "  %.1f KiB/s", rate / 1024.0);
}

#define PROGRESS_STATE_WIDTH 11 /* "verifying" and most phases fit; longer ones push the bar right */
#define PROGRESS_BAR_MIN 10

char *format_progress_bar(char *buf, size_t size, unsigned width, const char *state, unsigned percent,
                          uint64_t done, uint64_t total, double rate) {
        char tail[128], head[80];
        size_t len = 0, head_len, tail_len, avail;

        if (size == 0)
                return buf;
        buf[0] = 0;
        percent = MIN(percent, 100u);

        snprintf(head, sizeof(head), "%-*s", PROGRESS_STATE_WIDTH, state ?: "");
        format_progress_tail(tail, sizeof(tail), percent, done, total, rate);
        head_len = strlen(head);
        tail_len = strlen(tail);
        avail = width > 0 ? width - 1 : 0;

        if (head_len + 1 + 2 + PROGRESS_BAR_MIN + tail_len <= avail) {
                /* "state [####....]tail" */
                size_t bar = avail - head_len - 1 - 2 - tail_len, fill = bar * percent / 100;

                append(buf, size, &len, "%s [", head);
                for (size_t i = 0; i < bar; i++)
                        append(buf, size, &len, "%c", i < fill ? '#' : '.');
                append(buf, size, &len, "]%s", tail);
        } else {
                /* narrow terminal: no bar, cut to fit */
                append(buf, size, &len, "%s%s", head, tail);
                if (avail < size && len > avail)
                        buf[avail] = 0;
        }
        return buf;
}

char *format_progress_line(char *buf, size_t size, const char *state, unsigned percent, uint64_t done,
                           uint64_t total, double rate) {
        size_t len = 0;
        char b[64];

        if (size == 0)
                return buf;
        buf[0] = 0;
        append(buf, size, &len, "%s: %u%%", state ?: "", MIN(percent, 100u));
        if (total > 0 || rate >= 0) {
                append(buf, size, &len, " (");
                if (total > 0)
                        append(buf, size, &len, "%s", format_bytes_pair(b, sizeof(b), done, total));
                if (rate >= 0)
                        append(buf, size, &len, "%s%.1f KiB/s", total > 0 ? ", " : "", rate / 1024.0);
                append(buf, size, &len, ")");
        }
        return buf;
}

void progress_plain_reset(ProgressPlain *p) {
        *p = (ProgressPlain) { .decile = -1 };
}

bool progress_plain_step(ProgressPlain *p, const char *state, unsigned percent) {
        int decile = (int) (MIN(percent, 100u) / 10);

        if (!streq(p->state, state ?: "")) {
                snprintf(p->state, sizeof(p->state), "%s", state ?: "");
                p->decile = decile;
                return true;
        }
        if (decile > p->decile) {
                p->decile = decile;
                return true;
        }
        return false;
}
