/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfuctl's command line parser (client/args.c): verbs, argument counts, global and update options. */

#undef NDEBUG
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "macro.h"

static FILE *null_out;

/* Parses a NULL-terminated list of arguments; argv must stay alive while *ret is used. */
static int parse(Args *ret, char **argv_storage, ...) {
        va_list ap;
        int argc = 0;

        argv_storage[argc++] = (char *) "dfuctl";
        va_start(ap, argv_storage);
        for (char *a; (a = va_arg(ap, char *));)
                argv_storage[argc++] = a;
        va_end(ap);
        argv_storage[argc] = NULL;
        return args_parse(argc, argv_storage, ret, null_out, null_out);
}

#define PARSE(ret, ...) parse(ret, argv, __VA_ARGS__, (char *) NULL)

static void test_verbs(void) {
        char *argv[16];
        Args a;

        assert(PARSE(&a, "devices") == 1);
        assert(a.verb == VERB_DEVICES && a.argc == 0);
        assert(a.transport == BUS_TRANSPORT_SYSTEM && !a.json && a.verify && a.incremental && a.wait);

        assert(PARSE(&a, "info", "0001") == 1);
        assert(a.verb == VERB_INFO && a.argc == 1 && streq(a.argv[0], "0001"));

        assert(PARSE(&a, "jobs") == 1 && a.verb == VERB_JOBS);
        assert(PARSE(&a, "cancel", "5") == 1 && a.verb == VERB_CANCEL);
        assert(PARSE(&a, "watch") == 1 && a.verb == VERB_WATCH);
        assert(PARSE(&a, "log", "5") == 1 && a.verb == VERB_LOG);
        assert(PARSE(&a, "enter-bootloader", "1-1.2") == 1 && a.verb == VERB_ENTER_BOOTLOADER);

        for (Verb v = 0; v < _VERB_MAX; v++)
                assert(verb_from_string(verb_to_string(v)) == v);
        assert(verb_from_string("frobnicate") < 0);
        assert(!verb_to_string(_VERB_MAX));
}

static void test_usage_errors(void) {
        char *argv[16];
        Args a;

        assert(PARSE(&a, "frobnicate") == -EINVAL);        /* unknown verb */
        assert(parse(&a, argv, (char *) NULL) == -EINVAL);  /* no verb */
        assert(PARSE(&a, "info") == -EINVAL);              /* missing DEVICE */
        assert(PARSE(&a, "info", "a", "b") == -EINVAL);    /* too many */
        assert(PARSE(&a, "update", "dev") == -EINVAL);     /* missing FILE */
        assert(PARSE(&a, "devices", "extra") == -EINVAL);
        assert(PARSE(&a, "--frob", "devices") == -EINVAL); /* unknown option */
        assert(PARSE(&a, "devices", "--bus-address") == -EINVAL);
        assert(PARSE(&a, "devices", "--bus-address=") == -EINVAL);
        assert(PARSE(&a, "devices", "--no-verify") == -EINVAL); /* update-only option elsewhere */
        assert(PARSE(&a, "jobs", "--address", "0x0") == -EINVAL);
        assert(PARSE(&a, "update", "d", "f", "--format", "zip") == -EINVAL);
        assert(PARSE(&a, "update", "d", "f", "--address", "-1") == -EINVAL);
        assert(PARSE(&a, "update", "d", "f", "--address", "0x100000000") == -EINVAL);
        assert(PARSE(&a, "update", "d", "f", "--address", "12k") == -EINVAL);
        assert(PARSE(&a, "-x", "devices") == -EINVAL);
}

static void test_help_version(void) {
        char *argv[16];
        Args a;

        assert(PARSE(&a, "--help") == 0);
        assert(PARSE(&a, "-h") == 0);
        assert(PARSE(&a, "--version") == 0);
        assert(PARSE(&a, "devices", "--help") == 0);
}

static void test_global_options(void) {
        char *argv[16];
        Args a;

        /* GNU getopt permutes: options may follow the verb */
        assert(PARSE(&a, "devices", "--json", "--user") == 1);
        assert(a.json && a.transport == BUS_TRANSPORT_USER);

        assert(PARSE(&a, "--bus-address", "unix:path=/run/x", "jobs") == 1);
        assert(a.transport == BUS_TRANSPORT_ADDRESS && streq(a.bus_address, "unix:path=/run/x"));

        assert(PARSE(&a, "--user", "--system", "devices", "--no-pager", "--no-ask-password") == 1);
        assert(a.transport == BUS_TRANSPORT_SYSTEM && !a.ask_password);
}

static void test_update_options(void) {
        char *argv[16];
        Args a;

        assert(PARSE(&a, "update", "0001", "fw.dfu") == 1);
        assert(a.verb == VERB_UPDATE && a.argc == 2 && streq(a.argv[0], "0001") &&
               streq(a.argv[1], "fw.dfu"));
        assert(!a.have_address && !a.format && a.verify && a.incremental && !a.allow_downgrade && a.wait);

        assert(PARSE(&a, "update", "--address", "0x08004000", "--format", "bin", "0001", "fw.bin",
                     "--no-verify", "--no-incremental", "--allow-downgrade", "--no-wait") == 1);
        assert(a.have_address && a.address == 0x08004000);
        assert(streq(a.format, "bin"));
        assert(!a.verify && !a.incremental && a.allow_downgrade && !a.wait);
        assert(streq(a.argv[0], "0001") && streq(a.argv[1], "fw.bin"));

        assert(PARSE(&a, "update", "d", "f", "--address=134217728") == 1 && a.address == 0x08000000);
        assert(PARSE(&a, "update", "d", "f", "--address", "0") == 1 && a.have_address && a.address == 0);

        /* "--" ends the options: a file may start with a dash */
        assert(PARSE(&a, "update", "--", "d", "-fw.bin") == 1 && streq(a.argv[1], "-fw.bin"));

        const char *formats[] = { "auto", "dfuse", "dfu", "ihex", "elf", "bin" };
        for (size_t i = 0; i < ELEMENTSOF(formats); i++)
                assert(image_format_is_valid(formats[i]));
        assert(!image_format_is_valid("hex"));
        assert(!image_format_is_valid(NULL));
}

int main(void) {
        null_out = fopen("/dev/null", "w");
        assert(null_out);

        test_verbs();
        test_usage_errors();
        test_help_version();
        test_global_options();
        test_update_options();

        fclose(null_out);
        printf("test-args: OK\n");
        return 0;
}
