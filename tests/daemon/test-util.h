/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Tiny helpers shared by the daemon unit tests: asserts that stay on under NDEBUG, and temporary
 * directories that are removed afterwards. */

#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST(name)              \
        static void name(void); \
        static void name(void)

#define RUN(name)                                  \
        do {                                       \
                fprintf(stderr, "== %s\n", #name); \
                name();                            \
        } while (0)

/* mkdtemp under $TMPDIR; the caller frees the path after rm_rf(). */
char *test_tmpdir(void);
void rm_rf(const char *path);
int write_text(const char *dir, const char *name, const char *text);
int write_bytes(const char *dir, const char *name, const void *data, size_t size);
