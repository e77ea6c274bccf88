/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Which CheckAuthorization errors mean "polkit is not there" (then only root may), and which are a
 * refusal or a failure of polkit itself (then nobody may). The system bus answers a call to an
 * activatable but unstartable polkitd (no systemd, as in containers and the VM bench) with
 * org.freedesktop.DBus.Error.Spawn.*: that must not lock root out. */

#include "polkit.h"
#include "test-util.h"

static bool absent(const char *name) {
        sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(name, "test");
        return polkit_error_means_absent(&e);
}

TEST(test_absent) {
        assert(absent("org.freedesktop.DBus.Error.ServiceUnknown"));
        assert(absent("org.freedesktop.DBus.Error.NameHasNoOwner"));
        assert(absent("org.freedesktop.DBus.Error.UnknownObject"));
        assert(absent("org.freedesktop.DBus.Error.UnknownInterface"));
        assert(absent("org.freedesktop.DBus.Error.UnknownMethod"));
        assert(absent("org.freedesktop.DBus.Error.Spawn.ChildExited"));
        assert(absent("org.freedesktop.DBus.Error.Spawn.ExecFailed"));
        assert(absent("org.freedesktop.DBus.Error.Spawn.FailedToSetup"));
}

TEST(test_present) {
        /* polkit answered, or the bus refused the call: deny, do not fall back to root-only */
        assert(!absent("org.freedesktop.PolicyKit1.Error.Failed"));
        assert(!absent("org.freedesktop.PolicyKit1.Error.Cancelled"));
        assert(!absent("org.freedesktop.DBus.Error.AccessDenied"));
        assert(!absent("org.freedesktop.DBus.Error.NoReply"));
        assert(!absent("org.freedesktop.DBus.Error.Timeout"));
        assert(!absent("org.freedesktop.DBus.Error.SpawnX"));
        assert(!polkit_error_means_absent(NULL));
        sd_bus_error none = SD_BUS_ERROR_NULL;
        assert(!polkit_error_means_absent(&none));
}

int main(void) {
        RUN(test_absent);
        RUN(test_present);
        return 0;
}
