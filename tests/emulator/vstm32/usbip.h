/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The USB/IP wire protocol as vhci_hcd speaks it, and attaching to a vhci port over a socketpair.
 * Facts: /work/shared/reference/vm-usbip.md. Blocking I/O on the socket: the kernel's rx thread
 * always drains it and sends a command in one piece. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USBIP_CMD_SUBMIT 1
#define USBIP_CMD_UNLINK 2
#define USBIP_RET_SUBMIT 3
#define USBIP_RET_UNLINK 4
#define USBIP_HEADER_SIZE 48
#define USBIP_DIR_OUT 0
#define USBIP_DIR_IN 1

#define USBIP_SPEED_FULL 2
#define USBIP_SPEED_HIGH 3

#define VHCI_SYSFS "/sys/devices/platform/vhci_hcd.0"
#define VHCI_HS_PORTS 15 /* ports 0-14 are high speed, 15-29 super speed (Debian config) */

typedef struct UsbipCommand {
        uint32_t command;
        uint32_t seqnum;
        uint32_t devid;
        uint32_t direction;
        uint32_t ep;
        uint32_t transfer_flags;
        uint32_t length;        /* transfer_buffer_length */
        uint8_t setup[8];
        uint32_t unlink_seqnum; /* CMD_UNLINK: the victim */
        uint8_t *data;          /* OUT data (length bytes), malloc'ed; NULL for IN */
} UsbipCommand;

void usbip_command_done(UsbipCommand *c);

/* Reads one command. 0 on success, -ECONNRESET on EOF (the kernel detached us), -errno else. */
int usbip_read_command(int fd, UsbipCommand *ret);
int usbip_send_ret_submit(int fd, uint32_t seqnum, int status, bool in, const void *data, size_t actual);
int usbip_send_ret_unlink(int fd, uint32_t seqnum, int status);

/* Is this vhci port free (sta 004)? 1 yes, 0 no, -errno. */
int usbip_port_is_free(unsigned port);
/* First free high-speed port, or -EBUSY. */
int usbip_find_free_port(void);
/* socketpair + write "<port> <fd> <devid> <speed>" to attach; returns our end of the pair. */
int usbip_attach(unsigned port, uint32_t devid, unsigned speed, int *ret_fd);
