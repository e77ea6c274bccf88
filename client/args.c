/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config.h"
#include "macro.h"

/* Options that only make sense for one verb; rejected elsewhere rather than silently ignored. */
enum {
        OPT_UPDATE_ONLY = 1u << 0,
};

typedef struct VerbInfo {
        const char *name;
        int min_args;
        int max_args;
        unsigned options; /* OPT_* this verb accepts */
} VerbInfo;

static const VerbInfo verb_table[_VERB_MAX] = {
        [VERB_DEVICES] = { "devices", 0, 0, 0 },
        [VERB_INFO] = { "info", 1, 1, 0 },
        [VERB_UPDATE] = { "update", 2, 2, OPT_UPDATE_ONLY },
        [VERB_JOBS] = { "jobs", 0, 0, 0 },
        [VERB_CANCEL] = { "cancel", 1, 1, 0 },
        [VERB_WATCH] = { "watch", 0, 0, 0 },
        [VERB_LOG] = { "log", 1, 1, 0 },
        [VERB_ENTER_BOOTLOADER] = { "enter-bootloader", 1, 1, 0 },
};

const char *verb_to_string(Verb v) {
        if ((int) v < 0 || v >= _VERB_MAX)
                return NULL;
        return verb_table[v].name;
}

Verb verb_from_string(const char *s) {
        for (Verb v = 0; v < _VERB_MAX; v++)
                if (streq_ptr(verb_table[v].name, s))
                        return v;
        return _VERB_INVALID;
}

static const char *const image_formats[] = { "auto", "dfuse", "dfu", "ihex", "elf", "bin" };

bool image_format_is_valid(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(image_formats); i++)
                if (streq_ptr(image_formats[i], s))
                        return true;
        return false;
}

void args_help(FILE *f) {
        fputs("dfuctl [OPTIONS...] COMMAND ...\n"
              "\n"
              "Query and control dfud, the STM32 USB firmware update daemon.\n"
              "\n"
              "Commands:\n"
              "  devices                  List the devices dfud knows\n"
              "  info DEVICE              Show a device's details and memory layout\n"
              "  update DEVICE FILE       Write FILE to DEVICE and follow the job\n"
              "  jobs                     List update jobs\n"
              "  cancel JOB               Cancel a job\n"
              "  watch                    Follow devices and jobs as they change\n"
              "  log JOB                  Show a job's DFU exchange\n"
              "  enter-bootloader DEVICE  Switch a device's application into its bootloader\n"
              "\n"
              "DEVICE is a device id, USB serial number or port path (e.g. 1-1.2); JOB is a job id.\n"
              "\n"
              "Options:\n"
              "  -h --help                Show this help\n"
              "     --version             Show the package version\n"
              "     --json                Print JSON instead of tables\n"
              "     --system              Talk to dfud on the system bus (default)\n"
              "     --user                Talk to dfud on the user bus\n"
              "     --bus-address ADDRESS Talk to dfud on the bus at ADDRESS\n"
              "     --no-ask-password     Do not ask for a password to authorize\n"
              "     --no-pager            Accepted for compatibility; dfuctl never pages\n"
              "\n"
              "Update options:\n"
              "     --address ADDRESS     Flash address of a raw .bin image (default: start of flash)\n"
              "     --format FORMAT       Image format: auto, dfuse, dfu, ihex, elf or bin\n"
              "     --no-verify           Do not read the flash back after writing\n"
              "     --no-incremental      Write every page, even those already holding the image\n"
              "     --allow-downgrade     Accept an image older than the running firmware\n"
              "     --no-wait             Print the job and return without waiting for it\n",
              f);
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end = NULL;
        unsigned long long v;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || !end || *end != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int args_parse(int argc, char *argv[], Args *ret, FILE *out, FILE *err) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_SYSTEM,
                ARG_USER,
                ARG_BUS_ADDRESS,
                ARG_NO_ASK_PASSWORD,
                ARG_NO_PAGER,
                ARG_ADDRESS,
                ARG_FORMAT,
                ARG_NO_VERIFY,
                ARG_NO_INCREMENTAL,
                ARG_ALLOW_DOWNGRADE,
                ARG_NO_WAIT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "user", no_argument, NULL, ARG_USER },
                { "bus-address", required_argument, NULL, ARG_BUS_ADDRESS },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "no-verify", no_argument, NULL, ARG_NO_VERIFY },
                { "no-incremental", no_argument, NULL, ARG_NO_INCREMENTAL },
                { "allow-downgrade", no_argument, NULL, ARG_ALLOW_DOWNGRADE },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                {}
        };
        Args a = {
                .verb = _VERB_INVALID,
                .transport = BUS_TRANSPORT_SYSTEM,
                .ask_password = true,
                .verify = true,
                .incremental = true,
                .wait = true,
        };
        const char *used_update_option = NULL;
        int c;

        /* optind = 0 makes glibc reinitialize getopt, so the parser can run more than once (tests) */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        args_help(out);
                        return 0;
                case ARG_VERSION:
                        fprintf(out, "dfuctl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_JSON:
                        a.json = true;
                        break;
                case ARG_SYSTEM:
                        a.transport = BUS_TRANSPORT_SYSTEM;
                        break;
                case ARG_USER:
                        a.transport = BUS_TRANSPORT_USER;
                        break;
                case ARG_BUS_ADDRESS:
                        if (!*optarg) {
                                fprintf(err, "dfuctl: --bus-address needs an address\n");
                                return -EINVAL;
                        }
                        a.transport = BUS_TRANSPORT_ADDRESS;
                        a.bus_address = optarg;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        a.ask_password = false;
                        break;
                case ARG_NO_PAGER:
                        break;
                case ARG_ADDRESS:
                        if (parse_u64(optarg, &a.address) < 0 || a.address > UINT32_MAX) {
                                fprintf(err, "dfuctl: invalid address '%s'\n", optarg);
                                return -EINVAL;
                        }
                        a.have_address = true;
                        used_update_option = "--address";
                        break;
                case ARG_FORMAT:
                        if (!image_format_is_valid(optarg)) {
                                fprintf(err, "dfuctl: unknown image format '%s' "
                                        "(expected auto, dfuse, dfu, ihex, elf or bin)\n", optarg);
                                return -EINVAL;
                        }
                        a.format = optarg;
                        used_update_option = "--format";
                        break;
                case ARG_NO_VERIFY:
                        a.verify = false;
                        used_update_option = "--no-verify";
                        break;
                case ARG_NO_INCREMENTAL:
                        a.incremental = false;
                        used_update_option = "--no-incremental";
                        break;
                case ARG_ALLOW_DOWNGRADE:
                        a.allow_downgrade = true;
                        used_update_option = "--allow-downgrade";
                        break;
                case ARG_NO_WAIT:
                        a.wait = false;
                        used_update_option = "--no-wait";
                        break;
                case ':':
                        fprintf(err, "dfuctl: option '%s' needs an argument\n", argv[optind - 1]);
                        return -EINVAL;
                case '?':
                default:
                        if (optopt != 0)
                                fprintf(err, "dfuctl: unknown option '-%c'\n", optopt);
                        else
                                fprintf(err, "dfuctl: unknown option '%s'\n", argv[optind - 1]);
                        return -EINVAL;
                }

        if (optind >= argc) {
                fprintf(err, "dfuctl: missing command; see 'dfuctl --help'\n");
                return -EINVAL;
        }
        a.verb = verb_from_string(argv[optind]);
        if (a.verb < 0) {
                fprintf(err, "dfuctl: unknown command '%s'; see 'dfuctl --help'\n", argv[optind]);
                return -EINVAL;
        }
        a.argv = argv + optind + 1;
        a.argc = argc - optind - 1;

        const VerbInfo *v = &verb_table[a.verb];
        if (a.argc < v->min_args) {
                fprintf(err, "dfuctl: '%s' needs %s%s\n", v->name,
                        a.verb == VERB_UPDATE ? "a DEVICE and a FILE" :
                        a.verb == VERB_CANCEL || a.verb == VERB_LOG ? "a JOB" : "a DEVICE",
                        a.verb == VERB_UPDATE ? "" : " argument");
                return -EINVAL;
        }
        if (a.argc > v->max_args) {
                fprintf(err, "dfuctl: too many arguments for '%s'\n", v->name);
                return -EINVAL;
        }
        if (used_update_option && !(v->options & OPT_UPDATE_ONLY)) {
                fprintf(err, "dfuctl: %s only applies to 'update'\n", used_update_option);
                return -EINVAL;
        }

        *ret = a;
        return 1;
}
