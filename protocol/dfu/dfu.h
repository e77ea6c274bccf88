/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* DFU 1.1 and ST DfuSe wire constants, with names for every state, status and request.
 * Facts: ../shared/reference/dfu-protocol.md §1, §2. No I/O here. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DFU_REQUEST_TYPE_OUT 0x21 /* class | interface | host-to-device */
#define DFU_REQUEST_TYPE_IN 0xA1  /* class | interface | device-to-host */

#define DFU_VERSION_DFUSE 0x011A
#define DFU_INTERFACE_CLASS 0xFE
#define DFU_INTERFACE_SUBCLASS 0x01
#define DFU_PROTOCOL_RUNTIME 0x01
#define DFU_PROTOCOL_DFU_MODE 0x02
#define DFU_FUNCTIONAL_DESCRIPTOR_TYPE 0x21
#define DFU_STATUS_LENGTH 6

#define DFUSE_CMD_GET_COMMANDS 0x00
#define DFUSE_CMD_SET_ADDRESS 0x21
#define DFUSE_CMD_ERASE 0x41
#define DFUSE_CMD_READ_UNPROTECT 0x92

#define DFU_ATTR_CAN_DOWNLOAD 0x01
#define DFU_ATTR_CAN_UPLOAD 0x02
#define DFU_ATTR_MANIFESTATION_TOLERANT 0x04
#define DFU_ATTR_WILL_DETACH 0x08
#define DFU_ATTR_ACCELERATED_ST 0x80

typedef enum DfuRequest {
        DFU_REQUEST_DETACH = 0,
        DFU_REQUEST_DNLOAD = 1,
        DFU_REQUEST_UPLOAD = 2,
        DFU_REQUEST_GETSTATUS = 3,
        DFU_REQUEST_CLRSTATUS = 4,
        DFU_REQUEST_GETSTATE = 5,
        DFU_REQUEST_ABORT = 6,
        _DFU_REQUEST_MAX,
        _DFU_REQUEST_INVALID = -22,
} DfuRequest;

typedef enum DfuState {
        DFU_STATE_APP_IDLE = 0,
        DFU_STATE_APP_DETACH = 1,
        DFU_STATE_DFU_IDLE = 2,
        DFU_STATE_DFU_DNLOAD_SYNC = 3,
        DFU_STATE_DFU_DNBUSY = 4,
        DFU_STATE_DFU_DNLOAD_IDLE = 5,
        DFU_STATE_DFU_MANIFEST_SYNC = 6,
        DFU_STATE_DFU_MANIFEST = 7,
        DFU_STATE_DFU_MANIFEST_WAIT_RESET = 8,
        DFU_STATE_DFU_UPLOAD_IDLE = 9,
        DFU_STATE_DFU_ERROR = 10,
        _DFU_STATE_MAX,
        _DFU_STATE_INVALID = -22,
} DfuState;

typedef enum DfuStatus {
        DFU_STATUS_OK = 0,
        DFU_STATUS_ERR_TARGET = 1,
        DFU_STATUS_ERR_FILE = 2,
        DFU_STATUS_ERR_WRITE = 3,
        DFU_STATUS_ERR_ERASE = 4,
        DFU_STATUS_ERR_CHECK_ERASED = 5,
        DFU_STATUS_ERR_PROG = 6,
        DFU_STATUS_ERR_VERIFY = 7,
        DFU_STATUS_ERR_ADDRESS = 8,
        DFU_STATUS_ERR_NOTDONE = 9,
        DFU_STATUS_ERR_FIRMWARE = 10,
        DFU_STATUS_ERR_VENDOR = 11,
        DFU_STATUS_ERR_USBR = 12,
        DFU_STATUS_ERR_POR = 13,
        DFU_STATUS_ERR_UNKNOWN = 14,
        DFU_STATUS_ERR_STALLEDPKT = 15,
        _DFU_STATUS_MAX,
        _DFU_STATUS_INVALID = -22,
} DfuStatus;

/* "DNLOAD", "dfuMANIFEST", "errVENDOR": the names the DFU spec and dfu-util use. */
const char *dfu_request_to_string(DfuRequest r);
DfuRequest dfu_request_from_string(const char *s);
const char *dfu_state_to_string(DfuState s);
DfuState dfu_state_from_string(const char *s);
const char *dfu_status_to_string(DfuStatus s);
DfuStatus dfu_status_from_string(const char *s);
/* A sentence for users: "read protection is active", "the address is not valid for this device"… */
const char *dfu_status_to_description(DfuStatus s);

/* The 6-byte GETSTATUS reply. */
typedef struct DfuStatusReply {
        DfuStatus status;
        uint32_t poll_timeout_ms; /* bwPollTimeout, 24 bit */
        DfuState state;
        uint8_t istring;
} DfuStatusReply;

/* -EBADMSG if len != 6 or the state/status bytes are out of range. */
int dfu_status_reply_parse(const uint8_t *buf, size_t len, DfuStatusReply *ret);
void dfu_status_reply_write(const DfuStatusReply *s, uint8_t buf[DFU_STATUS_LENGTH]);

/* The 9-byte (DFU 1.1) or 7-byte (DFU 1.0, version assumed 0x0100) functional descriptor. */
typedef struct DfuFunctionalDescriptor {
        uint8_t attributes;
        uint16_t detach_timeout_ms;
        uint16_t transfer_size;
        uint16_t dfu_version;
} DfuFunctionalDescriptor;

/* Finds the functional descriptor in a run of descriptors (interface "extra" bytes).
 * -ENOENT if there is none, -EBADMSG if it is malformed. */
int dfu_functional_descriptor_find(const uint8_t *buf, size_t len, DfuFunctionalDescriptor *ret);
