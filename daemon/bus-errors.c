/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "bus-errors.h"
#include "dfud-dbus.h"
#include "macro.h"

const sd_bus_error_map dfud_bus_error_map[] = {
        SD_BUS_ERROR_MAP(DFUD_ERROR_DEVICE_NOT_FOUND, ENXIO),
        SD_BUS_ERROR_MAP(DFUD_ERROR_JOB_NOT_FOUND, ESRCH),
        SD_BUS_ERROR_MAP(DFUD_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(DFUD_ERROR_INVALID_IMAGE, EBADMSG),
        SD_BUS_ERROR_MAP(DFUD_ERROR_ACCESS_DENIED, EACCES),
        SD_BUS_ERROR_MAP(DFUD_ERROR_NOT_SUPPORTED, EOPNOTSUPP),
        SD_BUS_ERROR_MAP(DFUD_ERROR_TIMEOUT, ETIMEDOUT),
        SD_BUS_ERROR_MAP(DFUD_ERROR_DEVICE_GONE, ENODEV),
        SD_BUS_ERROR_MAP(DFUD_ERROR_PROTOCOL, EPROTO),
        SD_BUS_ERROR_MAP(DFUD_ERROR_CANCELLED, ECANCELED),
        SD_BUS_ERROR_MAP(DFUD_ERROR_VERIFY_FAILED, EIO),
        SD_BUS_ERROR_MAP(DFUD_ERROR_DOWNGRADE, ESTALE),
        SD_BUS_ERROR_MAP(DFUD_ERROR_TOO_MANY_JOBS, EUSERS),
        SD_BUS_ERROR_MAP_END,
};

int bus_errors_register(void) {
        static bool done = false;
        if (done)
                return 0;
        int r = sd_bus_error_add_map(dfud_bus_error_map);
        if (r >= 0)
                done = true;
        return r;
}

int bus_error_set_errnof(sd_bus_error *error, int r, const char *format, ...) {
        char msg[1024];
        va_list ap;

        if (r < 0)
                r = -r;
        errno = r;
        va_start(ap, format);
        (void) vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        for (const sd_bus_error_map *m = dfud_bus_error_map; m->code != 0 && m->name; m++)
                if (m->code == r)
                        return sd_bus_error_set(error, m->name, msg);
        return sd_bus_error_set_errnof(error, r, "%s", msg);
}
