/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Configuration: the built-in rules, files and drop-ins in order, rules merged key by key across a
 * board's incarnations, and every kind of mistake reported with where it is. */

#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "test-util.h"

static DeviceSettings resolve1(Config *c, uint16_t vid, uint16_t pid, const char *serial, const char *port) {
        ConfigIdentity id = { vid, pid, serial };
        DeviceSettings s;
        assert(config_resolve(c, &id, 1, port, &s) == 0);
        return s;
}

TEST(test_builtin) {
        Config *c;
        DeviceSettings s;

        assert(config_new(&c) == 0);
        assert(config_add_builtin(c) == 0);
        assert(c->history_size == 100);
        assert(config_matches(c, 0x0483, 0xdf11, NULL, "1-1"));
        assert(config_matches(c, 0x0483, 0x5740, "X", "1-1"));
        assert(!config_matches(c, 0x1234, 0x5678, NULL, "1-1"));

        s = resolve1(c, 0x0483, 0xdf11, "ABC", "1-1");
        assert(s.matched && s.jump == JUMP_NONE && s.layouts && strstr(s.layouts[0], "Internal Flash"));
        assert(s.bootloader_timeout_usec == 10 * 1000000ULL && s.leave && s.verify &&
               s.poll_policy == DFU_POLL_EARLY);
        device_settings_done(&s);

        s = resolve1(c, 0x0483, 0x5740, NULL, "1-1");
        assert(s.matched && s.jump == JUMP_AUTO);
        device_settings_done(&s);

        s = resolve1(c, 0x1234, 0x5678, NULL, "1-1");
        assert(!s.matched && s.jump == JUMP_AUTO && !s.layouts);
        device_settings_done(&s);
        config_free(c);
}

TEST(test_merge_and_identities) {
        Config *c;
        char *error = NULL;
        DeviceSettings s;
        const char *text =
                "{ \"history-size\": 5, \"devices\": ["
                "  { \"match\": { \"vendor-id\": \"0x1209\", \"product-id\": 1 }, \"jump\": \"command\","
                "    \"jump-command\": \"BOOT\\n\", \"timeouts\": { \"bootloader\": 2.5 }, \"poll-policy\": "
                "\"early\" },"
                "  { \"match\": { \"vendor-id\": \"1209\", \"serial\": \"S1\" }, \"timeouts\": { "
                "\"bootloader\": 4 },"
                "    \"writable-regions\": [ \"Internal Flash\" ], \"leave\": false },"
                "  { \"match\": { \"vendor-id\": \"0483\", \"product-id\": \"df11\" }, \"timeouts\": { "
                "\"application\": 30,"
                "    \"busy\": 20 } },"
                "  { \"match\": { \"port\": \"3-1\" }, \"ignore\": true }"
                "] }\n\n";

        assert(config_new(&c) == 0);
        assert(config_add_builtin(c) == 0);
        assert(config_parse(c, "dfud.conf", text, strlen(text), &error) == 0);
        assert(!error);
        assert(c->history_size == 5);

        s = resolve1(c, 0x1209, 0x0001, "S2", "1-1");
        assert(s.jump == JUMP_COMMAND && streq(s.jump_command, "BOOT\n"));
        assert(s.bootloader_timeout_usec == 2500000 && s.poll_policy == DFU_POLL_EARLY && s.leave);
        assert(!s.writable_regions);
        device_settings_done(&s);

        /* the later, more specific rule overrides key by key */
        s = resolve1(c, 0x1209, 0x0001, "S1", "1-1");
        assert(s.jump == JUMP_COMMAND && s.bootloader_timeout_usec == 4000000 && !s.leave);
        assert(s.writable_regions && streq(s.writable_regions[0], "Internal Flash") &&
               !s.writable_regions[1]);
        device_settings_done(&s);

        /* a board's application and bootloader rules both apply */
        ConfigIdentity ids[2] = { { 0x1209, 0x0001, "S2" }, { 0x0483, 0xdf11, "UID" } };
        assert(config_resolve(c, ids, 2, "1-1", &s) == 0);
        assert(s.jump == JUMP_COMMAND && s.application_timeout_usec == 30000000 &&
               s.busy_timeout_usec == 20000000);
        assert(s.layouts); /* from the built-in bootloader rule */
        device_settings_done(&s);

        s = resolve1(c, 0x0483, 0xdf11, NULL, "3-1");
        assert(s.ignore);
        device_settings_done(&s);
        config_free(c);
}

TEST(test_errors) {
        static const struct {
                const char *text, *message;
        } cases[] = {
                { "", "f: not valid JSON (unexpected end at offset 0)" },
                { "{", "f: not valid JSON (unexpected end at offset 1)" },
                { "[]", "f: expected a JSON object at the top" },
                { "{} {}", "f: trailing data at offset 3" },
                { "{\"colour\": 1}", "f: colour: unknown key" },
                { "{\"history-size\": 0}", "f: history-size: must be between 1 and 10000" },
                { "{\"history-size\": \"5\"}", "f: history-size: expected an integer" },
                { "{\"devices\": {}}", "f: devices: expected an array of device rules" },
                { "{\"devices\": [1]}", "f: devices[0]: expected an object" },
                { "{\"devices\": [{}]}", "f: devices[0]: rule without \"match\"" },
                { "{\"devices\": [{\"match\": {}}]}",
                  "f: devices[0].match: a match needs at least one of vendor-id, product-id, serial, port" },
                { "{\"devices\": [{\"match\": {\"vendor-id\": \"xyz\"}}]}",
                  "f: devices[0].match.vendor-id: invalid USB id 'xyz', expected hex like \"0483\"" },
                { "{\"devices\": [{\"match\": {\"vendor-id\": 70000}}]}",
                  "f: devices[0].match.vendor-id: USB id 70000 out of range" },
                { "{\"devices\": [{\"match\": {\"product\": 1}}]}",
                  "f: devices[0].match.product: unknown match key" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"jump\": \"teleport\"}]}",
                  "f: devices[0].jump: unknown jump method 'teleport' (auto, none, detach, 1200-baud, "
                  "command)" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"jump\": \"command\"}]}",
                  "f: devices[0]: jump \"command\" needs \"jump-command\"" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"timeouts\": {\"bootloader\": -1}}]}",
                  "f: devices[0].timeouts.bootloader: timeout must be between 0 and 86400 seconds" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"timeouts\": {\"busy\": 0.01}}]}",
                  "f: devices[0].timeouts.busy: busy timeout must be at least 0.1 s" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"timeouts\": {\"nap\": 1}}]}",
                  "f: devices[0].timeouts.nap: unknown timeout (bootloader, application, device, busy)" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"poll-policy\": \"eager\"}]}",
                  "f: devices[0].poll-policy: unknown poll policy 'eager' (honour, early)" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"layouts\": [\"Internal Flash\"]}]}",
                  "f: devices[0].layouts: invalid DfuSe layout 'Internal Flash'" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"leave\": \"yes\"}]}",
                  "f: devices[0].leave: expected true or false" },
                { "{\"devices\": [{\"match\": {\"port\": \"1-1\"}, \"writable-regions\": [1]}]}",
                  "f: devices[0].writable-regions[0]: expected a string" },
                { "{\"devices\": [{\"match\": {\"serial\": \"a\\u0000b\"}}]}",
                  "f: devices[0].match.serial: string contains a NUL byte" },
        };
        Config *c;

        assert(config_new(&c) == 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *error = NULL;
                int r = config_parse(c, "f", cases[i].text, strlen(cases[i].text), &error);
                if (r != -EINVAL || !error || !streq(error, cases[i].message)) {
                        fprintf(stderr, "case %zu: r=%d error='%s'\n  expected '%s'\n", i, r,
                                error ? error : "(null)", cases[i].message);
                        abort();
                }
                free(error);
        }
        /* a file with one bad rule adds nothing, not even its good rules */
        const char *half = "{\"devices\": [{\"match\": {\"port\": \"1-1\"}}, {\"match\": 5}]}";
        assert(config_parse(c, "f", half, strlen(half), NULL) == -EINVAL);
        assert(c->n_rules == 0);
        config_free(c);
}

TEST(test_load_dir) {
        char *dir = test_tmpdir(), d[4096];
        Config *c;
        DeviceSettings s;

        snprintf(d, sizeof d, "%s/dfud.conf.d", dir);
        assert(mkdir(d, 0755) == 0);
        assert(write_text(dir, "dfud.conf",
                          "{\"devices\": [{\"match\": {\"vendor-id\": \"abcd\"}, \"jump\": \"detach\"}]}") ==
               0);
        /* applied in name order: 20 wins over 10 */
        assert(write_text(
                       d, "20-b.conf",
                       "{\"devices\": [{\"match\": {\"vendor-id\": \"abcd\"}, \"jump\": \"1200-baud\"}]}") ==
               0);
        assert(write_text(d, "10-a.conf",
                          "{\"devices\": [{\"match\": {\"vendor-id\": \"abcd\"}, \"jump\": \"none\"}]}") ==
               0);
        /* broken and ignored files */
        assert(write_text(d, "15-broken.conf", "{\"devices\": [") == 0);
        assert(write_text(d, "30-c.conf.disabled",
                          "{\"devices\": [{\"match\": {\"vendor-id\": \"abcd\"}, \"jump\": "
                          "\"detach\"}]}") == 0);

        assert(config_new(&c) == 0);
        assert(config_load(c, dir) == 1); /* one bad file, skipped */
        s = resolve1(c, 0xabcd, 1, NULL, "1-1");
        assert(s.jump == JUMP_TOUCH_1200);
        device_settings_done(&s);
        /* the built-ins are there too */
        assert(config_matches(c, 0x0483, 0xdf11, NULL, NULL));
        config_free(c);

        /* no directory at all: built-ins only */
        assert(config_new(&c) == 0);
        assert(config_load(c, "/nonexistent/dfud") == 0);
        assert(config_matches(c, 0x0483, 0xdf11, NULL, NULL));
        config_free(c);
        rm_rf(dir);
        free(dir);
}

int main(void) {
        RUN(test_builtin);
        RUN(test_merge_and_identities);
        RUN(test_errors);
        RUN(test_load_dir);
        return 0;
}
