/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfud.conf and its drop-ins: any input parses or is rejected with a message, never half-applied;
 * whatever parsed resolves for any device. */

#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c;
        char *error = NULL;
        int r;

        if (config_new(&c) < 0)
                return 0;
        size_t before = c->n_rules;
        r = config_parse(c, "fuzz.conf", (const char *) data, size, &error);
        if (r < 0) {
                if (r == -EINVAL && !error)
                        __builtin_trap(); /* every rejection says why */
                if (c->n_rules != before)
                        __builtin_trap();
        } else {
                ConfigIdentity ids[2] = { { 0x0483, 0xdf11, "X" }, { 0x0483, 0x5740, NULL } };
                DeviceSettings s;
                if (config_resolve(c, ids, 2, "1-1", &s) >= 0)
                        device_settings_done(&s);
        }
        free(error);
        config_free(c);
        return 0;
}
