/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What the daemon reads from a device before talking to it: the raw descriptors (DFU interface,
 * alt settings, functional descriptor, CDC ACM), and the CDC jump on a tty (a pty here). */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cdc-jump.h"
#include "macro.h"
#include "test-util.h"
#include "usb-desc.h"

static size_t read_corpus(const char *dir, const char *name, uint8_t *buf, size_t size) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        FILE *f = fopen(p, "re");
        assert(f);
        size_t n = fread(buf, 1, size, f);
        fclose(f);
        return n;
}

static void test_descriptors(const char *corpus) {
        uint8_t buf[4096];
        UsbDescInfo u;
        size_t n;

        n = read_corpus(corpus, "dfu-mode.bin", buf, sizeof buf);
        assert(usb_desc_parse(buf, n, &u) == 0);
        assert(u.vendor_id == 0x0483 && u.product_id == 0xdf11 && u.bcd_device == 0x2200);
        assert(u.has_dfu && !u.dfu_runtime && u.dfu_interface == 0 && u.n_alts == 4);
        assert(u.alt_string[0] == 4 && u.alt_string[3] == 7);
        assert(u.has_functional && u.functional.transfer_size == 2048 && u.functional.dfu_version == 0x011a);
        assert(u.functional.attributes == 0x0b && !u.has_cdc_acm);

        n = read_corpus(corpus, "app-composite.bin", buf, sizeof buf);
        assert(usb_desc_parse(buf, n, &u) == 0);
        assert(u.product_id == 0x5740 && u.bcd_device == 0x0100);
        assert(u.has_dfu && u.dfu_runtime && u.dfu_interface == 2 && u.n_alts == 1 && u.has_cdc_acm);
        assert(u.has_functional && u.functional.detach_timeout_ms == 255);

        n = read_corpus(corpus, "truncated.bin", buf, sizeof buf);
        assert(usb_desc_parse(buf, n, &u) == -EBADMSG);
        assert(usb_desc_parse(buf, 10, &u) == -EBADMSG);
        /* a zero-length descriptor must not loop */
        uint8_t bad[20] = { 18, 1 };
        assert(usb_desc_parse(bad, sizeof bad, &u) == -EBADMSG);
}

static void test_cdc_command(void) {
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        char buf[64];

        assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
        int fd = open(ptsname(master), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        assert(fd >= 0);
        assert(cdc_jump_send_command(fd, "DFU\n", 4) == 0);
        /* raw mode: exactly the configured bytes, no CR added */
        ssize_t n = read(master, buf, sizeof buf);
        assert(n == 4 && memcmp(buf, "DFU\n", 4) == 0);
        assert(cdc_jump_send_command(fd, "", 0) == -EINVAL);

        /* the touch sets 1200 baud with DTR dropped; a pty may have no modem lines, then it says so */
        int r = cdc_jump_touch_1200(fd);
        struct termios t;
        assert(tcgetattr(fd, &t) == 0);
        if (r == 0)
                assert(cfgetospeed(&t) == B1200);
        else
                assert(r == -EINVAL || r == -ENOTTY || r == -EIO);

        assert(cdc_jump_method_from_string("1200-baud") == CDC_JUMP_TOUCH_1200);
        assert(streq(cdc_jump_method_to_string(CDC_JUMP_TEXT_COMMAND), "command"));
        assert(cdc_jump_method_from_string("x") < 0);
        close(fd);

        /* open + send, as dfud does it: the default command, the fd handed over */
        fd = cdc_jump_open_and_send(ptsname(master), CDC_JUMP_TEXT_COMMAND, NULL);
        assert(fd >= 0);
        n = read(master, buf, sizeof buf);
        assert(n == 4 && memcmp(buf, "DFU\n", 4) == 0);
        close(fd);
        assert(cdc_jump_open_and_send("/nonexistent/ttyACM9", CDC_JUMP_TEXT_COMMAND, "X") == -ENOENT);
        assert(cdc_jump_open_and_send(ptsname(master), CDC_JUMP_DFU_DETACH, NULL) == -EINVAL);
        close(master);

        /* not a tty at all */
        int p[2];
        assert(pipe(p) == 0);
        assert(cdc_jump_touch_1200(p[1]) == -ENOTTY);
        close(p[0]);
        close(p[1]);
}

int main(int argc, char **argv) {
        assert(argc == 2);
        fprintf(stderr, "== test_descriptors\n");
        test_descriptors(argv[1]);
        fprintf(stderr, "== test_cdc_command\n");
        test_cdc_command();
        return 0;
}
