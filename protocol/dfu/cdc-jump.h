/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CDC-to-DFU jump on the tty side: ask a running application to reboot into its bootloader.
 * Termios only, non-blocking: the caller owns the fd (opened O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC).
 * DFU_DETACH on a runtime interface is done with dfu_engine_start_detach(). Facts:
 * dfu-protocol.md §8. */

#include <stddef.h>

typedef enum CdcJumpMethod {
        CDC_JUMP_DFU_DETACH,    /* "detach": DFU runtime interface */
        CDC_JUMP_TOUCH_1200,    /* "1200-baud": line coding 1200, then DTR dropped */
        CDC_JUMP_TEXT_COMMAND,  /* "command": write a text token such as "DFU\n" */
        _CDC_JUMP_METHOD_MAX,
        _CDC_JUMP_METHOD_INVALID = -22,
} CdcJumpMethod;

const char *cdc_jump_method_to_string(CdcJumpMethod m); /* "detach", "1200-baud", "command" */
CdcJumpMethod cdc_jump_method_from_string(const char *s);

/* 1200-baud touch: set DTR, set 1200 8N1, clear DTR. Negative errno on failure. */
int cdc_jump_touch_1200(int fd);
/* Write `command` (e.g. "DFU\n"); -EAGAIN if it could not all be written now. */
int cdc_jump_send_command(int fd, const char *command, size_t len);
/* Opens the tty as above and sends the 1200-baud touch or the text command (NULL: "DFU\n"). Returns
 * the fd, which the caller keeps open until the device drops off the bus (closing it may hang up the
 * line before the firmware has acted), or a negative errno. */
int cdc_jump_open_and_send(const char *tty, CdcJumpMethod method, const char *command);
