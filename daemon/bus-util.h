/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Coalesced change signals for one bus object (homed's bus_home_emit_change pattern): any number of
 * changes within one loop iteration give one PropertiesChanged, and progress-only changes are
 * rate-limited, so a fast flash does not send a signal per 2 KiB block. The first emission of an
 * object that was created after start-up is InterfacesAdded. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define BUS_EMIT_INTERVAL_USEC (200 * 1000)

typedef struct BusEmitter {
        sd_bus *bus; /* not referenced; the manager outlives its objects */
        char *path;
        const char *interface;
        sd_event_source *source;
        bool announced; /* InterfacesAdded sent (or the object existed before the name was taken) */
        bool urgent;
        uint64_t last; /* CLOCK_MONOTONIC usec of the last PropertiesChanged */
} BusEmitter;

int bus_emitter_init(BusEmitter *e, const char *path, const char *interface);
void bus_emitter_done(BusEmitter *e);
/* Announce now (InterfacesAdded); for objects created while the bus is up. */
int bus_emitter_announce(BusEmitter *e, sd_bus *bus);
/* Queue a PropertiesChanged for every EMITS_CHANGE property. urgent: at the next loop iteration
 * (state changes); otherwise at most once per BUS_EMIT_INTERVAL_USEC (progress). */
int bus_emitter_change(BusEmitter *e, sd_bus *bus, bool urgent);
/* Flush a queued change now (before a JobRemoved, so clients see the final state first). */
void bus_emitter_flush(BusEmitter *e);
/* InterfacesRemoved. */
int bus_emitter_remove(BusEmitter *e, sd_bus *bus);
