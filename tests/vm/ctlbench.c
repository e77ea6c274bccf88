/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctlbench VID:PID [N]: the control-transfer rate through libusb, usbfs, vhci_hcd and vstm32, with N
 * DFU_GETSTATE requests (1-byte IN, answered at once in every DFU state) on interface 0. Prints the
 * figure on stdout; exit status 0 only if every transfer succeeded.
 * ctlbench VID:PID desc: prints the DFU functional descriptor read with GET_DESCRIPTOR(0x21) from
 * interface 0 (what dfu-util falls back to), as hex bytes. */

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        libusb_context *ctx = NULL;
        libusb_device_handle *h = NULL;
        unsigned vid, pid;
        bool desc = argc > 2 && strcmp(argv[2], "desc") == 0;
        long n = argc > 2 && !desc ? strtol(argv[2], NULL, 10) : 2000;
        double t0, t;
        int r, ret = EXIT_FAILURE;

        if (argc < 2 || sscanf(argv[1], "%x:%x", &vid, &pid) != 2 || n <= 0) {
                fprintf(stderr, "usage: ctlbench VID:PID [N]\n");
                return EXIT_FAILURE;
        }
        r = libusb_init(&ctx);
        if (r < 0) {
                fprintf(stderr, "libusb_init: %s\n", libusb_strerror(r));
                return EXIT_FAILURE;
        }
        h = libusb_open_device_with_vid_pid(ctx, (uint16_t) vid, (uint16_t) pid);
        if (!h) {
                fprintf(stderr, "ctlbench: %04x:%04x not found\n", vid, pid);
                goto out;
        }
        r = libusb_claim_interface(h, 0);
        if (r < 0) {
                fprintf(stderr, "claim interface 0: %s\n", libusb_strerror(r));
                goto out;
        }

        if (desc) {
                unsigned char b[64];

                r = libusb_control_transfer(h, 0x81, LIBUSB_REQUEST_GET_DESCRIPTOR, 0x21 << 8, 0, b, sizeof(b),
                                            1000);
                if (r < 0) {
                        fprintf(stderr, "GET_DESCRIPTOR(0x21): %s\n", libusb_strerror(r));
                        goto out;
                }
                for (int i = 0; i < r; i++)
                        printf("%02x%s", b[i], i + 1 < r ? " " : "\n");
                ret = EXIT_SUCCESS;
                goto out;
        }

        t0 = now_s();
        for (long i = 0; i < n; i++) {
                unsigned char state;

                r = libusb_control_transfer(h, 0xA1, 5 /* DFU_GETSTATE */, 0, 0, &state, 1, 1000);
                if (r != 1) {
                        fprintf(stderr, "transfer %ld: %s\n", i, r < 0 ? libusb_strerror(r) : "short");
                        goto out;
                }
        }
        t = now_s() - t0;
        printf("ctlbench: %ld control transfers in %.3f s: %.0f/s, %.3f ms each\n", n, t, (double) n / t,
               t * 1000.0 / (double) n);
        ret = EXIT_SUCCESS;
out:
        if (h) {
                libusb_release_interface(h, 0);
                libusb_close(h);
        }
        libusb_exit(ctx);
        return ret;
}
