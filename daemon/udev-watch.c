/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <stdio.h>

#include "log.h"
#include "udev-watch.h"
#include "util.h"

struct UdevWatch {
        struct udev *udev;
        struct udev_monitor *monitor;
        UdevWatchFunc cb;
        void *userdata;
};

int udev_watch_new(UdevWatchFunc cb, void *userdata, UdevWatch **ret) {
        _cleanup_(udev_watch_freep) UdevWatch *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        w->cb = cb;
        w->userdata = userdata;
        w->udev = udev_new();
        if (!w->udev)
                return -ENOMEM;
        w->monitor = udev_monitor_new_from_netlink(w->udev, "udev");
        if (!w->monitor)
                return -errno ? -errno : -EIO;
        r = udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "usb", "usb_device");
        if (r < 0)
                return r;
        r = udev_monitor_filter_add_match_subsystem_devtype(w->monitor, "tty", NULL);
        if (r < 0)
                return r;
        /* a burst of events (hub with many devices) must not overflow the socket */
        (void) udev_monitor_set_receive_buffer_size(w->monitor, 4 * 1024 * 1024);
        r = udev_monitor_enable_receiving(w->monitor);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

UdevWatch *udev_watch_free(UdevWatch *w) {
        if (!w)
                return NULL;
        udev_monitor_unref(w->monitor);
        udev_unref(w->udev);
        return mfree(w);
}

int udev_watch_get_fd(UdevWatch *w) {
        return udev_monitor_get_fd(w->monitor);
}

static char *attr_dup(struct udev_device *d, const char *name) {
        const char *v = udev_device_get_sysattr_value(d, name);
        if (!v)
                return NULL;
        /* device-supplied strings: printable only, so they are safe in logs and on the bus */
        char *s = strdup(v);
        if (!s)
                return NULL;
        for (char *p = s; *p; p++)
                if ((unsigned char) *p < ' ' || (unsigned char) *p >= 127)
                        *p = '?';
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == ' ')
                s[--n] = 0;
        return s;
}

int usb_info_from_udev(struct udev_device *d, UsbInfo **ret) {
        _cleanup_(usb_info_freep) UsbInfo *u = calloc(1, sizeof *u);
        _cleanup_free_ uint8_t *desc = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        size_t size;
        int r;

        if (!u)
                return -ENOMEM;
        /* the raw descriptors, binary: read the sysfs file, not the (string) sysattr */
        dir_fd = open(udev_device_get_syspath(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;
        /* a sysfs binary attribute: its st_size is a maximum, not the size, so just read */
        _cleanup_close_ int fd = openat(dir_fd, "descriptors", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ENODATA : -errno;
        desc = malloc(65536);
        if (!desc)
                return -ENOMEM;
        size = 0;
        for (;;) {
                ssize_t n = read(fd, desc + size, 65536 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size >= 65536)
                        break;
        }
        r = usb_desc_parse(desc, size, &u->desc);
        if (r < 0)
                return r;

        u->syspath = strdup(udev_device_get_syspath(d));
        u->port = strdup(udev_device_get_sysname(d));
        if (!u->syspath || !u->port)
                return -ENOMEM;
        if (udev_device_get_devnode(d) && !(u->devnode = strdup(udev_device_get_devnode(d))))
                return -ENOMEM;
        u->serial = attr_dup(d, "serial");
        u->manufacturer = attr_dup(d, "manufacturer");
        u->product = attr_dup(d, "product");
        *ret = TAKE_PTR(u);
        return 0;
}

static void process(UdevWatch *w, struct udev_device *d, UdevAction action) {
        const char *subsystem = udev_device_get_subsystem(d), *syspath = udev_device_get_syspath(d);
        UdevEvent ev = { .action = action, .syspath = syspath };
        _cleanup_(usb_info_freep) UsbInfo *u = NULL;

        if (!subsystem || !syspath)
                return;

        if (streq(subsystem, "tty")) {
                struct udev_device *p =
                        udev_device_get_parent_with_subsystem_devtype(d, "usb", "usb_device");
                if (!p)
                        return; /* not a USB serial port */
                ev.tty_devnode = udev_device_get_devnode(d);
                ev.tty_parent = udev_device_get_syspath(p);
                if (action == UDEV_ACTION_ADD && !ev.tty_devnode)
                        return;
                w->cb(&ev, w->userdata);
                return;
        }

        if (action == UDEV_ACTION_ADD) {
                int r = usb_info_from_udev(d, &u);
                if (r < 0) {
                        log_debug_errno(r, "Cannot read USB device %s, ignoring: %m", syspath);
                        return;
                }
                ev.usb = u;
        }
        w->cb(&ev, w->userdata);
}

int udev_watch_dispatch(UdevWatch *w) {
        /* drain: several events may be queued on one wakeup */
        for (unsigned i = 0; i < 256; i++) {
                _cleanup_(udev_device_unrefp) struct udev_device *d =
                        udev_monitor_receive_device(w->monitor);
                if (!d)
                        break;
                const char *action = udev_device_get_action(d);
                if (!action)
                        continue;
                if (streq(action, "remove"))
                        process(w, d, UDEV_ACTION_REMOVE);
                else if (streq(action, "add") || streq(action, "change") || streq(action, "bind"))
                        process(w, d, UDEV_ACTION_ADD);
        }
        return 0;
}

static int enumerate(UdevWatch *w, const char *subsystem) {
        _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = udev_enumerate_new(w->udev);
        struct udev_list_entry *item;
        int r;

        if (!e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, subsystem);
        if (r < 0)
                return r;
        /* not yet processed by udev (permissions, rules): its "add" event will come */
        r = udev_enumerate_add_match_is_initialized(e);
        if (r < 0)
                return r;
        r = udev_enumerate_scan_devices(e);
        if (r < 0)
                return r;
        udev_list_entry_foreach (item, udev_enumerate_get_list_entry(e)) {
                _cleanup_(udev_device_unrefp) struct udev_device *d =
                        udev_device_new_from_syspath(w->udev, udev_list_entry_get_name(item));
                if (!d)
                        continue;
                const char *devtype = udev_device_get_devtype(d);
                if (streq(subsystem, "usb") && !streq_ptr(devtype, "usb_device"))
                        continue;
                process(w, d, UDEV_ACTION_ADD);
        }
        return 0;
}

int udev_watch_enumerate(UdevWatch *w) {
        int r = enumerate(w, "usb");
        if (r < 0)
                return r;
        return enumerate(w, "tty");
}
