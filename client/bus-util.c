/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus-util.h"
#include "dfud-dbus.h"
#include "format.h"

int bus_connect(const Args *args, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        switch (args->transport) {
        case BUS_TRANSPORT_USER:
                r = sd_bus_open_user(&bus);
                break;
        case BUS_TRANSPORT_ADDRESS:
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, args->bus_address);
                if (r < 0)
                        return r;
                r = sd_bus_set_bus_client(bus, true);
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                break;
        case BUS_TRANSPORT_SYSTEM:
        default:
                r = sd_bus_open_system(&bus);
                break;
        }
        if (r < 0)
                return r;

        /* Update/Cancel/EnterBootloader may need polkit to ask for a password; only useful when someone
         * is there to type it. */
        r = sd_bus_set_allow_interactive_authorization(bus, args->ask_password && isatty(STDIN_FILENO));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(bus);
        return 0;
}

int log_bus_error(const sd_bus_error *error, int r, const char *fmt, ...) {
        if (r >= 0)
                r = -EIO;

        if (sd_bus_error_is_set(error))
                fprintf(stderr, "dfuctl: %s (%s)\n", error->message ?: error->name, error->name);
        else {
                va_list ap;

                fputs("dfuctl: ", stderr);
                va_start(ap, fmt);
                vfprintf(stderr, fmt, ap);
                va_end(ap);
                fprintf(stderr, ": %s\n", strerror(-r));
        }
        return r;
}

static int json_from_basic(sd_bus_message *m, char type, json_object **ret) {
        union {
                uint8_t y;
                int b;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
                const char *s;
                int h;
        } v;
        json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;

        switch (type) {
        case 'y': o = json_object_new_int(v.y); break;
        case 'b': o = json_object_new_boolean(v.b); break;
        case 'n': o = json_object_new_int(v.n); break;
        case 'q': o = json_object_new_int(v.q); break;
        case 'i': o = json_object_new_int(v.i); break;
        case 'u': o = json_object_new_int64(v.u); break;
        case 'x': o = json_object_new_int64(v.x); break;
        case 't': o = json_object_new_uint64(v.t); break;
        case 'd': o = json_object_new_double(v.d); break;
        case 'h': o = json_object_new_int(v.h); break;
        case 's':
        case 'o':
        case 'g': o = json_object_new_string(v.s); break;
        default: return -EINVAL;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

int json_from_message(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENODATA;

        switch (type) {
        case SD_BUS_TYPE_VARIANT:
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                r = json_from_message(m, &o);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                break;

        case SD_BUS_TYPE_ARRAY:
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                if (contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN) {
                        /* a{kv}: an object; non-string keys are printed as text */
                        _cleanup_free_ char *entry = strndup(contents + 1, strlen(contents) - 2);
                        if (!entry)
                                return -ENOMEM;
                        o = json_object_new_object();
                        if (!o)
                                return -ENOMEM;
                        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry)) > 0) {
                                _cleanup_(json_object_putp) json_object *k = NULL, *v = NULL;

                                r = json_from_message(m, &k);
                                if (r < 0)
                                        return r;
                                r = json_from_message(m, &v);
                                if (r < 0)
                                        return r;
                                r = sd_bus_message_exit_container(m);
                                if (r < 0)
                                        return r;
                                if (json_object_object_add(o, json_object_get_string(k), TAKE_PTR(v)) < 0)
                                        return -ENOMEM;
                        }
                } else {
                        o = json_object_new_array();
                        if (!o)
                                return -ENOMEM;
                        while ((r = sd_bus_message_peek_type(m, NULL, NULL)) > 0) {
                                _cleanup_(json_object_putp) json_object *e = NULL;

                                r = json_from_message(m, &e);
                                if (r < 0)
                                        return r;
                                if (json_object_array_add(o, TAKE_PTR(e)) < 0)
                                        return -ENOMEM;
                        }
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                break;

        case SD_BUS_TYPE_STRUCT:
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                o = json_object_new_array();
                if (!o)
                        return -ENOMEM;
                while ((r = sd_bus_message_peek_type(m, NULL, NULL)) > 0) {
                        _cleanup_(json_object_putp) json_object *e = NULL;

                        r = json_from_message(m, &e);
                        if (r < 0)
                                return r;
                        if (json_object_array_add(o, TAKE_PTR(e)) < 0)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                break;

        default:
                r = json_from_basic(m, type, &o);
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int json_from_properties(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;

        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                _cleanup_(json_object_putp) json_object *v = NULL;
                _cleanup_free_ char *key = NULL;
                const char *name;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                r = json_from_message(m, &v);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                key = camel_to_snake(name);
                if (!key)
                        return -ENOMEM;
                if (json_object_object_add(o, key, TAKE_PTR(v)) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int bus_get_all_json(sd_bus *bus, const char *path, const char *iface, json_object **ret,
                     sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *p;
        int r;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", iface);
        if (r < 0)
                return r;
        r = json_from_properties(reply, &o);
        if (r < 0)
                return r;
        p = json_object_new_string(path);
        if (!p || json_object_object_add(o, "object_path", p) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(o);
        return 0;
}

int bus_message_skip_value(sd_bus_message *m) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -ENODATA;
        if (type == SD_BUS_TYPE_ARRAY || type == SD_BUS_TYPE_STRUCT || type == SD_BUS_TYPE_VARIANT ||
            type == SD_BUS_TYPE_DICT_ENTRY) {
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_peek_type(m, NULL, NULL)) > 0) {
                        r = bus_message_skip_value(m);
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        }
        return sd_bus_message_skip(m, (char[]) { type, 0 });
}

int bus_list_paths(sd_bus *bus, const char *method, char ***ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        size_t n = 0;
        const char *contents;
        char type;
        int r;

        r = sd_bus_call_method(bus, DFUD_BUS_NAME, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER, method, error,
                               &reply, NULL);
        if (r < 0)
                return r;

        paths = calloc(1, sizeof(char *));
        if (!paths)
                return -ENOMEM;

        r = sd_bus_message_peek_type(reply, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0 || type != SD_BUS_TYPE_ARRAY || contents[0] != SD_BUS_TYPE_STRUCT_BEGIN)
                return -EBADMSG;
        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, contents);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_peek_type(reply, &type, &contents)) > 0) {
                _cleanup_free_ char *found = NULL;

                r = sd_bus_message_enter_container(reply, type, contents);
                if (r < 0)
                        return r;
                while ((r = sd_bus_message_peek_type(reply, &type, NULL)) > 0) {
                        const char *path;

                        if (type != SD_BUS_TYPE_OBJECT_PATH || found) {
                                r = bus_message_skip_value(reply);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        r = sd_bus_message_read_basic(reply, type, &path);
                        if (r < 0)
                                return r;
                        found = strdup(path);
                        if (!found)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
                if (!found)
                        return -EBADMSG;

                char **p = reallocarray(paths, n + 2, sizeof(char *));
                if (!p)
                        return -ENOMEM;
                paths = p;
                paths[n++] = TAKE_PTR(found);
                paths[n] = NULL;

                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(paths);
        return 0;
}

const char *json_get_string(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return "";
        return json_object_get_string(v);
}

uint64_t json_get_u64(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_uint64(v);
}

void json_print(json_object *o, FILE *f) {
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE;

        flags |= isatty(fileno(f)) ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                   : JSON_C_TO_STRING_PLAIN;
        fprintf(f, "%s\n", json_object_to_json_string_ext(o, flags));
}
