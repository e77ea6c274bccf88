/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cleanup helpers for the daemon's library types (sd-bus, sd-event, json-c, libudev, libusb).
 * The generic ones (_cleanup_, TAKE_PTR, freep, closep) come from protocol/macro.h. */

#include <json-c/json.h>
#include <libudev.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "dfu-engine.h"
#include "dfu-image.h"
#include "macro.h"

/* sd-bus.h and sd-event.h bring sd_bus_message_unrefp(), sd_event_source_disable_unrefp() & co. */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev *, udev_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_device *, udev_device_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_monitor *, udev_monitor_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);
DEFINE_TRIVIAL_CLEANUP_FUNC(DfuImage *, dfu_image_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(DfuEngine *, dfu_engine_free);

static inline void sd_bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
#define _cleanup_bus_error_ _cleanup_(sd_bus_error_freep)

static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_INFINITY UINT64_MAX

#define strna(s) ((s) ? (s) : "n/a")
#define strempty(s) ((s) ? (s) : "")
#define isempty(s) (!(s) || !(s)[0])

#define IN_SET(x, ...)                                           \
        ({                                                       \
                bool _found = false;                             \
                const __typeof__(x) _set[] = { __VA_ARGS__ };    \
                for (size_t _i = 0; _i < ELEMENTSOF(_set); _i++) \
                        if (_set[_i] == (x)) {                   \
                                _found = true;                   \
                                break;                           \
                        }                                        \
                _found;                                          \
        })

#define RET_NERRNO(expr)                \
        ({                              \
                int _r_ = (expr);       \
                _r_ < 0 ? -errno : _r_; \
        })
