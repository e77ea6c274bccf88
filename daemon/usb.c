/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <libusb.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/time.h>

#include "log.h"
#include "usb.h"

typedef struct UsbXfer UsbXfer;

struct UsbContext {
        libusb_context *ctx;
        /* libusb calls completion callbacks with its open_devs_lock held (linux_usbfs
         * op_handle_events), where libusb_close() or libusb_wrap_sys_device() would deadlock. So the
         * callback only queues the transfer here, and dispatch runs our callbacks afterwards. */
        bool dispatching;
        UsbXfer *completed, *completed_tail;
        UsbDevice *graveyard; /* closed while dispatching, released after */
        pthread_mutex_t lock; /* guards `finished`, written by reset threads */
        UsbXfer *finished;    /* resets completed by their thread, reported from dispatch */
};

struct UsbDevice {
        UsbContext *context;
        libusb_device_handle *handle;
        int fd;
        bool closed;
        uint32_t claimed; /* bit mask of claimed interfaces (< 32) */
        UsbXfer *pending; /* in flight (transfers and resets) */
        uint16_t langid;  /* first language of the string descriptors, 0 = not read yet */
        UsbDevice *next_dead;
};

struct UsbXfer {
        UsbDevice *device;
        struct libusb_transfer *transfer; /* NULL for a reset */
        TransportDoneFunc done;
        UsbStringFunc string_cb;
        uint8_t string_index;
        void *userdata;
        uint8_t *in_buf; /* where IN data goes */
        uint16_t length;
        int reset_result;
        bool completing; /* finished: not to be cancelled, waiting for (or in) its callback */
        int result;
        size_t actual;
        UsbXfer *next_done;     /* in the context's completed list */
        UsbXfer *next;          /* in the device's pending list */
        UsbXfer *next_finished; /* in the context's finished list (resets) */
};

int usb_error_to_errno(int e) {
        switch (e) {
        case LIBUSB_SUCCESS:
                return 0;
        case LIBUSB_ERROR_IO:
                return -EIO;
        case LIBUSB_ERROR_INVALID_PARAM:
                return -EINVAL;
        case LIBUSB_ERROR_ACCESS:
                return -EACCES;
        case LIBUSB_ERROR_NO_DEVICE:
                return -ENODEV;
        case LIBUSB_ERROR_NOT_FOUND:
                return -ENOENT;
        case LIBUSB_ERROR_BUSY:
                return -EBUSY;
        case LIBUSB_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case LIBUSB_ERROR_OVERFLOW:
                return -EOVERFLOW;
        case LIBUSB_ERROR_PIPE:
                return -EPIPE;
        case LIBUSB_ERROR_INTERRUPTED:
                return -EINTR;
        case LIBUSB_ERROR_NO_MEM:
                return -ENOMEM;
        case LIBUSB_ERROR_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        default:
                return -EIO;
        }
}

static int transfer_status_to_errno(enum libusb_transfer_status s) {
        switch (s) {
        case LIBUSB_TRANSFER_COMPLETED:
                return 0;
        case LIBUSB_TRANSFER_TIMED_OUT:
                return -ETIMEDOUT;
        case LIBUSB_TRANSFER_CANCELLED:
                return -ECANCELED;
        case LIBUSB_TRANSFER_STALL:
                return -EPIPE;
        case LIBUSB_TRANSFER_NO_DEVICE:
                return -ENODEV;
        case LIBUSB_TRANSFER_OVERFLOW:
                return -EOVERFLOW;
        default:
                return -EIO;
        }
}

static void on_libusb_log(libusb_context *ctx, enum libusb_log_level level, const char *str) {
        size_t n = strlen(str);
        while (n > 0 && str[n - 1] == '\n')
                n--;
        /* libusb warns about routine things (a device gone mid-transfer): only its errors are ours */
        log_full(level <= LIBUSB_LOG_LEVEL_ERROR ? LOG_ERR : LOG_DEBUG, "libusb: %.*s", (int) n, str);
}

int usb_context_new(UsbContext **ret) {
        _cleanup_free_ UsbContext *c = calloc(1, sizeof *c);
        int r;

        if (!c)
                return -ENOMEM;
        /* udev tells us about devices; libusb must not scan or watch on its own */
        r = libusb_set_option(NULL, LIBUSB_OPTION_NO_DEVICE_DISCOVERY);
        if (r < 0)
                return usb_error_to_errno(r);
        r = libusb_init(&c->ctx);
        if (r < 0)
                return usb_error_to_errno(r);
        libusb_set_log_cb(c->ctx, on_libusb_log, LIBUSB_LOG_CB_CONTEXT);
        (void) libusb_set_option(c->ctx, LIBUSB_OPTION_LOG_LEVEL,
                                 log_get_max_level() >= LOG_DEBUG ? LIBUSB_LOG_LEVEL_WARNING
                                                                  : LIBUSB_LOG_LEVEL_ERROR);
        pthread_mutex_init(&c->lock, NULL);
        *ret = TAKE_PTR(c);
        return 0;
}

UsbContext *usb_context_free(UsbContext *c) {
        if (!c)
                return NULL;
        libusb_set_pollfd_notifiers(c->ctx, NULL, NULL, NULL);
        libusb_exit(c->ctx);
        pthread_mutex_destroy(&c->lock);
        return mfree(c);
}

typedef struct Watch {
        UsbFdAddedFunc added;
        UsbFdRemovedFunc removed;
        void *userdata;
} Watch;
static Watch watch; /* libusb's notifiers take one userdata; one context per process */

static void on_pollfd_added(int fd, short events, void *userdata) {
        if (watch.added)
                watch.added(fd, events, watch.userdata);
}

static void on_pollfd_removed(int fd, void *userdata) {
        if (watch.removed)
                watch.removed(fd, watch.userdata);
}

int usb_context_watch(UsbContext *c, UsbFdAddedFunc added, UsbFdRemovedFunc removed, void *userdata) {
        const struct libusb_pollfd **fds;

        watch = (Watch) { added, removed, userdata };
        libusb_set_pollfd_notifiers(c->ctx, on_pollfd_added, on_pollfd_removed, NULL);
        fds = libusb_get_pollfds(c->ctx);
        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; fds[i]; i++)
                added(fds[i]->fd, fds[i]->events, userdata);
        libusb_free_pollfds(fds);
        return 0;
}

bool usb_context_needs_timer(UsbContext *c) {
        return !libusb_pollfds_handle_timeouts(c->ctx);
}

uint64_t usb_context_get_timeout(UsbContext *c) {
        struct timeval tv;
        int r = libusb_get_next_timeout(c->ctx, &tv);
        if (r <= 0)
                return USEC_INFINITY;
        return (uint64_t) tv.tv_sec * USEC_PER_SEC + (uint64_t) tv.tv_usec;
}

static void device_maybe_free(UsbDevice *d);
static void device_really_free(UsbDevice *d);
static void deliver(UsbXfer *x);

static void xfer_unlink(UsbXfer *x) {
        UsbDevice *d = x->device;
        for (UsbXfer **i = &d->pending; *i; i = &(*i)->next)
                if (*i == x) {
                        *i = x->next;
                        break;
                }
}

static void xfer_free(UsbXfer *x) {
        if (x->transfer)
                libusb_free_transfer(x->transfer); /* frees the buffer too (LIBUSB_TRANSFER_FREE_BUFFER) */
        free(x);
}

int usb_context_dispatch(UsbContext *c) {
        struct timeval tv = {};
        UsbXfer *done;
        int r;

        c->dispatching = true;
        r = libusb_handle_events_timeout_completed(c->ctx, &tv, NULL);
        c->dispatching = false;
        if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED && r != LIBUSB_ERROR_TIMEOUT)
                log_debug("libusb_handle_events failed: %s", libusb_error_name(r));
        /* our callbacks, in completion order, outside libusb's locks */
        while (c->completed) {
                UsbXfer *x = c->completed;
                c->completed = x->next_done;
                if (!c->completed)
                        c->completed_tail = NULL;
                deliver(x);
        }
        while (c->graveyard) {
                UsbDevice *d = c->graveyard;
                c->graveyard = d->next_dead;
                device_really_free(d);
        }

        pthread_mutex_lock(&c->lock);
        done = TAKE_PTR(c->finished);
        pthread_mutex_unlock(&c->lock);
        while (done) {
                UsbXfer *x = done;
                UsbDevice *d = x->device;
                done = x->next_finished;
                x->completing = true;
                if (!d->closed && x->done)
                        x->done(x->reset_result, 0, x->userdata);
                xfer_unlink(x);
                xfer_free(x);
                device_maybe_free(d);
        }
        return 0;
}

int usb_device_open(UsbContext *c, const char *devnode, UsbDevice **ret) {
        _cleanup_free_ UsbDevice *d = calloc(1, sizeof *d);
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!d)
                return -ENOMEM;
        fd = open(devnode, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* reads the cached descriptors from usbfs: no USB traffic, does not block */
        r = libusb_wrap_sys_device(c->ctx, (intptr_t) fd, &d->handle);
        if (r < 0)
                return usb_error_to_errno(r);
        (void) libusb_set_auto_detach_kernel_driver(d->handle, 1);
        d->context = c;
        d->fd = TAKE_FD(fd);
        *ret = TAKE_PTR(d);
        return 0;
}

static void device_really_free(UsbDevice *d) {
        usb_device_release(d);
        libusb_close(d->handle);
        safe_close(d->fd);
        free(d);
}

static void device_maybe_free(UsbDevice *d) {
        if (!d->closed || d->pending)
                return;
        if (d->context->dispatching) {
                /* never libusb_close() from inside a completion callback of the same context */
                for (UsbDevice *i = d->context->graveyard; i; i = i->next_dead)
                        if (i == d)
                                return;
                d->next_dead = d->context->graveyard;
                d->context->graveyard = d;
                return;
        }
        device_really_free(d);
}

UsbDevice *usb_device_close(UsbDevice *d) {
        if (!d)
                return NULL;
        if (d->closed)
                return NULL;
        d->closed = true;
        for (UsbXfer *x = d->pending; x; x = x->next)
                if (x->transfer && !x->completing)
                        (void) libusb_cancel_transfer(x->transfer);
        device_maybe_free(d);
        return NULL;
}

int usb_device_claim(UsbDevice *d, uint8_t interface) {
        if (interface >= 32)
                return -EINVAL;
        if (d->claimed & (1u << interface))
                return 0;
        /* USBDEVFS_CLAIMINTERFACE: an ioctl without USB traffic */
        int r = libusb_claim_interface(d->handle, interface);
        if (r < 0)
                return usb_error_to_errno(r);
        d->claimed |= 1u << interface;
        return 0;
}

void usb_device_release(UsbDevice *d) {
        for (int i = 0; i < 32; i++)
                if (d->claimed & (1u << i))
                        (void) libusb_release_interface(d->handle, i);
        d->claimed = 0;
}

static void LIBUSB_CALL on_transfer(struct libusb_transfer *t) {
        UsbXfer *x = t->user_data;
        UsbContext *c = x->device->context;

        x->completing = true;
        x->result = transfer_status_to_errno(t->status);
        x->actual = t->actual_length > 0 ? (size_t) t->actual_length : 0;
        x->next_done = NULL;
        if (c->completed_tail)
                c->completed_tail->next_done = x;
        else
                c->completed = x;
        c->completed_tail = x;
}

static void deliver(UsbXfer *x) {
        UsbDevice *d = x->device;
        struct libusb_transfer *t = x->transfer;
        int r = x->result;
        size_t actual = x->actual;

        if (!d->closed) {
                if (x->in_buf && actual > 0)
                        memcpy(x->in_buf, libusb_control_transfer_get_data(t),
                               MIN(actual, (size_t) x->length));
                if (x->string_cb) {
                        uint8_t *p = libusb_control_transfer_get_data(t);
                        char s[128];
                        size_t n = 0;
                        if (r >= 0 && (actual < 2 || p[1] != LIBUSB_DT_STRING || p[0] > actual))
                                r = -EBADMSG;
                        if (r >= 0 && x->string_index == 0) {
                                /* language list: remember the first */
                                d->langid = actual >= 4 ? (uint16_t) (p[2] | p[3] << 8) : 0x0409;
                        } else if (r >= 0) {
                                /* UTF-16LE to printable ASCII; anything else becomes '?' */
                                for (size_t i = 2; i + 1 < p[0] && n < sizeof s - 1; i += 2) {
                                        uint16_t ch = (uint16_t) (p[i] | p[i + 1] << 8);
                                        s[n++] = ch >= ' ' && ch < 127 ? (char) ch : '?';
                                }
                        }
                        s[n] = 0;
                        x->string_cb(r, r >= 0 ? s : NULL, x->userdata);
                } else if (x->done)
                        x->done(r, actual, x->userdata);
        }
        xfer_unlink(x);
        xfer_free(x);
        device_maybe_free(d);
}

static int submit_control(UsbDevice *d, uint8_t request_type, uint8_t request, uint16_t value,
                          uint16_t index, const uint8_t *out, uint16_t length, unsigned timeout_ms,
                          UsbXfer **ret) {
        _cleanup_free_ UsbXfer *x = calloc(1, sizeof *x);
        uint8_t *buf;
        int r;

        if (d->closed)
                return -ENODEV;
        if (!x)
                return -ENOMEM;
        buf = malloc(LIBUSB_CONTROL_SETUP_SIZE + length);
        if (!buf)
                return -ENOMEM;
        x->transfer = libusb_alloc_transfer(0);
        if (!x->transfer) {
                free(buf);
                return -ENOMEM;
        }
        libusb_fill_control_setup(buf, request_type, request, value, index, length);
        if (!(request_type & LIBUSB_ENDPOINT_IN) && length > 0)
                memcpy(buf + LIBUSB_CONTROL_SETUP_SIZE, out, length);
        libusb_fill_control_transfer(x->transfer, d->handle, buf, on_transfer, x, timeout_ms);
        x->transfer->flags = LIBUSB_TRANSFER_FREE_BUFFER;
        x->device = d;
        x->length = length;

        r = libusb_submit_transfer(x->transfer);
        if (r < 0) {
                libusb_free_transfer(x->transfer);
                return usb_error_to_errno(r);
        }
        x->next = d->pending;
        d->pending = x;
        *ret = TAKE_PTR(x);
        return 0;
}

static int transport_control(void *t, uint8_t request_type, uint8_t request, uint16_t value, uint16_t index,
                             uint8_t *data, uint16_t length, unsigned timeout_ms, TransportDoneFunc done,
                             void *userdata) {
        UsbDevice *d = t;
        UsbXfer *x;
        int r = submit_control(d, request_type, request, value, index, data, length, timeout_ms, &x);
        if (r < 0)
                return r;
        x->done = done;
        x->userdata = userdata;
        if (request_type & LIBUSB_ENDPOINT_IN)
                x->in_buf = data;
        return 0;
}

static int transport_set_alt(void *t, uint8_t interface, uint8_t alt, TransportDoneFunc done,
                             void *userdata) {
        /* SET_INTERFACE as a plain async control request: libusb_set_interface_alt_setting() is a
         * synchronous ioctl that would block the loop for a whole control transfer */
        return transport_control(
                t, LIBUSB_ENDPOINT_OUT | LIBUSB_REQUEST_TYPE_STANDARD | LIBUSB_RECIPIENT_INTERFACE,
                LIBUSB_REQUEST_SET_INTERFACE, alt, interface, NULL, 0, 5000, done, userdata);
}

static void *reset_thread(void *p) {
        UsbXfer *x = p;
        UsbDevice *d = x->device;
        UsbContext *c = d->context;

        /* USBDEVFS_RESET blocks until the device has been re-enumerated: never on the loop */
        x->reset_result = usb_error_to_errno(libusb_reset_device(d->handle));
        if (x->reset_result == -ENOENT) /* re-enumerated as a different device: what we wanted */
                x->reset_result = 0;
        pthread_mutex_lock(&c->lock);
        x->next_finished = c->finished;
        c->finished = x;
        pthread_mutex_unlock(&c->lock);
        libusb_interrupt_event_handler(c->ctx);
        return NULL;
}

static int transport_reset(void *t, TransportDoneFunc done, void *userdata) {
        UsbDevice *d = t;
        pthread_attr_t attr;
        pthread_t thread;
        int r;

        if (d->closed)
                return -ENODEV;
        UsbXfer *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = (UsbXfer) { .device = d, .done = done, .userdata = userdata };
        /* pending keeps the device alive while the thread runs; usb_context_dispatch() unlinks it */
        x->next = d->pending;
        d->pending = x;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&thread, &attr, reset_thread, x);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                xfer_unlink(x);
                free(x);
                return r;
        }
        return 0;
}

static void transport_cancel(void *t) {
        UsbDevice *d = t;
        for (UsbXfer *x = d->pending; x; x = x->next)
                if (x->transfer && !x->completing)
                        (void) libusb_cancel_transfer(x->transfer);
}

static const TransportOps usb_transport_ops = {
        .control = transport_control,
        .set_alt = transport_set_alt,
        .reset = transport_reset,
        .cancel = transport_cancel,
};

Transport usb_device_transport(UsbDevice *d) {
        return (Transport) { .ops = &usb_transport_ops, .data = d };
}

int usb_device_get_string(UsbDevice *d, uint8_t index, UsbStringFunc cb, void *userdata) {
        UsbXfer *x;
        int r;

        /* index 0 is the language list: read once, internally, before the first string */
        r = submit_control(d, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                           (uint16_t) (LIBUSB_DT_STRING << 8 | index),
                           index == 0 ? 0 : (d->langid ? d->langid : 0x0409), NULL, 255, 2000, &x);
        if (r < 0)
                return r;
        x->string_cb = cb;
        x->string_index = index;
        x->userdata = userdata;
        return 0;
}
