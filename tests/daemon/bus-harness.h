/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A dfud Manager serving its objects over a peer-to-peer socketpair (systemd's test-bus-objects
 * pattern): the manager's loop runs in a thread, the test is the client. No bus daemon, no USB, no
 * root. */

#include <pthread.h>
#include <systemd/sd-bus.h>

#include "manager.h"

typedef struct BusHarness {
        char *dir, *state_dir, *config_dir;
        Manager *manager;
        sd_bus *server, *client;
        pthread_t thread;
        bool running;
        bool keep_dir; /* bus_harness_stop() leaves the files (restart tests) */
} BusHarness;

/* Sets up the state (devices.json, configuration) via the callback before the manager starts. */
typedef void (*BusHarnessSetup)(BusHarness *h, void *userdata);
void bus_harness_start(BusHarness *h, BusHarnessSetup setup, void *userdata);
/* The manager has started (journal loaded) but the loop not yet: plug devices in here. */
typedef void (*BusHarnessPlug)(Manager *m, void *userdata);
void bus_harness_start_full(BusHarness *h, BusHarnessSetup setup, BusHarnessPlug plug, void *userdata);
void bus_harness_stop(BusHarness *h);

/* A fabricated enumeration, as udev would report it. */
UsbInfo *fake_usb(const char *port, uint16_t vid, uint16_t pid, const char *serial, bool dfu_mode);
