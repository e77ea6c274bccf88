/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <time.h>

#include "bus-util.h"
#include "log.h"
#include "macro-util.h"
#include "util.h"

int bus_emitter_init(BusEmitter *e, const char *path, const char *interface) {
        *e = (BusEmitter) { .interface = interface };
        e->path = strdup(path);
        return e->path ? 0 : -ENOMEM;
}

void bus_emitter_done(BusEmitter *e) {
        e->source = sd_event_source_disable_unref(e->source);
        e->path = mfree(e->path);
}

int bus_emitter_announce(BusEmitter *e, sd_bus *bus) {
        int r;

        e->announced = true;
        if (!bus)
                return 0;
        e->bus = bus;
        r = sd_bus_emit_object_added(bus, e->path);
        if (r < 0)
                log_debug_errno(r, "Failed to emit InterfacesAdded for %s, ignoring: %m", e->path);
        return r;
}

void bus_emitter_flush(BusEmitter *e) {
        if (!e->source)
                return;
        e->source = sd_event_source_disable_unref(e->source);
        if (!e->bus)
                return;
        e->last = now_usec(CLOCK_MONOTONIC);
        e->urgent = false;
        int r = sd_bus_emit_properties_changed_strv(e->bus, e->path, e->interface, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for %s, ignoring: %m", e->path);
}

static int on_emit(sd_event_source *s, uint64_t usec, void *userdata) {
        bus_emitter_flush(userdata);
        return 0;
}

int bus_emitter_change(BusEmitter *e, sd_bus *bus, bool urgent) {
        sd_event *event;
        uint64_t when;
        int r;

        if (!bus)
                return 0;
        e->bus = bus;
        if (!e->announced) {
                /* the first time an object is seen on the bus: InterfacesAdded carries everything */
                bus_emitter_announce(e, bus);
                return 0;
        }
        event = sd_bus_get_event(bus);
        if (!event) {
                r = sd_bus_emit_properties_changed_strv(bus, e->path, e->interface, NULL);
                return r;
        }
        if (e->source && (!urgent || e->urgent))
                return 0; /* already queued, soon enough */

        uint64_t now = now_usec(CLOCK_MONOTONIC);
        when = urgent || e->last + BUS_EMIT_INTERVAL_USEC <= now ? 0 : e->last + BUS_EMIT_INTERVAL_USEC;
        e->urgent = urgent;
        if (e->source)
                return sd_event_source_set_time(e->source, when);
        r = sd_event_add_time(event, &e->source, CLOCK_MONOTONIC, when, 0, on_emit, e);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(e->source, SD_EVENT_PRIORITY_IDLE);
        return 0;
}

int bus_emitter_remove(BusEmitter *e, sd_bus *bus) {
        e->source = sd_event_source_disable_unref(e->source);
        if (!bus || !e->announced)
                return 0;
        int r = sd_bus_emit_object_removed(bus, e->path);
        if (r < 0)
                log_debug_errno(r, "Failed to emit InterfacesRemoved for %s, ignoring: %m", e->path);
        e->announced = false;
        return r;
}
