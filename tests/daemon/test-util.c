/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <unistd.h>

#include "test-util.h"

char *test_tmpdir(void) {
        const char *t = getenv("TMPDIR");
        char *p;
        if (asprintf(&p, "%s/dfud-test-XXXXXX", t ? t : "/tmp") < 0)
                abort();
        assert(mkdtemp(p));
        return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

void rm_rf(const char *path) {
        (void) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int write_bytes(const char *dir, const char *name, const void *data, size_t size) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, size);
        close(fd);
        return n == (ssize_t) size ? 0 : -EIO;
}

int write_text(const char *dir, const char *name, const char *text) {
        return write_bytes(dir, name, text, strlen(text));
}
