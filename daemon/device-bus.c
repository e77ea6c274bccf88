/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "dfud-dbus.h"
#include "manager.h"

void device_bus_ids(const Device *d, uint16_t *vid, uint16_t *pid, const char **serial) {
        const Incarnation *i = d->mode == DEVICE_MODE_DFU           ? &d->dfu
                               : d->mode == DEVICE_MODE_APPLICATION ? &d->app
                               : d->app.known                       ? &d->app
                                                                    : &d->dfu;
        *vid = i->vendor_id;
        *pid = i->product_id;
        *serial = i->serial;
}

static int device_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        _cleanup_free_ char *id = NULL;
        Manager *m = userdata;
        Device *d;

        if (sd_bus_path_decode(path, DFUD_OBJECT_DEVICE_PREFIX, &id) <= 0 || isempty(id))
                return 0;
        d = registry_get(m->registry, id);
        if (!d)
                return 0;
        *found = d;
        return 1;
}

static int device_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                            sd_bus_error *error) {
        Manager *m = userdata;
        char **l = calloc(m->registry->n_devices + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->registry->n_devices; i++)
                if (manager_device_path(m->registry->devices[i], &l[i]) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        *nodes = l;
        return 0;
}

#define DEVICE_GETTER(name)                                                                         \
        static int name(sd_bus *bus, const char *path, const char *interface, const char *property, \
                        sd_bus_message *reply, void *userdata, sd_bus_error *error)

DEVICE_GETTER(property_get_id) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "s", d->id);
}

DEVICE_GETTER(property_get_mode) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "s", device_mode_to_string(d->mode));
}

DEVICE_GETTER(property_get_vendor_id) {
        const char *serial;
        uint16_t vid, pid;
        device_bus_ids(userdata, &vid, &pid, &serial);
        return sd_bus_message_append(reply, "q", vid);
}

DEVICE_GETTER(property_get_product_id) {
        const char *serial;
        uint16_t vid, pid;
        device_bus_ids(userdata, &vid, &pid, &serial);
        return sd_bus_message_append(reply, "q", pid);
}

DEVICE_GETTER(property_get_serial) {
        const char *serial;
        uint16_t vid, pid;
        device_bus_ids(userdata, &vid, &pid, &serial);
        return sd_bus_message_append(reply, "s", strempty(serial));
}

DEVICE_GETTER(property_get_port) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "s", strempty(d->port));
}

DEVICE_GETTER(property_get_product) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "s", strempty(d->product));
}

DEVICE_GETTER(property_get_firmware_version) {
        char v[8];
        device_firmware_version(userdata, v);
        return sd_bus_message_append(reply, "s", v);
}

/* (name, start address, size, alt, DfuSe layout string) per alt with a memory map: learned in
 * DFU mode, else the configured defaults. Parsed from the cached strings, no I/O. */
DEVICE_GETTER(property_get_memory) {
        Device *d = userdata;
        DeviceRuntime *dr = d->userdata;
        DfuseLayout *layouts[DFU_MAX_ALTS] = {};
        DeviceSettings s = {};
        int r, n = 0;

        if (dr)
                (void) manager_resolve_settings(dr->manager, d, &s);
        n = device_get_layouts(d, &s, layouts, DFU_MAX_ALTS);
        r = n < 0 ? n : sd_bus_message_open_container(reply, 'a', "(sttus)");
        for (int i = 0; r >= 0 && i < n; i++) {
                const DfuseLayout *l = layouts[i];
                char str[DFUSE_LAYOUT_MAX_STRING + 64];
                if (!l || l->n_groups == 0)
                        continue;
                if (dfuse_layout_format(l, str, sizeof str) < 0)
                        str[0] = 0;
                r = sd_bus_message_append(reply, "(sttus)", l->name, (uint64_t) l->groups[0].address,
                                          dfuse_layout_size(l), (uint32_t) i, str);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        for (int i = 0; i < n; i++)
                free(layouts[i]);
        device_settings_done(&s);
        return r;
}

DEVICE_GETTER(property_get_health) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "s", strempty(d->health));
}

DEVICE_GETTER(property_get_last_seen) {
        Device *d = userdata;
        return sd_bus_message_append(reply, "t", d->last_seen);
}

DEVICE_GETTER(property_get_current_job) {
        Device *d = userdata;
        char p[64] = "/";
        if (d->current_job)
                manager_job_path(d->current_job, p);
        return sd_bus_message_append(reply, "o", p);
}

static int method_update(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Device *d = userdata;
        DeviceRuntime *dr = d->userdata;
        return manager_method_update(dr->manager, msg, d, error);
}

static int method_enter_bootloader(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Device *d = userdata;
        DeviceRuntime *dr = d->userdata;
        return manager_method_enter_bootloader(dr->manager, msg, d, error);
}

/* clang-format off */
const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mode", "s", property_get_mode, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VendorId", "q", property_get_vendor_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ProductId", "q", property_get_product_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Serial", "s", property_get_serial, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Port", "s", property_get_port, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Product", "s", property_get_product, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FirmwareVersion", "s", property_get_firmware_version, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Memory", "a(sttus)", property_get_memory, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Health", "s", property_get_health, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastSeen", "t", property_get_last_seen, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CurrentJob", "o", property_get_current_job, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Update",
                                SD_BUS_ARGS("h", firmware, "a{sv}", options),
                                SD_BUS_RESULT("t", id, "o", job),
                                method_update, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EnterBootloader", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_enter_bootloader,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

int device_bus_register(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_fallback_vtable(bus, NULL, DFUD_OBJECT_DEVICE_PREFIX, DFUD_INTERFACE_DEVICE,
                                       device_vtable, device_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, DFUD_OBJECT_DEVICE_PREFIX, device_enumerate, m);
}
