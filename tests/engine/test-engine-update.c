/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Full updates through the engine against every emulated device. */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
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

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != v)
                        return false;
        return true;
}

/* 256 KiB on the F4 ROM: sectors 0-5. Returns the simulated time. */
static uint64_t f4_update(DfuPollPolicy policy, bool print) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 256 * KIB, 0x0102, 1);
        DfuImage *img;
        DfuUpdateOptions o = options(policy, true);
        Stm32Stats ms;
        DfuEngineStats es;
        uint16_t version = 0;
        uint64_t t;

        /* Flash outside the image holds a pattern that must survive. */
        harness_init(&h, "f4-rom", 0xA5);
        memset(harness_mem(&h, 1, 0x1FFFC000), 0xFF, 16); /* option bytes */
        img = make_image(&h, 0x08000000, fw, 256 * KIB);
        h.notify_gone = true;

        assert(harness_update(&h, img, &o) == 0);
        t = h.now - h.start;
        assert(image_in_memory(&h, img));
        assert(all_bytes(harness_mem(&h, 0, 0x08040000), 768 * KIB, 0xA5));
        assert(all_bytes(harness_mem(&h, 1, 0x1FFFC000), 16, 0xFF));
        assert(all_bytes(harness_mem(&h, 2, 0x1FFF7800), 528, 0xA5));
        assert(dfu_engine_device_left(h.engine));
        assert(stm32_model_disconnected(h.model) || stm32_model_disconnect_pending(h.model, NULL));
        assert(stm32_model_boot(h.model, &version) == stm32_profile_find("app"));
        assert(version == 0x0102);

        stm32_model_get_stats(h.model, &ms);
        dfu_engine_get_stats(h.engine, &es);
        assert(ms.sectors_erased == 6 && es.sectors_erased == 6);
        assert(es.bytes_downloaded == 256 * KIB);
        assert(ms.bytes_written == 256 * KIB);
        /* 6 sector reads for verify, 1 run + commit for writes, 1 leave. */
        assert(es.set_address_requests == ms.set_address_commands);
        assert(h.requests[DFU_REQUEST_CLRSTATUS] == 1);
        /* The device cannot be faster than its own flash. */
        assert(t >= ms.busy_us);
        if (print)
                printf("f4-rom 256 KiB, poll %s: %.2f s simulated, device busy %.2f s (lower bound), "
                       "%" PRIu64 " control transfers (%" PRIu64 " GETSTATUS, %" PRIu64 " SET_ADDRESS), "
                       "waited %.2f s, held %.2f s\n",
                       dfu_poll_policy_to_string(policy), (double) t / 1e6, (double) ms.busy_us / 1e6,
                       es.control_transfers, es.getstatus_requests, es.set_address_requests,
                       (double) es.waited_usec / 1e6, (double) ms.held_us / 1e6);
        if (policy == DFU_POLL_EARLY)
                assert(es.waited_usec < 100000);

        dfu_image_free(img);
        free(fw);
        harness_free(&h);
        return t;
}

static void test_f4_full_update(void) {
        uint64_t honour = f4_update(DFU_POLL_HONOUR, true);
        uint64_t early = f4_update(DFU_POLL_EARLY, true);

        /* Early polling saves the 104 ms minus ~33 ms of real programming per 2 KiB block. */
        assert(early < honour);
        assert(honour - early > 128 * 60000);
}

static void test_initial_err_firmware(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 20 * KIB, 1, 2);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, false);

        harness_init(&h, "f4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 20 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        assert(harness_log_contains(&h, "errFIRMWARE at power-up is harmless"));
        assert(!harness_log_contains(&h, "corrupt"));
        assert(h.requests[DFU_REQUEST_CLRSTATUS] == 1);
        assert(image_in_memory(&h, img));
        dfu_image_free(img);
        harness_free(&h);

        /* A ROM that starts in dfuIDLE gets no CLRSTATUS at all (STLIB would answer errUNKNOWN). */
        harness_init(&h, "l4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 20 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        assert(h.requests[DFU_REQUEST_CLRSTATUS] == 0);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* F072: after the leave it answers dfuMANIFEST to 1 + 3 GETSTATUS and only then drops off. */
static void test_f072_leave_needs_polls(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 100 * KIB, 7, 3);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        unsigned before;
        ssize_t leave;

        harness_init(&h, "f072-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 100 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        assert(dfu_engine_device_left(h.engine));
        assert(stm32_model_disconnected(h.model));
        assert(stm32_model_boot(h.model, NULL) == stm32_profile_find("app"));
        leave = harness_trace_find(&h, STM32_TRACE_LEAVE, 0x08000000, 1, true);
        assert(leave >= 0);
        assert(harness_log_contains(&h, "left the bus at GETSTATUS 5"));
        dfu_image_free(img);

        /* The leave alone, counting the polls after the zero-length DNLOAD. */
        harness_reopen(&h);
        before = h.requests[DFU_REQUEST_GETSTATUS];
        assert(dfu_engine_start_leave(h.engine, 0x08000000, &o) == 0);
        assert(harness_run(&h) == 0);
        assert(stm32_model_disconnected(h.model));
        /* enter 1, SET_ADDRESS 2, leave: 1 + 3 dfuMANIFEST + 1 failing */
        assert(h.requests[DFU_REQUEST_GETSTATUS] - before == 1 + 2 + 1 + h.profile->manifest_polls + 1);
        free(fw);
        harness_free(&h);
}

/* L4: an early poll is stalled; the engine then learns how long the device is really busy per kind of
 * operation and polls after that instead of the whole bwPollTimeout, within a few stalls. */
static void test_l4_early_poll_fallback(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 64 * KIB, 3, 4);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        DfuEngineStats es;
        Stm32Stats ms;
        uint64_t learned_us, honour_us, busy_us;

        harness_init(&h, "l4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        learned_us = h.now - h.start;
        assert(image_in_memory(&h, img));
        dfu_engine_get_stats(h.engine, &es);
        stm32_model_get_stats(h.model, &ms);
        busy_us = ms.busy_us;
        assert(ms.early_poll_stalls >= 1);
        assert(es.stalled_polls == ms.early_poll_stalls);
        assert(es.poll_fallbacks == 1);
        /* 64 writes and 32 erases: the estimate saw-tooths, a stall now and then, not one per block */
        assert(ms.early_poll_stalls < 64);
        assert(harness_log_contains(&h, "busy time learned per kind of operation"));
        assert(stm32_model_boot(h.model, NULL) == stm32_profile_find("app"));
        dfu_image_free(img);
        harness_free(&h);

        /* Honouring from the start never provokes a stall, and waits 104/100 ms per block/page. */
        harness_init(&h, "l4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        o.poll_policy = DFU_POLL_HONOUR;
        assert(harness_update(&h, img, &o) == 0);
        honour_us = h.now - h.start;
        stm32_model_get_stats(h.model, &ms);
        assert(ms.early_poll_stalls == 0);
        assert(image_in_memory(&h, img));
        fprintf(stderr, "l4-rom 64 KiB: learned %.2f s (%" PRIu64 " stalls, %.2f s waited), honour %.2f s, "
                "device busy %.2f s\n", learned_us / 1e6, es.stalled_polls, es.waited_usec / 1e6,
                honour_us / 1e6, busy_us / 1e6);
        /* the learned waits (the first transaction waits its whole bwPollTimeout) come within a
         * quarter of the device's own busy time; honour is far off */
        assert(es.waited_usec < busy_us + busy_us / 4 + 150000);
        assert(honour_us > 3 * learned_us);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* H7: an image across both banks; placement splits it at 0x08100000. */
static void test_h7_both_banks(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 130 * KIB, 9, 5),
                *b2 = make_firmware(0x080E0000, 256 * KIB, 0, 6);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        Stm32Stats ms;

        harness_init(&h, "h7-rom", 0x5A);
        img = make_image(&h, 0x08000000, fw, 130 * KIB);
        image_add(&h, img, 0x080E0000, b2, 256 * KIB);
        assert(img->n_segments >= 3);
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        /* Sectors 0, 1 (bank 1), 7 (bank 1), 8 (bank 2) erased; 2..6 and 9.. untouched. */
        stm32_model_get_stats(h.model, &ms);
        assert(ms.sectors_erased == 4);
        assert(harness_trace_find(&h, STM32_TRACE_ERASE, 0x08100000, 1, false) >= 0);
        assert(all_bytes(harness_mem(&h, 0, 0x08040000), 5 * 128 * KIB, 0x5A));
        assert(all_bytes(harness_mem(&h, 0, 0x08120000), 7 * 128 * KIB, 0x5A));
        assert(all_bytes(harness_mem(&h, 0, 0x08000000) + 130 * KIB, 126 * KIB, 0xFF));
        assert(stm32_model_boot(h.model, NULL) == stm32_profile_find("app"));
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
        free(b2);
}

/* A custom loader's external QSPI flash on alt 1. */
static void test_qspi_alt1(void) {
        Harness h;
        uint8_t *data = make_firmware(0x90000000, 200 * KIB, 0, 7);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, false);
        Stm32Stats ms;

        harness_init(&h, "qspi-loader", 0xFF);
        img = make_image(&h, 0x90000000, data, 200 * KIB);
        assert(img->segments[0].alt == 1);
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        stm32_model_get_stats(h.model, &ms);
        assert(ms.sectors_erased == 4); /* 64 KiB blocks */
        assert(all_bytes(harness_mem(&h, 0, 0x08010000), 960 * KIB, 0xFF));
        assert(harness_log_contains(&h, "selected alt 1"));
        for (size_t i = 0; i < h.n_trace; i++)
                if (h.trace[i].kind == STM32_TRACE_WRITE || h.trace[i].kind == STM32_TRACE_ERASE)
                        assert(h.trace[i].alt == 1);
        assert(!stm32_model_disconnect_pending(h.model, NULL));
        assert(stm32_model_get_state(h.model) == DFU_STATE_DFU_IDLE);
        dfu_image_free(img);
        harness_free(&h);
        free(data);
}

/* Plain DFU 1.1: blocks 0.., a zero-length DNLOAD, manifestation back to dfuIDLE. */
static void test_plain_dfu(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 40 * KIB + 100, 0x0203, 8);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_HONOUR, true);
        uint16_t version;

        harness_init(&h, "dfu11", 0x00);
        img = make_image(&h, 0, fw, 40 * KIB + 100);
        assert(harness_update(&h, img, &o) == 0);
        assert(memcmp(harness_mem(&h, 0, 0x08000000), fw, 40 * KIB + 100) == 0);
        /* 41 data blocks and one zero-length DNLOAD. */
        assert(h.requests[DFU_REQUEST_DNLOAD] == 42);
        assert(h.requests[DFU_REQUEST_CLRSTATUS] == 0);
        assert(stm32_model_get_state(h.model) == DFU_STATE_DFU_IDLE);
        assert(!dfu_engine_device_left(h.engine));
        assert(harness_log_contains(&h, "manifestation done"));
        assert(stm32_memory_valid_app(h.profile, h.memory, &version) && version == 0x0203);

        /* Upload reads it back. */
        {
                uint8_t *back = malloc(40 * KIB + 100);

                assert(dfu_engine_start_upload(h.engine, 0, 0, back, 40 * KIB + 100, &o) == 0);
                assert(harness_run(&h) == 0);
                assert(memcmp(back, fw, 40 * KIB + 100) == 0);
                free(back);
        }
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* The sector holding the vector table is erased first and written last, after every other sector was
 * verified. */
static void test_vector_table_last(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 300 * KIB, 4, 9);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        ssize_t first_erase = -1, commit_erase, commit_write_first, commit_write_last, last_other_write = -1,
                last_other_read = -1;
        size_t n_plan;
        const DfuPlanSector *plan;

        harness_init(&h, "f4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 300 * KIB);
        assert(harness_update(&h, img, &o) == 0);

        for (size_t i = 0; i < h.n_trace; i++) {
                const TraceEntry *t = &h.trace[i];
                bool commit = t->address < 0x08004000;

                if (t->kind == STM32_TRACE_ERASE && first_erase < 0)
                        first_erase = (ssize_t) i;
                if (!commit && t->kind == STM32_TRACE_WRITE)
                        last_other_write = (ssize_t) i;
                if (!commit && t->kind == STM32_TRACE_READ)
                        last_other_read = (ssize_t) i;
        }
        commit_erase = harness_trace_find(&h, STM32_TRACE_ERASE, 0x08000000, 1, false);
        commit_write_first = harness_trace_find(&h, STM32_TRACE_WRITE, 0x08000000, 16 * KIB, false);
        commit_write_last = harness_trace_find(&h, STM32_TRACE_WRITE, 0x08000000, 16 * KIB, true);
        assert(commit_erase == first_erase);
        assert(commit_write_first > last_other_write);
        assert(commit_write_first > last_other_read);
        assert(commit_write_last > commit_write_first);

        /* The plan lists it last, and its SECTOR_VERIFIED event comes last. */
        plan = dfu_engine_get_plan(h.engine, &n_plan);
        assert(n_plan == 7);
        assert(plan[n_plan - 1].address == 0x08000000);
        assert(h.n_verified == 7);
        assert(h.verified[6].address == 0x08000000);
        for (size_t i = 0; i < n_plan; i++)
                assert(plan[i].state == DFU_SECTOR_VERIFIED);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* Two separate runs: one SET_ADDRESS per contiguous run, never per block. */
static void test_set_address_per_run(void) {
        Harness h;
        uint8_t *a = make_firmware(0x08000000, 40 * KIB, 1, 10),
                *b = make_firmware(0x08010000, 100 * KIB, 0, 11);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        DfuEngineStats es;
        Stm32Stats ms;

        harness_init(&h, "f4-rom", 0xA5);
        img = make_image(&h, 0x08000000, a, 40 * KIB);
        image_add(&h, img, 0x08010000, b, 100 * KIB);
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        dfu_engine_get_stats(h.engine, &es);
        stm32_model_get_stats(h.model, &ms);
        /* Groups of at most 64 KiB (or one larger sector): sectors 1-2, sector 4, sector 5, then the
         * commit sector. Writes: 4, verify reads: 4, leave: 1. */
        assert(es.set_address_requests == 9);
        assert(ms.set_address_commands == 9);
        assert(h.requests[DFU_REQUEST_DNLOAD] > 60 + 7);
        /* Sector 3 (0x0800C000) is not touched by the image and keeps its content. */
        assert(harness_trace_find(&h, STM32_TRACE_ERASE, 0x0800C000, 16 * KIB, false) < 0);
        assert(all_bytes(harness_mem(&h, 0, 0x0800C000), 16 * KIB, 0xA5));
        assert(ms.sectors_erased == 5);
        dfu_image_free(img);
        harness_free(&h);
        free(a);
        free(b);
}

/* Incremental: an identical image costs only the read-back; a changed sector is rewritten with the
 * commit sector. */
static void test_incremental(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 256 * KIB, 5, 12);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, false);
        DfuEngineStats es;
        Stm32Stats ms;
        size_t n0;

        harness_init(&h, "f4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 256 * KIB);
        assert(harness_update(&h, img, &o) == 0);

        harness_reopen(&h);
        n0 = h.n_trace;
        o.incremental = true;
        assert(harness_update(&h, img, &o) == 0);
        dfu_engine_get_stats(h.engine, &es);
        stm32_model_get_stats(h.model, &ms);
        assert(es.sectors_skipped == 6);
        assert(es.sectors_erased == 0 && ms.sectors_erased == 0);
        assert(es.bytes_downloaded == 0 && ms.bytes_written == 0);
        assert(es.bytes_uploaded == 256 * KIB);
        for (size_t i = n0; i < h.n_trace; i++)
                assert(h.trace[i].kind == STM32_TRACE_READ || h.trace[i].kind == STM32_TRACE_SET_ADDRESS);
        printf("incremental, identical 256 KiB on f4-rom: %.2f s simulated, %" PRIu64 " control transfers\n",
               (double) (h.now - h.start) / 1e6, es.control_transfers);
        dfu_image_free(img);

        /* Change one byte in sector 4 (0x08010000): that sector and the commit sector are rewritten. */
        fw[0x12345] ^= 0xFF;
        /* keep the header CRC consistent so the result boots */
        {
                Vstm32Header hd;
                uint32_t crc;

                memset(fw + VSTM32_HEADER_OFFSET + 12, 0, 4);
                crc = dfu_crc32(fw, 256 * KIB);
                memcpy(&hd, fw + VSTM32_HEADER_OFFSET, sizeof(hd));
                hd.crc = htole32(crc);
                memcpy(fw + VSTM32_HEADER_OFFSET, &hd, sizeof(hd));
        }
        harness_reopen(&h);
        img = make_image(&h, 0x08000000, fw, 256 * KIB);
        o.leave = true;
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        dfu_engine_get_stats(h.engine, &es);
        stm32_model_get_stats(h.model, &ms);
        assert(es.sectors_skipped == 4);
        assert(ms.sectors_erased == 2);
        assert(es.bytes_downloaded == 16 * KIB + 64 * KIB);
        assert(stm32_model_boot(h.model, NULL) == stm32_profile_find("app"));
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

/* The application's DFU runtime interface: DETACH, and the bootloader comes back. */
static void test_detach(void) {
        Harness h;
        uint16_t version;
        DfuImage *img = NULL;

        harness_init(&h, "app", 0xFF);
        assert(h.info.runtime);
        assert(dfu_engine_start_detach(h.engine, 1000) == 0);
        assert(harness_run(&h) == 0);
        assert(h.requests[DFU_REQUEST_DETACH] == 1);
        assert(dfu_engine_device_left(h.engine));
        assert(stm32_model_disconnect_pending(h.model, NULL));
        assert(stm32_model_boot(h.model, &version) == stm32_profile_find("f4-rom"));
        assert(harness_log_contains(&h, "re-enumerates by itself"));

        /* A runtime interface cannot be updated. */
        assert(dfu_image_new(&img) == 0);
        assert(dfu_image_add_segment(img, 0, 0x08000000, (const uint8_t[4]) {}, 4, NULL) == 0);
        assert(dfu_engine_start_update(h.engine, img, NULL) == -EINVAL);
        dfu_image_free(img);
        harness_free(&h);
}

/* Mass erase only when asked: one 0x41 command, no sector erases. */
static void test_mass_erase(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 64 * KIB, 2, 13);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY, true);
        DfuEngineStats es;

        harness_init(&h, "f4-rom", 0xA5);
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        o.mass_erase = true;
        assert(harness_update(&h, img, &o) == 0);
        assert(image_in_memory(&h, img));
        assert(harness_trace_find(&h, STM32_TRACE_MASS_ERASE, 0x08000000, 1, false) >= 0);
        assert(harness_trace_find(&h, STM32_TRACE_ERASE, 0x08000000, 1024 * KIB, false) < 0);
        assert(all_bytes(harness_mem(&h, 0, 0x08010000), 960 * KIB, 0xFF));
        dfu_engine_get_stats(h.engine, &es);
        assert(es.sectors_erased == 0);
        dfu_image_free(img);
        harness_free(&h);

        /* Without the option the same image never causes a mass erase. */
        harness_init(&h, "f4-rom", 0xA5);
        img = make_image(&h, 0x08000000, fw, 64 * KIB);
        o.mass_erase = false;
        assert(harness_update(&h, img, &o) == 0);
        assert(harness_trace_find(&h, STM32_TRACE_MASS_ERASE, 0, UINT32_MAX, false) < 0);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

int main(void) {
        test_mass_erase();
        test_f4_full_update();
        test_initial_err_firmware();
        test_f072_leave_needs_polls();
        test_l4_early_poll_fallback();
        test_h7_both_banks();
        test_qspi_alt1();
        test_plain_dfu();
        test_vector_table_last();
        test_set_address_per_run();
        test_incremental();
        test_detach();
        printf("engine-update: ok\n");
        return 0;
}
