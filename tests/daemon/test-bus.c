/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The bus objects over a peer-to-peer connection: the object tree (ObjectManager), properties,
 * named errors, Update's validation before anything happens, jobs, Cancel, JobRemoved, GetLog. */

#include <fcntl.h>
#include <dirent.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-harness.h"
#include "dfud-dbus.h"
#include "test-util.h"

/* A board the daemon saw before (devices.json): absent now, application 1.02, F4 memory map. */
static void setup_state(BusHarness *h, void *userdata) {
        assert(write_text(h->state_dir, "devices.json",
                          "{\"version\": 1, \"devices\": [{\"id\": \"BOARD1\", \"port\": \"1-1\", "
                          "\"product\": \"vstm32\","
                          " \"application\": {\"vendor-id\": 1155, \"product-id\": 22336, \"serial\": "
                          "\"BOARD1\"},"
                          " \"dfu\": {\"vendor-id\": 1155, \"product-id\": 57105, \"serial\": \"ROMUID1\"},"
                          " \"firmware-bcd\": 258,"
                          " \"layouts\": [\"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg\"],"
                          " \"last-seen\": 1700000000000000}]}") == 0);
        assert(write_text(h->config_dir, "dfud.conf", "{\"max-queued-jobs\": 3}") == 0);
}

/* A ROM bootloader plugged in (no USB in this test: it is never opened). */
static void plug(Manager *m, void *userdata) {
        UsbInfo *u = fake_usb("2-1", 0x0483, 0xdf11, "ROMUID2", true);
        manager_usb_added(m, u);
        usb_info_free(u);
}

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("fw", MFD_CLOEXEC);
        assert(fd >= 0);
        assert(write(fd, data, size) == (ssize_t) size);
        return fd;
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8), p[2] = (uint8_t) (v >> 16),
        p[3] = (uint8_t) (v >> 24);
}

/* 4 KiB raw firmware carrying a vstm32 header with a version */
static uint8_t *firmware(uint16_t version, size_t *ret_size) {
        uint8_t *fw = calloc(1, 4096);
        assert(fw);
        put32(fw, 0x20020000);
        put32(fw + 4, 0x08000201);
        put32(fw + 0x400, 0x32335356);
        put32(fw + 0x404, version);
        put32(fw + 0x408, 4096);
        *ret_size = 4096;
        return fw;
}

static int call_update(sd_bus *bus, const char *device, int fd, sd_bus_error *error, uint64_t *ret_id,
                       const char **ret_path, sd_bus_message **ret_reply, const char *extra_key,
                       char extra_type, const void *extra) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert(sd_bus_message_new_method_call(bus, &m, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER,
                                              "Update") >= 0);
        assert(sd_bus_message_append(m, "sh", device, fd) >= 0);
        assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        assert(sd_bus_message_append(m, "{sv}", DFUD_OPTION_ADDRESS, "t", (uint64_t) 0x08000000) >= 0);
        if (extra_key) {
                if (extra_type == 'b')
                        assert(sd_bus_message_append(m, "{sv}", extra_key, "b", *(const int *) extra) >= 0);
                else if (extra_type == 's')
                        assert(sd_bus_message_append(m, "{sv}", extra_key, "s", (const char *) extra) >= 0);
                else
                        assert(sd_bus_message_append(m, "{sv}", extra_key, "u", *(const uint32_t *) extra) >=
                               0);
        }
        assert(sd_bus_message_close_container(m) >= 0);
        r = sd_bus_call(bus, m, 0, error, ret_reply);
        if (r < 0)
                return r;
        assert(sd_bus_message_read(*ret_reply, "to", ret_id, ret_path) >= 0);
        return 0;
}

static unsigned count_files(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;
        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static char *get_object_property(sd_bus *bus, const char *path, const char *iface, const char *prop) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *o;
        assert(sd_bus_get_property(bus, NULL, path, iface, prop, &error, &reply, "o") >= 0);
        assert(sd_bus_message_read(reply, "o", &o) > 0);
        char *s = strdup(o);
        sd_bus_message_unref(reply);
        return s;
}

static char *get_string_property(sd_bus *bus, const char *path, const char *iface, const char *prop) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;
        int r = sd_bus_get_property_string(bus, NULL, path, iface, prop, &error, &s);
        if (r < 0)
                fprintf(stderr, "Get %s %s: %s\n", path, prop, error.message);
        assert(r >= 0);
        return s;
}

/* JobRemoved signals seen by the client */
static uint64_t removed_id;
static char removed_result[32];
static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *path, *result;
        assert(sd_bus_message_read(m, "tos", &removed_id, &path, &result) >= 0);
        snprintf(removed_result, sizeof removed_result, "%s", result);
        return 0;
}

static unsigned interfaces_added;
static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        interfaces_added++;
        return 0;
}

static void wait_for_removed(sd_bus *bus, uint64_t id) {
        for (int i = 0; i < 500 && removed_id != id; i++) {
                int r = sd_bus_process(bus, NULL);
                assert(r >= 0);
                if (r == 0)
                        assert(sd_bus_wait(bus, 10000) >= 0);
        }
        assert(removed_id == id);
}

static void drain(sd_bus *bus) {
        for (int i = 0; i < 20; i++) {
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                (void) sd_bus_wait(bus, 5000);
        }
}

TEST(test_objects) {
        BusHarness h;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *s;

        bus_harness_start_full(&h, setup_state, plug, NULL);

        /* GetManagedObjects: the root, both devices with every Device property */
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, "org.freedesktop.DBus.ObjectManager",
                                  "GetManagedObjects", &error, &reply, NULL) >= 0);
        unsigned devices = 0, props = 0;
        assert(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}") > 0);
        while (sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}") > 0) {
                const char *path;
                assert(sd_bus_message_read(reply, "o", &path) > 0);
                assert(sd_bus_message_enter_container(reply, 'a', "{sa{sv}}") > 0);
                while (sd_bus_message_enter_container(reply, 'e', "sa{sv}") > 0) {
                        const char *iface;
                        assert(sd_bus_message_read(reply, "s", &iface) > 0);
                        if (streq(iface, DFUD_INTERFACE_DEVICE)) {
                                devices++;
                                assert(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
                                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                                        props++;
                                        assert(sd_bus_message_skip(reply, "sv") >= 0);
                                        assert(sd_bus_message_exit_container(reply) >= 0);
                                }
                                assert(sd_bus_message_exit_container(reply) >= 0);
                        } else
                                assert(sd_bus_message_skip(reply, "a{sv}") >= 0);
                        assert(sd_bus_message_exit_container(reply) >= 0);
                }
                assert(sd_bus_message_exit_container(reply) >= 0);
                assert(sd_bus_message_exit_container(reply) >= 0);
        }
        reply = sd_bus_message_unref(reply);
        assert(devices == 2);
        assert(props == 2 * 12);

        /* properties: cached state, named as the contract says */
        s = get_string_property(h.client, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "DaemonVersion");
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1", DFUD_INTERFACE_DEVICE,
                                "Mode");
        assert(streq(s, "absent"));
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1", DFUD_INTERFACE_DEVICE,
                                "FirmwareVersion");
        assert(streq(s, "1.02"));
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1", DFUD_INTERFACE_DEVICE,
                                "Health");
        assert(streq(s, "absent"));
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2", DFUD_INTERFACE_DEVICE,
                                "Mode");
        assert(streq(s, "dfu"));
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2", DFUD_INTERFACE_DEVICE,
                                "Health");
        assert(streq(s, "bootloader: firmware missing"));
        free(s);
        s = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2", DFUD_INTERFACE_DEVICE,
                                "Port");
        assert(streq(s, "2-1"));
        free(s);
        uint16_t pid;
        assert(sd_bus_get_property_trivial(h.client, NULL, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2",
                                           DFUD_INTERFACE_DEVICE, "ProductId", &error, 'q', &pid) >= 0);
        assert(pid == 0xdf11);

        /* Memory from the learned layout string */
        assert(sd_bus_get_property(h.client, NULL, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1",
                                   DFUD_INTERFACE_DEVICE, "Memory", &error, &reply, "a(sttus)") >= 0);
        const char *name, *layout;
        uint64_t addr, size;
        uint32_t alt;
        assert(sd_bus_message_enter_container(reply, 'a', "(sttus)") > 0);
        assert(sd_bus_message_read(reply, "(sttus)", &name, &addr, &size, &alt, &layout) > 0);
        assert(streq(name, "Internal Flash") && addr == 0x08000000 && size == 1024 * 1024 && alt == 0);
        reply = sd_bus_message_unref(reply);

        /* ListDevices (id, mode, serial, vid, pid, port, path) */
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "ListDevices",
                                  &error, &reply, NULL) >= 0);
        const char *id, *mode, *serial, *port, *path;
        uint16_t vid;
        assert(sd_bus_message_enter_container(reply, 'a', "(sssqqso)") > 0);
        assert(sd_bus_message_read(reply, "(sssqqso)", &id, &mode, &serial, &vid, &pid, &port, &path) > 0);
        assert(streq(id, "BOARD1") && streq(mode, "absent") && streq(serial, "BOARD1") && pid == 0x5740);
        assert(streq(path, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1"));
        reply = sd_bus_message_unref(reply);

        /* GetDevice by id, serial, port; named errors otherwise */
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "GetDevice",
                                  &error, &reply, "s", "ROMUID1") >= 0);
        assert(sd_bus_message_read(reply, "o", &path) > 0 &&
               streq(path, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1"));
        reply = sd_bus_message_unref(reply);
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "GetDevice",
                                  &error, &reply, "s", "2-1") >= 0);
        assert(sd_bus_message_read(reply, "o", &path) > 0 &&
               streq(path, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2"));
        reply = sd_bus_message_unref(reply);
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "GetDevice",
                                  &error, &reply, "s", "nope") < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_DEVICE_NOT_FOUND));
        assert(sd_bus_error_get_errno(&error) == ENXIO); /* the map is registered */
        sd_bus_error_free(&error);

        /* unknown objects are unknown */
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_JOB_PREFIX "/999", DFUD_INTERFACE_JOB,
                                  "Cancel", &error, NULL, NULL) < 0);
        assert(sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT));
        sd_bus_error_free(&error);
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_JOB_PREFIX "/01", DFUD_INTERFACE_JOB, "Cancel",
                                  &error, NULL, NULL) < 0);
        sd_bus_error_free(&error);
        /* a wrong signature is InvalidArgs */
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "GetDevice",
                                  &error, NULL, "u", 5) < 0);
        assert(sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS));
        sd_bus_error_free(&error);

        bus_harness_stop(&h);
}

TEST(test_update_validation) {
        BusHarness h;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        uint64_t id;
        char jobs[4096], images[4096];
        int fd, b;

        bus_harness_start_full(&h, setup_state, plug, NULL);
        snprintf(jobs, sizeof jobs, "%s/jobs", h.state_dir);
        snprintf(images, sizeof images, "%s/images", h.state_dir);

        /* garbage: InvalidImage with the parser's sentence, and nothing else happens */
        static const char hex[] = ":10000000000102030405060708090A0B0C0D0E0F00\n:00000001FF\n";
        fd = memfd_with(hex, strlen(hex));
        int f = DFU_IMAGE_FORMAT_IHEX;
        (void) f;
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, DFUD_OPTION_FORMAT, 's',
                           "ihex") < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_INVALID_IMAGE));
        assert(strstr(error.message, "checksum"));
        fprintf(stderr, "  InvalidImage: %s\n", error.message);
        sd_bus_error_free(&error);
        close(fd);

        /* outside the memory map */
        size_t size;
        uint8_t *fw = firmware(0x0103, &size);
        fd = memfd_with(fw, size);
        uint32_t far = 0x09000000;
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, DFUD_OPTION_ADDRESS, 'u',
                           &far) < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_INVALID_IMAGE));
        fprintf(stderr, "  InvalidImage: %s\n", error.message);
        sd_bus_error_free(&error);
        close(fd);

        /* a pipe could block the daemon: refused */
        int p[2];
        assert(pipe(p) == 0);
        assert(call_update(h.client, "BOARD1", p[0], &error, &id, &path, &reply, NULL, 0, NULL) < 0);
        assert(sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS));
        sd_bus_error_free(&error);
        close(p[0]);
        close(p[1]);

        /* options */
        fd = memfd_with(fw, size);
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, "colour", 's', "red") < 0);
        assert(sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS));
        sd_bus_error_free(&error);
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, DFUD_OPTION_FORMAT, 's',
                           "zip") < 0);
        assert(sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS));
        sd_bus_error_free(&error);
        assert(call_update(h.client, "nope", fd, &error, &id, &path, &reply, NULL, 0, NULL) < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_DEVICE_NOT_FOUND));
        sd_bus_error_free(&error);
        close(fd);

        /* a downgrade (1.02 -> 1.01) needs allow-downgrade */
        free(fw);
        fw = firmware(0x0101, &size);
        fd = memfd_with(fw, size);
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, NULL, 0, NULL) < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_DOWNGRADE));
        assert(sd_bus_error_get_errno(&error) == ESTALE);
        fprintf(stderr, "  Downgrade: %s\n", error.message);
        sd_bus_error_free(&error);

        /* none of that created a job, stored an image or touched a device */
        assert(count_files(jobs) == 0 && count_files(images) == 0);
        assert(sd_bus_call_method(h.client, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, "ListJobs",
                                  &error, &reply, NULL) >= 0);
        assert(sd_bus_message_enter_container(reply, 'a', "(tossu)") > 0);
        assert(sd_bus_message_at_end(reply, false) > 0);
        reply = sd_bus_message_unref(reply);

        /* with allow-downgrade it is accepted: a job waits for the absent board */
        b = 1;
        assert(sd_bus_match_signal(h.client, NULL, NULL, DFUD_OBJECT_ROOT,
                                   "org.freedesktop.DBus.ObjectManager", "InterfacesAdded",
                                   on_interfaces_added, NULL) >= 0);
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, DFUD_OPTION_ALLOW_DOWNGRADE,
                           'b', &b) == 0);
        assert(id >= 1);
        char *job_path = strdup(path);
        reply = sd_bus_message_unref(reply);
        close(fd);
        assert(count_files(jobs) == 1 && count_files(images) == 1);
        drain(h.client);
        assert(interfaces_added >= 1);
        char *state = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "State");
        assert(streq(state, "waiting-for-device"));
        free(state);
        char *dev = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "DeviceId");
        assert(streq(dev, "BOARD1"));
        free(dev);
        char *cur = get_object_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/BOARD1", DFUD_INTERFACE_DEVICE,
                                        "CurrentJob");
        assert(streq(cur, job_path));
        free(cur);

        /* Cancel: cancelled, JobRemoved, still queryable with its log */
        assert(sd_bus_match_signal(h.client, NULL, NULL, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER,
                                   "JobRemoved", on_job_removed, NULL) >= 0);
        assert(sd_bus_call_method(h.client, NULL, job_path, DFUD_INTERFACE_JOB, "Cancel", &error, NULL,
                                  NULL) >= 0);
        wait_for_removed(h.client, id);
        assert(streq(removed_result, "cancelled"));
        state = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "State");
        assert(streq(state, "cancelled"));
        free(state);
        char *en = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "ErrorName");
        assert(streq(en, DFUD_ERROR_CANCELLED));
        free(en);
        /* a second cancel is refused by name */
        assert(sd_bus_call_method(h.client, NULL, job_path, DFUD_INTERFACE_JOB, "Cancel", &error, NULL,
                                  NULL) < 0);
        assert(sd_bus_error_has_name(&error, DFUD_ERROR_JOB_NOT_FOUND));
        sd_bus_error_free(&error);

        assert(sd_bus_call_method(h.client, NULL, job_path, DFUD_INTERFACE_JOB, "GetLog", &error, &reply,
                                  NULL) >= 0);
        unsigned lines = 0;
        uint64_t usec;
        const char *text;
        assert(sd_bus_message_enter_container(reply, 'a', "(ts)") > 0);
        while (sd_bus_message_read(reply, "(ts)", &usec, &text) > 0) {
                assert(usec > 0);
                lines++;
        }
        assert(lines >= 2);
        reply = sd_bus_message_unref(reply);
        free(job_path);

        /* a job on the bootloader that cannot be opened here (no USB) fails with a named error */
        fd = memfd_with(fw, size);
        assert(call_update(h.client, "ROMUID2", fd, &error, &id, &path, &reply, NULL, 0, NULL) == 0);
        job_path = strdup(path);
        reply = sd_bus_message_unref(reply);
        close(fd);
        wait_for_removed(h.client, id);
        assert(streq(removed_result, "failed"));
        en = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "ErrorName");
        assert(streq(en, DFUD_ERROR_PROTOCOL));
        free(en);
        char *msg = get_string_property(h.client, job_path, DFUD_INTERFACE_JOB, "ErrorMessage");
        fprintf(stderr, "  failed: %s\n", msg);
        free(msg);
        char *health = get_string_property(h.client, DFUD_OBJECT_DEVICE_PREFIX "/ROMUID2",
                                           DFUD_INTERFACE_DEVICE, "Health");
        assert(startswith(health, "last update failed: "));
        free(health);
        free(job_path);

        /* the limit on queued jobs (3 in this configuration) */
        for (int i = 0; i < 4; i++) {
                fd = memfd_with(fw, size);
                int r = call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply,
                                    DFUD_OPTION_ALLOW_DOWNGRADE, 'b', &b);
                close(fd);
                if (i < 3) {
                        assert(r == 0);
                        reply = sd_bus_message_unref(reply);
                } else {
                        assert(r < 0 && sd_bus_error_has_name(&error, DFUD_ERROR_TOO_MANY_JOBS));
                        sd_bus_error_free(&error);
                }
        }
        /* one image file for four jobs of the same firmware */
        assert(count_files(images) == 1);
        free(fw);
        bus_harness_stop(&h);
}

/* Jobs survive a restart: they come back as waiting-for-device, before the bus is served. */
TEST(test_restart) {
        BusHarness h;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        uint64_t id;
        size_t size;
        uint8_t *fw = firmware(0x0103, &size);
        int fd;

        bus_harness_start(&h, setup_state, NULL);
        fd = memfd_with(fw, size);
        assert(call_update(h.client, "BOARD1", fd, &error, &id, &path, &reply, NULL, 0, NULL) == 0);
        reply = sd_bus_message_unref(reply);
        close(fd);
        char *dir = strdup(h.dir), *state = strdup(h.state_dir);
        h.keep_dir = true;
        bus_harness_stop(&h);

        ManagerOptions o = { .state_dir = state, .config_dir = "/nonexistent", .bus_kind = BUS_KIND_NONE };
        Manager *m;
        assert(manager_new(&o, &m) == 0);
        assert(manager_startup(m) == 0);
        assert(m->n_jobs == 1 && m->jobs[0]->id == id);
        assert(m->jobs[0]->state == JOB_WAITING_FOR_DEVICE);
        assert(m->next_job_id == id + 1);
        /* the device came back from devices.json, with what it had learned */
        Device *d = registry_get(m->registry, "BOARD1");
        assert(d && d->dfu.known && d->n_layouts == 1);
        manager_free(m);
        rm_rf(dir);
        free(dir);
        free(state);
        free(fw);
}

static unsigned changes;
static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        changes++;
        return 0;
}

static int get_p(sd_bus *bus, const char *path, const char *interface, const char *property,
                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", 7);
}

/* clang-format off */
static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("P", "u", get_p, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

static void run_for(sd_event *e, uint64_t usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;
        while (now_usec(CLOCK_MONOTONIC) < end)
                assert(sd_event_run(e, 5000) >= 0);
}

/* A burst of changes is one PropertiesChanged; progress-only changes are rate-limited. */
TEST(test_coalescing) {
        sd_event *e;
        sd_bus *server, *client;
        sd_id128_t id;
        BusEmitter em;
        int fds[2];

        assert(sd_event_new(&e) >= 0);
        assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        assert(sd_bus_new(&server) >= 0 && sd_bus_set_fd(server, fds[0], fds[0]) >= 0);
        assert(sd_id128_randomize(&id) >= 0 && sd_bus_set_server(server, 1, id) >= 0 &&
               sd_bus_start(server) >= 0);
        assert(sd_bus_add_object_vtable(server, NULL, "/t", "org.test", test_vtable, NULL) >= 0);
        assert(sd_bus_attach_event(server, e, 0) >= 0);
        assert(sd_bus_new(&client) >= 0 && sd_bus_set_fd(client, fds[1], fds[1]) >= 0 &&
               sd_bus_start(client) >= 0);
        assert(sd_bus_attach_event(client, e, 0) >= 0);
        assert(sd_bus_match_signal(client, NULL, NULL, "/t", "org.freedesktop.DBus.Properties",
                                   "PropertiesChanged", on_changed, NULL) >= 0);
        run_for(e, 20000);

        assert(bus_emitter_init(&em, "/t", "org.test") == 0);
        em.announced = true;
        /* 1000 progress updates and a state change within one iteration: one signal */
        for (int i = 0; i < 1000; i++)
                assert(bus_emitter_change(&em, server, i == 500) >= 0);
        run_for(e, 50000);
        assert(changes == 1);

        /* progress right after an emission waits for the interval */
        assert(bus_emitter_change(&em, server, false) >= 0);
        run_for(e, 60000);
        assert(changes == 1);
        run_for(e, BUS_EMIT_INTERVAL_USEC + 50000);
        assert(changes == 2);
        /* a state change does not wait */
        assert(bus_emitter_change(&em, server, false) >= 0);
        assert(bus_emitter_change(&em, server, true) >= 0);
        run_for(e, 30000);
        assert(changes == 3);

        bus_emitter_done(&em);
        sd_bus_flush_close_unref(client);
        sd_bus_flush_close_unref(server);
        sd_event_unref(e);
}

int main(void) {
        RUN(test_coalescing);
        RUN(test_objects);
        RUN(test_update_validation);
        RUN(test_restart);
        return 0;
}
