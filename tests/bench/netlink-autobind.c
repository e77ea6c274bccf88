/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LD_PRELOAD shim for Debian 12's fwupdtool (fwupd 2.0.20 with libusb 1.0.26), used by the bench only.
 *
 * fwupd's udev backend binds its NETLINK_KOBJECT_UEVENT socket to nl_pid = getpid(). libusb before
 * 1.0.27 (no libusb_init_context) opens its own uevent monitor in libusb_init(), which the kernel
 * autobinds to that very port id first; fwupd's bind() then fails with EADDRINUSE ("failed to setup
 * backend udev: ... bind to udev socket failed: Address already in use"), fwupdtool install-blob
 * finds no USB device and reports "device ID ... was not found" (fwupd issue #8083; fixed upstream by
 * letting the udev backend claim the socket before libusb, fwupd PR #10422).
 *
 * This turns a netlink bind() to the caller's own pid that fails with EADDRINUSE into an autobind
 * (nl_pid = 0): the socket still joins the same multicast groups, so fwupd sees every uevent. Nothing
 * else changes. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
        static int (*real_bind)(int, const struct sockaddr *, socklen_t);
        int r;

        if (!real_bind)
                real_bind = (int (*)(int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "bind");
        r = real_bind(fd, addr, len);
        if (r < 0 && errno == EADDRINUSE && addr && addr->sa_family == AF_NETLINK &&
            len >= sizeof(struct sockaddr_nl)) {
                struct sockaddr_nl nl = *(const struct sockaddr_nl *) addr;
                if (nl.nl_pid == (unsigned) getpid()) {
                        nl.nl_pid = 0;
                        r = real_bind(fd, (const struct sockaddr *) &nl, sizeof nl);
                }
        }
        return r;
}
