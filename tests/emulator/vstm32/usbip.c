/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"
#include "usbip.h"

void usbip_command_done(UsbipCommand *c) {
        c->data = mfree(c->data);
}

static int read_full(int fd, void *buf, size_t size) {
        uint8_t *p = buf;

        while (size > 0) {
                ssize_t n = read(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ECONNRESET;
                p += n;
                size -= n;
        }
        return 0;
}

static int write_full(int fd, const struct iovec *iov, int n_iov) {
        struct iovec v[4];
        int i = 0;

        memcpy(v, iov, n_iov * sizeof(*iov));
        while (i < n_iov) {
                ssize_t n = writev(fd, v + i, n_iov - i);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (i < n_iov && (size_t) n >= v[i].iov_len) {
                        n -= v[i].iov_len;
                        i++;
                }
                if (i < n_iov) {
                        v[i].iov_base = (uint8_t *) v[i].iov_base + n;
                        v[i].iov_len -= n;
                }
        }
        return 0;
}

static uint32_t get_be32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return be32toh(v);
}

static void put_be32(uint8_t *p, uint32_t v) {
        v = htobe32(v);
        memcpy(p, &v, 4);
}

int usbip_read_command(int fd, UsbipCommand *ret) {
        uint8_t h[USBIP_HEADER_SIZE];
        UsbipCommand c = {};
        int r;

        r = read_full(fd, h, sizeof(h));
        if (r < 0)
                return r;
        c.command = get_be32(h);
        c.seqnum = get_be32(h + 4);
        c.devid = get_be32(h + 8);
        c.direction = get_be32(h + 12);
        c.ep = get_be32(h + 16);
        if (c.command == USBIP_CMD_UNLINK) {
                c.unlink_seqnum = get_be32(h + 20);
                *ret = c;
                return 0;
        }
        if (c.command != USBIP_CMD_SUBMIT)
                return -EBADMSG;
        c.transfer_flags = get_be32(h + 20);
        c.length = get_be32(h + 24);
        memcpy(c.setup, h + 40, 8);
        /* More than any of our transfers could be: the stream is out of sync. */
        if (c.length > 1024 * 1024)
                return -EBADMSG;
        /* Only OUT transfers carry data (control-OUT too); no isochronous endpoints here. */
        if (c.direction == USBIP_DIR_OUT && c.length > 0) {
                c.data = malloc(c.length);
                if (!c.data)
                        return -ENOMEM;
                r = read_full(fd, c.data, c.length);
                if (r < 0) {
                        free(c.data);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

int usbip_send_ret_submit(int fd, uint32_t seqnum, int status, bool in, const void *data, size_t actual) {
        uint8_t h[USBIP_HEADER_SIZE] = {};
        struct iovec iov[2] = { { h, sizeof(h) }, { (void *) data, in ? actual : 0 } };

        put_be32(h, USBIP_RET_SUBMIT);
        put_be32(h + 4, seqnum);
        put_be32(h + 20, (uint32_t) status);
        put_be32(h + 24, actual);
        return write_full(fd, iov, iov[1].iov_len > 0 ? 2 : 1);
}

int usbip_send_ret_unlink(int fd, uint32_t seqnum, int status) {
        uint8_t h[USBIP_HEADER_SIZE] = {};
        struct iovec iov = { h, sizeof(h) };

        put_be32(h, USBIP_RET_UNLINK);
        put_be32(h + 4, seqnum);
        put_be32(h + 20, (uint32_t) status);
        return write_full(fd, &iov, 1);
}

/* Status rows: "hs  0000 004 000 00000000 000000 0-0" (hub, port, sta, spd, dev, sockfd, busid). */
static int port_status(unsigned port) {
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        FILE *f;
        int r = -ENOENT;

        f = fopen(VHCI_SYSFS "/status", "re");
        if (!f)
                return -errno;
        while (getline(&line, &n, f) > 0) {
                char hub[8];
                unsigned p, sta;

                if (sscanf(line, "%7s %u %u", hub, &p, &sta) != 3)
                        continue;
                if (p == port) {
                        r = (int) sta;
                        break;
                }
        }
        fclose(f);
        return r;
}

int usbip_port_is_free(unsigned port) {
        int r = port_status(port);
        if (r < 0)
                return r;
        return r == 4; /* VDEV_ST_NULL */
}

int usbip_find_free_port(void) {
        for (unsigned p = 0; p < VHCI_HS_PORTS; p++)
                if (usbip_port_is_free(p) > 0)
                        return (int) p;
        return -EBUSY;
}

int usbip_attach(unsigned port, uint32_t devid, unsigned speed, int *ret_fd) {
        _cleanup_close_ int attach = -EBADF;
        int sv[2];
        char buf[64];
        int len, r = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        attach = open(VHCI_SYSFS "/attach", O_WRONLY | O_CLOEXEC);
        if (attach < 0)
                r = -errno;
        else {
                /* The kernel looks sv[1] up in this process and takes its own reference. */
                len = snprintf(buf, sizeof(buf), "%u %d %u %u", port, sv[1], devid, speed);
                if (write(attach, buf, len) != len)
                        r = -errno;
        }
        safe_close(sv[1]);
        if (r < 0) {
                safe_close(sv[0]);
                return r;
        }
        *ret_fd = sv[0];
        return 0;
}
