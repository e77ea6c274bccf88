/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "macro.h"

#define BUS_US_PER_TRANSFER 1000
#define BUS_US_PER_BYTE 1

static void on_trace(void *userdata, Stm32TraceKind kind, uint8_t alt, uint32_t address, uint32_t size) {
        Harness *h = userdata;

        if (h->n_trace < HARNESS_MAX_TRACE)
                h->trace[h->n_trace++] =
                        (TraceEntry) { .kind = kind, .alt = alt, .address = address, .size = size };
}

static void on_event(DfuEngine *e, const DfuEvent *ev, void *userdata) {
        Harness *h = userdata;

        switch (ev->kind) {
        case DFU_EVENT_PHASE:
                h->phase_events++;
                if (h->n_phases < ELEMENTSOF(h->phases))
                        h->phases[h->n_phases++] = ev->phase;
                break;
        case DFU_EVENT_PROGRESS:
                h->progress_events++;
                assert(ev->bytes_done <= ev->bytes_total);
                break;
        case DFU_EVENT_SECTOR_VERIFIED:
                assert(ev->sector);
                assert(ev->sector->state == DFU_SECTOR_VERIFIED || ev->sector->state == DFU_SECTOR_SKIPPED);
                assert(h->n_verified < HARNESS_MAX_VERIFIED);
                h->verified[h->n_verified++] = *ev->sector;
                break;
        case DFU_EVENT_LOG:
                h->log_lines++;
                h->logs = realloc(h->logs, (h->n_logs + 1) * sizeof(char *));
                assert(h->logs);
                h->logs[h->n_logs] = strdup(ev->message);
                assert(h->logs[h->n_logs]);
                h->n_logs++;
                if (h->verbose)
                        printf("  [%9.3f s] %s\n", (double) h->now / 1e6, ev->message);
                break;
        }
}

static uint64_t clock_now(void *userdata) {
        const Harness *h = userdata;

        return h->now;
}

static void setup_engine(Harness *h) {
        const Stm32Profile *p = h->profile;

        h->info = (DfuDeviceInfo) {
                .interface_number = 0,
                .functional = {
                        .attributes = p->dfu_attributes,
                        .detach_timeout_ms = p->detach_timeout_ms,
                        .transfer_size = p->transfer_size,
                        .dfu_version = p->dfu_version,
                },
                .runtime = p->n_regions == 0,
                .n_alts = p->n_regions,
        };
        for (size_t i = 0; i < p->n_regions; i++) {
                if (p->dfu_version != DFU_VERSION_DFUSE)
                        continue;
                assert(dfuse_layout_parse(p->regions[i].alt_string, &h->layouts[i]) == 0);
                h->info.layouts[i] = &h->layouts[i];
        }
        assert(dfu_engine_new(&h->info, &h->engine) == 0);
        dfu_engine_set_event_func(h->engine, on_event, h);
        dfu_engine_set_clock(h->engine, clock_now, h);
}

void harness_init(Harness *h, const char *profile, uint8_t fill) {
        memset(h, 0, sizeof(*h));
        h->profile = stm32_profile_find(profile);
        assert(h->profile);
        h->memory_size = stm32_profile_memory_size(h->profile);
        h->memory = malloc(h->memory_size);
        assert(h->memory);
        stm32_profile_memory_init(h->profile, h->memory);
        if (fill != 0xFF)
                memset(h->memory, fill, h->memory_size);
        assert(stm32_model_new(h->profile, h->memory, 1.0, &h->model) == 0);
        stm32_model_set_trace(h->model, on_trace, h);
        h->gone_errno = -ENODEV;
        h->now = 1000000;
        h->verbose = getenv("HARNESS_VERBOSE") != NULL;
        setup_engine(h);
}

void harness_reopen(Harness *h) {
        h->model = stm32_model_free(h->model);
        h->engine = dfu_engine_free(h->engine);
        assert(stm32_model_new(h->profile, h->memory, 1.0, &h->model) == 0);
        stm32_model_set_trace(h->model, on_trace, h);
        h->gone = false;
        h->now += 2000000; /* re-enumeration */
        setup_engine(h);
}

void harness_free(Harness *h) {
        h->model = stm32_model_free(h->model);
        h->engine = dfu_engine_free(h->engine);
        free(h->memory);
        for (size_t i = 0; i < h->n_logs; i++)
                free(h->logs[i]);
        free(h->logs);
}

void harness_fault(Harness *h, const char *spec) {
        assert(stm32_model_add_fault(h->model, spec) == 0);
}

static void do_control(Harness *h, const DfuStep *s) {
        Stm32Setup setup = {
                .request_type = s->request_type,
                .request = s->request,
                .value = s->value,
                .index = s->index,
                .length = s->length,
        };
        uint8_t scratch[8];
        uint8_t *data = s->data ? s->data : scratch;
        uint64_t reply_at = h->now, timeout = (uint64_t) s->timeout_ms * 1000;
        size_t actual = 0;
        Stm32Result res;

        assert(s->request < _DFU_REQUEST_MAX);
        assert(s->timeout_ms > 0);
        h->requests[s->request]++;
        if (h->gone) {
                h->now += BUS_US_PER_TRANSFER;
                dfu_engine_control_done(h->engine, h->gone_errno, 0);
                return;
        }

        res = stm32_model_control(h->model, h->now, &setup, data, &actual, &reply_at);
        switch (res) {
        case STM32_REPLY:
        case STM32_STALL:
                assert(reply_at >= h->now);
                if (reply_at - h->now > timeout) {
                        h->now += timeout;
                        dfu_engine_control_done(h->engine, -ETIMEDOUT, 0);
                        return;
                }
                h->now = reply_at + BUS_US_PER_TRANSFER + (uint64_t) s->length * BUS_US_PER_BYTE;
                if (res == STM32_STALL)
                        dfu_engine_control_done(h->engine, -EPIPE, 0);
                else
                        dfu_engine_control_done(h->engine, 0, (s->request_type & 0x80) ? actual : s->length);
                return;
        case STM32_DISCONNECT:
                h->gone = true;
                h->now += BUS_US_PER_TRANSFER;
                dfu_engine_control_done(h->engine, h->gone_errno, 0);
                return;
        case STM32_HANG:
                h->now += timeout;
                dfu_engine_control_done(h->engine, -ETIMEDOUT, 0);
                return;
        }
}

int harness_run(Harness *h) {
        h->start = h->now;

        for (unsigned guard = 0;; guard++) {
                DfuStep s;

                assert(guard < 10000000);
                assert(dfu_engine_next(h->engine, &s) == 0);
                switch (s.kind) {
                case DFU_STEP_CONTROL:
                        do_control(h, &s);
                        break;
                case DFU_STEP_SET_ALT:
                        h->set_alts++;
                        dfu_engine_set_alt_done(h->engine,
                                                h->gone ? -ENODEV : stm32_model_set_alt(h->model, s.alt));
                        break;
                case DFU_STEP_WAIT: {
                        uint64_t at;

                        h->now += s.wait_usec;
                        if (h->notify_gone && !h->gone && stm32_model_disconnect_pending(h->model, &at) &&
                            at <= h->now) {
                                h->gone = true;
                                dfu_engine_device_gone(h->engine);
                                break;
                        }
                        dfu_engine_wait_done(h->engine);
                        break;
                }
                case DFU_STEP_DONE:
                        return 0;
                case DFU_STEP_FAILED: {
                        const DfuEngineError *err = dfu_engine_get_error(h->engine);

                        assert(err);
                        assert(err->error < 0);
                        assert(err->message[0]);
                        return err->error;
                }
                }
        }
}

int harness_update(Harness *h, const DfuImage *img, const DfuUpdateOptions *o) {
        int r = dfu_engine_start_update(h->engine, img, o);

        if (r < 0)
                return r;
        return harness_run(h);
}

bool harness_log_contains(const Harness *h, const char *needle) {
        for (size_t i = 0; i < h->n_logs; i++)
                if (strstr(h->logs[i], needle))
                        return true;
        return false;
}

void harness_print_log(const Harness *h) {
        for (size_t i = 0; i < h->n_logs; i++)
                printf("  | %s\n", h->logs[i]);
}

const DfuPlanSector *harness_verified(const Harness *h, size_t *ret_n) {
        *ret_n = h->n_verified;
        return h->verified;
}

uint8_t *harness_mem(const Harness *h, uint8_t alt, uint32_t address) {
        int64_t off = stm32_profile_memory_offset(h->profile, alt, address, 1);

        assert(off >= 0);
        return h->memory + off;
}

ssize_t harness_trace_find(const Harness *h, Stm32TraceKind kind, uint32_t address, uint32_t size,
                           bool last) {
        ssize_t found = -1;

        for (size_t i = 0; i < h->n_trace; i++) {
                const TraceEntry *t = &h->trace[i];

                if (t->kind != kind || (uint64_t) t->address + MAX(t->size, 1u) <= address ||
                    t->address >= (uint64_t) address + size)
                        continue;
                found = (ssize_t) i;
                if (!last)
                        break;
        }
        return found;
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = v & 0xFF;
        p[1] = (v >> 8) & 0xFF;
        p[2] = (v >> 16) & 0xFF;
        p[3] = v >> 24;
}

uint8_t *make_firmware(uint32_t base, size_t size, uint32_t version, uint32_t seed) {
        uint8_t *fw = malloc(size);
        uint32_t x = seed * 2654435761u + 1;

        assert(fw);
        assert(size >= VSTM32_HEADER_OFFSET + sizeof(Vstm32Header));
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

static void place(Harness *h, DfuImage *img) {
        const DfuseLayout *layouts[STM32_MAX_ALTS] = {};
        DfuError err = {};
        int r;

        if (h->profile->dfu_version != DFU_VERSION_DFUSE)
                return;
        for (size_t i = 0; i < h->info.n_alts; i++)
                layouts[i] = h->info.layouts[i];
        r = dfu_image_place(img, layouts, h->info.n_alts, false, &err);
        if (r < 0) {
                fprintf(stderr, "placement failed: %s\n", err.message);
                abort();
        }
}

DfuImage *make_image(Harness *h, uint32_t address, const uint8_t *data, size_t size) {
        DfuImage *img = NULL;
        DfuError err = {};

        assert(dfu_image_new(&img) == 0);
        assert(dfu_image_add_segment(img, DFU_ALT_ANY, address, data, size, &err) == 0);
        place(h, img);
        return img;
}

void image_add(Harness *h, DfuImage *img, uint32_t address, const uint8_t *data, size_t size) {
        DfuError err = {};

        assert(dfu_image_add_segment(img, DFU_ALT_ANY, address, data, size, &err) == 0);
        place(h, img);
}

bool image_in_memory(const Harness *h, const DfuImage *img) {
        for (size_t i = 0; i < img->n_segments; i++) {
                const DfuSegment *s = &img->segments[i];
                uint8_t alt = s->alt == DFU_ALT_ANY ? 0 : s->alt;
                int64_t off;

                if (h->profile->dfu_version != DFU_VERSION_DFUSE)
                        off = stm32_profile_memory_offset(
                                h->profile, 0, h->profile->regions[0].address + s->address, s->size);
                else
                        off = stm32_profile_memory_offset(h->profile, alt, s->address, s->size);
                if (off < 0 || memcmp(h->memory + off, s->data, s->size) != 0)
                        return false;
        }
        return true;
}
