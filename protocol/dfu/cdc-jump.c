/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cdc-jump.h"
#include "macro.h"

static const char *const cdc_jump_method_table[_CDC_JUMP_METHOD_MAX] = {
        [CDC_JUMP_DFU_DETACH] = "detach",
        [CDC_JUMP_TOUCH_1200] = "1200-baud",
        [CDC_JUMP_TEXT_COMMAND] = "command",
};
DEFINE_STRING_TABLE_LOOKUP(cdc_jump_method, CdcJumpMethod);

static int set_dtr(int fd, bool on) {
        int bits = TIOCM_DTR;
        return ioctl(fd, on ? TIOCMBIS : TIOCMBIC, &bits) < 0 ? -errno : 0;
}

/* The Arduino/Klipper convention (dfu-protocol.md §8.2): the device watches SET_LINE_CODING and
 * SET_CONTROL_LINE_STATE and reboots into its bootloader when the rate is 1200 and DTR drops.
 * With cdc_acm each step below is one control request, sent in this order. TCSANOW: nothing waits
 * for output to drain, so this never blocks. */
int cdc_jump_touch_1200(int fd) {
        struct termios t;
        int r;

        if (tcgetattr(fd, &t) < 0)
                return -errno;
        r = set_dtr(fd, true);
        if (r < 0)
                return r;
        cfmakeraw(&t);
        t.c_cflag &= ~(CSTOPB | PARENB | CRTSCTS);
        t.c_cflag |= CS8 | CLOCAL | CREAD | HUPCL;
        if (cfsetispeed(&t, B1200) < 0 || cfsetospeed(&t, B1200) < 0)
                return -errno;
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        return set_dtr(fd, false);
}

/* Text-command jumps (dfu-protocol.md §8.4): a raw line with no echo or translation, so the
 * firmware sees exactly the configured bytes. */
int cdc_jump_send_command(int fd, const char *command, size_t len) {
        struct termios t;

        if (len == 0)
                return -EINVAL;
        if (tcgetattr(fd, &t) < 0)
                return -errno;
        cfmakeraw(&t);
        t.c_cflag |= CLOCAL | CREAD;
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        /* some CDC firmwares only listen while DTR is set (a terminal is "connected") */
        (void) set_dtr(fd, true);

        ssize_t n = write(fd, command, len);
        if (n < 0)
                return errno == EAGAIN ? -EAGAIN : -errno;
        if ((size_t) n != len)
                return -EAGAIN;
        return 0;
}

int cdc_jump_open_and_send(const char *tty, CdcJumpMethod method, const char *command) {
        int fd, r;

        if (method != CDC_JUMP_TOUCH_1200 && method != CDC_JUMP_TEXT_COMMAND)
                return -EINVAL;
        fd = open(tty, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (method == CDC_JUMP_TOUCH_1200)
                r = cdc_jump_touch_1200(fd);
        else {
                if (!command)
                        command = "DFU\n";
                r = cdc_jump_send_command(fd, command, strlen(command));
        }
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}
