/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How a job talks to a device: control transfers and SET_INTERFACE, asynchronously. The daemon's
 * implementation is libusb on sd-event (usb.c); the tests plug in an in-process STM32 model.
 * Completions are never delivered from inside the submitting call. After close (by the owner of
 * the transport) no completion is delivered at all. */

#include <stddef.h>
#include <stdint.h>

typedef void (*TransportDoneFunc)(int r, size_t actual, void *userdata);

typedef struct TransportOps {
        /* A control transfer on ep0. IN: data receives up to length bytes. r in done():
         * 0, -EPIPE stall, -ETIMEDOUT, -ENODEV gone, -ECANCELED, -EIO. */
        int (*control)(void *t, uint8_t request_type, uint8_t request, uint16_t value, uint16_t index,
                       uint8_t *data, uint16_t length, unsigned timeout_ms, TransportDoneFunc done,
                       void *userdata);
        int (*set_alt)(void *t, uint8_t interface, uint8_t alt, TransportDoneFunc done, void *userdata);
        /* USB port reset (for DFU runtimes without bitWillDetach); NULL if unsupported. */
        int (*reset)(void *t, TransportDoneFunc done, void *userdata);
        /* Cancel what is in flight: each pending done() runs later with -ECANCELED (or its result). */
        void (*cancel)(void *t);
} TransportOps;

typedef struct Transport {
        const TransportOps *ops;
        void *data;
} Transport;
