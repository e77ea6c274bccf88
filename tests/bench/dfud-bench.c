/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dfud-bench: the measuring helpers of the VM bench (tests/bench/bench.py runs them in the guest).
 * Every subcommand prints one JSON object on stdout.
 *
 *   dfud-bench xfer VID:PID TRANSFER_SIZE [N]
 *       Raw control-transfer cost through libusb, usbfs, vhci_hcd and vstm32 on a DfuSe ROM in dfuIDLE:
 *       GETSTATE (1-byte IN), ABORT (zero-length OUT), DNLOAD of TRANSFER_SIZE bytes followed by ABORT
 *       (the data is dropped, nothing is programmed, the device never gets busy) and UPLOAD of
 *       TRANSFER_SIZE bytes. out_bytes_per_s = TRANSFER_SIZE / (t(DNLOAD+ABORT) - t(ABORT)): what moving
 *       the image costs at least, whatever the host does. Median of 7 interleaved rounds of N/7 each.
 *   dfud-bench write VID:PID TRANSFER_SIZE KIB
 *       The least a host can do to program KIB KiB at 0x08000000 on a DfuSe ROM (the flash should be
 *       erased): one SET_ADDRESS, then per block DNLOAD, GETSTATUS (dfuDNBUSY) and at once another
 *       GETSTATUS, which the device holds until the block is programmed (no bwPollTimeout sleeps).
 *       Compared with the device's program time it shows what the transfers and the held replies
 *       cost per block on this path, without dfud.
 *   dfud-bench startup [-n N] -- DFUD [ARGS...]
 *       Time from fork+exec to org.dfud1 being owned on the system bus (NameOwnerChanged, subscribed
 *       before the fork), N times; each instance is stopped with SIGTERM afterwards.
 *   dfud-bench objects [-n N]
 *       N calls of GetManagedObjects on org.dfud1 /org/dfud1 over one connection: latency p50/p99; then
 *       N Peer.Ping calls to dfud, the round trip through dbus-daemon without the object tree.
 */

#include <errno.h>
#include <inttypes.h>
#include <libusb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define DFU_DNLOAD 1
#define DFU_UPLOAD 2
#define DFU_GETSTATUS 3
#define DFU_CLRSTATUS 4
#define DFU_GETSTATE 5
#define DFU_ABORT 6
#define REQ_OUT 0x21
#define REQ_IN 0xA1
#define STATE_DFU_IDLE 2
#define STATE_DFU_ERROR 10

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *v, size_t n, double p) {
        size_t k = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

/* ---- xfer ---- */

static int ctl(libusb_device_handle *h, uint8_t type, uint8_t req, uint16_t value, uint8_t *buf, uint16_t len) {
        int r = libusb_control_transfer(h, type, req, value, 0, buf, len, 5000);
        if (r < 0) {
                fprintf(stderr, "control transfer %u: %s\n", req, libusb_strerror(r));
                return r;
        }
        return r;
}

/* dfuIDLE, whatever the ROM says first (the F4 ROM starts in dfuERROR). */
static int to_idle(libusb_device_handle *h) {
        uint8_t st[6];
        for (int i = 0; i < 4; i++) {
                if (ctl(h, REQ_IN, DFU_GETSTATUS, 0, st, 6) != 6)
                        return -EIO;
                if (st[4] == STATE_DFU_IDLE)
                        return 0;
                if (st[4] == STATE_DFU_ERROR) {
                        if (ctl(h, REQ_OUT, DFU_CLRSTATUS, 0, NULL, 0) < 0)
                                return -EIO;
                } else if (ctl(h, REQ_OUT, DFU_ABORT, 0, NULL, 0) < 0)
                        return -EIO;
        }
        return -EPROTO;
}

static void usb_close(libusb_context *ctx, libusb_device_handle *h) {
        if (h) {
                libusb_release_interface(h, 0);
                libusb_close(h);
        }
        if (ctx)
                libusb_exit(ctx);
}

static int cmd_xfer(int argc, char **argv) {
        libusb_context *ctx = NULL;
        libusb_device_handle *h = NULL;
        unsigned vid, pid;
        long size, n;
        uint8_t *buf = NULL;
        int ret = EXIT_FAILURE, r;

        if (argc < 3 || sscanf(argv[1], "%x:%x", &vid, &pid) != 2) {
                fprintf(stderr, "usage: dfud-bench xfer VID:PID TRANSFER_SIZE [N]\n");
                return EXIT_FAILURE;
        }
        size = strtol(argv[2], NULL, 0);
        n = argc > 3 ? strtol(argv[3], NULL, 0) : 500;
        if (size <= 0 || size > 4096 || n <= 0)
                return EXIT_FAILURE;
        buf = calloc(1, (size_t) size);
        if (!buf)
                return EXIT_FAILURE;
        for (long i = 0; i < size; i++)
                buf[i] = (uint8_t) (i * 7 + 3);

        r = libusb_init(&ctx);
        if (r < 0) {
                fprintf(stderr, "libusb_init: %s\n", libusb_strerror(r));
                goto out;
        }
        h = libusb_open_device_with_vid_pid(ctx, (uint16_t) vid, (uint16_t) pid);
        if (!h) {
                fprintf(stderr, "%04x:%04x not found\n", vid, pid);
                goto out;
        }
        (void) libusb_set_auto_detach_kernel_driver(h, 1);
        r = libusb_claim_interface(h, 0);
        if (r < 0 || libusb_set_interface_alt_setting(h, 0, 0) < 0) {
                fprintf(stderr, "claim interface 0: %s\n", libusb_strerror(r));
                goto out;
        }
        if (to_idle(h) < 0) {
                fprintf(stderr, "cannot bring the device to dfuIDLE\n");
                goto out;
        }

        /* Interleaved rounds, the median round per kind: other guests on the host come and go. */
        enum { ROUNDS = 7 };
        uint64_t t[4][ROUNDS];
        long per = n / ROUNDS > 0 ? n / ROUNDS : 1;
        uint8_t s;
        for (int round = -1; round < ROUNDS; round++) { /* round -1 warms up */
                uint64_t t0 = now_ns();
                for (long i = 0; i < per; i++)
                        if (ctl(h, REQ_IN, DFU_GETSTATE, 0, &s, 1) != 1)
                                goto out;
                uint64_t t1 = now_ns();
                for (long i = 0; i < per; i++)
                        if (ctl(h, REQ_OUT, DFU_ABORT, 0, NULL, 0) < 0)
                                goto out;
                uint64_t t2 = now_ns();
                /* DNLOAD block 2 (a write at the address pointer) is only executed by the next GETSTATUS;
                 * ABORT drops it. */
                for (long i = 0; i < per; i++)
                        if (ctl(h, REQ_OUT, DFU_DNLOAD, 2, buf, (uint16_t) size) != size ||
                            ctl(h, REQ_OUT, DFU_ABORT, 0, NULL, 0) < 0)
                                goto out;
                uint64_t t3 = now_ns();
                /* UPLOAD block 2 from the pointer (0x08000000 after reset) */
                for (long i = 0; i < per; i++)
                        if (ctl(h, REQ_IN, DFU_UPLOAD, 2, buf, (uint16_t) size) != size)
                                goto out;
                uint64_t t4 = now_ns();
                if (ctl(h, REQ_OUT, DFU_ABORT, 0, NULL, 0) < 0)
                        goto out;
                if (round < 0)
                        continue;
                t[0][round] = t1 - t0;
                t[1][round] = t2 - t1;
                t[2][round] = t3 - t2;
                t[3][round] = t4 - t3;
        }
        if (to_idle(h) < 0)
                goto out;
        for (int k = 0; k < 4; k++)
                qsort(t[k], ROUNDS, sizeof(uint64_t), cmp_u64);
        uint64_t t_state = t[0][ROUNDS / 2], t_abort = t[1][ROUNDS / 2], t_pair = t[2][ROUNDS / 2],
                 t_up = t[3][ROUNDS / 2];
        n = per;

        double getstate_us = (double) t_state / 1e3 / (double) n;
        double abort_us = (double) t_abort / 1e3 / (double) n;
        double pair_us = (double) t_pair / 1e3 / (double) n;
        double up_us = (double) t_up / 1e3 / (double) n;
        double out_us = pair_us - abort_us;
        if (out_us < abort_us) /* noise: never claim a data transfer is cheaper than an empty one */
                out_us = abort_us;
        printf("{\"transfer_size\": %ld, \"n\": %ld, \"getstate_us\": %.1f, \"zero_out_us\": %.1f, "
               "\"dnload_abort_us\": %.1f, \"dnload_us\": %.1f, \"upload_us\": %.1f, "
               "\"control_transfers_per_s\": %.0f, \"out_bytes_per_s\": %.0f, \"upload_bytes_per_s\": %.0f}\n",
               size, n, getstate_us, abort_us, pair_us, out_us, up_us, 1e6 / getstate_us,
               (double) size * 1e6 / out_us, (double) size * 1e6 / up_us);
        ret = EXIT_SUCCESS;
out:
        usb_close(ctx, h);
        free(buf);
        return ret;
}

static int getstatus(libusb_device_handle *h, uint8_t *state, uint32_t *poll_ms) {
        uint8_t st[6];
        if (ctl(h, REQ_IN, DFU_GETSTATUS, 0, st, 6) != 6)
                return -EIO;
        if (st[0] != 0) {
                fprintf(stderr, "status %u in state %u\n", st[0], st[4]);
                return -EPROTO;
        }
        *state = st[4];
        *poll_ms = (uint32_t) st[1] | (uint32_t) st[2] << 8 | (uint32_t) st[3] << 16;
        return 0;
}

/* Time spent in the DNLOAD, the first GETSTATUS and the ones after it, over all blocks. */
static uint64_t phase_ns[3];

/* DNLOAD, then GETSTATUS until dfuDNLOAD-IDLE without sleeping; the number of GETSTATUS. */
static int dnload_sync(libusb_device_handle *h, uint16_t block, uint8_t *data, uint16_t len) {
        uint8_t state;
        uint32_t poll;
        int n = 0;
        uint64_t t = now_ns(), t1;
        if (ctl(h, REQ_OUT, DFU_DNLOAD, block, data, len) != len)
                return -EIO;
        t1 = now_ns();
        phase_ns[0] += t1 - t;
        t = t1;
        do {
                if (getstatus(h, &state, &poll) < 0)
                        return -EIO;
                t1 = now_ns();
                phase_ns[n == 0 ? 1 : 2] += t1 - t;
                t = t1;
                n++;
        } while (state != 5 /* dfuDNLOAD-IDLE */ && n < 1000);
        return n;
}

static int cmd_write(int argc, char **argv) {
        libusb_context *ctx = NULL;
        libusb_device_handle *h = NULL;
        unsigned vid, pid;
        long size, kib;
        uint8_t *buf = NULL, cmd[5] = { 0x21, 0x00, 0x00, 0x00, 0x08 };
        int ret = EXIT_FAILURE, r, polls = 0;

        if (argc < 4 || sscanf(argv[1], "%x:%x", &vid, &pid) != 2) {
                fprintf(stderr, "usage: dfud-bench write VID:PID TRANSFER_SIZE KIB\n");
                return EXIT_FAILURE;
        }
        size = strtol(argv[2], NULL, 0);
        kib = strtol(argv[3], NULL, 0);
        if (size <= 0 || size > 4096 || kib <= 0 || kib * 1024 % size != 0)
                return EXIT_FAILURE;
        buf = malloc((size_t) size);
        if (!buf)
                return EXIT_FAILURE;
        for (long i = 0; i < size; i++)
                buf[i] = (uint8_t) (i * 13 + 5);
        r = libusb_init(&ctx);
        if (r < 0)
                goto out;
        h = libusb_open_device_with_vid_pid(ctx, (uint16_t) vid, (uint16_t) pid);
        if (!h || libusb_claim_interface(h, 0) < 0 || libusb_set_interface_alt_setting(h, 0, 0) < 0 ||
            to_idle(h) < 0) {
                fprintf(stderr, "cannot open %04x:%04x in dfuIDLE\n", vid, pid);
                goto out;
        }
        uint64_t t0 = now_ns();
        if (dnload_sync(h, 0, cmd, sizeof cmd) < 0)
                goto out;
        uint64_t t1 = now_ns();
        long blocks = kib * 1024 / size;
        memset(phase_ns, 0, sizeof phase_ns);
        for (long b = 0; b < blocks; b++) {
                r = dnload_sync(h, (uint16_t) (2 + b), buf, (uint16_t) size);
                if (r < 0)
                        goto out;
                polls += r;
        }
        uint64_t t2 = now_ns();
        (void) ctl(h, REQ_OUT, DFU_ABORT, 0, NULL, 0);
        printf("{\"kib\": %ld, \"blocks\": %ld, \"set_address_ms\": %.2f, \"write_s\": %.3f, "
               "\"per_block_ms\": %.2f, \"getstatus_per_block\": %.2f, \"dnload_ms\": %.2f, "
               "\"first_getstatus_ms\": %.2f, \"held_getstatus_ms\": %.2f}\n",
               kib, blocks, (double) (t1 - t0) / 1e6, (double) (t2 - t1) / 1e9,
               (double) (t2 - t1) / 1e6 / (double) blocks, (double) polls / (double) blocks,
               (double) phase_ns[0] / 1e6 / (double) blocks, (double) phase_ns[1] / 1e6 / (double) blocks,
               (double) phase_ns[2] / 1e6 / (double) blocks);
        ret = EXIT_SUCCESS;
out:
        usb_close(ctx, h);
        free(buf);
        return ret;
}

/* ---- startup ---- */

typedef struct NameWait {
        bool owned;
} NameWait;

static int on_name_owner(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        NameWait *w = userdata;
        const char *name, *old, *new;
        if (sd_bus_message_read(m, "sss", &name, &old, &new) >= 0 && strcmp(name, "org.dfud1") == 0 && new[0])
                w->owned = true;
        return 0;
}

static int name_has_owner(sd_bus *bus) {
        sd_bus_message *reply = NULL;
        int has = 0, r;
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", "org.dfud1");
        if (r >= 0)
                r = sd_bus_message_read(reply, "b", &has);
        sd_bus_message_unref(reply);
        return r < 0 ? r : has;
}

/* n zeroed samples and a connection to the system bus; *ret_v is set even when the bus fails. */
static int samples_and_bus(long n, uint64_t **ret_v, sd_bus **ret_bus) {
        int r;

        *ret_v = calloc((size_t) n, sizeof(uint64_t));
        if (!*ret_v)
                return -ENOMEM;
        r = sd_bus_open_system(ret_bus);
        if (r < 0)
                fprintf(stderr, "system bus: %s\n", strerror(-r));
        return r;
}

static int cmd_startup(int argc, char **argv) {
        long n = 5;
        int i = 1;
        sd_bus *bus = NULL;
        uint64_t *v = NULL;
        int ret = EXIT_FAILURE, r;

        if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
                n = strtol(argv[i + 1], NULL, 0);
                i += 2;
        }
        if (i < argc && strcmp(argv[i], "--") == 0)
                i++;
        if (i >= argc || n <= 0) {
                fprintf(stderr, "usage: dfud-bench startup [-n N] -- DFUD [ARGS...]\n");
                return EXIT_FAILURE;
        }
        r = samples_and_bus(n, &v, &bus);
        if (r < 0)
                goto out;
        if (name_has_owner(bus) != 0) {
                fprintf(stderr, "org.dfud1 is already owned (or the bus failed)\n");
                goto out;
        }
        for (long k = 0; k < n; k++) {
                NameWait w = {};
                sd_bus_slot *slot = NULL;
                r = sd_bus_match_signal(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner, &w);
                if (r < 0) {
                        fprintf(stderr, "match: %s\n", strerror(-r));
                        goto out;
                }
                /* sd_bus_match_signal is synchronous: the match is installed when it returns */
                uint64_t t0 = now_ns();
                pid_t pid = fork();
                if (pid < 0)
                        goto out;
                if (pid == 0) {
                        execv(argv[i], argv + i);
                        _exit(127);
                }
                uint64_t deadline = t0 + 30ull * 1000000000u;
                while (!w.owned) {
                        int st;
                        r = sd_bus_process(bus, NULL);
                        if (r < 0) {
                                fprintf(stderr, "bus: %s\n", strerror(-r));
                                goto out;
                        }
                        if (r > 0)
                                continue;
                        if (waitpid(pid, &st, WNOHANG) == pid) {
                                fprintf(stderr, "dfud exited before taking its name (status %d)\n", st);
                                goto out;
                        }
                        if (now_ns() > deadline) {
                                fprintf(stderr, "no org.dfud1 within 30 s\n");
                                kill(pid, SIGKILL);
                                waitpid(pid, NULL, 0);
                                goto out;
                        }
                        (void) sd_bus_wait(bus, 100000);
                }
                v[k] = now_ns() - t0;
                sd_bus_slot_unref(slot);
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                /* the name must be gone before the next round */
                for (int t = 0; t < 100 && name_has_owner(bus) > 0; t++)
                        usleep(20000);
        }
        uint64_t *s = calloc((size_t) n, sizeof(uint64_t));
        if (!s)
                goto out;
        memcpy(s, v, (size_t) n * sizeof(uint64_t));
        qsort(s, (size_t) n, sizeof(uint64_t), cmp_u64);
        printf("{\"n\": %ld, \"median_ms\": %.1f, \"min_ms\": %.1f, \"max_ms\": %.1f, \"runs_ms\": [", n,
               (double) pct(s, (size_t) n, 50) / 1e6, (double) s[0] / 1e6, (double) s[n - 1] / 1e6);
        for (long k = 0; k < n; k++)
                printf("%s%.1f", k ? ", " : "", (double) v[k] / 1e6);
        printf("]}\n");
        free(s);
        ret = EXIT_SUCCESS;
out:
        sd_bus_flush_close_unref(bus);
        free(v);
        return ret;
}

/* ---- objects ---- */

static int cmd_objects(int argc, char **argv) {
        long n = 1000;
        sd_bus *bus = NULL;
        uint64_t *v = NULL;
        int ret = EXIT_FAILURE, r;
        unsigned objects = 0;

        if (argc > 2 && strcmp(argv[1], "-n") == 0)
                n = strtol(argv[2], NULL, 0);
        if (n <= 0)
                return EXIT_FAILURE;
        r = samples_and_bus(n, &v, &bus);
        if (r < 0)
                goto out;
        for (long k = 0; k < n; k++) {
                sd_bus_message *reply = NULL;
                sd_bus_error e = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_ns();
                r = sd_bus_call_method(bus, "org.dfud1", "/org/dfud1", "org.freedesktop.DBus.ObjectManager",
                                       "GetManagedObjects", &e, &reply, NULL);
                v[k] = now_ns() - t0;
                if (r < 0) {
                        fprintf(stderr, "GetManagedObjects: %s\n", e.message ?: strerror(-r));
                        sd_bus_error_free(&e);
                        goto out;
                }
                if (k == 0 && sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}") > 0)
                        while (sd_bus_message_skip(reply, "{oa{sa{sv}}}") > 0)
                                objects++;
                sd_bus_message_unref(reply);
        }
        /* The same round trip without the object tree: Peer.Ping, answered by sd-bus inside dfud. */
        uint64_t *pv = calloc((size_t) n, sizeof(uint64_t));
        if (!pv)
                goto out;
        for (long k = 0; k < n; k++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                uint64_t t0 = now_ns();
                r = sd_bus_call_method(bus, "org.dfud1", "/org/dfud1", "org.freedesktop.DBus.Peer", "Ping", &e,
                                       NULL, NULL);
                pv[k] = now_ns() - t0;
                sd_bus_error_free(&e);
                if (r < 0)
                        break;
        }
        qsort(pv, (size_t) n, sizeof(uint64_t), cmp_u64);
        double ping_p50 = (double) pct(pv, (size_t) n, 50) / 1e3, ping_p99 = (double) pct(pv, (size_t) n, 99) / 1e3;
        free(pv);
        qsort(v, (size_t) n, sizeof(uint64_t), cmp_u64);
        double sum = 0;
        for (long k = 0; k < n; k++)
                sum += (double) v[k];
        printf("{\"n\": %ld, \"objects\": %u, \"p50_us\": %.0f, \"p99_us\": %.0f, \"mean_us\": %.0f, "
               "\"max_us\": %.0f, \"ping_p50_us\": %.0f, \"ping_p99_us\": %.0f}\n",
               n, objects, (double) pct(v, (size_t) n, 50) / 1e3, (double) pct(v, (size_t) n, 99) / 1e3,
               sum / (double) n / 1e3, (double) v[n - 1] / 1e3, ping_p50, ping_p99);
        ret = EXIT_SUCCESS;
out:
        sd_bus_flush_close_unref(bus);
        free(v);
        return ret;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "xfer") == 0)
                return cmd_xfer(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "write") == 0)
                return cmd_write(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "startup") == 0)
                return cmd_startup(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "objects") == 0)
                return cmd_objects(argc - 1, argv + 1);
        fprintf(stderr, "usage: dfud-bench xfer|write|startup|objects ...\n");
        return EXIT_FAILURE;
}
