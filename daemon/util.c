/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

bool filename_is_temp(const char *name) {
        return startswith(name, TEMP_FILE_PREFIX) != NULL;
}

int fsync_dir_fd(int dir_fd) {
        return RET_NERRNO(fsync(dir_fd));
}

static int write_all(int fd, const uint8_t *p, size_t size) {
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (strchr(name, '/'))
                return -EINVAL;

        /* unique per attempt; O_EXCL so a stale temp file from a crash is never reused */
        for (unsigned attempt = 0;; attempt++) {
                if (snprintf(tmp, sizeof tmp, TEMP_FILE_PREFIX "%s.%08x", name,
                             (unsigned) (random() ^ (now_usec(CLOCK_MONOTONIC) & 0xffffffff))) >=
                    (int) sizeof tmp)
                        return -ENAMETOOLONG;
                fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt > 16)
                        return -errno;
        }

        r = write_all(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0) {
                int fd2 = TAKE_FD(fd);
                if (close(fd2) < 0 && errno != EINTR)
                        r = -errno;
        }
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dir_fd, tmp, 0);
                return r;
        }
        /* the rename is atomic, but only durable once the directory is synced */
        return fsync_dir_fd(dir_fd);
}

int read_fd_bounded(int fd, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t size = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;

        /* the file may grow under us (the caller still holds it): read at most max + 1 */
        size_t cap = (size_t) st.st_size + 1;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (size == cap) {
                        if (cap > max)
                                return -EFBIG;
                        size_t ncap = MIN(cap * 2, max + 1);
                        uint8_t *n = realloc(buf, ncap);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                        cap = ncap;
                }
                ssize_t n = pread(fd, buf + size, cap - size, (off_t) size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int read_file_at(int dir_fd, const char *name, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        return read_fd_bounded(fd, max, ret, ret_size);
}

int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];

        if (strlen(path) >= sizeof buf)
                return -ENAMETOOLONG;
        strcpy(buf, path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

void *memdup(const void *p, size_t size) {
        void *d = malloc(size ? size : 1);
        if (d && size)
                memcpy(d, p, size);
        return d;
}

/* SHA-256 (FIPS 180-4); only used to name stored images, so speed does not matter. */
static const uint32_t sha256_k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
        uint32_t w[64], a, b, c, d, e, f, g, hh;

        for (int i = 0; i < 16; i++)
                w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16 |
                       (uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
                uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
                uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; i++) {
                uint32_t s1 = ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25);
                uint32_t ch = (e & f) ^ (~e & g);
                uint32_t t1 = hh + s1 + ch + sha256_k[i] + w[i];
                uint32_t s0 = ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22);
                uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
                uint32_t t2 = s0 + maj;
                hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void sha256_hex(const void *data, size_t size, char ret[SHA256_HEX_SIZE]) {
        uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
        const uint8_t *p = data;
        uint8_t tail[128] = {};
        size_t n = size;

        for (; n >= 64; n -= 64, p += 64)
                sha256_block(h, p);
        memcpy(tail, p, n);
        tail[n] = 0x80;
        size_t tl = n + 9 <= 64 ? 64 : 128;
        uint64_t bits = (uint64_t) size * 8;
        for (int i = 0; i < 8; i++)
                tail[tl - 1 - i] = (uint8_t) (bits >> (8 * i));
        sha256_block(h, tail);
        if (tl == 128)
                sha256_block(h, tail + 64);
        for (int i = 0; i < 8; i++)
                snprintf(ret + 8 * i, 9, "%08x", h[i]);
}

int parse_u32(const char *s, uint32_t *ret) {
        char *end;
        unsigned long long v;

        if (isempty(s) || *s == '-' || isspace((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0)
                return -errno;
        if (*end != 0)
                return -EINVAL;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_u16(const char *s, uint16_t *ret) {
        uint32_t v;
        int r = parse_u32(s, &v);
        if (r < 0)
                return r;
        if (v > UINT16_MAX)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

char *id_sanitize(const char *s) {
        size_t n = strlen(s);
        char *r = malloc(n + 1), *q = r;
        if (!r)
                return NULL;
        for (const char *p = s; *p; p++)
                if (isascii((unsigned char) *p) && (isalnum((unsigned char) *p) || strchr("_.-", *p)))
                        *q++ = *p;
        *q = 0;
        return r;
}

bool string_is_safe(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < ' ' || *p >= 127)
                        return false;
        return true;
}

void bcd_to_version(uint16_t bcd, char ret[8]) {
        snprintf(ret, 8, "%x.%02x", bcd >> 8, bcd & 0xff);
}
