/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>

#include "conf.h"
#include "log.h"
#include "macro-util.h"
#include "util.h"

static const char *const jump_method_table[_JUMP_METHOD_MAX] = {
        [JUMP_AUTO] = "auto",       [JUMP_NONE] = "none",
        [JUMP_DETACH] = "detach",   [JUMP_TOUCH_1200] = "1200-baud",
        [JUMP_COMMAND] = "command",
};
DEFINE_STRING_TABLE_LOOKUP(jump_method, JumpMethod);

#define DEFAULT_BOOTLOADER_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define DEFAULT_APPLICATION_TIMEOUT_USEC (15 * USEC_PER_SEC)
#define DEFAULT_BUSY_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define MAX_TIMEOUT_USEC (24 * 3600 * USEC_PER_SEC)

/* The ST system bootloader's memory map (F4 family, also what vstm32's f4-rom reports) is only a
 * default for validating images while the device is still in application mode: the real layout is
 * read from the alt strings the first time the device is seen in DFU mode and then remembered. */
#define F4_LAYOUTS                                                                         \
        "[ \"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg\", \"@Option Bytes  " \
        "/0x1FFFC000/01*016 g\", "                                                         \
        "\"@OTP Memory /0x1FFF7800/01*512 g,01*016 g\", \"@Device Feature/0xFFFF0000/01*004 g\" ]"

static const char builtin_config[] = "{ \"devices\": ["
                                     "  { \"match\": { \"vendor-id\": \"0483\", \"product-id\": \"df11\" },"
                                     "    \"name\": \"STM32 system bootloader\","
                                     "    \"jump\": \"none\","
                                     /* the ROM NAKs GETSTATUS while it erases or programs, so an early
                                      * poll returns as soon as the flash is done rather than after the
                                      * ~100 ms bwPollTimeout it reports per block; ROMs that stall an
                                      * early poll (L4) make the engine fall back to honouring it */
                                     "    \"poll-policy\": \"early\","
                                     "    \"layouts\": " F4_LAYOUTS " },"
                                     "  { \"match\": { \"vendor-id\": \"0483\", \"product-id\": \"5740\" },"
                                     "    \"name\": \"STM32 CDC application\","
                                     "    \"jump\": \"auto\","
                                     "    \"layouts\": " F4_LAYOUTS " }"
                                     "] }";

static void device_rule_done(DeviceRule *r) {
        free(r->source);
        free(r->serial);
        free(r->port);
        free(r->name);
        free(r->jump_command);
        strv_free(r->writable_regions);
        strv_free(r->layouts);
        *r = (DeviceRule) {};
}

int config_new(Config **ret) {
        Config *c = malloc(sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Config) {
                .history_size = 100,
                .max_queued_jobs = 16,
                .log_lines = 1000,
        };
        *ret = c;
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_rules; i++)
                device_rule_done(&c->rules[i]);
        free(c->rules);
        return mfree(c);
}

/* Parser state: the source name and a JSON path for error messages. */
typedef struct Parse {
        const char *source;
        char *error;
} Parse;

_printf_(3, 4) static int parse_fail(Parse *p, const char *path, const char *format, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        if (!p->error &&
            asprintf(&p->error, "%s: %s%s%s", p->source, strempty(path), isempty(path) ? "" : ": ", msg) < 0)
                p->error = NULL;
        return -EINVAL;
}

/* "devices[1].timeouts" + "." + key, shortened with "..." if it does not fit */
static void subpath(char *buf, size_t size, const char *path, const char *key) {
        int n = snprintf(buf, size, "%s.%s", path, key);
        if (n < 0 || (size_t) n >= size)
                memcpy(buf + size - 4, "...", 4);
}

static int parse_usb_id(Parse *p, const char *path, json_object *v, uint16_t *ret) {
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                if (i < 0 || i > 0xffff)
                        return parse_fail(p, path, "USB id %lld out of range", (long long) i);
                *ret = (uint16_t) i;
                return 0;
        }
        if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);
                char buf[16];
                /* USB ids are written in hex everywhere (lsusb, udev): "0483" means 0x0483 */
                if (strlen(s) > 6 ||
                    snprintf(buf, sizeof buf, "%s%s", startswith(s, "0x") ? "" : "0x", s) < 0 ||
                    parse_u16(buf, ret) < 0)
                        return parse_fail(p, path, "invalid USB id '%s', expected hex like \"0483\"", s);
                return 0;
        }
        return parse_fail(p, path, "expected a USB id (hex string or integer)");
}

static int parse_string(Parse *p, const char *path, json_object *v, size_t max, char **ret) {
        if (!json_object_is_type(v, json_type_string))
                return parse_fail(p, path, "expected a string");
        const char *s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s))
                return parse_fail(p, path, "string contains a NUL byte");
        if (strlen(s) > max)
                return parse_fail(p, path, "string longer than %zu bytes", max);
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*ret);
        *ret = d;
        return 0;
}

static int parse_bool(Parse *p, const char *path, json_object *v, int *ret) {
        if (!json_object_is_type(v, json_type_boolean))
                return parse_fail(p, path, "expected true or false");
        *ret = json_object_get_boolean(v);
        return 0;
}

static int parse_seconds(Parse *p, const char *path, json_object *v, uint64_t *ret) {
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
                return parse_fail(p, path, "expected a number of seconds");
        double d = json_object_get_double(v);
        if (!(d >= 0) || d * USEC_PER_SEC > (double) MAX_TIMEOUT_USEC)
                return parse_fail(p, path, "timeout must be between 0 and 86400 seconds");
        *ret = (uint64_t) (d * USEC_PER_SEC);
        return 0;
}

static int parse_strv(Parse *p, const char *path, json_object *v, size_t max_n, size_t max_len,
                      char ***ret) {
        _cleanup_strv_free_ char **l = NULL;

        if (!json_object_is_type(v, json_type_array))
                return parse_fail(p, path, "expected an array of strings");
        size_t n = json_object_array_length(v);
        if (n > max_n)
                return parse_fail(p, path, "more than %zu entries", max_n);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char sub[256];
                snprintf(sub, sizeof sub, "%s[%zu]", path, i);
                int r = parse_string(p, sub, json_object_array_get_idx(v, i), max_len, &l[i]);
                if (r < 0)
                        return r;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_match(Parse *p, const char *path, json_object *m, DeviceRule *rule) {
        char sub[256];
        int r;

        if (!json_object_is_type(m, json_type_object))
                return parse_fail(p, path, "expected an object");
        json_object_object_foreach (m, key, v) {
                subpath(sub, sizeof sub, path, key);
                if (streq(key, "vendor-id")) {
                        r = parse_usb_id(p, sub, v, &rule->vendor_id);
                        rule->has_vendor_id = true;
                } else if (streq(key, "product-id")) {
                        r = parse_usb_id(p, sub, v, &rule->product_id);
                        rule->has_product_id = true;
                } else if (streq(key, "serial"))
                        r = parse_string(p, sub, v, 255, &rule->serial);
                else if (streq(key, "port"))
                        r = parse_string(p, sub, v, 64, &rule->port);
                else
                        r = parse_fail(p, sub, "unknown match key");
                if (r < 0)
                        return r;
        }
        if (!rule->has_vendor_id && !rule->has_product_id && !rule->serial && !rule->port)
                return parse_fail(p, path,
                                  "a match needs at least one of vendor-id, product-id, serial, port");
        return 0;
}

static int parse_timeouts(Parse *p, const char *path, json_object *t, DeviceRule *rule) {
        char sub[256];
        int r;

        if (!json_object_is_type(t, json_type_object))
                return parse_fail(p, path, "expected an object");
        json_object_object_foreach (t, key, v) {
                subpath(sub, sizeof sub, path, key);
                if (streq(key, "bootloader")) {
                        r = parse_seconds(p, sub, v, &rule->bootloader_timeout_usec);
                        rule->has_bootloader_timeout = true;
                } else if (streq(key, "application")) {
                        r = parse_seconds(p, sub, v, &rule->application_timeout_usec);
                        rule->has_application_timeout = true;
                } else if (streq(key, "device")) {
                        r = parse_seconds(p, sub, v, &rule->device_timeout_usec);
                        rule->has_device_timeout = true;
                } else if (streq(key, "busy")) {
                        r = parse_seconds(p, sub, v, &rule->busy_timeout_usec);
                        if (r >= 0 && rule->busy_timeout_usec < 100 * USEC_PER_MSEC)
                                r = parse_fail(p, sub, "busy timeout must be at least 0.1 s");
                        rule->has_busy_timeout = true;
                } else
                        r = parse_fail(p, sub, "unknown timeout (bootloader, application, device, busy)");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_rule(Parse *p, const char *path, json_object *o, DeviceRule *rule) {
        char sub[256];
        bool have_match = false;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return parse_fail(p, path, "expected an object");
        json_object_object_foreach (o, key, v) {
                subpath(sub, sizeof sub, path, key);
                if (streq(key, "match")) {
                        r = parse_match(p, sub, v, rule);
                        have_match = true;
                } else if (streq(key, "name"))
                        r = parse_string(p, sub, v, 255, &rule->name);
                else if (streq(key, "jump")) {
                        _cleanup_free_ char *s = NULL;
                        r = parse_string(p, sub, v, 32, &s);
                        if (r >= 0) {
                                rule->jump = jump_method_from_string(s);
                                if (rule->jump < 0)
                                        r = parse_fail(p, sub,
                                                       "unknown jump method '%s' "
                                                       "(auto, none, detach, 1200-baud, command)",
                                                       s);
                        }
                } else if (streq(key, "jump-command")) {
                        r = parse_string(p, sub, v, 64, &rule->jump_command);
                        if (r >= 0 && isempty(rule->jump_command))
                                r = parse_fail(p, sub, "empty command");
                } else if (streq(key, "timeouts"))
                        r = parse_timeouts(p, sub, v, rule);
                else if (streq(key, "poll-policy")) {
                        _cleanup_free_ char *s = NULL;
                        r = parse_string(p, sub, v, 32, &s);
                        if (r >= 0) {
                                rule->poll_policy = dfu_poll_policy_from_string(s);
                                if (rule->poll_policy < 0)
                                        r = parse_fail(p, sub, "unknown poll policy '%s' (honour, early)",
                                                       s);
                        }
                } else if (streq(key, "writable-regions"))
                        r = parse_strv(p, sub, v, 64, 255, &rule->writable_regions);
                else if (streq(key, "layouts")) {
                        r = parse_strv(p, sub, v, CONFIG_MAX_LAYOUTS, DFUSE_LAYOUT_MAX_STRING - 1,
                                       &rule->layouts);
                        for (size_t i = 0; r >= 0 && rule->layouts[i]; i++) {
                                DfuseLayout *l = malloc(sizeof *l);
                                if (!l)
                                        return -ENOMEM;
                                if (dfuse_layout_parse(rule->layouts[i], l) < 0)
                                        r = parse_fail(p, sub, "invalid DfuSe layout '%s'",
                                                       rule->layouts[i]);
                                free(l);
                        }
                } else if (streq(key, "leave"))
                        r = parse_bool(p, sub, v, &rule->leave);
                else if (streq(key, "verify"))
                        r = parse_bool(p, sub, v, &rule->verify);
                else if (streq(key, "incremental"))
                        r = parse_bool(p, sub, v, &rule->incremental);
                else if (streq(key, "ignore"))
                        r = parse_bool(p, sub, v, &rule->ignore);
                else
                        r = parse_fail(p, sub, "unknown key");
                if (r < 0)
                        return r;
        }
        if (!have_match)
                return parse_fail(p, path, "rule without \"match\"");
        if (rule->jump == JUMP_COMMAND && !rule->jump_command)
                return parse_fail(p, path, "jump \"command\" needs \"jump-command\"");
        return 0;
}

static int parse_count(Parse *p, const char *path, json_object *v, unsigned min, unsigned max,
                       unsigned *ret) {
        if (!json_object_is_type(v, json_type_int))
                return parse_fail(p, path, "expected an integer");
        int64_t i = json_object_get_int64(v);
        if (i < min || i > max)
                return parse_fail(p, path, "must be between %u and %u", min, max);
        *ret = (unsigned) i;
        return 0;
}

int config_parse(Config *c, const char *source, const char *text, size_t size, char **ret_error) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        Parse p = { .source = source };
        DeviceRule *rules = NULL;
        size_t n_rules = 0;
        unsigned history_size = c->history_size, max_queued = c->max_queued_jobs, log_lines = c->log_lines;
        int r = 0;

        json_tokener *tok = json_tokener_new_ex(16);
        if (!tok)
                return -ENOMEM;
        if (size > CONFIG_MAX_FILE_SIZE || size > INT32_MAX)
                r = parse_fail(&p, NULL, "file larger than %u bytes", CONFIG_MAX_FILE_SIZE);
        else {
                root = json_tokener_parse_ex(tok, text, (int) size);
                enum json_tokener_error je = json_tokener_get_error(tok);
                if (!root || je != json_tokener_success)
                        r = parse_fail(&p, NULL, "not valid JSON (%s at offset %zu)",
                                       je == json_tokener_continue ? "unexpected end"
                                                                   : json_tokener_error_desc(je),
                                       json_tokener_get_parse_end(tok));
                else if (json_tokener_get_parse_end(tok) < size) {
                        /* allow trailing whitespace only */
                        for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                                if (!strchr(" \t\r\n", text[i])) {
                                        r = parse_fail(&p, NULL, "trailing data at offset %zu", i);
                                        break;
                                }
                }
        }
        json_tokener_free(tok);

        if (r >= 0 && !json_object_is_type(root, json_type_object))
                r = parse_fail(&p, NULL, "expected a JSON object at the top");

        if (r >= 0) {
                json_object_object_foreach (root, key, v) {
                        if (streq(key, "history-size"))
                                r = parse_count(&p, key, v, 1, 10000, &history_size);
                        else if (streq(key, "max-queued-jobs"))
                                r = parse_count(&p, key, v, 1, 1000, &max_queued);
                        else if (streq(key, "log-lines"))
                                r = parse_count(&p, key, v, 10, 100000, &log_lines);
                        else if (streq(key, "devices")) {
                                if (!json_object_is_type(v, json_type_array)) {
                                        r = parse_fail(&p, key, "expected an array of device rules");
                                        break;
                                }
                                size_t n = json_object_array_length(v);
                                if (c->n_rules + n > CONFIG_MAX_RULES) {
                                        r = parse_fail(&p, key, "more than %u device rules",
                                                       CONFIG_MAX_RULES);
                                        break;
                                }
                                rules = calloc(n ? n : 1, sizeof(DeviceRule));
                                if (!rules) {
                                        r = -ENOMEM;
                                        break;
                                }
                                for (size_t i = 0; i < n; i++) {
                                        char path[64];
                                        snprintf(path, sizeof path, "devices[%zu]", i);
                                        rules[i] = (DeviceRule) {
                                                .jump = _JUMP_METHOD_INVALID,
                                                .poll_policy = _DFU_POLL_INVALID,
                                                .leave = -1,
                                                .verify = -1,
                                                .incremental = -1,
                                                .ignore = -1,
                                        };
                                        n_rules = i + 1;
                                        if (asprintf(&rules[i].source, "%s#%zu", source, i) < 0) {
                                                rules[i].source = NULL;
                                                r = -ENOMEM;
                                                break;
                                        }
                                        r = parse_rule(&p, path, json_object_array_get_idx(v, i), &rules[i]);
                                        if (r < 0)
                                                break;
                                }
                        } else
                                r = parse_fail(&p, key, "unknown key");
                        if (r < 0)
                                break;
                }
        }

        if (r < 0) {
                for (size_t i = 0; i < n_rules; i++)
                        device_rule_done(&rules[i]);
                free(rules);
                if (ret_error)
                        *ret_error = TAKE_PTR(p.error);
                free(p.error);
                return r;
        }

        if (n_rules > 0) {
                DeviceRule *nr = realloc(c->rules, (c->n_rules + n_rules) * sizeof(DeviceRule));
                if (!nr) {
                        for (size_t i = 0; i < n_rules; i++)
                                device_rule_done(&rules[i]);
                        free(rules);
                        return -ENOMEM;
                }
                memcpy(nr + c->n_rules, rules, n_rules * sizeof(DeviceRule));
                c->rules = nr;
                c->n_rules += n_rules;
        }
        free(rules);
        c->history_size = history_size;
        c->max_queued_jobs = max_queued;
        c->log_lines = log_lines;
        return 0;
}

int config_add_builtin(Config *c) {
        return config_parse(c, "built-in", builtin_config, strlen(builtin_config), NULL);
}

static int load_file(Config *c, int dir_fd, const char *name, const char *display) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *error = NULL;
        size_t size;
        int r;

        r = read_file_at(dir_fd, name, CONFIG_MAX_FILE_SIZE, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Failed to read configuration '%s', ignoring it: %m", display);

        r = config_parse(c, display, (const char *) data, size, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Invalid configuration, ignoring the file: %s", strna(error));
        log_debug("Loaded configuration '%s'.", display);
        return 1;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int config_load(Config *c, const char *dir) {
        _cleanup_close_ int dir_fd = -EBADF, dropin_fd = -EBADF;
        char **names = NULL;
        size_t n_names = 0;
        int bad = 0, r;

        r = config_add_builtin(c);
        if (r < 0)
                return r;

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno, "Failed to open configuration directory '%s': %m", dir);
        }

        if (load_file(c, dir_fd, CONFIG_FILE_NAME, CONFIG_FILE_NAME) < 0)
                bad++;

        dropin_fd = openat(dir_fd, CONFIG_DROPIN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dropin_fd < 0)
                return bad;
        DIR *d = fdopendir(dropin_fd);
        if (!d)
                return bad;
        dropin_fd = -EBADF;
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *e = strrchr(de->d_name, '.');
                if (de->d_name[0] == '.' || !e || !streq(e, ".conf"))
                        continue;
                char **nn = realloc(names, (n_names + 1) * sizeof(char *));
                if (!nn)
                        break;
                names = nn;
                names[n_names] = strdup(de->d_name);
                if (!names[n_names])
                        break;
                n_names++;
        }
        qsort(names, n_names, sizeof(char *), name_cmp);
        for (size_t i = 0; i < n_names; i++) {
                char display[512];
                snprintf(display, sizeof display, CONFIG_DROPIN_DIR "/%s", names[i]);
                if (load_file(c, dirfd(d), names[i], display) < 0)
                        bad++;
                free(names[i]);
        }
        free(names);
        closedir(d);
        return bad;
}

static bool rule_matches(const DeviceRule *r, uint16_t vid, uint16_t pid, const char *serial,
                         const char *port) {
        if (r->has_vendor_id && r->vendor_id != vid)
                return false;
        if (r->has_product_id && r->product_id != pid)
                return false;
        if (r->serial && !streq_ptr(r->serial, serial))
                return false;
        if (r->port && !streq_ptr(r->port, port))
                return false;
        return true;
}

bool config_matches(const Config *c, uint16_t vid, uint16_t pid, const char *serial, const char *port) {
        for (size_t i = 0; i < c->n_rules; i++)
                if (rule_matches(&c->rules[i], vid, pid, serial, port))
                        return true;
        return false;
}

static int strv_copy(char **l, char ***ret) {
        size_t n = 0;
        while (l[n])
                n++;
        char **c = calloc(n + 1, sizeof(char *));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(l[i]))) {
                        strv_free(c);
                        return -ENOMEM;
                }
        strv_free(*ret);
        *ret = c;
        return 0;
}

static int strdup_replace(const char *s, char **ret) {
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*ret);
        *ret = d;
        return 0;
}

static bool rule_matches_any(const DeviceRule *r, const ConfigIdentity *ids, size_t n_ids,
                             const char *port) {
        for (size_t i = 0; i < n_ids; i++)
                if (rule_matches(r, ids[i].vendor_id, ids[i].product_id, ids[i].serial, port))
                        return true;
        return false;
}

int config_resolve(const Config *c, const ConfigIdentity *ids, size_t n_ids, const char *port,
                   DeviceSettings *ret) {
        DeviceSettings s = {
                .jump = JUMP_AUTO,
                .bootloader_timeout_usec = DEFAULT_BOOTLOADER_TIMEOUT_USEC,
                .application_timeout_usec = DEFAULT_APPLICATION_TIMEOUT_USEC,
                .device_timeout_usec = 0,
                .busy_timeout_usec = DEFAULT_BUSY_TIMEOUT_USEC,
                .poll_policy = DFU_POLL_HONOUR,
                .leave = true,
                .verify = true,
                .incremental = true,
        };
        int r = 0;

        for (size_t i = 0; i < c->n_rules && r >= 0; i++) {
                const DeviceRule *rule = &c->rules[i];
                if (!rule_matches_any(rule, ids, n_ids, port))
                        continue;
                s.matched = true;
                if (rule->name)
                        r = strdup_replace(rule->name, &s.name);
                if (rule->jump >= 0)
                        s.jump = rule->jump;
                if (r >= 0 && rule->jump_command)
                        r = strdup_replace(rule->jump_command, &s.jump_command);
                if (rule->has_bootloader_timeout)
                        s.bootloader_timeout_usec = rule->bootloader_timeout_usec;
                if (rule->has_application_timeout)
                        s.application_timeout_usec = rule->application_timeout_usec;
                if (rule->has_device_timeout)
                        s.device_timeout_usec = rule->device_timeout_usec;
                if (rule->has_busy_timeout)
                        s.busy_timeout_usec = rule->busy_timeout_usec;
                if (rule->poll_policy >= 0)
                        s.poll_policy = rule->poll_policy;
                if (r >= 0 && rule->writable_regions)
                        r = strv_copy(rule->writable_regions, &s.writable_regions);
                if (r >= 0 && rule->layouts)
                        r = strv_copy(rule->layouts, &s.layouts);
                if (rule->leave >= 0)
                        s.leave = rule->leave;
                if (rule->verify >= 0)
                        s.verify = rule->verify;
                if (rule->incremental >= 0)
                        s.incremental = rule->incremental;
                if (rule->ignore >= 0)
                        s.ignore = rule->ignore;
        }
        if (r >= 0 && s.jump == JUMP_COMMAND && !s.jump_command)
                r = strdup_replace("DFU\n", &s.jump_command);
        if (r < 0) {
                device_settings_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

void device_settings_done(DeviceSettings *s) {
        free(s->name);
        free(s->jump_command);
        strv_free(s->writable_regions);
        strv_free(s->layouts);
        *s = (DeviceSettings) {};
}
