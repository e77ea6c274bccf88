/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>

#include "registry.h"
#include "util.h"

int registry_new(Registry **ret) {
        Registry *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

Registry *registry_free(Registry *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_devices; i++)
                device_free(r->devices[i]);
        free(r->devices);
        return mfree(r);
}

Device *registry_get(const Registry *r, const char *id) {
        for (size_t i = 0; i < r->n_devices; i++)
                if (streq(r->devices[i]->id, id))
                        return r->devices[i];
        return NULL;
}

Device *registry_get_by_syspath(const Registry *r, const char *syspath) {
        for (size_t i = 0; i < r->n_devices; i++)
                if (r->devices[i]->usb && streq_ptr(r->devices[i]->usb->syspath, syspath))
                        return r->devices[i];
        return NULL;
}

int registry_lookup(const Registry *r, const char *key, Device **ret) {
        Device *found = NULL;
        unsigned n = 0;

        if (isempty(key)) {
                for (size_t i = 0; i < r->n_devices; i++)
                        if (r->devices[i]->mode != DEVICE_MODE_ABSENT) {
                                found = r->devices[i];
                                n++;
                        }
                if (n != 1)
                        return n == 0 ? -ENXIO : -ENOTUNIQ;
                *ret = found;
                return 0;
        }

        found = registry_get(r, key);
        if (found) {
                *ret = found;
                return 0;
        }
        /* serial, then port; several boards may share a serial (cheap clones), say so */
        for (int pass = 0; pass < 2 && n == 0; pass++)
                for (size_t i = 0; i < r->n_devices; i++) {
                        Device *d = r->devices[i];
                        bool m = pass == 0 ? (streq_ptr(d->app.serial, key) || streq_ptr(d->dfu.serial, key))
                                           : streq_ptr(d->port, key);
                        if (!m)
                                continue;
                        if (n > 0 &&
                            (found->mode != DEVICE_MODE_ABSENT) == (d->mode != DEVICE_MODE_ABSENT)) {
                                n++;
                                continue;
                        }
                        /* a present device wins over an absent one that used to be there */
                        if (n == 0 || d->mode != DEVICE_MODE_ABSENT)
                                found = d;
                        n = 1;
                }
        if (n == 0)
                return -ENXIO;
        if (n > 1)
                return -ENOTUNIQ;
        *ret = found;
        return 0;
}

Device *registry_match(const Registry *r, const UsbInfo *u, uint64_t now_monotonic) {
        DeviceMode mode = usb_info_mode(u);
        Device *best = NULL;

        /* 1. the same enumeration again */
        Device *d = registry_get_by_syspath(r, u->syspath);
        if (d)
                return d;

        /* 2. we made a device on this port re-enumerate */
        for (size_t i = 0; i < r->n_devices; i++) {
                d = r->devices[i];
                if (d->expect_port && streq_ptr(d->expect_port, u->port) &&
                    now_monotonic < d->expect_until && !d->usb)
                        return d;
        }

        /* 3. known by identity; a board cannot be in two places, so only absent devices qualify */
        if (!isempty(u->serial))
                for (size_t i = 0; i < r->n_devices; i++) {
                        d = r->devices[i];
                        if (d->usb)
                                continue;
                        Incarnation *same = device_incarnation(d, mode);
                        Incarnation *other = mode == DEVICE_MODE_DFU ? &d->app : &d->dfu;
                        bool m = incarnation_equal(same, u->desc.vendor_id, u->desc.product_id, u->serial) ||
                                 (!same->known && streq_ptr(other->serial, u->serial));
                        if (!m)
                                continue;
                        if (!best || (streq_ptr(d->port, u->port) && !streq_ptr(best->port, u->port)))
                                best = d;
                }
        if (best)
                return best;

        /* 4. the same socket: only if nothing we know contradicts it */
        for (size_t i = 0; i < r->n_devices; i++) {
                d = r->devices[i];
                if (d->usb || !d->port || !streq(d->port, u->port))
                        continue;
                Incarnation *same = device_incarnation(d, mode);
                if (same->known &&
                    !(same->vendor_id == u->desc.vendor_id && same->product_id == u->desc.product_id &&
                      isempty(same->serial) && isempty(u->serial)))
                        continue;
                if (!best || d->last_seen > best->last_seen)
                        best = d;
        }
        return best;
}

int registry_add(Registry *r, Device *d) {
        if (r->n_devices >= REGISTRY_MAX_DEVICES)
                return -E2BIG;
        Device **n = realloc(r->devices, (r->n_devices + 1) * sizeof(Device *));
        if (!n)
                return -ENOMEM;
        r->devices = n;
        r->devices[r->n_devices++] = d;
        return 0;
}

void registry_remove(Registry *r, Device *d) {
        for (size_t i = 0; i < r->n_devices; i++)
                if (r->devices[i] == d) {
                        memmove(r->devices + i, r->devices + i + 1,
                                (r->n_devices - i - 1) * sizeof(Device *));
                        r->n_devices--;
                        return;
                }
}

int registry_add_for(Registry *r, const UsbInfo *u, Device **ret) {
        _cleanup_free_ char *base = NULL;
        _cleanup_(device_freep) Device *d = NULL;
        char id[300];
        int k;

        if (!isempty(u->serial))
                base = id_sanitize(u->serial);
        else if (u->port && asprintf(&base, "port-%s", u->port) >= 0) {
                char *s = id_sanitize(base);
                free(base);
                base = s;
        }
        if (!base)
                return -ENOMEM;
        if (isempty(base) || strlen(base) > 64) {
                free(base);
                if (asprintf(&base, "%04x-%04x", u->desc.vendor_id, u->desc.product_id) < 0) {
                        base = NULL;
                        return -ENOMEM;
                }
        }
        snprintf(id, sizeof id, "%s", base);
        for (k = 2; registry_get(r, id); k++)
                snprintf(id, sizeof id, "%s-%d", base, k);

        k = device_new(id, &d);
        if (k < 0)
                return k;
        k = registry_add(r, d);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(d);
        return 0;
}

static json_object *incarnation_to_json(const Incarnation *i) {
        json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        json_object_object_add(o, "vendor-id", json_object_new_int(i->vendor_id));
        json_object_object_add(o, "product-id", json_object_new_int(i->product_id));
        if (i->serial)
                json_object_object_add(o, "serial", json_object_new_string(i->serial));
        return o;
}

int registry_to_json(const Registry *r, json_object **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object(),
                                                *arr = json_object_new_array();
        if (!root || !arr)
                return -ENOMEM;
        json_object_object_add(root, "version", json_object_new_int(1));
        for (size_t i = 0; i < r->n_devices; i++) {
                const Device *d = r->devices[i];
                json_object *o = json_object_new_object();
                if (!o)
                        return -ENOMEM;
                json_object_array_add(arr, o);
                json_object_object_add(o, "id", json_object_new_string(d->id));
                if (d->port)
                        json_object_object_add(o, "port", json_object_new_string(d->port));
                if (d->product)
                        json_object_object_add(o, "product", json_object_new_string(d->product));
                if (d->app.known)
                        json_object_object_add(o, "application", incarnation_to_json(&d->app));
                if (d->dfu.known)
                        json_object_object_add(o, "dfu", incarnation_to_json(&d->dfu));
                if (d->has_version)
                        json_object_object_add(o, "firmware-bcd", json_object_new_int(d->app_bcd));
                if (d->n_layouts > 0) {
                        json_object *l = json_object_new_array();
                        if (!l)
                                return -ENOMEM;
                        json_object_object_add(o, "layouts", l);
                        for (size_t k = 0; k < d->n_layouts; k++)
                                json_object_array_add(
                                        l, d->layouts[k] ? json_object_new_string(d->layouts[k]) : NULL);
                }
                json_object_object_add(o, "last-seen", json_object_new_int64((int64_t) d->last_seen));
                if (d->last_error)
                        json_object_object_add(o, "last-error", json_object_new_string(d->last_error));
                if (d->read_protected)
                        json_object_object_add(o, "read-protected", json_object_new_boolean(true));
        }
        json_object_object_add(root, "devices", TAKE_PTR(arr));
        *ret = TAKE_PTR(root);
        return 0;
}

_printf_(2, 3) static int fail(char **ret_error, const char *format, ...) {
        va_list ap;
        if (ret_error && !*ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EBADMSG;
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        const char *s = json_object_get_string(v);
        /* device-supplied strings end up in logs and on the bus */
        if (!string_is_safe(s) || strlen(s) > 1024)
                return NULL;
        return s;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t i = json_object_get_int64(v);
        if (i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 1;
}

static int incarnation_from_json(json_object *o, Incarnation *i) {
        int64_t vid = -1, pid = -1;
        if (!json_object_is_type(o, json_type_object) || get_int(o, "vendor-id", 0, 0xffff, &vid) <= 0 ||
            get_int(o, "product-id", 0, 0xffff, &pid) <= 0)
                return -EBADMSG;
        return incarnation_set(i, (uint16_t) vid, (uint16_t) pid, get_string(o, "serial"));
}

int registry_from_json(Registry *r, json_object *root, char **ret_error) {
        json_object *arr, *v;
        int64_t version = 0;
        int k;

        if (!json_object_is_type(root, json_type_object))
                return fail(ret_error, "not a JSON object");
        if (get_int(root, "version", 1, 1, &version) <= 0)
                return fail(ret_error, "unsupported or missing version");
        if (!json_object_object_get_ex(root, "devices", &arr) || !json_object_is_type(arr, json_type_array))
                return fail(ret_error, "no devices array");

        size_t n = json_object_array_length(arr);
        if (n > REGISTRY_MAX_DEVICES)
                return fail(ret_error, "too many devices");
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(arr, i);
                _cleanup_(device_freep) Device *d = NULL;
                int64_t bcd = -1, seen = 0;

                if (!json_object_is_type(o, json_type_object))
                        return fail(ret_error, "devices[%zu]: not an object", i);
                const char *id = get_string(o, "id");
                if (isempty(id) || strlen(id) > 128)
                        return fail(ret_error, "devices[%zu]: missing or invalid id", i);
                if (registry_get(r, id))
                        return fail(ret_error, "devices[%zu]: duplicate id '%s'", i, id);
                k = device_new(id, &d);
                if (k < 0)
                        return k;
                if ((get_string(o, "port") && !(d->port = strdup(get_string(o, "port")))) ||
                    (get_string(o, "product") && !(d->product = strdup(get_string(o, "product")))) ||
                    (get_string(o, "last-error") && !(d->last_error = strdup(get_string(o, "last-error")))))
                        return -ENOMEM;
                if (json_object_object_get_ex(o, "application", &v) && incarnation_from_json(v, &d->app) < 0)
                        return fail(ret_error, "devices[%zu]: invalid application identity", i);
                if (json_object_object_get_ex(o, "dfu", &v) && incarnation_from_json(v, &d->dfu) < 0)
                        return fail(ret_error, "devices[%zu]: invalid dfu identity", i);
                k = get_int(o, "firmware-bcd", 0, 0xffff, &bcd);
                if (k < 0)
                        return fail(ret_error, "devices[%zu]: invalid firmware-bcd", i);
                if (k > 0) {
                        d->has_version = true;
                        d->app_bcd = (uint16_t) bcd;
                }
                if (get_int(o, "last-seen", 0, INT64_MAX, &seen) < 0)
                        return fail(ret_error, "devices[%zu]: invalid last-seen", i);
                d->last_seen = (uint64_t) seen;
                if (json_object_object_get_ex(o, "read-protected", &v))
                        d->read_protected = json_object_get_boolean(v);
                if (json_object_object_get_ex(o, "layouts", &v)) {
                        if (!json_object_is_type(v, json_type_array) ||
                            json_object_array_length(v) > DFU_MAX_ALTS)
                                return fail(ret_error, "devices[%zu]: invalid layouts", i);
                        for (size_t a = 0; a < json_object_array_length(v); a++) {
                                json_object *s = json_object_array_get_idx(v, a);
                                d->n_layouts = a + 1;
                                if (!s)
                                        continue;
                                if (!json_object_is_type(s, json_type_string) ||
                                    json_object_get_string_len(s) >= DFUSE_LAYOUT_MAX_STRING ||
                                    !string_is_safe(json_object_get_string(s)))
                                        return fail(ret_error, "devices[%zu]: invalid layout %zu", i, a);
                                if (!(d->layouts[a] = strdup(json_object_get_string(s))))
                                        return -ENOMEM;
                        }
                }
                k = registry_add(r, d);
                if (k < 0)
                        return k;
                TAKE_PTR(d);
        }
        return 0;
}

int registry_save(const Registry *r, int dir_fd) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int k = registry_to_json(r, &o);
        if (k < 0)
                return k;
        const char *s =
                json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        return write_file_atomic_at(dir_fd, REGISTRY_FILE, s, strlen(s), 0644);
}

int registry_load(Registry *r, int dir_fd, char **ret_error) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        size_t size;
        int k;

        k = read_file_at(dir_fd, REGISTRY_FILE, 16u * 1024u * 1024u, &data, &size);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return k;

        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, (const char *) data, (int) size);
        bool ok = o && json_tokener_get_error(tok) == json_tokener_success;
        json_tokener_free(tok);
        if (!ok)
                return fail(ret_error, "%s is not valid JSON", REGISTRY_FILE);
        return registry_from_json(r, o, ret_error);
}
