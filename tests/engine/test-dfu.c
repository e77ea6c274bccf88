/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfu.c: name tables, GETSTATUS replies, functional descriptors; and the engine's own enums. */

#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dfu-engine.h"
#include "dfu.h"
#include "macro.h"

static void test_names(void) {
        /* Every value has a name, and the name maps back. */
        for (int i = 0; i < _DFU_REQUEST_MAX; i++)
                assert(dfu_request_from_string(dfu_request_to_string(i)) == i);
        for (int i = 0; i < _DFU_STATE_MAX; i++)
                assert(dfu_state_from_string(dfu_state_to_string(i)) == i);
        for (int i = 0; i < _DFU_STATUS_MAX; i++) {
                assert(dfu_status_from_string(dfu_status_to_string(i)) == i);
                assert(dfu_status_to_description(i)[0]);
        }
        for (int i = 0; i < _DFU_PHASE_MAX; i++)
                assert(dfu_phase_from_string(dfu_phase_to_string(i)) == i);
        for (int i = 0; i < _DFU_POLL_MAX; i++)
                assert(dfu_poll_policy_from_string(dfu_poll_policy_to_string(i)) == i);

        assert(streq(dfu_state_to_string(DFU_STATE_DFU_MANIFEST_WAIT_RESET), "dfuMANIFEST-WAIT-RESET"));
        assert(streq(dfu_state_to_string(DFU_STATE_DFU_DNLOAD_IDLE), "dfuDNLOAD-IDLE"));
        assert(streq(dfu_status_to_string(DFU_STATUS_ERR_VENDOR), "errVENDOR"));
        assert(streq(dfu_status_to_string(DFU_STATUS_ERR_CHECK_ERASED), "errCHECK_ERASED"));
        assert(streq(dfu_request_to_string(DFU_REQUEST_GETSTATUS), "GETSTATUS"));
        assert(streq(dfu_status_to_description(DFU_STATUS_ERR_VENDOR), "read protection is active"));
        assert(streq(dfu_poll_policy_to_string(DFU_POLL_EARLY), "early"));
        assert(dfu_state_to_string(_DFU_STATE_MAX) == NULL);
        assert(dfu_state_to_string(-1) == NULL);
        assert(dfu_status_from_string("errNOPE") == -EINVAL);
        assert(dfu_request_from_string(NULL) == -EINVAL);
}

static void test_status_reply(void) {
        uint8_t b[6];
        DfuStatusReply in = { .status = DFU_STATUS_ERR_TARGET, .poll_timeout_ms = 0x123456,
                              .state = DFU_STATE_DFU_ERROR, .istring = 3 }, out;

        dfu_status_reply_write(&in, b);
        assert(b[0] == 1 && b[1] == 0x56 && b[2] == 0x34 && b[3] == 0x12 && b[4] == 10 && b[5] == 3);
        assert(dfu_status_reply_parse(b, 6, &out) == 0);
        assert(out.status == in.status && out.poll_timeout_ms == in.poll_timeout_ms &&
               out.state == in.state && out.istring == 3);
        assert(dfu_status_reply_parse(b, 5, &out) == -EBADMSG);
        b[4] = 11;
        assert(dfu_status_reply_parse(b, 6, &out) == -EBADMSG);
        b[4] = 2;
        b[0] = 16;
        assert(dfu_status_reply_parse(b, 6, &out) == -EBADMSG);
}

static void test_functional_descriptor(void) {
        /* interface descriptor, then the F4 ROM's functional descriptor */
        static const uint8_t f4[] = { 9, 4,    0,    0,    0, 0xFE, 1,    2,    4,
                                      9, 0x21, 0x0B, 0xFF, 0, 0x00, 0x08, 0x1A, 0x01 };
        static const uint8_t dfu10[] = { 7, 0x21, 0x03, 0x10, 0x00, 0x00, 0x04 };
        static const uint8_t bad[] = { 9, 4, 0, 0, 0, 0xFE, 1, 2, 4, 5, 0x21, 0x0B, 0xFF, 0 };
        static const uint8_t loop[] = { 0, 0x21 };
        static const uint8_t none[] = { 9, 4, 0, 0, 0, 0xFE, 1, 2, 4 };
        DfuFunctionalDescriptor d;

        assert(dfu_functional_descriptor_find(f4, sizeof(f4), &d) == 0);
        assert(d.attributes == 0x0B && d.detach_timeout_ms == 255 && d.transfer_size == 2048 &&
               d.dfu_version == 0x011A);
        assert(dfu_functional_descriptor_find(dfu10, sizeof(dfu10), &d) == 0);
        assert(d.transfer_size == 1024 && d.dfu_version == 0x0100);
        assert(dfu_functional_descriptor_find(bad, sizeof(bad), &d) == -EBADMSG);
        assert(dfu_functional_descriptor_find(f4, sizeof(f4) - 1, &d) == -EBADMSG);
        assert(dfu_functional_descriptor_find(loop, sizeof(loop), &d) == -EBADMSG);
        assert(dfu_functional_descriptor_find(none, sizeof(none), &d) == -ENOENT);
        assert(dfu_functional_descriptor_find(NULL, 0, &d) == -ENOENT);
}

int main(void) {
        test_names();
        test_status_reply();
        test_functional_descriptor();
        printf("dfu: ok\n");
        return 0;
}
