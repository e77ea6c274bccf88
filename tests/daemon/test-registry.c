/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The device registry: one Device per board across re-enumerations (application <-> bootloader),
 * matched by port, serial and learned pairing, and the pairing persisted. */

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"
#include "test-util.h"

static UsbInfo *usb(const char *syspath_port, uint16_t vid, uint16_t pid, const char *serial,
                    bool dfu_mode) {
        UsbInfo *u = calloc(1, sizeof *u);
        char sp[256];
        assert(u);
        snprintf(sp, sizeof sp, "/sys/devices/usb/%s", syspath_port);
        u->syspath = strdup(sp);
        u->port = strdup(syspath_port);
        u->devnode = strdup("/dev/bus/usb/001/002");
        u->serial = serial ? strdup(serial) : NULL;
        u->product = strdup(dfu_mode ? "STM32 BOOTLOADER" : "App");
        u->desc.vendor_id = vid;
        u->desc.product_id = pid;
        u->desc.bcd_device = dfu_mode ? 0x2200 : 0x0102;
        u->desc.has_dfu = true;
        u->desc.dfu_runtime = !dfu_mode;
        u->desc.n_alts = 1;
        return u;
}

/* What the manager does on "add". */
static Device *plug(Registry *r, UsbInfo *u, uint64_t now) {
        Device *d = registry_match(r, u, now);
        if (!d)
                assert(registry_add_for(r, u, &d) == 0);
        assert(device_attach(d, u, now) >= 0);
        return d;
}

TEST(test_reenumeration) {
        Registry *r;
        assert(registry_new(&r) == 0);

        /* the application appears: a new device named after its serial */
        Device *d = plug(r, usb("1-1", 0x0483, 0x5740, "APP1", false), 1);
        assert(streq(d->id, "APP1") && d->mode == DEVICE_MODE_APPLICATION && d->has_version &&
               d->app_bcd == 0x0102);

        /* "add" again for the same sysfs device: the same Device, nothing new */
        UsbInfo *again = usb("1-1", 0x0483, 0x5740, "APP1", false);
        assert(registry_match(r, again, 2) == d);
        usb_info_free(again);

        /* we make it jump: it leaves, the bootloader (other ids, other serial) comes on that port */
        d->expect_port = strdup("1-1");
        d->expect_until = 100;
        assert(device_detach(d, 3) == 1 && d->mode == DEVICE_MODE_ABSENT);
        Device *b = plug(r, usb("1-1", 0x0483, 0xdf11, "ROMUID", true), 50);
        assert(b == d && d->mode == DEVICE_MODE_DFU && r->n_devices == 1);
        assert(d->dfu.known && d->dfu.product_id == 0xdf11 && streq(d->dfu.serial, "ROMUID"));
        assert(!d->expect_port); /* fulfilled */

        /* later, without any expectation, on another port: the learned pairing (ids + serial) matches */
        device_detach(d, 60);
        Device *c = plug(r, usb("2-4", 0x0483, 0xdf11, "ROMUID", true), 200);
        assert(c == d && streq(d->port, "2-4"));
        device_detach(d, 210);
        c = plug(r, usb("2-4", 0x0483, 0x5740, "APP1", false), 220);
        assert(c == d && d->mode == DEVICE_MODE_APPLICATION);

        /* a different board on another port is a different device, even with the same VID:PID */
        Device *e = plug(r, usb("3-1", 0x0483, 0x5740, "APP2", false), 230);
        assert(e != d && r->n_devices == 2);

        /* two bootloaders with the same serial (clones): a present device is never taken twice */
        Device *f = plug(r, usb("3-2", 0x0483, 0x5740, "APP1", false), 240);
        assert(f != d && streq(f->id, "APP1-2"));
        registry_free(r);
}

TEST(test_port_matching) {
        Registry *r;
        assert(registry_new(&r) == 0);

        /* a board seen only as an application, no serial; its bootloader on the same port pairs */
        Device *d = plug(r, usb("1-2", 0x1209, 0x0001, NULL, false), 1);
        assert(streq(d->id, "port-1-2"));
        device_detach(d, 2);
        Device *b = plug(r, usb("1-2", 0x0483, 0xdf11, "X", true), 3);
        assert(b == d);

        /* but a known bootloader with another serial on that port is another board */
        device_detach(d, 4);
        Device *o = plug(r, usb("1-2", 0x0483, 0xdf11, "Y", true), 5);
        assert(o != d);
        /* and a present device is never matched by port */
        Device *p = plug(r, usb("1-2.1", 0x1209, 0x0001, NULL, false), 6);
        assert(p != d && p != o);
        registry_free(r);
}

TEST(test_lookup) {
        Registry *r;
        Device *d;
        assert(registry_new(&r) == 0);
        assert(registry_lookup(r, "", &d) == -ENXIO);
        Device *a = plug(r, usb("1-1", 0x0483, 0x5740, "A", false), 1);
        assert(registry_lookup(r, "", &d) == 0 && d == a);
        Device *b = plug(r, usb("1-2", 0x0483, 0xdf11, "B", true), 1);
        assert(registry_lookup(r, "", &d) == -ENOTUNIQ);
        assert(registry_lookup(r, "A", &d) == 0 && d == a);   /* id */
        assert(registry_lookup(r, "1-2", &d) == 0 && d == b); /* port */
        assert(registry_lookup(r, "C", &d) == -ENXIO);
        registry_free(r);
}

TEST(test_persistence) {
        char *dir = test_tmpdir();
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        Registry *r, *r2;
        char *error = NULL;
        char *layouts[2] = { "@Internal Flash  /0x08000000/04*016Kg", NULL };

        assert(registry_new(&r) == 0);
        Device *d = plug(r, usb("1-1", 0x0483, 0x5740, "APP1", false), 1);
        d->expect_port = strdup("1-1");
        d->expect_until = 100;
        device_detach(d, 2);
        plug(r, usb("1-1", 0x0483, 0xdf11, "ROM", true), 3);
        assert(device_set_layouts(d, layouts, 2) == 1);
        assert(device_set_layouts(d, layouts, 2) == 0);
        assert(device_set_last_error(d, "boom") == 1);
        assert(registry_save(r, fd) == 0);

        assert(registry_new(&r2) == 0);
        assert(registry_load(r2, fd, &error) == 0);
        assert(r2->n_devices == 1);
        Device *e = r2->devices[0];
        assert(streq(e->id, "APP1") && e->mode == DEVICE_MODE_ABSENT && streq(e->port, "1-1"));
        assert(e->app.known && e->app.product_id == 0x5740 && streq(e->app.serial, "APP1"));
        assert(e->dfu.known && e->dfu.product_id == 0xdf11 && streq(e->dfu.serial, "ROM"));
        assert(e->has_version && e->app_bcd == 0x0102);
        assert(e->n_layouts == 2 && streq(e->layouts[0], layouts[0]) && !e->layouts[1]);
        assert(streq(e->last_error, "boom"));

        /* after a restart the bootloader on another port is still this board */
        Device *m = plug(r2, usb("4-1", 0x0483, 0xdf11, "ROM", true), 5);
        assert(m == e);
        registry_free(r2);
        registry_free(r);

        /* damage: named error, no crash */
        assert(write_text(dir, REGISTRY_FILE, "{\"version\": 1, \"devices\": [{\"id\": 5}]}") == 0);
        assert(registry_new(&r) == 0);
        assert(registry_load(r, fd, &error) == -EBADMSG);
        assert(error && strstr(error, "devices[0]: missing or invalid id"));
        free(error);
        error = NULL;
        registry_free(r);
        assert(write_text(dir, REGISTRY_FILE, "{\"version\": 1, \"devi") == 0);
        assert(registry_new(&r) == 0);
        assert(registry_load(r, fd, &error) == -EBADMSG);
        free(error);
        registry_free(r);

        close(fd);
        rm_rf(dir);
        free(dir);
}

TEST(test_health) {
        Device *d;
        assert(device_new("x", &d) == 0);
        assert(device_update_health(d, false) == 1 && streq(d->health, "absent"));
        UsbInfo *u = usb("1-1", 0x0483, 0xdf11, "S", true);
        assert(device_attach(d, u, 1) == 1);
        assert(device_update_health(d, true) == 1 && streq(d->health, "bootloader: firmware missing"));
        d->current_job = 3;
        assert(device_update_health(d, true) == 1 && streq(d->health, "ok"));
        assert(device_set_last_error(d, "verify failed") == 1);
        assert(device_update_health(d, true) == 1 && streq(d->health, "last update failed: verify failed"));
        d->read_protected = true;
        assert(device_update_health(d, true) == 1 && streq(d->health, "read-protected"));
        char v[8];
        device_firmware_version(d, v);
        assert(streq(v, "")); /* never seen as an application */
        d->has_version = true;
        d->app_bcd = 0x0102;
        device_firmware_version(d, v);
        assert(streq(v, "1.02"));
        device_free(d);
}

int main(void) {
        RUN(test_reenumeration);
        RUN(test_port_matching);
        RUN(test_lookup);
        RUN(test_persistence);
        RUN(test_health);
        return 0;
}
