/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dfuctl's command line: global options, verbs and their arguments. Parsing has no side effects besides
 * messages, so tests/client/test-args.c can drive it. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum Verb {
        VERB_DEVICES,
        VERB_INFO,
        VERB_UPDATE,
        VERB_JOBS,
        VERB_CANCEL,
        VERB_WATCH,
        VERB_LOG,
        VERB_ENTER_BOOTLOADER,
        _VERB_MAX,
        _VERB_INVALID = -EINVAL,
} Verb;

typedef enum BusTransport {
        BUS_TRANSPORT_SYSTEM,
        BUS_TRANSPORT_USER,
        BUS_TRANSPORT_ADDRESS,
} BusTransport;

typedef struct Args {
        Verb verb;
        char **argv; /* the verb's positional arguments, pointing into the caller's argv */
        int argc;

        BusTransport transport;
        const char *bus_address;
        bool json;
        bool ask_password;

        /* update */
        bool have_address;
        uint64_t address;
        const char *format;
        bool verify;
        bool incremental;
        bool allow_downgrade;
        bool wait;
} Args;

/* Exit codes: 0 success, 1 failure (bus errors, failed jobs), 2 bad usage. */
#define DFUCTL_EXIT_FAILURE 1
#define DFUCTL_EXIT_USAGE 2

/* Returns 1 when a verb should run, 0 when the work is done (--help, --version; printed to out), or
 * -EINVAL after printing a usage error to err. argv is permuted (GNU getopt) but not modified. */
int args_parse(int argc, char *argv[], Args *ret, FILE *out, FILE *err);

const char *verb_to_string(Verb v);
Verb verb_from_string(const char *s);

void args_help(FILE *f);

/* The --format values Manager.Update() understands. */
bool image_format_is_valid(const char *s);
