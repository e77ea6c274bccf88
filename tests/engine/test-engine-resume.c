/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Interrupted updates: the device drops off the bus at every control transfer of an update (and loses
 * power in the middle of a block); the update is then resumed on the same memory with the verified
 * sectors the first run reported. At every interruption point the device must either stay in its
 * bootloader or hold the complete image, and the resumed run must end with the image in memory and
 * at most one sector of rework. */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "macro.h"

#define KIB 1024u

typedef struct Case {
        const char *profile;
        uint32_t size;
        DfuPollPolicy policy;
        unsigned step;  /* try every step-th transfer */
        uint8_t fill;   /* initial flash content */
} Case;

static DfuUpdateOptions options(DfuPollPolicy policy) {
        DfuUpdateOptions o;

        dfu_update_options_init(&o);
        o.poll_policy = policy;
        o.leave = true;
        return o;
}

static uint64_t clean_run(const Case *c, const uint8_t *fw, size_t *ret_n_plan) {
        Harness h;
        DfuImage *img;
        DfuUpdateOptions o = options(c->policy);
        Stm32Stats ms;

        harness_init(&h, c->profile, c->fill);
        img = make_image(&h, 0x08000000, fw, c->size);
        assert(harness_update(&h, img, &o) == 0);
        stm32_model_get_stats(h.model, &ms);
        dfu_engine_get_plan(h.engine, ret_n_plan);
        dfu_image_free(img);
        harness_free(&h);
        return ms.control_transfers;
}

/* Outside the image nothing changed. */
static void check_untouched(const Harness *h, const Case *c) {
        const uint8_t *flash = harness_mem(h, 0, 0x08000000);
        uint32_t flash_size = stm32_region_size(&h->profile->regions[0]);
        uint32_t end = c->size;
        DfuseSector s;

        /* The image's last sector is erased up to its end. */
        assert(dfuse_layout_find_sector(&h->layouts[0], 0x08000000 + c->size - 1, &s) == 0);
        end = s.address + s.size - 0x08000000;
        for (uint32_t i = end; i < flash_size; i++)
                assert(flash[i] == c->fill);
}

/* One interruption by `fault`, then resume until done. Returns the number of resumed runs. */
static unsigned interrupt_and_resume(const Case *c, const uint8_t *fw, size_t n_plan, const char *fault,
                                     const char *second_fault) {
        Harness h;
        DfuImage *img;
        DfuUpdateOptions o = options(c->policy);
        DfuPlanSector journal[64];
        size_t n_journal, n;
        const DfuPlanSector *v;
        Stm32Stats ms;
        uint64_t erases = 0, written = 0;
        unsigned resumes = 0;
        int r;

        harness_init(&h, c->profile, c->fill);
        img = make_image(&h, 0x08000000, fw, c->size);
        harness_fault(&h, fault);
        r = harness_update(&h, img, &o);

        for (;;) {
                stm32_model_get_stats(h.model, &ms);
                erases += ms.sectors_erased;
                written += ms.bytes_written;
                if (r == 0)
                        break;
                assert(r == -ENODEV);
                /* Never a bootable mix of old and new: the bootloader comes back, or the image is whole. */
                if (stm32_model_boot(h.model, NULL) != h.profile)
                        assert(image_in_memory(&h, img));

                v = harness_verified(&h, &n);
                assert(n <= ELEMENTSOF(journal));
                memcpy(journal, v, n * sizeof(*v));
                n_journal = n;

                harness_reopen(&h);
                if (second_fault && resumes == 0)
                        harness_fault(&h, second_fault);
                o.resume = true;
                o.verified = journal;
                o.n_verified = n_journal;
                r = harness_update(&h, img, &o);
                resumes++;
                assert(resumes < 5);
        }

        assert(image_in_memory(&h, img));
        check_untouched(&h, c);
        assert(stm32_model_boot(h.model, NULL) == stm32_profile_find("app"));
        /* Rework bound: at most one sector erased and written twice per interruption. */
        assert(erases <= n_plan + resumes);
        assert(written <= c->size + resumes * 128 * KIB);
        dfu_image_free(img);
        harness_free(&h);
        return resumes;
}

static void run_case(const Case *c) {
        uint8_t *fw = make_firmware(0x08000000, c->size, 0x0300, 42);
        size_t n_plan = 0;
        uint64_t total = clean_run(c, fw, &n_plan);
        unsigned tried = 0, resumed = 0;
        char spec[64];

        for (uint64_t n = 1; n <= total; n += c->step) {
                snprintf(spec, sizeof(spec), "disconnect-after=%" PRIu64, n);
                resumed += interrupt_and_resume(c, fw, n_plan, spec, NULL) > 0;
                tried++;
        }
        /* The very last transfers (leave) too. */
        for (uint64_t n = total > 3 ? total - 3 : 1; n <= total; n++) {
                snprintf(spec, sizeof(spec), "disconnect-after=%" PRIu64, n);
                interrupt_and_resume(c, fw, n_plan, spec, NULL);
        }
        printf("%s %u KiB (%s, fill 0x%02X): %" PRIu64 " transfers, %u interruption points, %u resumed\n",
               c->profile, c->size / KIB, dfu_poll_policy_to_string(c->policy), c->fill, total, tried,
               resumed);
        assert(resumed > tried * 3 / 4);
        free(fw);
}

/* Power lost in the middle of programming a block: half of it is in flash. The resumed run must
 * re-erase that sector, not write over it (AND semantics would corrupt it). */
static void test_power_loss(void) {
        Case c = { .profile = "f4-rom", .size = 100 * KIB, .policy = DFU_POLL_EARLY, .fill = 0xFF };
        uint8_t *fw = make_firmware(0x08000000, c.size, 0x0300, 43);
        size_t n_plan = 0;
        static const char *const faults[] = {
                "power-loss=0x08000010",  /* the vector-table sector, written last */
                "power-loss=0x08004800",
                "power-loss=0x0800C000",
                "power-loss=0x08012345",
                "disconnect-at=0x08008000",
        };

        clean_run(&c, fw, &n_plan);
        for (size_t i = 0; i < ELEMENTSOF(faults); i++)
                assert(interrupt_and_resume(&c, fw, n_plan, faults[i], NULL) == 1);
        /* Interrupted twice: once by power loss, then while resuming. */
        assert(interrupt_and_resume(&c, fw, n_plan, "power-loss=0x08012345", "disconnect-after=40") == 2);
        assert(interrupt_and_resume(&c, fw, n_plan, "disconnect-after=100", "power-loss=0x08000800") == 2);
        free(fw);
}

/* A resumed run trusts the journal: verified sectors are neither read nor erased again. */
static void test_trusts_journal(void) {
        Harness h;
        uint8_t *fw = make_firmware(0x08000000, 100 * KIB, 1, 44);
        DfuImage *img;
        DfuUpdateOptions o = options(DFU_POLL_EARLY);
        DfuPlanSector journal[16];
        size_t n;
        const DfuPlanSector *v;

        harness_init(&h, "f4-rom", 0xFF);
        img = make_image(&h, 0x08000000, fw, 100 * KIB);
        o.leave = false;
        assert(harness_update(&h, img, &o) == 0);
        v = harness_verified(&h, &n);
        assert(n == 5);
        memcpy(journal, v, n * sizeof(*v));

        /* Pretend the last run stopped before its last two sectors: drop them from the journal. */
        harness_reopen(&h);
        h.n_trace = 0;
        o.resume = true;
        o.verified = journal;
        o.n_verified = 3; /* 0x08004000, 0x08008000, 0x0800C000 */
        assert(harness_update(&h, img, &o) == 0);
        for (size_t i = 0; i < h.n_trace; i++)
                if (h.trace[i].kind != STM32_TRACE_SET_ADDRESS)
                        assert(h.trace[i].address >= 0x08010000 || h.trace[i].address < 0x08004000);
        /* Both untrusted sectors read back identical: nothing erased or written. */
        assert(harness_trace_find(&h, STM32_TRACE_ERASE, 0x08000000, 0x40000, false) < 0);
        assert(harness_trace_find(&h, STM32_TRACE_WRITE, 0x08000000, 0x40000, false) < 0);
        dfu_image_free(img);
        harness_free(&h);
        free(fw);
}

int main(void) {
        static const Case cases[] = {
                { "f4-rom", 100 * KIB, DFU_POLL_EARLY, 1, 0xFF },
                { "f4-rom", 100 * KIB, DFU_POLL_HONOUR, 3, 0xA5 },
                { "l4-rom", 24 * KIB, DFU_POLL_EARLY, 2, 0xFF },
                { "f072-rom", 20 * KIB, DFU_POLL_HONOUR, 2, 0x00 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i]);
        test_power_loss();
        test_trusts_journal();
        printf("engine-resume: ok\n");
        return 0;
}
