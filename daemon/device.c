/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>

#include "device.h"
#include "util.h"

static const char *const device_mode_table[_DEVICE_MODE_MAX] = {
        [DEVICE_MODE_APPLICATION] = "application",
        [DEVICE_MODE_DFU] = "dfu",
        [DEVICE_MODE_ABSENT] = "absent",
};
DEFINE_STRING_TABLE_LOOKUP(device_mode, DeviceMode);

UsbInfo *usb_info_free(UsbInfo *u) {
        if (!u)
                return NULL;
        free(u->syspath);
        free(u->port);
        free(u->devnode);
        free(u->serial);
        free(u->manufacturer);
        free(u->product);
        return mfree(u);
}

static int strdup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int usb_info_copy(const UsbInfo *u, UsbInfo **ret) {
        _cleanup_(usb_info_freep) UsbInfo *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->desc = u->desc;
        if (strdup_or_null(u->syspath, &c->syspath) < 0 || strdup_or_null(u->port, &c->port) < 0 ||
            strdup_or_null(u->devnode, &c->devnode) < 0 || strdup_or_null(u->serial, &c->serial) < 0 ||
            strdup_or_null(u->manufacturer, &c->manufacturer) < 0 ||
            strdup_or_null(u->product, &c->product) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

DeviceMode usb_info_mode(const UsbInfo *u) {
        return u->desc.has_dfu && !u->desc.dfu_runtime ? DEVICE_MODE_DFU : DEVICE_MODE_APPLICATION;
}

int device_new(const char *id, Device **ret) {
        _cleanup_(device_freep) Device *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->mode = DEVICE_MODE_ABSENT;
        d->id = strdup(id);
        d->health = strdup("unknown");
        if (!d->id || !d->health)
                return -ENOMEM;
        *ret = TAKE_PTR(d);
        return 0;
}

Device *device_free(Device *d) {
        if (!d)
                return NULL;
        free(d->id);
        free(d->app.serial);
        free(d->dfu.serial);
        free(d->port);
        free(d->product);
        for (size_t i = 0; i < d->n_layouts; i++)
                free(d->layouts[i]);
        free(d->health);
        free(d->last_error);
        usb_info_free(d->usb);
        free(d->tty);
        free(d->expect_port);
        return mfree(d);
}

Incarnation *device_incarnation(Device *d, DeviceMode mode) {
        return mode == DEVICE_MODE_DFU ? &d->dfu : &d->app;
}

int incarnation_set(Incarnation *i, uint16_t vid, uint16_t pid, const char *serial) {
        char *s = NULL;
        if (serial && !(s = strdup(serial)))
                return -ENOMEM;
        free(i->serial);
        *i = (Incarnation) { .known = true, .vendor_id = vid, .product_id = pid, .serial = s };
        return 0;
}

bool incarnation_equal(const Incarnation *i, uint16_t vid, uint16_t pid, const char *serial) {
        return i->known && i->vendor_id == vid && i->product_id == pid && streq_ptr(i->serial, serial);
}

static int set_string(char **field, const char *value) {
        if (streq_ptr(*field, value))
                return 0;
        char *s = NULL;
        if (value && !(s = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = s;
        return 1;
}

int device_attach(Device *d, UsbInfo *u, uint64_t now_realtime) {
        _cleanup_(usb_info_freep) UsbInfo *owned = u;
        DeviceMode mode = usb_info_mode(u);
        Incarnation *inc = device_incarnation(d, mode);
        int changed = 0, r;

        if (d->mode != mode)
                changed = 1;
        if (!incarnation_equal(inc, u->desc.vendor_id, u->desc.product_id, u->serial)) {
                r = incarnation_set(inc, u->desc.vendor_id, u->desc.product_id, u->serial);
                if (r < 0)
                        return r;
                changed = 1;
        }
        if ((r = set_string(&d->port, u->port)) < 0)
                return r;
        changed |= r;
        if (mode == DEVICE_MODE_APPLICATION) {
                if ((r = set_string(&d->product, u->product)) < 0)
                        return r;
                changed |= r;
                if (!d->has_version || d->app_bcd != u->desc.bcd_device)
                        changed = 1;
                d->has_version = true;
                d->app_bcd = u->desc.bcd_device;
        } else if (!d->product && u->product) {
                if ((r = set_string(&d->product, u->product)) < 0)
                        return r;
                changed = 1;
        }

        /* a different enumeration (or the same one again: "add" is idempotent) */
        if (!d->usb || !streq_ptr(d->usb->syspath, u->syspath) || d->mode != mode) {
                d->probed = false;
                d->read_protected = false;
                d->tty = mfree(d->tty);
        }
        usb_info_free(d->usb);
        d->usb = TAKE_PTR(owned);
        d->mode = mode;
        d->last_seen = now_realtime;
        /* seen on the expected port: the expectation is fulfilled */
        if (d->expect_port && streq_ptr(d->expect_port, d->port))
                d->expect_port = mfree(d->expect_port);
        return changed;
}

int device_detach(Device *d, uint64_t now_realtime) {
        if (d->mode == DEVICE_MODE_ABSENT)
                return 0;
        d->usb = usb_info_free(d->usb);
        d->tty = mfree(d->tty);
        d->probed = false;
        d->mode = DEVICE_MODE_ABSENT;
        d->last_seen = now_realtime;
        return 1;
}

int device_set_layouts(Device *d, char *const *layouts, size_t n) {
        bool same = n == d->n_layouts;
        for (size_t i = 0; same && i < n; i++)
                same = streq_ptr(layouts[i], d->layouts[i]);
        if (same)
                return 0;
        if (n > DFU_MAX_ALTS)
                return -E2BIG;

        char *copy[DFU_MAX_ALTS] = {};
        for (size_t i = 0; i < n; i++)
                if (layouts[i] && !(copy[i] = strdup(layouts[i]))) {
                        for (size_t j = 0; j < i; j++)
                                free(copy[j]);
                        return -ENOMEM;
                }
        for (size_t i = 0; i < d->n_layouts; i++)
                free(d->layouts[i]);
        memcpy(d->layouts, copy, sizeof copy);
        d->n_layouts = n;
        return 1;
}

int device_set_tty(Device *d, const char *tty) {
        return set_string(&d->tty, tty);
}

void device_firmware_version(const Device *d, char ret[8]) {
        if (d->has_version)
                bcd_to_version(d->app_bcd, ret);
        else
                ret[0] = 0;
}

void device_suffix_ids(const Device *d, uint16_t ret[2][2]) {
        ret[0][0] = d->app.vendor_id;
        ret[0][1] = d->app.product_id;
        ret[1][0] = d->dfu.vendor_id;
        ret[1][1] = d->dfu.product_id;
        /* dfuse-pack and STM32CubeProgrammer write 0483:df11 into a DfuSe file's suffix */
        if (ret[1][0] == 0 && ret[1][1] == 0) {
                ret[1][0] = ST_ROM_VENDOR_ID;
                ret[1][1] = ST_ROM_PRODUCT_ID;
        }
}

int device_set_last_error(Device *d, const char *error) {
        return set_string(&d->last_error, error);
}

int device_update_health(Device *d, bool has_layouts) {
        char buf[512];

        if (d->read_protected)
                snprintf(buf, sizeof buf, "read-protected");
        else if (d->last_error)
                snprintf(buf, sizeof buf, "last update failed: %s", d->last_error);
        else if (d->mode == DEVICE_MODE_DFU && !d->current_job)
                /* a bootloader nobody is updating: the application is missing or did not start */
                snprintf(buf, sizeof buf, "bootloader: firmware missing");
        else if (d->mode == DEVICE_MODE_DFU && !has_layouts && d->probed)
                snprintf(buf, sizeof buf, "bootloader: no memory layout");
        else if (d->mode == DEVICE_MODE_ABSENT && !d->current_job)
                snprintf(buf, sizeof buf, "absent");
        else
                snprintf(buf, sizeof buf, "ok");
        return set_string(&d->health, buf);
}

int device_get_layouts(const Device *d, const DeviceSettings *s, DfuseLayout **ret_layouts, size_t max) {
        char *const *strings = d->layouts;
        size_t n = d->n_layouts;

        if (n == 0 && s && s->layouts) {
                strings = s->layouts;
                while (strings[n])
                        n++;
        }
        n = MIN(n, max);
        for (size_t i = 0; i < n; i++)
                ret_layouts[i] = NULL;
        for (size_t i = 0; i < n; i++) {
                if (!strings[i])
                        continue;
                DfuseLayout *l = malloc(sizeof *l);
                if (!l)
                        goto fail;
                if (dfuse_layout_parse(strings[i], l) < 0) {
                        free(l);
                        continue; /* an alt without a DfuSe layout ("@Device Feature", plain DFU) */
                }
                ret_layouts[i] = l;
        }
        return (int) n;
fail:
        for (size_t i = 0; i < n; i++)
                ret_layouts[i] = mfree(ret_layouts[i]);
        return -ENOMEM;
}

JumpMethod device_jump_method(const Device *d, const DeviceSettings *s) {
        bool runtime = d->usb && d->usb->desc.has_dfu && d->usb->desc.dfu_runtime;
        bool tty = d->tty || (d->usb && d->usb->desc.has_cdc_acm);
        JumpMethod m = s->jump;

        if (m == JUMP_AUTO)
                m = runtime ? JUMP_DETACH : tty ? JUMP_TOUCH_1200 : JUMP_NONE;
        if (m == JUMP_DETACH && !runtime)
                m = JUMP_NONE;
        return m;
}
