/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by every part of dfud (systemd/ratbagd idioms, public API only). */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_DOWN(x, a) ((x) / (a) * (a))

/* Take ownership of a pointer: return it and leave NULL behind. */
#define TAKE_PTR(p)                               \
        ({                                        \
                __typeof__(p) _ptr_ = (p);        \
                (p) = NULL;                       \
                _ptr_;                            \
        })
#define TAKE_FD(fd)                               \
        ({                                        \
                int _fd_ = (fd);                  \
                (fd) = -EBADF;                    \
                _fd_;                             \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)   \
        static inline void func##p(type *p) {     \
                if (*p)                           \
                        func(*p);                 \
        }

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        (void) safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

/* Enum <-> string tables: `name##_to_string(v)` returns NULL for out-of-range values and
 * `name##_from_string(s)` returns -EINVAL for unknown strings. */
#define DEFINE_STRING_TABLE_LOOKUP(name, type)                                      \
        const char *name##_to_string(type i) {                                      \
                if ((int) i < 0 || (size_t) i >= ELEMENTSOF(name##_table))          \
                        return NULL;                                                \
                return name##_table[i];                                             \
        }                                                                           \
        type name##_from_string(const char *s) {                                    \
                if (!s)                                                             \
                        return (type) -EINVAL;                                      \
                for (size_t _i = 0; _i < ELEMENTSOF(name##_table); _i++)            \
                        if (name##_table[_i] && streq(name##_table[_i], s))         \
                                return (type) _i;                                   \
                return (type) -EINVAL;                                              \
        }
