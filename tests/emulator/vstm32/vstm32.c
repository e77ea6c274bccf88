/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vstm32: an emulated STM32 on the real Linux USB stack. It attaches itself to a vhci_hcd port
 * over a socketpair and serves USB/IP: standard requests and descriptors here, every DFU/DfuSe
 * behaviour in the shared model (stm32-model.h), the application side (CDC ACM + DFU runtime,
 * jump triggers) here. Re-enumeration = close the socket, re-attach on the same port.
 * Single-threaded: epoll over the USB/IP socket, a timerfd (delayed replies, re-attach) and a
 * signalfd. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dfu.h"
#include "macro.h"
#include "stm32-model.h"
#include "usb-desc.h"
#include "usbip.h"

#define NEVER UINT64_MAX
#define JUMP_DETACH 0x1u
#define JUMP_1200 0x2u
#define JUMP_COMMAND 0x4u
#define JUMP_ACK_DELAY_US 20000u /* let the ack of the triggering request reach the host first */
#define PORT_POLL_US 20000u

typedef struct Reply {
        struct Reply *next;
        uint32_t seqnum;
        int status;
        bool in;
        uint64_t due_us; /* NEVER: held until unlinked (pending bulk IN, hung device) */
        size_t actual;
        uint8_t data[];
} Reply;

typedef struct Options {
        const char *profile;
        const char *flash;
        const char *serial;
        double time_scale;
        char **faults;
        size_t n_faults;
        int port;
        const char *bootloader;
        unsigned jump;
        char *command;
        const char *stats;
        unsigned reattach_ms;
        bool verbose;
} Options;

typedef struct Vstm32 {
        Options opt;
        const Stm32Profile *boot_profile; /* the bootloader: memory layout, what jumps land in */
        const Stm32Profile *app_profile;  /* may be NULL (no "app" in the profile table) */
        char serial[13];
        uint8_t *memory;
        size_t memory_size;
        unsigned port;

        int epoll_fd, timer_fd, signal_fd, sock_fd;

        /* The current enumeration. */
        const Stm32Profile *current;
        bool is_app;
        uint16_t app_version;
        UsbDescriptors desc;
        Stm32Model *model;
        bool faults_applied;
        uint8_t configuration;
        uint8_t alt[4];
        Reply *replies;
        uint64_t ep0_due_us;
        uint64_t disconnect_at_us; /* a jump/detach: drop off then, NEVER if none */
        uint64_t reattach_at_us;   /* down: plug in again then, NEVER if none */
        const Stm32Profile *next_profile;
        uint16_t next_version;
        const char *disconnect_reason;

        /* CDC ACM */
        uint8_t line_coding[7];
        uint16_t control_lines;
        char cmd_window[64];
        size_t cmd_len;

        /* Statistics: finished models plus our own counters. */
        Stm32Stats totals;
        uint64_t usb_control_transfers, bulk_out_bytes, enumerations, disconnects, unlinks;
} Vstm32;

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

_printf_(1, 2) static void logf_(const char *fmt, ...) {
        va_list ap;
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        fprintf(stderr, "vstm32[%ld.%03ld]: ", (long) ts.tv_sec, ts.tv_nsec / 1000000);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}
#define log_info(...) logf_(__VA_ARGS__)
#define log_debug(v, ...)                     \
        do {                                  \
                if ((v)->opt.verbose)         \
                        logf_(__VA_ARGS__);   \
        } while (0)

/* ---- statistics ---- */

static void stats_add(Stm32Stats *a, const Stm32Stats *b) {
        a->control_transfers += b->control_transfers;
        a->busy_us += b->busy_us;
        a->bytes_written += b->bytes_written;
        a->bytes_read += b->bytes_read;
        a->sectors_erased += b->sectors_erased;
        a->early_poll_stalls += b->early_poll_stalls;
        a->set_address_commands += b->set_address_commands;
        a->erase_commands += b->erase_commands;
        a->getstatus_requests += b->getstatus_requests;
        a->held_us += b->held_us;
}

static void stats_write(Vstm32 *v) {
        _cleanup_free_ char *tmp = NULL;
        Stm32Stats s = v->totals;
        FILE *f;

        if (!v->opt.stats)
                return;
        if (v->model) {
                Stm32Stats cur;
                stm32_model_get_stats(v->model, &cur);
                stats_add(&s, &cur);
        }
        if (asprintf(&tmp, "%s.tmp", v->opt.stats) < 0)
                return;
        f = fopen(tmp, "we");
        if (!f) {
                log_info("cannot write %s: %m", tmp);
                return;
        }
        const struct {
                const char *name;
                uint64_t value;
        } fields[] = {
                { "enumerations", v->enumerations },
                { "disconnects", v->disconnects },
                { "usb_control_transfers", v->usb_control_transfers },
                { "control_transfers", s.control_transfers },
                { "busy_us", s.busy_us },
                { "held_us", s.held_us },
                { "bytes_written", s.bytes_written },
                { "bytes_read", s.bytes_read },
                { "sectors_erased", s.sectors_erased },
                { "erase_commands", s.erase_commands },
                { "set_address_commands", s.set_address_commands },
                { "getstatus_requests", s.getstatus_requests },
                { "early_poll_stalls", s.early_poll_stalls },
                { "bulk_out_bytes", v->bulk_out_bytes },
                { "unlinks", v->unlinks },
        };
        fprintf(f, "{\"profile\": \"%s\"", v->current ? v->current->name : "none");
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                fprintf(f, ", \"%s\": %" PRIu64, fields[i].name, fields[i].value);
        fputs("}\n", f);
        if (fclose(f) != 0 || rename(tmp, v->opt.stats) < 0)
                log_info("cannot write %s: %m", v->opt.stats);
}

/* ---- replies and the timer ---- */

static void replies_free(Vstm32 *v) {
        while (v->replies) {
                Reply *r = v->replies;
                v->replies = r->next;
                free(r);
        }
}

static void timer_arm(Vstm32 *v) {
        uint64_t at = MIN(v->disconnect_at_us, v->reattach_at_us);
        struct itimerspec its = {};

        if (v->replies)
                at = MIN(at, v->replies->due_us);
        if (v->model && v->sock_fd >= 0) {
                uint64_t t;
                if (stm32_model_disconnect_pending(v->model, &t))
                        at = MIN(at, t);
        }
        if (at != NEVER) {
                /* 0 would disarm the timer. */
                at = MAX(at, 1);
                its.it_value.tv_sec = (time_t) (at / 1000000u);
                its.it_value.tv_nsec = (long) (at % 1000000u) * 1000;
        }
        if (timerfd_settime(v->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                log_info("timerfd_settime: %m");
}

/* Sorted by due time, stable, so replies on one endpoint never overtake each other. */
static int reply_queue(Vstm32 *v, uint32_t seqnum, int status, bool in, const void *data, size_t actual,
                       uint64_t due_us) {
        Reply *r, **p;

        /* OUT replies carry only actual_length, no data. */
        r = malloc(sizeof(Reply) + (in ? actual : 0));
        if (!r)
                return -ENOMEM;
        *r = (Reply) { .seqnum = seqnum, .status = status, .in = in, .due_us = due_us, .actual = actual };
        if (in && actual > 0 && data)
                memcpy(r->data, data, actual);
        for (p = &v->replies; *p && (*p)->due_us <= due_us; p = &(*p)->next)
                ;
        r->next = *p;
        *p = r;
        return 0;
}

/* ep0 is one pipe: a reply never goes out before the previous one (a busy device NAKs them all). */
static int reply_control(Vstm32 *v, uint32_t seqnum, int status, bool in, const void *data, size_t actual,
                         uint64_t due_us) {
        due_us = MAX(due_us, v->ep0_due_us);
        v->ep0_due_us = due_us;
        return reply_queue(v, seqnum, status, in, data, actual, due_us);
}

static int replies_flush(Vstm32 *v, uint64_t now) {
        while (v->replies && v->replies->due_us <= now) {
                Reply *r = v->replies;
                int k;

                v->replies = r->next;
                k = usbip_send_ret_submit(v->sock_fd, r->seqnum, r->status, r->in, r->data, r->actual);
                free(r);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* ---- plugging ---- */

static void unplug(Vstm32 *v, const char *reason) {
        if (v->sock_fd >= 0) {
                (void) epoll_ctl(v->epoll_fd, EPOLL_CTL_DEL, v->sock_fd, NULL);
                v->sock_fd = safe_close(v->sock_fd);
        }
        replies_free(v);
        v->disconnects++;
        /* A reboot starts a fresh model (state machine back to its power-on state). */
        if (v->model) {
                Stm32Stats s;
                stm32_model_get_stats(v->model, &s);
                stats_add(&v->totals, &s);
                v->model = stm32_model_free(v->model);
        }
        stats_write(v);
        log_info("disconnect (%s)", reason);
}

/* What the device boots into after dropping off, then plug in again after a short delay. */
static void reboot_into(Vstm32 *v, const Stm32Profile *p, uint16_t version, const char *reason) {
        unplug(v, reason);
        v->next_profile = p;
        v->next_version = version;
        v->disconnect_at_us = NEVER;
        v->reattach_at_us = now_us() + (uint64_t) v->opt.reattach_ms * 1000u;
}

static void model_disconnected(Vstm32 *v, const char *reason) {
        uint16_t version = 0;
        const Stm32Profile *p = stm32_model_boot(v->model, &version);

        /* The model knows the app or "its" ROM; --bootloader may have picked another ROM. */
        if (p && p == v->app_profile)
                reboot_into(v, v->app_profile, version, reason);
        else
                reboot_into(v, v->boot_profile, 0, reason);
}

static int plug(Vstm32 *v) {
        const Stm32Profile *p = v->next_profile;
        bool app = p != v->boot_profile;
        struct epoll_event ev = { .events = EPOLLIN };
        int r;

        r = usbip_port_is_free(v->port);
        if (r < 0)
                return log_info("cannot read the vhci port status: %s", strerror(-r)), r;
        if (r == 0) {
                /* The kernel has not finished tearing the previous connection down. */
                v->reattach_at_us = now_us() + PORT_POLL_US;
                return 0;
        }
        v->reattach_at_us = NEVER;

        v->current = p;
        v->is_app = app;
        v->app_version = v->next_version;
        v->configuration = 0;
        memset(v->alt, 0, sizeof(v->alt));
        v->ep0_due_us = 0;
        v->control_lines = 0;
        v->cmd_len = 0;
        /* 115200 8N1 until the host says otherwise. */
        memcpy(v->line_coding, (const uint8_t[]) { 0x00, 0xC2, 0x01, 0x00, 0, 0, 8 }, 7);

        if (app)
                usb_desc_build_app(&v->desc, v->app_profile, v->boot_profile, v->app_version, v->serial,
                                   v->opt.jump & JUMP_DETACH);
        else
                usb_desc_build_bootloader(&v->desc, p, v->serial);
        /* The app profile makes a DFU runtime model (appIDLE, DETACH). */
        r = stm32_model_new(p, v->memory, v->opt.time_scale, &v->model);
        if (r < 0)
                return log_info("cannot create the model: %s", strerror(-r)), r;
        if (!app) {
                /* Faults describe one session: a fault that re-armed on every boot would never let
                 * the device recover. */
                if (!v->faults_applied)
                        for (size_t i = 0; i < v->opt.n_faults; i++) {
                                r = stm32_model_add_fault(v->model, v->opt.faults[i]);
                                if (r < 0)
                                        return log_info("bad --fault %s: %s", v->opt.faults[i],
                                                        strerror(-r)), r;
                        }
                v->faults_applied = true;
        }

        /* devid = busnum << 16 | devnum, only echoed back by the kernel. */
        r = usbip_attach(v->port, (1u << 16) | (v->port + 2), USBIP_SPEED_FULL, &v->sock_fd);
        if (r < 0)
                return log_info("cannot attach to vhci port %u: %s", v->port, strerror(-r)), r;
        ev.data.fd = v->sock_fd;
        if (epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, v->sock_fd, &ev) < 0)
                return -errno;
        v->enumerations++;
        log_info("attached as %s %02x%02x:%02x%02x version %02x%02x serial %s on port %u", p->name,
                 v->desc.device[9], v->desc.device[8], v->desc.device[11], v->desc.device[10],
                 v->desc.device[13], v->desc.device[12], v->serial, v->port);
        return 0;
}

static void schedule_jump(Vstm32 *v, const char *reason) {
        if (v->disconnect_at_us != NEVER)
                return;
        log_info("jump to the bootloader: %s", reason);
        v->disconnect_reason = reason;
        v->disconnect_at_us = now_us() + JUMP_ACK_DELAY_US;
}

/* ---- ep0 ---- */

static int handle_get_descriptor(Vstm32 *v, const Stm32Setup *s, uint8_t *buf, size_t *actual) {
        uint8_t type = s->value >> 8, index = s->value & 0xff;
        const void *src = NULL;
        size_t n = 0;
        int r;

        switch (type) {
        case USB_DT_DEVICE:
                src = v->desc.device;
                n = sizeof(v->desc.device);
                break;
        case USB_DT_CONFIG:
                if (index != 0)
                        return -EPIPE;
                src = v->desc.config;
                n = v->desc.config_len;
                break;
        case USB_DT_STRING:
                r = usb_desc_string(&v->desc, index, buf, s->length);
                if (r < 0)
                        return -EPIPE;
                *actual = MIN((size_t) r, s->length);
                return 0;
        case USB_DT_DFU:
                if (v->desc.dfu_interface < 0)
                        return -EPIPE;
                src = v->desc.dfu_functional;
                n = sizeof(v->desc.dfu_functional);
                break;
        default:
                /* DEVICE_QUALIFIER, BOS, OTHER_SPEED: a full-speed 1.x device has none. */
                return -EPIPE;
        }
        n = MIN(n, s->length);
        memcpy(buf, src, n);
        *actual = n;
        return 0;
}

static int handle_standard(Vstm32 *v, const Stm32Setup *s, uint8_t *buf, size_t *actual) {
        uint8_t recipient = s->request_type & 0x1f;

        switch (s->request) {
        case 0x06: /* GET_DESCRIPTOR */
                if (!(s->request_type & 0x80))
                        return -EPIPE;
                return handle_get_descriptor(v, s, buf, actual);
        case 0x00: /* GET_STATUS */
                if (s->length < 2)
                        return -EPIPE;
                buf[0] = recipient == 0 && !v->is_app ? 1 : 0; /* the ROM is self-powered */
                buf[1] = 0;
                *actual = 2;
                return 0;
        case 0x01: /* CLEAR_FEATURE */
        case 0x03: /* SET_FEATURE */
                return 0;
        case 0x08: /* GET_CONFIGURATION */
                if (s->length < 1)
                        return -EPIPE;
                buf[0] = v->configuration;
                *actual = 1;
                return 0;
        case 0x09: /* SET_CONFIGURATION */
                if (s->value > 1)
                        return -EPIPE;
                v->configuration = (uint8_t) s->value;
                memset(v->alt, 0, sizeof(v->alt));
                if (v->model)
                        (void) stm32_model_set_alt(v->model, 0);
                return 0;
        case 0x0A: /* GET_INTERFACE */
                if (s->index >= v->desc.n_interfaces || s->length < 1)
                        return -EPIPE;
                buf[0] = v->alt[s->index];
                *actual = 1;
                return 0;
        case 0x0B: /* SET_INTERFACE */
                if (s->index >= v->desc.n_interfaces || s->value >= v->desc.n_alts[s->index])
                        return -EPIPE;
                if (v->model && s->index == v->desc.dfu_interface &&
                    stm32_model_set_alt(v->model, (uint8_t) s->value) < 0)
                        return -EPIPE;
                v->alt[s->index] = (uint8_t) s->value;
                return 0;
        default:
                return -EPIPE;
        }
}

static int handle_cdc(Vstm32 *v, const Stm32Setup *s, const uint8_t *out, size_t out_len, uint8_t *buf,
                      size_t *actual) {
        uint32_t rate;
        uint16_t old;

        switch (s->request) {
        case 0x20: /* SET_LINE_CODING */
                if (out_len < 7)
                        return -EPIPE;
                memcpy(v->line_coding, out, 7);
                rate = v->line_coding[0] | v->line_coding[1] << 8 | v->line_coding[2] << 16 |
                       (uint32_t) v->line_coding[3] << 24;
                log_debug(v, "line coding %u baud", rate);
                return 0;
        case 0x21: /* GET_LINE_CODING */
                if (s->length < 7)
                        return -EPIPE;
                memcpy(buf, v->line_coding, 7);
                *actual = 7;
                return 0;
        case 0x22: /* SET_CONTROL_LINE_STATE */
                old = v->control_lines;
                v->control_lines = s->value;
                rate = v->line_coding[0] | v->line_coding[1] << 8 | v->line_coding[2] << 16 |
                       (uint32_t) v->line_coding[3] << 24;
                log_debug(v, "control lines DTR=%u RTS=%u", s->value & 1, (s->value >> 1) & 1);
                /* Arduino/Klipper "1200 baud touch": DTR drops while the line is at 1200 baud. */
                if ((v->opt.jump & JUMP_1200) && rate == 1200 && (old & 1) && !(s->value & 1))
                        schedule_jump(v, "1200 baud touch");
                return 0;
        case 0x23: /* SEND_BREAK */
                return 0;
        default:
                return -EPIPE;
        }
}

static int handle_control(Vstm32 *v, const UsbipCommand *c) {
        Stm32Setup s = {
                .request_type = c->setup[0],
                .request = c->setup[1],
                .value = (uint16_t) (c->setup[2] | c->setup[3] << 8),
                .index = (uint16_t) (c->setup[4] | c->setup[5] << 8),
                .length = (uint16_t) (c->setup[6] | c->setup[7] << 8),
        };
        bool in = s.request_type & 0x80;
        uint8_t type = s.request_type & 0x60, recipient = s.request_type & 0x1f;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t out_len = in ? 0 : MIN((size_t) c->length, s.length);
        size_t actual = 0;
        uint64_t now = now_us(), due = now;
        int status = 0;

        v->usb_control_transfers++;
        buf = calloc(1, MAX((size_t) s.length, 64u));
        if (!buf)
                return -ENOMEM;
        if (!in && out_len > 0)
                memcpy(buf, c->data, out_len);

        if (type == 0x00)
                status = handle_standard(v, &s, buf, &actual);
        else if (type == 0x20 && recipient == 0x01 && v->desc.dfu_interface >= 0 &&
                 (s.index & 0xff) == v->desc.dfu_interface) {
                /* DFU mode and the app's runtime interface alike: the model decides. */
                Stm32Result res;

                actual = out_len;
                res = stm32_model_control(v->model, now, &s, buf, &actual, &due);
                switch (res) {
                case STM32_REPLY:
                        break;
                case STM32_STALL:
                        status = -EPIPE;
                        break;
                case STM32_DISCONNECT:
                        log_debug(v, "model: disconnect on request %u", s.request);
                        model_disconnected(v, "device dropped off the bus");
                        return 0;
                case STM32_HANG:
                        log_debug(v, "model: hang on request %u", s.request);
                        return reply_control(v, c->seqnum, 0, in, NULL, 0, NEVER);
                }
                due = MAX(due, now);
        } else if (type == 0x20 && recipient == 0x01 && v->is_app && (s.index & 0xff) == APP_IF_COMM)
                status = handle_cdc(v, &s, buf, out_len, buf, &actual);
        else
                status = -EPIPE;

        if (status < 0)
                actual = 0;
        else if (!in)
                actual = out_len;
        log_debug(v, "ep0 %02x %02x %04x %04x %4u -> %s %zu%s", s.request_type, s.request, s.value, s.index,
                  s.length, status < 0 ? "STALL" : "ok", actual,
                  due > now ? " (delayed)" : "");
        return reply_control(v, c->seqnum, status, in, buf, actual, due);
}

/* ---- bulk / interrupt (application only) ---- */

static void command_feed(Vstm32 *v, const uint8_t *data, size_t n) {
        size_t cl = strlen(v->opt.command);
        /* A tty adds CRs (onlcr): they do not count unless the command has some. */
        bool skip_cr = !strchr(v->opt.command, '\r');

        for (size_t i = 0; i < n; i++) {
                if (skip_cr && data[i] == '\r')
                        continue;
                if (v->cmd_len == sizeof(v->cmd_window)) {
                        memmove(v->cmd_window, v->cmd_window + 1, sizeof(v->cmd_window) - 1);
                        v->cmd_len--;
                }
                v->cmd_window[v->cmd_len++] = (char) data[i];
                if (cl > 0 && v->cmd_len >= cl &&
                    memcmp(v->cmd_window + v->cmd_len - cl, v->opt.command, cl) == 0) {
                        v->cmd_len = 0;
                        schedule_jump(v, "text command");
                }
        }
}

static int handle_endpoint(Vstm32 *v, const UsbipCommand *c) {
        bool in = c->direction == USBIP_DIR_IN;

        log_debug(v, "ep%u %s %u bytes (seq %u)", c->ep, in ? "IN" : "OUT", c->length, c->seqnum);
        if (!v->is_app || v->configuration == 0)
                return reply_queue(v, c->seqnum, -EPIPE, in, NULL, 0, now_us());
        if (!in && c->ep == APP_EP_DATA) {
                v->bulk_out_bytes += c->length;
                if (v->opt.jump & JUMP_COMMAND)
                        command_feed(v, c->data, c->length);
                return usbip_send_ret_submit(v->sock_fd, c->seqnum, 0, false, NULL, c->length);
        }
        if (in && (c->ep == APP_EP_DATA || c->ep == APP_EP_NOTIFY))
                /* Nothing to say: the URB waits until the host unlinks it. */
                return reply_queue(v, c->seqnum, 0, true, NULL, 0, NEVER);
        return reply_queue(v, c->seqnum, -EPIPE, in, NULL, 0, now_us());
}

static int handle_unlink(Vstm32 *v, const UsbipCommand *c) {
        v->unlinks++;
        for (Reply **p = &v->replies; *p; p = &(*p)->next)
                if ((*p)->seqnum == c->unlink_seqnum) {
                        Reply *r = *p;
                        *p = r->next;
                        free(r);
                        /* The victim is never answered; a URB given up on ep0 no longer orders others. */
                        return usbip_send_ret_unlink(v->sock_fd, c->seqnum, -ECONNRESET);
                }
        return usbip_send_ret_unlink(v->sock_fd, c->seqnum, 0);
}

static int on_socket(Vstm32 *v) {
        UsbipCommand c = {};
        int r;

        r = usbip_read_command(v->sock_fd, &c);
        if (r == -ECONNRESET) {
                /* The kernel detached the port (someone wrote to .../detach): we were unplugged. */
                unplug(v, "detached by the host");
                return 1;
        }
        if (r < 0)
                return log_info("USB/IP stream error: %s", strerror(-r)), r;

        if (c.command == USBIP_CMD_UNLINK)
                r = handle_unlink(v, &c);
        else if (c.ep == 0)
                r = handle_control(v, &c);
        else
                r = handle_endpoint(v, &c);
        usbip_command_done(&c);
        if (r < 0)
                return r;
        if (v->sock_fd >= 0)
                return replies_flush(v, now_us());
        return 0;
}

static int on_timer(Vstm32 *v) {
        uint64_t now = now_us(), t;
        int r;

        if (v->sock_fd >= 0) {
                r = replies_flush(v, now);
                if (r < 0)
                        return r;
                if (v->model && stm32_model_disconnect_pending(v->model, &t) && t <= now) {
                        model_disconnected(v, "device reset itself");
                        return 0;
                }
                if (v->disconnect_at_us <= now) {
                        reboot_into(v, v->boot_profile, 0, v->disconnect_reason);
                        return 0;
                }
        }
        if (v->reattach_at_us <= now)
                return plug(v);
        return 0;
}

/* ---- set-up ---- */

static int open_flash(Vstm32 *v) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        bool fresh;
        void *p;

        v->memory_size = stm32_profile_memory_size(v->boot_profile);
        fd = open(v->opt.flash, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        fresh = st.st_size == 0;
        if (!fresh && (size_t) st.st_size != v->memory_size) {
                log_info("%s has %jd bytes, profile %s needs %zu", v->opt.flash, (intmax_t) st.st_size,
                         v->boot_profile->name, v->memory_size);
                return -EINVAL;
        }
        if (fresh && ftruncate(fd, (off_t) v->memory_size) < 0)
                return -errno;
        p = mmap(NULL, v->memory_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        v->memory = p;
        if (fresh)
                stm32_profile_memory_init(v->boot_profile, v->memory);
        return 0;
}

/* A stable serial per flash file: the same device after every restart, different devices differ. */
static void derive_serial(Vstm32 *v) {
        _cleanup_free_ char *path = realpath(v->opt.flash, NULL);
        const char *s = path ? path : v->opt.flash;
        uint64_t h = 0xcbf29ce484222325u;

        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 0x100000001b3u;
        snprintf(v->serial, sizeof(v->serial), "%012" PRIX64, h & 0xFFFFFFFFFFFFu);
}

static char *unescape(const char *s) {
        char *r = malloc(strlen(s) + 1), *o = r;

        if (!r)
                return NULL;
        for (; *s; s++) {
                if (*s == '\\' && s[1]) {
                        s++;
                        *o++ = *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s == 't' ? '\t' : *s;
                } else
                        *o++ = *s;
        }
        *o = 0;
        return r;
}

static int parse_jump(const char *arg, unsigned *ret) {
        _cleanup_free_ char *copy = strdup(arg);
        unsigned mask = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                if (streq(w, "detach"))
                        mask |= JUMP_DETACH;
                else if (streq(w, "1200"))
                        mask |= JUMP_1200;
                else if (streq(w, "command"))
                        mask |= JUMP_COMMAND;
                else if (streq(w, "none"))
                        ;
                else
                        return -EINVAL;
        }
        *ret = mask;
        return 0;
}

static void usage(void) {
        fprintf(stderr,
                "usage: vstm32 --profile NAME --flash FILE [options]\n"
                "  --profile NAME        f4-rom, f072-rom, l4-rom, h7-rom, ..., or app\n"
                "  --flash FILE          device memory (created erased when missing; persists)\n"
                "  --serial S            iSerial (default: derived from the flash file path)\n"
                "  --time-scale X        multiply every busy time (default 1.0)\n"
                "  --fault SPEC          inject a fault in the first bootloader session (repeatable)\n"
                "  --port N              vhci_hcd.0 port (default: first free high-speed port)\n"
                "  --bootloader NAME     profile the app jumps to (default: the app profile's)\n"
                "  --jump LIST           app jump triggers: detach,1200,command or none (default all)\n"
                "  --command TEXT        text command on the CDC data interface (default \"DFU\\n\")\n"
                "  --reattach-ms N       delay before re-enumerating (default 100)\n"
                "  --stats FILE          JSON counters, written on every disconnect and at exit\n"
                "  --verbose             log every control transfer\n");
}

static int parse_options(Vstm32 *v, int argc, char **argv) {
        enum {
                OPT_PROFILE = 0x100, OPT_FLASH, OPT_SERIAL, OPT_TIME_SCALE, OPT_FAULT, OPT_PORT,
                OPT_BOOTLOADER, OPT_JUMP, OPT_COMMAND, OPT_STATS, OPT_REATTACH, OPT_VERBOSE, OPT_HELP
        };
        static const struct option options[] = {
                { "profile", required_argument, NULL, OPT_PROFILE },
                { "flash", required_argument, NULL, OPT_FLASH },
                { "serial", required_argument, NULL, OPT_SERIAL },
                { "time-scale", required_argument, NULL, OPT_TIME_SCALE },
                { "fault", required_argument, NULL, OPT_FAULT },
                { "port", required_argument, NULL, OPT_PORT },
                { "bootloader", required_argument, NULL, OPT_BOOTLOADER },
                { "jump", required_argument, NULL, OPT_JUMP },
                { "command", required_argument, NULL, OPT_COMMAND },
                { "stats", required_argument, NULL, OPT_STATS },
                { "reattach-ms", required_argument, NULL, OPT_REATTACH },
                { "verbose", no_argument, NULL, OPT_VERBOSE },
                { "help", no_argument, NULL, OPT_HELP },
                {}
        };
        Options *o = &v->opt;
        char *end;
        int c;

        *o = (Options) { .time_scale = 1.0, .port = -1, .jump = JUMP_DETACH | JUMP_1200 | JUMP_COMMAND,
                         .reattach_ms = 100 };
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case OPT_PROFILE:
                        o->profile = optarg;
                        break;
                case OPT_FLASH:
                        o->flash = optarg;
                        break;
                case OPT_SERIAL:
                        o->serial = optarg;
                        break;
                case OPT_TIME_SCALE:
                        errno = 0;
                        o->time_scale = strtod(optarg, &end);
                        if (errno || *end || o->time_scale < 0)
                                return log_info("bad --time-scale %s", optarg), -EINVAL;
                        break;
                case OPT_FAULT: {
                        char **n = realloc(o->faults, (o->n_faults + 1) * sizeof(char *));
                        if (!n)
                                return -ENOMEM;
                        o->faults = n;
                        o->faults[o->n_faults++] = optarg;
                        break;
                }
                case OPT_PORT:
                        errno = 0;
                        o->port = (int) strtol(optarg, &end, 10);
                        if (errno || *end || o->port < 0 || o->port > 29)
                                return log_info("bad --port %s", optarg), -EINVAL;
                        break;
                case OPT_BOOTLOADER:
                        o->bootloader = optarg;
                        break;
                case OPT_JUMP:
                        if (parse_jump(optarg, &o->jump) < 0)
                                return log_info("bad --jump %s", optarg), -EINVAL;
                        break;
                case OPT_COMMAND:
                        free(o->command);
                        o->command = unescape(optarg);
                        if (!o->command)
                                return -ENOMEM;
                        break;
                case OPT_STATS:
                        o->stats = optarg;
                        break;
                case OPT_REATTACH:
                        errno = 0;
                        o->reattach_ms = (unsigned) strtoul(optarg, &end, 10);
                        if (errno || *end)
                                return log_info("bad --reattach-ms %s", optarg), -EINVAL;
                        break;
                case OPT_VERBOSE:
                        o->verbose = true;
                        break;
                case OPT_HELP:
                        usage();
                        exit(EXIT_SUCCESS);
                default:
                        usage();
                        return -EINVAL;
                }
        }
        if (optind < argc || !o->profile || !o->flash) {
                usage();
                return -EINVAL;
        }
        if (!o->command) {
                o->command = strdup("DFU\n");
                if (!o->command)
                        return -ENOMEM;
        }
        return 0;
}

static int setup_profiles(Vstm32 *v) {
        const Stm32Profile *p = stm32_profile_find(v->opt.profile);
        const char *bl;

        if (!p)
                return log_info("unknown profile %s", v->opt.profile), -EINVAL;
        if (streq(p->name, "app") || p->n_regions == 0) {
                v->app_profile = p;
                bl = v->opt.bootloader ? v->opt.bootloader : p->bootloader ? p->bootloader : "f4-rom";
                v->boot_profile = stm32_profile_find(bl);
                if (!v->boot_profile || v->boot_profile->n_regions == 0)
                        return log_info("unknown bootloader profile %s", bl), -EINVAL;
        } else {
                v->boot_profile = p;
                v->app_profile = stm32_profile_find("app");
        }
        return 0;
}

static int run(Vstm32 *v) {
        struct epoll_event ev = { .events = EPOLLIN };
        sigset_t mask;
        uint16_t version = 0;
        int r;

        if (v->opt.serial)
                snprintf(v->serial, sizeof(v->serial), "%s", v->opt.serial);
        else
                derive_serial(v);
        r = open_flash(v);
        if (r < 0)
                return log_info("cannot open %s: %s", v->opt.flash, strerror(-r)), r;

        /* Reject a bad --fault now, not at the first bootloader session. */
        if (v->opt.n_faults > 0) {
                Stm32Model *probe = NULL;

                r = stm32_model_new(v->boot_profile, v->memory, v->opt.time_scale, &probe);
                for (size_t i = 0; r >= 0 && i < v->opt.n_faults; i++) {
                        r = stm32_model_add_fault(probe, v->opt.faults[i]);
                        if (r < 0)
                                log_info("bad --fault %s: %s", v->opt.faults[i], strerror(-r));
                }
                stm32_model_free(probe);
                if (r < 0)
                        return r;
        }

        /* --profile app comes up as the app only if the flash holds one. */
        v->next_profile = v->boot_profile;
        if (v->app_profile && stm32_profile_find(v->opt.profile) == v->app_profile) {
                if (stm32_memory_valid_app(v->boot_profile, v->memory, &version)) {
                        v->next_profile = v->app_profile;
                        v->next_version = version;
                } else
                        log_info("no valid application in %s: starting the bootloader", v->opt.flash);
        }

        if (v->opt.port >= 0)
                v->port = (unsigned) v->opt.port;
        else {
                r = usbip_find_free_port();
                if (r < 0)
                        return log_info("no free vhci_hcd port (is vhci-hcd loaded?)"), r;
                v->port = (unsigned) r;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A USB/IP peer that went away must be an error return, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        v->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
        v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        v->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (v->signal_fd < 0 || v->timer_fd < 0 || v->epoll_fd < 0)
                return -errno;
        ev.data.fd = v->signal_fd;
        if (epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, v->signal_fd, &ev) < 0)
                return -errno;
        ev.data.fd = v->timer_fd;
        if (epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, v->timer_fd, &ev) < 0)
                return -errno;

        v->reattach_at_us = NEVER;
        v->disconnect_at_us = NEVER;
        r = plug(v);
        if (r < 0)
                return r;

        for (;;) {
                struct epoll_event events[4];
                int n;

                timer_arm(v);
                n = epoll_wait(v->epoll_fd, events, ELEMENTSOF(events), -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        int fd = events[i].data.fd;

                        if (fd == v->signal_fd) {
                                struct signalfd_siginfo si;
                                if (read(v->signal_fd, &si, sizeof(si)) != sizeof(si))
                                        continue;
                                if (v->sock_fd >= 0)
                                        unplug(v, strsignal((int) si.ssi_signo));
                                else
                                        stats_write(v);
                                return 0;
                        } else if (fd == v->timer_fd) {
                                uint64_t expirations;
                                (void) read(v->timer_fd, &expirations, sizeof(expirations));
                                r = on_timer(v);
                                if (r < 0)
                                        return r;
                        } else if (fd == v->sock_fd) {
                                r = on_socket(v);
                                if (r < 0)
                                        return r;
                                if (r > 0)
                                        return 0;
                        }
                }
        }
}

int main(int argc, char **argv) {
        Vstm32 v = { .sock_fd = -EBADF, .epoll_fd = -EBADF, .timer_fd = -EBADF, .signal_fd = -EBADF };
        int r;

        setvbuf(stderr, NULL, _IOLBF, 0);
        r = parse_options(&v, argc, argv);
        if (r >= 0)
                r = setup_profiles(&v);
        if (r >= 0)
                r = run(&v);
        if (r < 0 && v.sock_fd >= 0)
                unplug(&v, "error");
        v.model = stm32_model_free(v.model);
        if (v.memory)
                (void) munmap(v.memory, v.memory_size);
        safe_close(v.epoll_fd);
        safe_close(v.timer_fd);
        safe_close(v.signal_fd);
        free(v.opt.faults);
        free(v.opt.command);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
