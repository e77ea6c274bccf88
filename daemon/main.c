/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <getopt.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "dfud-dbus.h"
#include "log.h"
#include "manager.h"

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Keeps USB-attached STM32 devices on the right firmware (D-Bus service " DFUD_BUS_NAME
               ").\n\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --state-dir=DIR      Journal and images (default: $STATE_DIRECTORY or " DFUD_STATE_DIR
               ")\n"
               "     --config-dir=DIR     dfud.conf and dfud.conf.d/ (default: " DFUD_CONF_DIR ")\n"
               "     --user-bus           Serve on the user bus instead of the system bus\n"
               "     --bus-address=ADDR   Serve on the bus at ADDR\n"
               "     --debug              Log the DFU exchange and everything else\n",
               program_invocation_short_name);
}

static int run(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_STATE_DIR,
                ARG_CONFIG_DIR,
                ARG_USER_BUS,
                ARG_BUS_ADDRESS,
                ARG_DEBUG
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "user-bus", no_argument, NULL, ARG_USER_BUS },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "debug", no_argument, NULL, ARG_DEBUG },
                {},
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        ManagerOptions o = { .bus_kind = BUS_KIND_SYSTEM, .usb = true };
        int c, r;

        /* StateDirectory= in the unit; the command line wins */
        const char *e = secure_getenv("STATE_DIRECTORY");
        if (e && !strchr(e, ':'))
                o.state_dir = e;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dfud %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        o.state_dir = optarg;
                        break;
                case ARG_CONFIG_DIR:
                        o.config_dir = optarg;
                        break;
                case ARG_USER_BUS:
                        o.bus_kind = BUS_KIND_USER;
                        break;
                case ARG_BUS_ADDRESS:
                        o.bus_kind = BUS_KIND_ADDRESS;
                        o.bus_address = optarg;
                        break;
                case ARG_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "%s takes no arguments.", program_invocation_short_name);
        if (getenv("DFUD_DEBUG"))
                log_set_max_level(LOG_DEBUG);

        log_info("dfud %s starting (state %s, configuration %s).", PACKAGE_VERSION,
                 o.state_dir ? o.state_dir : DFUD_STATE_DIR, o.config_dir ? o.config_dir : DFUD_CONF_DIR);

        r = manager_new(&o, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up: %m");
        /* the journal is back before the name is taken: no client sees a half-loaded daemon */
        r = manager_startup(m);
        if (r < 0)
                return r;
        r = manager_connect_bus(m);
        if (r < 0)
                return r;

        (void) sd_notify(false, "READY=1");
        manager_notify_status(m);
        log_info("Serving " DFUD_BUS_NAME ".");

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
