/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small non-logging helpers: clocks, files written crash-consistently, bounded reads, strings. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro-util.h"

uint64_t now_usec(clockid_t clock);

/* Atomic + durable replace of dir_fd/name: temp file in the same directory (".#name.XXXXXX"),
 * write, fsync, rename over the old name, fsync the directory (reliability.md §4). On failure the
 * temp file is removed and the old content is untouched. Any fsync error fails the write: never
 * retried, because a second fsync may "succeed" after the kernel dropped the dirty pages. */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode);

/* Temp files of write_file_atomic_at() left behind by a crash start with this. */
#define TEMP_FILE_PREFIX ".#"
bool filename_is_temp(const char *name);

/* Reads all of fd (from offset 0 for regular files) into a malloc'ed buffer of at most max bytes.
 * -EFBIG if there is more, -EBADF if fd is not a regular file (a pipe could block the loop). */
int read_fd_bounded(int fd, size_t max, uint8_t **ret, size_t *ret_size);
/* Same for dir_fd/name; -ENOENT passes through. */
int read_file_at(int dir_fd, const char *name, size_t max, uint8_t **ret, size_t *ret_size);

int mkdir_p(const char *path, mode_t mode);
int fsync_dir_fd(int dir_fd);

void *memdup(const void *p, size_t size);

/* SHA-256 as 64 lowercase hex characters + NUL. */
#define SHA256_HEX_SIZE 65
void sha256_hex(const void *data, size_t size, char ret[SHA256_HEX_SIZE]);

/* "0x1234", "1234" (decimal) or a JSON int; 0 or -EINVAL/-ERANGE. */
int parse_u32(const char *s, uint32_t *ret);
int parse_u16(const char *s, uint16_t *ret);

/* Keep only [A-Za-z0-9_.-]: for ids derived from USB serials, which are device-supplied bytes. */
char *id_sanitize(const char *s);
/* True for printable ASCII without control characters: safe to log and to put on the bus. */
bool string_is_safe(const char *s);

/* bcdDevice 0x0102 -> "1.02" (how lsusb and the USB spec print release numbers). */
void bcd_to_version(uint16_t bcd, char ret[8]);
