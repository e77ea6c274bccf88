/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>

#include "dfu.h"
#include "macro.h"

static const char *const dfu_request_table[_DFU_REQUEST_MAX] = {
        [DFU_REQUEST_DETACH] = "DETACH",
        [DFU_REQUEST_DNLOAD] = "DNLOAD",
        [DFU_REQUEST_UPLOAD] = "UPLOAD",
        [DFU_REQUEST_GETSTATUS] = "GETSTATUS",
        [DFU_REQUEST_CLRSTATUS] = "CLRSTATUS",
        [DFU_REQUEST_GETSTATE] = "GETSTATE",
        [DFU_REQUEST_ABORT] = "ABORT",
};
DEFINE_STRING_TABLE_LOOKUP(dfu_request, DfuRequest);

static const char *const dfu_state_table[_DFU_STATE_MAX] = {
        [DFU_STATE_APP_IDLE] = "appIDLE",
        [DFU_STATE_APP_DETACH] = "appDETACH",
        [DFU_STATE_DFU_IDLE] = "dfuIDLE",
        [DFU_STATE_DFU_DNLOAD_SYNC] = "dfuDNLOAD-SYNC",
        [DFU_STATE_DFU_DNBUSY] = "dfuDNBUSY",
        [DFU_STATE_DFU_DNLOAD_IDLE] = "dfuDNLOAD-IDLE",
        [DFU_STATE_DFU_MANIFEST_SYNC] = "dfuMANIFEST-SYNC",
        [DFU_STATE_DFU_MANIFEST] = "dfuMANIFEST",
        [DFU_STATE_DFU_MANIFEST_WAIT_RESET] = "dfuMANIFEST-WAIT-RESET",
        [DFU_STATE_DFU_UPLOAD_IDLE] = "dfuUPLOAD-IDLE",
        [DFU_STATE_DFU_ERROR] = "dfuERROR",
};
DEFINE_STRING_TABLE_LOOKUP(dfu_state, DfuState);

static const char *const dfu_status_table[_DFU_STATUS_MAX] = {
        [DFU_STATUS_OK] = "OK",
        [DFU_STATUS_ERR_TARGET] = "errTARGET",
        [DFU_STATUS_ERR_FILE] = "errFILE",
        [DFU_STATUS_ERR_WRITE] = "errWRITE",
        [DFU_STATUS_ERR_ERASE] = "errERASE",
        [DFU_STATUS_ERR_CHECK_ERASED] = "errCHECK_ERASED",
        [DFU_STATUS_ERR_PROG] = "errPROG",
        [DFU_STATUS_ERR_VERIFY] = "errVERIFY",
        [DFU_STATUS_ERR_ADDRESS] = "errADDRESS",
        [DFU_STATUS_ERR_NOTDONE] = "errNOTDONE",
        [DFU_STATUS_ERR_FIRMWARE] = "errFIRMWARE",
        [DFU_STATUS_ERR_VENDOR] = "errVENDOR",
        [DFU_STATUS_ERR_USBR] = "errUSBR",
        [DFU_STATUS_ERR_POR] = "errPOR",
        [DFU_STATUS_ERR_UNKNOWN] = "errUNKNOWN",
        [DFU_STATUS_ERR_STALLEDPKT] = "errSTALLEDPKT",
};
DEFINE_STRING_TABLE_LOOKUP(dfu_status, DfuStatus);

/* Meanings from DFU 1.1 §6.1.2; errVENDOR is what the STM32 ROM (AN3156) reports under read
 * protection, which is the only vendor error a DfuSe device is known to send. */
static const char *const dfu_status_description_table[_DFU_STATUS_MAX] = {
        [DFU_STATUS_OK] = "no error",
        [DFU_STATUS_ERR_TARGET] = "the address is not valid for this device",
        [DFU_STATUS_ERR_FILE] = "the file is not meant for this device",
        [DFU_STATUS_ERR_WRITE] = "the device is unable to write memory",
        [DFU_STATUS_ERR_ERASE] = "the memory erase failed",
        [DFU_STATUS_ERR_CHECK_ERASED] = "the memory erase check failed",
        [DFU_STATUS_ERR_PROG] = "the program memory function failed",
        [DFU_STATUS_ERR_VERIFY] = "the programmed memory failed verification",
        [DFU_STATUS_ERR_ADDRESS] = "the address is out of range",
        [DFU_STATUS_ERR_NOTDONE] = "the device did not receive all the data yet",
        [DFU_STATUS_ERR_FIRMWARE] = "the device's firmware is corrupt",
        [DFU_STATUS_ERR_VENDOR] = "read protection is active",
        [DFU_STATUS_ERR_USBR] = "the device saw an unexpected USB reset",
        [DFU_STATUS_ERR_POR] = "the device saw an unexpected power-on reset",
        [DFU_STATUS_ERR_UNKNOWN] = "unknown error",
        [DFU_STATUS_ERR_STALLEDPKT] = "the device stalled an unexpected request",
};

const char *dfu_status_to_description(DfuStatus s) {
        if ((int) s < 0 || (size_t) s >= ELEMENTSOF(dfu_status_description_table))
                return "invalid status";
        return dfu_status_description_table[s];
}

int dfu_status_reply_parse(const uint8_t *buf, size_t len, DfuStatusReply *ret) {
        if (!buf || !ret || len != DFU_STATUS_LENGTH)
                return -EBADMSG;
        if (buf[0] >= _DFU_STATUS_MAX || buf[4] >= _DFU_STATE_MAX)
                return -EBADMSG;

        *ret = (DfuStatusReply) {
                .status = buf[0],
                .poll_timeout_ms = (uint32_t) buf[1] | (uint32_t) buf[2] << 8 | (uint32_t) buf[3] << 16,
                .state = buf[4],
                .istring = buf[5],
        };
        return 0;
}

void dfu_status_reply_write(const DfuStatusReply *s, uint8_t buf[DFU_STATUS_LENGTH]) {
        uint32_t t = MIN(s->poll_timeout_ms, 0xFFFFFFu);

        buf[0] = (uint8_t) s->status;
        buf[1] = t & 0xFF;
        buf[2] = (t >> 8) & 0xFF;
        buf[3] = (t >> 16) & 0xFF;
        buf[4] = (uint8_t) s->state;
        buf[5] = s->istring;
}

int dfu_functional_descriptor_find(const uint8_t *buf, size_t len, DfuFunctionalDescriptor *ret) {
        size_t i = 0;

        if (!buf && len > 0)
                return -EINVAL;

        while (i < len) {
                uint8_t dlen, dtype;

                if (len - i < 2)
                        return -EBADMSG;
                dlen = buf[i];
                dtype = buf[i + 1];
                if (dlen < 2 || dlen > len - i)
                        return -EBADMSG;

                if (dtype == DFU_FUNCTIONAL_DESCRIPTOR_TYPE) {
                        /* DFU 1.1 is 9 bytes; DFU 1.0 descriptors stop before bcdDFUVersion. */
                        if (dlen < 7)
                                return -EBADMSG;
                        if (ret)
                                *ret = (DfuFunctionalDescriptor) {
                                        .attributes = buf[i + 2],
                                        .detach_timeout_ms = buf[i + 3] | buf[i + 4] << 8,
                                        .transfer_size = buf[i + 5] | buf[i + 6] << 8,
                                        .dfu_version = dlen >= 9 ? (uint16_t) (buf[i + 7] | buf[i + 8] << 8)
                                                                 : 0x0100,
                                };
                        return 0;
                }
                i += dlen;
        }
        return -ENOENT;
}
