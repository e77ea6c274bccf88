/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "dfu.h"
#include "fake-world.h"
#include "macro-util.h"
#include "test-util.h"

enum {
        EV_COMPLETE,
        EV_UNPLUG,
        EV_PLUG_APP,
        EV_PLUG_ROM,
};

static void schedule(World *w, WorldEvent ev) {
        assert(w->n_events < WORLD_MAX_EVENTS);
        w->events[w->n_events++] = ev;
}

static uint64_t host_now(void *userdata, clockid_t clock) {
        World *w = userdata;
        return clock == CLOCK_REALTIME ? UINT64_C(1700000000000000) + w->now : w->now;
}

static int host_get_settings(void *userdata, Device *d, DeviceSettings *ret) {
        World *w = userdata;
        ConfigIdentity ids[2];
        size_t n = 0;
        if (d->app.known)
                ids[n++] = (ConfigIdentity) { d->app.vendor_id, d->app.product_id, d->app.serial };
        if (d->dfu.known)
                ids[n++] = (ConfigIdentity) { d->dfu.vendor_id, d->dfu.product_id, d->dfu.serial };
        return config_resolve(w->config, ids, n, d->port, ret);
}

static int host_load_image(void *userdata, Job *j, uint8_t **ret, size_t *ret_size) {
        World *w = userdata;
        *ret = malloc(w->image_size);
        assert(*ret);
        memcpy(*ret, w->image, w->image_size);
        *ret_size = w->image_size;
        return 0;
}

static void check_disconnect(Board *b) {
        uint64_t at;
        if (b->model && stm32_model_disconnect_pending(b->model, &at)) {
                for (size_t i = 0; i < b->world->n_events; i++)
                        if (b->world->events[i].kind == EV_UNPLUG)
                                return;
                schedule(b->world,
                         (WorldEvent) { .at = MAX(at, b->world->now), .kind = EV_UNPLUG, .board = b });
        }
}

static int t_control(void *t, uint8_t request_type, uint8_t request, uint16_t value, uint16_t index,
                     uint8_t *data, uint16_t length, unsigned timeout_ms, TransportDoneFunc done,
                     void *userdata) {
        Board *b = t;
        World *w = b->world;
        Stm32Setup setup = { request_type, request, value, index, length };
        size_t actual = 0;
        uint64_t reply_at = w->now;
        Stm32Result res;

        if (!b->present || !b->model)
                return -ENODEV;
        if (b->ignore_detach && b->current == stm32_profile_find("app") && request == DFU_REQUEST_DETACH)
                res = STM32_REPLY;
        else
                res = stm32_model_control(b->model, w->now, &setup, data, &actual, &reply_at);
        WorldEvent ev = { .kind = EV_COMPLETE,
                          .board = b,
                          .generation = b->generation,
                          .done = done,
                          .userdata = userdata,
                          .actual = actual };
        /* full speed: about 1 ms per control transfer plus the data */
        uint64_t bus = 1000 + length;
        switch (res) {
        case STM32_REPLY:
                ev.at = MAX(reply_at, w->now) + bus;
                break;
        case STM32_STALL:
                ev.at = MAX(reply_at, w->now) + bus;
                ev.r = -EPIPE;
                break;
        case STM32_DISCONNECT:
                ev.at = w->now + bus;
                ev.r = -ENODEV;
                schedule(w, (WorldEvent) { .at = w->now + 2 * bus, .kind = EV_UNPLUG, .board = b });
                break;
        case STM32_HANG:
                ev.at = w->now + (uint64_t) timeout_ms * 1000;
                ev.r = -ETIMEDOUT;
                break;
        }
        schedule(w, ev);
        check_disconnect(b);
        return 0;
}

static int t_set_alt(void *t, uint8_t interface, uint8_t alt, TransportDoneFunc done, void *userdata) {
        Board *b = t;
        if (!b->present || !b->model)
                return -ENODEV;
        int r = stm32_model_set_alt(b->model, alt);
        schedule(b->world, (WorldEvent) { .at = b->world->now + 1000,
                                          .kind = EV_COMPLETE,
                                          .board = b,
                                          .generation = b->generation,
                                          .done = done,
                                          .userdata = userdata,
                                          .r = r < 0 ? -EPIPE : 0 });
        return 0;
}

static void t_cancel(void *t) {
        Board *b = t;
        World *w = b->world;
        for (size_t i = 0; i < w->n_events; i++)
                if (w->events[i].kind == EV_COMPLETE && w->events[i].generation == b->generation) {
                        w->events[i].r = -ECANCELED;
                        w->events[i].at = w->now;
                }
}

static const TransportOps world_transport = {
        .control = t_control,
        .set_alt = t_set_alt,
        .cancel = t_cancel,
};

static int host_open(void *userdata, Job *j, Device *d, uint8_t interface, Transport *ret) {
        World *w = userdata;
        Board *b = w->board;
        if (!b->present)
                return -ENODEV;
        *ret = (Transport) { .ops = &world_transport, .data = b };
        return 0;
}

static void host_close(void *userdata, Job *j, Device *d) {
        World *w = userdata;
        w->board->generation++;
}

static void host_set_timer(void *userdata, Job *j, uint64_t usec) {
        World *w = userdata;
        w->timer = usec;
}

static void host_changed(void *userdata, Job *j, unsigned what) {
        World *w = userdata;
        if (what & JOB_CHANGE_STATE) {
                if (w->n_states == 0 || w->states[w->n_states - 1] != j->state) {
                        assert(w->n_states < WORLD_MAX_STATES);
                        w->states[w->n_states++] = j->state;
                        if (w->verbose)
                                fprintf(stderr, "  [%8.3f s] state %s\n", (double) w->now / 1e6,
                                        job_state_to_string(j->state));
                }
        }
        if (what & JOB_CHANGE_SECTOR)
                w->sector_changes++;
        if (what & JOB_CHANGE_PROGRESS)
                w->progress_changes++;
        if (what & JOB_CHANGE_FINISHED)
                w->finished = true;
}

void world_init(World *w, const char *rom_profile) {
        *w = (World) { .timer = USEC_INFINITY, .now = 1000000 };
        w->host = (JobHost) {
                .userdata = w,
                .now = host_now,
                .get_settings = host_get_settings,
                .load_image = host_load_image,
                .open = host_open,
                .close = host_close,
                .set_timer = host_set_timer,
                .changed = host_changed,
        };
        assert(config_new(&w->config) == 0);
        assert(config_add_builtin(w->config) == 0);
        /* short waits: the virtual clock does not care, but the test reads better */
        const char *c =
                "{\"devices\": [{\"match\": {\"vendor-id\": \"0483\"}, \"timeouts\": {\"bootloader\": 10, "
                "\"application\": 15}}]}";
        assert(config_parse(w->config, "test", c, strlen(c), NULL) == 0);

        Board *b = calloc(1, sizeof *b);
        assert(b);
        b->world = w;
        b->rom = stm32_profile_find(rom_profile);
        assert(b->rom);
        b->memory_size = stm32_profile_memory_size(b->rom);
        b->memory = malloc(b->memory_size);
        assert(b->memory);
        stm32_profile_memory_init(b->rom, b->memory);
        assert(device_new("board", &b->device) == 0);
        w->board = b;
}

void world_free(World *w) {
        Board *b = w->board;
        job_exec_free(w->exec);
        job_free(w->job);
        stm32_model_free(b->model);
        device_free(b->device);
        free(b->memory);
        free(b);
        config_free(w->config);
        free(w->image);
}

static UsbInfo *board_usb(Board *b, bool app, uint16_t version) {
        const Stm32Profile *p = app ? stm32_profile_find("app") : b->rom;
        UsbInfo *u = calloc(1, sizeof *u);
        assert(u);
        u->syspath = strdup("/sys/devices/vhci/usb1/1-1");
        u->port = strdup("1-1");
        u->devnode = strdup("/dev/bus/usb/001/002");
        u->serial = strdup(app ? "APPSERIAL" : "ROMSERIAL");
        u->product = strdup(p->product);
        u->desc = (UsbDescInfo) {
                .vendor_id = p->vendor_id,
                .product_id = p->product_id,
                .bcd_device = app ? version : p->bcd_device,
                .has_dfu = true,
                .dfu_runtime = app,
                .dfu_interface = app ? 2 : 0,
                .n_alts = app ? 1 : (uint8_t) p->n_regions,
                .has_functional = true,
                .functional = { p->dfu_attributes, p->detach_timeout_ms, p->transfer_size, p->dfu_version },
                .has_cdc_acm = app,
        };
        return u;
}

static void do_plug(World *w, bool app, uint16_t version) {
        Board *b = w->board;
        const Stm32Profile *p = app ? stm32_profile_find("app") : b->rom;

        assert(!b->present);
        assert(stm32_model_new(p, b->memory, 1.0, &b->model) == 0);
        if (!app)
                for (size_t i = 0; i < ELEMENTSOF(b->rom_faults) && b->rom_faults[i]; i++) {
                        assert(stm32_model_add_fault(b->model, b->rom_faults[i]) == 0);
                        b->rom_faults[i] = NULL;
                }
        b->current = p;
        b->present = true;
        b->plugs++;
        assert(device_attach(b->device, board_usb(b, app, version), host_now(w, CLOCK_REALTIME)) >= 0);
        if (!app) {
                char *l[STM32_MAX_ALTS] = {};
                for (size_t i = 0; i < p->n_regions; i++)
                        l[i] = (char *) p->regions[i].alt_string;
                assert(device_set_layouts(b->device, l, p->n_regions) >= 0);
        } else
                (void) device_set_tty(b->device, "/dev/null-tty-not-used");
        b->device->probed = true;
        if (w->verbose)
                fprintf(stderr, "  [%8.3f s] plugged in as %s\n", (double) w->now / 1e6, p->name);
        if (w->exec)
                job_exec_device_changed(w->exec);
}

void world_plug(World *w, bool app) {
        uint16_t version = 0;
        if (app)
                assert(stm32_memory_valid_app(w->board->rom, w->board->memory, &version));
        do_plug(w, app, version);
}

static void do_unplug(World *w, bool reboot) {
        Board *b = w->board;
        uint16_t version = 0;
        const Stm32Profile *next;

        if (!b->present)
                return;
        next = stm32_model_boot(b->model, &version);
        b->model = stm32_model_free(b->model);
        b->present = false;
        b->unplugs++;
        device_detach(b->device, host_now(w, CLOCK_REALTIME));
        if (w->verbose)
                fprintf(stderr, "  [%8.3f s] unplugged%s%s\n", (double) w->now / 1e6,
                        reboot ? ", reboots as " : "", reboot && next ? next->name : "");
        if (w->exec)
                job_exec_device_changed(w->exec);
        if (!reboot || b->stay_away || !next)
                return;
        if (b->boot_as_app_with_version && next == stm32_profile_find("app"))
                version = b->forced_version;
        /* re-enumeration takes a moment */
        schedule(w, (WorldEvent) { .at = w->now + 300000,
                                   .kind = next == stm32_profile_find("app") ? EV_PLUG_APP : EV_PLUG_ROM,
                                   .board = b,
                                   .r = version });
}

void world_unplug(World *w) {
        do_unplug(w, false);
}

void world_new_job(World *w, const uint8_t *image, size_t size, uint16_t version) {
        w->image = malloc(size);
        assert(w->image);
        memcpy(w->image, image, size);
        w->image_size = size;
        assert(job_new(1, "board", 5000, &w->job) == 0);
        w->job->image_sha256 = strdup("0000000000000000000000000000000000000000000000000000000000000000");
        w->job->image_size = size;
        w->job->options.format = DFU_IMAGE_FORMAT_BIN;
        w->job->options.has_address = true;
        w->job->options.address = 0x08000000;
        w->job->has_image_version = version != 0;
        w->job->image_version = version;
        w->job->created = host_now(w, CLOCK_REALTIME);
        assert(job_exec_new(w->job, w->board->device, &w->host, &w->exec) == 0);
}

bool world_run(World *w, uint64_t until) {
        while (!w->finished) {
                size_t best = SIZE_MAX;
                for (size_t i = 0; i < w->n_events; i++)
                        if (best == SIZE_MAX || w->events[i].at < w->events[best].at)
                                best = i;
                uint64_t next = best == SIZE_MAX ? USEC_INFINITY : w->events[best].at;
                if (w->timer != USEC_INFINITY && w->timer <= next) {
                        if (w->timer > until) {
                                w->now = MAX(w->now, until);
                                return false;
                        }
                        w->now = MAX(w->now, w->timer);
                        w->timer = USEC_INFINITY;
                        job_exec_timer(w->exec);
                        continue;
                }
                if (best == SIZE_MAX || next > until) {
                        /* nothing before `until`: time passes anyway */
                        if (until != USEC_INFINITY)
                                w->now = MAX(w->now, until);
                        return false;
                }
                WorldEvent ev = w->events[best];
                w->events[best] = w->events[--w->n_events];
                w->now = MAX(w->now, ev.at);
                switch (ev.kind) {
                case EV_COMPLETE:
                        if (ev.generation == ev.board->generation)
                                ev.done(ev.r, ev.actual, ev.userdata);
                        break;
                case EV_UNPLUG:
                        do_unplug(w, true);
                        break;
                case EV_PLUG_APP:
                case EV_PLUG_ROM:
                        if (!ev.board->present)
                                do_plug(w, ev.kind == EV_PLUG_APP, (uint16_t) ev.r);
                        break;
                }
        }
        return true;
}

bool world_saw_state(const World *w, JobState s) {
        for (size_t i = 0; i < w->n_states; i++)
                if (w->states[i] == s)
                        return true;
        return false;
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

uint8_t *world_make_firmware(uint32_t base, size_t size, uint16_t version, uint32_t seed) {
        uint8_t *fw = malloc(size);
        uint32_t x = seed * 2654435761u + 1;

        assert(fw && size >= VSTM32_HEADER_OFFSET + sizeof(Vstm32Header));
        for (size_t i = 0; i < size; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                fw[i] = (uint8_t) x;
        }
        put32(fw, 0x20020000);
        put32(fw + 4, base + 0x201);
        put32(fw + VSTM32_HEADER_OFFSET, VSTM32_HEADER_MAGIC);
        put32(fw + VSTM32_HEADER_OFFSET + 4, version);
        put32(fw + VSTM32_HEADER_OFFSET + 8, (uint32_t) size);
        put32(fw + VSTM32_HEADER_OFFSET + 12, 0);
        put32(fw + VSTM32_HEADER_OFFSET + 12, dfu_crc32(fw, size));
        return fw;
}

bool world_flash_equals(const World *w, uint32_t address, const uint8_t *data, size_t size) {
        int64_t off = stm32_profile_memory_offset(w->board->rom, 0, address, (uint32_t) size);
        assert(off >= 0);
        return memcmp(w->board->memory + off, data, size) == 0;
}
