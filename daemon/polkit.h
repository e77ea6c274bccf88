/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Authorization of mutating methods, asynchronously: polkit's CheckAuthorization over D-Bus for
 * the caller's bus name. When polkit is not on the bus (minimal systems, a test bus, a direct
 * connection) only uid 0, or the uid the daemon itself runs as, is allowed. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

/* r: 1 authorized, 0 denied, negative errno if the check itself failed. */
typedef void (*PolkitFunc)(int r, sd_bus_message *m, void *userdata);

typedef struct PolkitQuery PolkitQuery;

/* Starts the check for the sender of m; cb runs later (never from inside this call). */
int polkit_check(sd_bus_message *m, const char *action, PolkitFunc cb, void *userdata, PolkitQuery **ret);
/* Forget a query: its callback will not run. */
PolkitQuery *polkit_query_free(PolkitQuery *q);
/* Whether a CheckAuthorization error means polkit is not there (so: root only), rather than a
 * failure of polkit itself (so: denied). */
bool polkit_error_means_absent(const sd_bus_error *e);
