/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <unistd.h>

#include "log.h"
#include "macro-util.h"
#include "polkit.h"

struct PolkitQuery {
        sd_bus_message *message;
        char *action;
        PolkitFunc cb;
        void *userdata;
        sd_bus_slot *slot;
        sd_event_source *defer;
        int result;
};

PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        sd_bus_slot_unref(q->slot);
        sd_event_source_disable_unref(q->defer);
        sd_bus_message_unref(q->message);
        free(q->action);
        return mfree(q);
}

static bool uid_allowed(uid_t uid) {
        /* the daemon's own uid: a --user-bus test instance is as privileged as its caller */
        return uid == 0 || uid == geteuid();
}

static void complete(PolkitQuery *q, int r) {
        q->slot = sd_bus_slot_unref(q->slot);
        q->defer = sd_event_source_disable_unref(q->defer);
        PolkitFunc cb = q->cb;
        q->cb = NULL;
        if (cb)
                cb(r, q->message, q->userdata);
}

static int on_deferred(sd_event_source *s, void *userdata) {
        PolkitQuery *q = userdata;
        complete(q, q->result);
        return 0;
}

static int defer_result(PolkitQuery *q, int r) {
        sd_event *e = sd_bus_get_event(sd_bus_message_get_bus(q->message));
        q->result = r;
        if (!e)
                return -ENXIO;
        return sd_event_add_defer(e, &q->defer, on_deferred, q);
}

static int on_unix_user(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        uint32_t uid;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("GetConnectionUnixUser failed: %s", sd_bus_message_get_error(reply)->message);
                complete(q, -EACCES);
                return 0;
        }
        r = sd_bus_message_read(reply, "u", &uid);
        complete(q, r < 0 ? r : uid_allowed(uid));
        return 0;
}

static int fallback_uid(PolkitQuery *q) {
        sd_bus *bus = sd_bus_message_get_bus(q->message);
        const char *sender = sd_bus_message_get_sender(q->message);

        q->slot = sd_bus_slot_unref(q->slot);
        return sd_bus_call_method_async(bus, &q->slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "GetConnectionUnixUser", on_unix_user, q,
                                        "s", sender);
}

bool polkit_error_means_absent(const sd_bus_error *e) {
        if (!e || !e->name)
                return false;
        /* no polkit on this bus */
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                   SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                   SD_BUS_ERROR_UNKNOWN_METHOD))
                return true;
        /* installed but not startable, e.g. no systemd to activate polkitd: dbus-daemon answers
         * org.freedesktop.DBus.Error.Spawn.ChildExited, .ExecFailed, .FailedToSetup, ... */
        return startswith(e->name, "org.freedesktop.DBus.Error.Spawn.") != NULL;
}

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        int authorized = 0, challenge = 0, r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                if (polkit_error_means_absent(e)) {
                        log_debug("polkit is not available (%s), allowing root only.", e->name);
                        r = fallback_uid(q);
                        if (r < 0)
                                complete(q, r);
                        return 0;
                }
                log_warning("polkit CheckAuthorization failed: %s", e->message);
                complete(q, -EACCES);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        complete(q, r < 0 ? r : authorized ? 1 : 0);
        return 0;
}

int polkit_check(sd_bus_message *m, const char *action, PolkitFunc cb, void *userdata, PolkitQuery **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        PolkitQuery *q;
        int r;

        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->message = sd_bus_message_ref(m);
        q->cb = cb;
        q->userdata = userdata;
        q->action = strdup(action);
        if (!q->action) {
                polkit_query_free(q);
                return -ENOMEM;
        }

        if (!sender) {
                /* a direct connection (tests): the peer's credentials from the socket */
                _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *c = NULL;
                uid_t uid = (uid_t) -1;
                r = sd_bus_get_owner_creds(bus, SD_BUS_CREDS_EUID, &c);
                if (r >= 0)
                        r = sd_bus_creds_get_euid(c, &uid);
                r = defer_result(q, r < 0 ? -EACCES : uid_allowed(uid));
                goto finish;
        }

        r = sd_bus_message_new_method_call(bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(
                        call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender, action, 0,
                        /* AllowUserInteraction only if the caller asked for it */
                        (uint32_t) (sd_bus_message_get_allow_interactive_authorization(m) ? 1 : 0), "");
        if (r >= 0)
                /* a password prompt can take a while */
                r = sd_bus_call_async(bus, &q->slot, call, on_check_authorization, q, 120 * USEC_PER_SEC);
finish:
        if (r < 0) {
                polkit_query_free(q);
                return r;
        }
        *ret = q;
        return 0;
}
