/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Configuration: JSON in /etc/dfud/dfud.conf and /etc/dfud/dfud.conf.d/\*.conf (sorted by name),
 * after built-in defaults. Each file may set global keys and append device rules; every rule whose
 * match fits a device applies, later rules override earlier ones key by key. See dfud.conf(5):
 *
 *   { "history-size": 100,
 *     "devices": [ { "match": { "vendor-id": "0483", "product-id": "5740", "serial": "…", "port": "1-1" },
 *                    "name": "…", "jump": "auto|none|detach|1200-baud|command", "jump-command": "DFU\n",
 *                    "timeouts": { "bootloader": 10, "application": 15, "device": 0, "busy": 10 },
 *                    "poll-policy": "honour|early", "writable-regions": [ "Internal Flash" ],
 *                    "layouts": [ "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg" ],
 *                    "leave": true, "verify": true, "incremental": true, "ignore": false } ] }
 *
 * USB ids are hex ("0483", "0x0483") or JSON integers; timeouts are seconds (0 = wait forever). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "dfu-engine.h"
#include "macro.h"

#define CONFIG_FILE_NAME "dfud.conf"
#define CONFIG_DROPIN_DIR "dfud.conf.d"
#define CONFIG_MAX_FILE_SIZE (1024u * 1024u)
#define CONFIG_MAX_RULES 1024
#define CONFIG_MAX_LAYOUTS 8

typedef enum JumpMethod {
        JUMP_AUTO, /* DFU_DETACH if the app has a DFU runtime interface, else 1200-baud if it has a tty */
        JUMP_NONE, /* cannot leave the application by itself: updates need the device in DFU mode */
        JUMP_DETACH,
        JUMP_TOUCH_1200,
        JUMP_COMMAND,
        _JUMP_METHOD_MAX,
        _JUMP_METHOD_INVALID = -EINVAL,
} JumpMethod;

const char *jump_method_to_string(JumpMethod m);
JumpMethod jump_method_from_string(const char *s);

/* What a rule says; unset fields (has_* false, NULL, negative) leave earlier values alone. */
typedef struct DeviceRule {
        char *source; /* "dfud.conf.d/10-lab.conf#2" for messages */
        bool has_vendor_id, has_product_id;
        uint16_t vendor_id, product_id;
        char *serial, *port; /* NULL = any */

        char *name;
        JumpMethod jump; /* _JUMP_METHOD_INVALID = unset */
        char *jump_command;
        uint64_t bootloader_timeout_usec, application_timeout_usec, device_timeout_usec, busy_timeout_usec;
        bool has_bootloader_timeout, has_application_timeout, has_device_timeout, has_busy_timeout;
        DfuPollPolicy poll_policy;              /* _DFU_POLL_INVALID = unset */
        char **writable_regions;                /* NULL = unset; empty = nothing writable */
        char **layouts;                         /* per alt; NULL = unset */
        int leave, verify, incremental, ignore; /* -1 unset, else bool */
} DeviceRule;

/* The resolved settings for one device. */
typedef struct DeviceSettings {
        bool matched; /* some rule (not just the global defaults) matched */
        bool ignore;
        char *name;
        JumpMethod jump;
        char *jump_command;
        uint64_t bootloader_timeout_usec, application_timeout_usec, device_timeout_usec, busy_timeout_usec;
        DfuPollPolicy poll_policy;
        char **writable_regions; /* NULL = every writable flash region */
        char **layouts;          /* defaults for a device never seen in DFU mode */
        bool leave, verify, incremental;
} DeviceSettings;

typedef struct Config {
        unsigned history_size;
        unsigned max_queued_jobs;
        unsigned log_lines;
        size_t n_rules;
        DeviceRule *rules;
} Config;

int config_new(Config **ret); /* empty: global defaults, no rules */
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* The built-in rules (ST ROM bootloader 0483:df11, vstm32 application 0483:5740). */
int config_add_builtin(Config *c);

/* Parse one JSON document and append its rules. On error nothing is added, -EINVAL (or -ENOMEM)
 * is returned and *ret_error (if given) says what and where: "dfud.conf: devices[1].timeouts.bootloader:
 * expected a number of seconds". */
int config_parse(Config *c, const char *source, const char *text, size_t size, char **ret_error);

/* config_add_builtin + dir/dfud.conf + dir/dfud.conf.d/\*.conf. Invalid files are logged and skipped
 * (a typo in a drop-in must not take every device offline); returns how many files were bad. */
int config_load(Config *c, const char *dir);

/* Does any rule name this device? (CDC devices are only of interest when configured.) */
bool config_matches(const Config *c, uint16_t vid, uint16_t pid, const char *serial, const char *port);

/* One identity of a board (application or bootloader incarnation). */
typedef struct ConfigIdentity {
        uint16_t vendor_id, product_id;
        const char *serial;
} ConfigIdentity;

/* A rule applies to a board if it matches any of its identities: the application's rule (jump
 * method) and the bootloader's rule (poll policy, layouts) both hold during one update. */
int config_resolve(const Config *c, const ConfigIdentity *ids, size_t n_ids, const char *port,
                   DeviceSettings *ret);
void device_settings_done(DeviceSettings *s);
