/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-harness.h"
#include "test-util.h"

static void *server_thread(void *p) {
        BusHarness *h = p;
        /* ends when the client hangs up (exit_on_disconnect) */
        int r = sd_event_loop(h->manager->event);
        assert(r >= 0);
        return NULL;
}

UsbInfo *fake_usb(const char *port, uint16_t vid, uint16_t pid, const char *serial, bool dfu_mode) {
        UsbInfo *u = calloc(1, sizeof *u);
        char sp[256];
        assert(u);
        snprintf(sp, sizeof sp, "/sys/devices/fake/%s", port);
        u->syspath = strdup(sp);
        u->port = strdup(port);
        u->devnode = strdup("/dev/null");
        u->serial = serial ? strdup(serial) : NULL;
        u->product = strdup(dfu_mode ? "STM32  BOOTLOADER" : "vstm32 application");
        u->desc.vendor_id = vid;
        u->desc.product_id = pid;
        u->desc.bcd_device = dfu_mode ? 0x2200 : 0x0100;
        u->desc.has_dfu = true;
        u->desc.dfu_runtime = !dfu_mode;
        u->desc.n_alts = dfu_mode ? 4 : 1;
        u->desc.has_functional = true;
        u->desc.functional = (DfuFunctionalDescriptor) { 0x0b, 255, 2048, 0x011a };
        u->desc.has_cdc_acm = !dfu_mode;
        return u;
}

void bus_harness_start_full(BusHarness *h, BusHarnessSetup setup, BusHarnessPlug plug, void *userdata) {
        int fds[2];
        sd_id128_t id;
        char p[4096];

        *h = (BusHarness) {};
        h->dir = test_tmpdir();
        snprintf(p, sizeof p, "%s/state", h->dir);
        h->state_dir = strdup(p);
        snprintf(p, sizeof p, "%s/conf", h->dir);
        h->config_dir = strdup(p);
        assert(mkdir(h->state_dir, 0755) == 0 && mkdir(h->config_dir, 0755) == 0);
        if (setup)
                setup(h, userdata);

        ManagerOptions o = { .state_dir = h->state_dir,
                             .config_dir = h->config_dir,
                             .bus_kind = BUS_KIND_NONE };
        assert(manager_new(&o, &h->manager) == 0);
        assert(manager_startup(h->manager) == 0);
        if (plug)
                plug(h->manager, userdata);

        assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        assert(sd_bus_new(&h->server) >= 0);
        assert(sd_bus_set_fd(h->server, fds[0], fds[0]) >= 0);
        assert(sd_id128_randomize(&id) >= 0);
        assert(sd_bus_set_server(h->server, 1, id) >= 0);
        assert(sd_bus_negotiate_fds(h->server, true) >= 0);
        assert(sd_bus_start(h->server) >= 0);
        assert(manager_attach_bus(h->manager, h->server) >= 0);
        assert(sd_bus_set_exit_on_disconnect(h->server, true) >= 0);

        assert(sd_bus_new(&h->client) >= 0);
        assert(sd_bus_set_fd(h->client, fds[1], fds[1]) >= 0);
        assert(sd_bus_negotiate_fds(h->client, true) >= 0);
        assert(sd_bus_start(h->client) >= 0);

        assert(pthread_create(&h->thread, NULL, server_thread, h) == 0);
        h->running = true;
}

void bus_harness_start(BusHarness *h, BusHarnessSetup setup, void *userdata) {
        bus_harness_start_full(h, setup, NULL, userdata);
}

void bus_harness_stop(BusHarness *h) {
        h->client = sd_bus_flush_close_unref(h->client);
        if (h->running)
                assert(pthread_join(h->thread, NULL) == 0);
        h->server = sd_bus_unref(h->server);
        h->manager = manager_free(h->manager);
        if (!h->keep_dir)
                rm_rf(h->dir);
        free(h->dir);
        free(h->state_dir);
        free(h->config_dir);
}
