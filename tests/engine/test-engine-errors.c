/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Failures: what the engine reports, in words, and that it stops. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "macro.h"

#define KIB 1024u

static DfuUpdateOptions options(DfuPollPolicy policy, bool leave) {
        DfuUpdateOptions o;

        dfu_update_options_init(&o);
        o.poll_policy = policy;
        o.leave = leave;
        return o;
}

static void expect_message(const DfuEngineError *err, const char *message) {
        if (!streq(err->message, message)) {
                fprintf(stderr, "expected \"%s\"\n     got \"%s\"\n", message, err->message);
                abort();
        }
        printf("  %s\n", err->message);
}

/* Read protection: the very first flash operation (the erase of the vector-table sector) is refused
 * and the message says so. */
static void test_rdp(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 64 * KIB, 1, 1), back[4096];
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        const DfuEngineError *err;
        Stm32Stats ms;

        harness_init(&h, "f4-rom", 0xFF);
        harness_fault(&h, "rdp");
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        assert(harness_update(&h, img, &o) == -EPROTO);
        err = dfu_engine_get_error(h.engine);
        expect_message(err, "read protection is active (errVENDOR) while erasing 0x08000000");
        assert(err->status == DFU_STATUS_ERR_VENDOR && err->state == DFU_STATE_DFU_ERROR);
        assert(err->request == DFU_REQUEST_DNLOAD);
        assert(err->phase == DFU_PHASE_ERASING);
        assert(err->has_address && err->address == 0x08000000);
        assert(dfu_engine_get_phase(h.engine) == DFU_PHASE_FAILED);
        stm32_model_get_stats(h.model, &ms);
        assert(ms.bytes_written == 0 && ms.sectors_erased == 0);
        /* Nothing after the failure: the next step stays FAILED. */
        {
                DfuStep s;

                assert(dfu_engine_next(h.engine, &s) == 0 && s.kind == DFU_STEP_FAILED);
        }

        /* An upload is stalled; the engine asks GETSTATUS why. */
        harness_reopen(&h);
        harness_fault(&h, "rdp");
        assert(dfu_engine_start_upload(h.engine, 0, 0x08000000, back, sizeof(back), &o) == 0);
        assert(harness_run(&h) == -EPROTO);
        err = dfu_engine_get_error(h.engine);
        expect_message(err, "read protection is active (errVENDOR) while reading 0x08000000: "
                            "the device stalled UPLOAD");
        assert(err->request == DFU_REQUEST_UPLOAD);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* A device whose descriptor claims more flash than it has (1.5 MiB on a 1 MiB part): the model
 * answers errTARGET for the sector that does not exist. */
static void test_err_target(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 16 * KIB, 1, 2),
                *tail = make_firmware(0x08100000, 4 * KIB, 0, 3);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_HONOUR, true);
        const DfuEngineError *err;

        harness_init(&h, "f4-rom", 0xFF);
        assert(dfuse_layout_parse("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,11*128Kg",
                                  &h.layouts[0]) == 0);
        img = make_image(&h, 0x08000000, fw, 16 * KIB);
        image_add(&h, img, 0x08100000, tail, 4 * KIB);
        assert(harness_update(&h, img, &o) == -EPROTO);
        err = dfu_engine_get_error(h.engine);
        expect_message(err, "the address is not valid for this device (errTARGET) while erasing 0x08100000");
        assert(err->status == DFU_STATUS_ERR_TARGET);
        /* The vector-table sector was erased first and is still blank: the ROM stays in charge. */
        assert(harness_mem(&h, 0, 0x08000000)[0] == 0xFF);
        assert(stm32_model_boot(h.model, NULL) == h.profile);
        dfu_image_free(img);

        /* Leaving to an address outside any memory. */
        harness_reopen(&h);
        assert(dfu_engine_start_leave(h.engine, 0x30000000, &o) == 0);
        assert(harness_run(&h) == -EPROTO);
        expect_message(dfu_engine_get_error(h.engine),
                       "the address is not valid for this device (errTARGET) while setting the address to "
                       "0x30000000");
        harness_free(&h);
        free(fw);
        free(tail);
}

/* The device reports errVERIFY for one block. */
static void test_err_verify(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 64 * KIB, 1, 4);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        const DfuEngineError *err;

        harness_init(&h, "f4-rom", 0xFF);
        harness_fault(&h, "err-verify=0x08008100");
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        assert(harness_update(&h, img, &o) == -EPROTO);
        err = dfu_engine_get_error(h.engine);
        expect_message(err,
                       "the programmed memory failed verification (errVERIFY) while writing 0x08008000");
        assert(err->phase == DFU_PHASE_WRITING);
        assert(!dfu_engine_device_left(h.engine));
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* Flash that silently loses bits: only the read-back catches it. */
static Harness *corrupt_h;
static void corrupt_trace(void *userdata, Stm32TraceKind kind, uint8_t alt, uint32_t address,
                          uint32_t size) {
        if (kind == STM32_TRACE_WRITE && address <= 0x08005000 && address + size > 0x08005000)
                harness_mem(corrupt_h, 0, 0x08005000)[0] &= 0x7F;
}

static void test_readback_catches_corruption(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 64 * KIB, 1, 5);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        const DfuEngineError *err;

        harness_init(&h, "f4-rom", 0xFF);
        fw[0x5000] |= 0x80;
        corrupt_h = &h;
        stm32_model_set_trace(h.model, corrupt_trace, NULL);
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        assert(harness_update(&h, img, &o) == -EIO);
        err = dfu_engine_get_error(h.engine);
        assert(strstr(err->message, "verification failed: sector 0x08004000 reads back CRC"));
        assert(strstr(err->message, "while verifying 0x08004000..0x0800ffff"));
        printf("  %s\n", err->message);
        assert(err->phase == DFU_PHASE_VERIFYING);
        /* The vector-table sector was never written. */
        assert(harness_mem(&h, 0, 0x08000000)[0] == 0xFF);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* A stalled GETSTATUS (not an L4 early poll) is asked again, not fatal. */
static void test_stalled_poll(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 32 * KIB, 1, 6);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_HONOUR, true);
        DfuEngineStats es;

        harness_init(&h, "f4-rom", 0xFF);
        harness_fault(&h, "stall=GETSTATUS@6");
        img = make_image(&h, 0x08000000, fw, 32 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        dfu_engine_get_stats(h.engine, &es);
        assert(es.stalled_polls == 1);
        assert(es.poll_fallbacks == 0);
        assert(image_in_memory(&h, img));
        dfu_image_free(img);
        harness_free(&h);

        /* A stalled DNLOAD is fatal, with the request named. */
        harness_init(&h, "l4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 32 * KIB);
        harness_fault(&h, "stall=DNLOAD");
        assert(harness_update(&h, img, &o) == -EPIPE);
        assert(dfu_engine_get_error(h.engine)->request == DFU_REQUEST_DNLOAD);
        printf("  %s\n", dfu_engine_get_error(h.engine)->message);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* Unplugged mid-write: -ENODEV, and a hung device: -ETIMEDOUT. */
static void test_gone_and_hung(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 32 * KIB, 1, 7);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);

        harness_init(&h, "f4-rom", 0xFF);
        harness_fault(&h, "disconnect-after=20");
        img = make_image(&h, 0x08000000, fw, 32 * KIB);
        assert(harness_update(&h, img, &o) == -ENODEV);
        assert(!dfu_engine_device_left(h.engine));
        printf("  %s\n", dfu_engine_get_error(h.engine)->message);
        dfu_image_free(img);
        harness_free(&h);

        harness_init(&h, "f4-rom", 0xFF);
        harness_fault(&h, "hang-after=12");
        img = make_image(&h, 0x08000000, fw, 32 * KIB);
        assert(harness_update(&h, img, &o) == -ETIMEDOUT);
        printf("  %s\n", dfu_engine_get_error(h.engine)->message);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* A busy timeout shorter than the device's real erase time (fwupd's 1.5 s vs 2 s) fails clearly. */
static void test_busy_timeout(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08020000, 16 * KIB, 1, 8);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, false);

        harness_init(&h, "f4-rom", 0xFF);
        o.busy_timeout_ms = 1500;
        img = make_image(&h, 0x08020000, fw, 16 * KIB);
        assert(harness_update(&h, img, &o) == -ETIMEDOUT);
        expect_message(dfu_engine_get_error(h.engine),
                       "no GETSTATUS answer within 1500 ms (the device is busy for longer, or hung) while "
                       "erasing 0x08020000 (last state dfuDNBUSY)");
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

static void test_cancel_and_busy(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 32 * KIB, 1, 9);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        DfuStep s;

        harness_init(&h, "f4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 32 * KIB);
        assert(dfu_engine_start_update(h.engine, img, &o) == 0);
        assert(dfu_engine_start_update(h.engine, img, &o) == -EBUSY);
        assert(dfu_engine_next(h.engine, &s) == 0);
        dfu_engine_cancel(h.engine);
        assert(dfu_engine_next(h.engine, &s) == 0 && s.kind == DFU_STEP_FAILED);
        assert(dfu_engine_get_error(h.engine)->error == -ECANCELED);
        /* A late completion of the step that was out is ignored. */
        dfu_engine_control_done(h.engine, 0, 0);
        assert(dfu_engine_next(h.engine, &s) == 0 && s.kind == DFU_STEP_FAILED);
        /* The engine can be used again. */
        harness_reopen(&h);
        assert(harness_update(&h, img, &o) == 0);
        dfu_image_free(img);

        /* An image that was not placed is refused. */
        assert(dfu_image_new(&img) == 0);
        assert(dfu_image_add_segment(img, DFU_ALT_ANY, 0x08000000, fw, 64, NULL) == 0);
        harness_reopen(&h);
        assert(dfu_engine_start_update(h.engine, img, &o) == -EINVAL);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

int main(void) {
        test_rdp();
        test_err_target();
        test_err_verify();
        test_readback_catches_corruption();
        test_stalled_poll();
        test_gone_and_hung();
        test_busy_timeout();
        test_cancel_and_busy();
        printf("engine-errors: ok\n");
        return 0;
}
