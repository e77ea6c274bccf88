/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The device model on its own, request by request: the facts the engine tests (and vstm32) rely on. */

#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-image.h"
#include "dfu.h"
#include "dfuse-layout.h"
#include "macro.h"
#include "stm32-model.h"

typedef struct Dev {
        const Stm32Profile *p;
        uint8_t *mem;
        Stm32Model *m;
        uint64_t now;
} Dev;

static void dev_open(Dev *d, const char *profile) {
        d->p = stm32_profile_find(profile);
        assert(d->p);
        d->mem = malloc(stm32_profile_memory_size(d->p));
        assert(d->mem);
        stm32_profile_memory_init(d->p, d->mem);
        assert(stm32_model_new(d->p, d->mem, 1.0, &d->m) == 0);
        d->now = 1000;
}

static void dev_close(Dev *d) {
        d->m = stm32_model_free(d->m);
        free(d->mem);
}

/* One request; advances the clock to the reply. */
static Stm32Result req(Dev *d, uint8_t type, uint8_t request, uint16_t value, uint8_t *data, uint16_t length,
                       size_t *actual) {
        Stm32Setup s = { .request_type = type, .request = request, .value = value, .length = length };
        uint64_t at = 0;
        size_t a = 0;
        Stm32Result r = stm32_model_control(d->m, d->now, &s, data, &a, &at);

        if (r == STM32_REPLY || r == STM32_STALL) {
                assert(at >= d->now);
                d->now = at + 500;
        }
        if (actual)
                *actual = a;
        return r;
}

static DfuStatusReply getstatus(Dev *d) {
        uint8_t b[6];
        size_t n;
        DfuStatusReply st;

        assert(req(d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, b, 6, &n) == STM32_REPLY);
        assert(n == 6);
        assert(dfu_status_reply_parse(b, n, &st) == 0);
        return st;
}

static void command(Dev *d, const uint8_t *cmd, uint16_t len) {
        uint8_t b[5];

        memcpy(b, cmd, len);
        assert(req(d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0, b, len, NULL) == STM32_REPLY);
}

static void set_address(Dev *d, uint32_t a) {
        uint8_t c[5] = { DFUSE_CMD_SET_ADDRESS, a & 0xFF, (a >> 8) & 0xFF, (a >> 16) & 0xFF, a >> 24 };
        DfuStatusReply st;

        command(d, c, 5);
        st = getstatus(d);
        assert(st.state == DFU_STATE_DFU_DNBUSY && st.poll_timeout_ms == d->p->timing.set_address_poll_ms);
        st = getstatus(d);
        assert(st.state == DFU_STATE_DFU_DNLOAD_IDLE && st.status == DFU_STATUS_OK);
}

static DfuStatusReply erase(Dev *d, uint32_t a) {
        uint8_t c[5] = { DFUSE_CMD_ERASE, a & 0xFF, (a >> 8) & 0xFF, (a >> 16) & 0xFF, a >> 24 };

        command(d, c, 5);
        return getstatus(d);
}

static void test_f4_basics(void) {
        Dev d;
        DfuStatusReply st;
        uint8_t block[2048], back[2048];
        Stm32Stats stats;
        uint64_t t0;
        size_t n;

        dev_open(&d, "f4-rom");

        /* The ROM's harmless initial errFIRMWARE, cleared by CLRSTATUS. */
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_FIRMWARE);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_IDLE && st.status == DFU_STATUS_OK);

        /* CLRSTATUS outside dfuERROR is itself an error (STLIB). */
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_UNKNOWN);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);

        /* Erase of a 128 KiB sector: DNBUSY with the ROM's 100 ms, then the next request is held for the
         * real 2 s. */
        memset(d.mem + 0x20000, 0x00, 16);
        st = erase(&d, 0x08020010);
        assert(st.state == DFU_STATE_DFU_DNBUSY && st.poll_timeout_ms == 100);
        t0 = d.now;
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNLOAD_IDLE);
        assert(d.now - t0 >= 1900000);
        assert(d.mem[0x20000] == 0xFF);

        /* Write at (block - 2) * 2048 + pointer, then read back. */
        set_address(&d, 0x08020000);
        for (size_t i = 0; i < sizeof(block); i++)
                block[i] = (uint8_t) (i * 7);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 3, block, sizeof(block), NULL) ==
               STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNBUSY && st.poll_timeout_ms == 104);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNLOAD_IDLE);
        assert(memcmp(d.mem + 0x20800, block, sizeof(block)) == 0);

        /* Writing unerased flash ANDs the bits: detectable garbage. */
        memset(back, 0x0F, sizeof(back));
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 3, back, sizeof(back), NULL) ==
               STM32_REPLY);
        getstatus(&d);
        getstatus(&d);
        assert(d.mem[0x20801] == (7 & 0x0F));

        /* UPLOAD needs dfuIDLE: stalled in dfuDNLOAD-IDLE, fine after ABORT. */
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_UPLOAD, 2, back, 2048, NULL) == STM32_STALL);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_STALLEDPKT);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_UPLOAD, 2, back, 2048, &n) == STM32_REPLY);
        assert(n == 2048 && memcmp(back, d.mem + 0x20000, 2048) == 0);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_ABORT, 0, NULL, 0, NULL) == STM32_REPLY);

        /* Bad address: errTARGET at the first GETSTATUS. */
        st = erase(&d, 0x30000000);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_TARGET);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);

        /* Unknown command byte. */
        command(&d, (const uint8_t[]) { 0x55 }, 1);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_STALLEDPKT);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);

        /* Leave: dfuMANIFEST, then off the bus; memory has no valid app, so the ROM comes back. */
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 2, NULL, 0, NULL) == STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_MANIFEST);
        assert(stm32_model_disconnect_pending(d.m, NULL));
        d.now += 10000;
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, block, 6, NULL) == STM32_DISCONNECT);
        assert(stm32_model_boot(d.m, NULL) == d.p);

        stm32_model_get_stats(d.m, &stats);
        assert(stats.sectors_erased == 1);
        assert(stats.busy_us >= 2000000);
        dev_close(&d);
}

static void test_rdp(void) {
        Dev d;
        DfuStatusReply st;
        uint8_t b[64];

        dev_open(&d, "l4-rom");
        assert(stm32_model_add_fault(d.m, "rdp") == 0);
        set_address(&d, 0x08000000); /* allowed under RDP */
        st = erase(&d, 0x08000000);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_VENDOR);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_UPLOAD, 2, b, 64, NULL) == STM32_STALL);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_ERROR && st.status == DFU_STATUS_ERR_VENDOR);
        dev_close(&d);
}

static void test_l4_early_poll_stall(void) {
        Dev d;
        DfuStatusReply st;
        Stm32Stats stats;
        uint8_t b[6];

        dev_open(&d, "l4-rom");
        st = erase(&d, 0x08000800);
        assert(st.state == DFU_STATE_DFU_DNBUSY);
        /* Polled at once: stalled, and the erase goes on. */
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, b, 6, NULL) == STM32_STALL);
        assert(stm32_model_get_state(d.m) == DFU_STATE_DFU_DNBUSY);
        d.now += (uint64_t) st.poll_timeout_ms * 1000;
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNLOAD_IDLE && st.status == DFU_STATUS_OK);
        stm32_model_get_stats(d.m, &stats);
        assert(stats.early_poll_stalls == 1);
        dev_close(&d);
}

static void test_f072_manifest_polls(void) {
        Dev d;
        DfuStatusReply st;

        dev_open(&d, "f072-rom");
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 2, NULL, 0, NULL) == STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_MANIFEST);
        /* A host that stops here leaves the device sitting in the bootloader. */
        d.now += 1000000;
        assert(!stm32_model_disconnect_pending(d.m, NULL));
        for (unsigned i = 0; i < d.p->manifest_polls; i++) {
                st = getstatus(&d);
                assert(st.state == DFU_STATE_DFU_MANIFEST);
        }
        assert(stm32_model_disconnect_pending(d.m, NULL));
        d.now += 10000;
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, (uint8_t[6]) {}, 6, NULL) ==
               STM32_DISCONNECT);
        dev_close(&d);
}

static void test_faults_parse(void) {
        Dev d;

        dev_open(&d, "f4-rom");
        assert(stm32_model_add_fault(d.m, "disconnect-after=5") == 0);
        assert(stm32_model_add_fault(d.m, "stall=GETSTATUS@3") == 0);
        assert(stm32_model_add_fault(d.m, "stall=UPLOAD") == 0);
        assert(stm32_model_add_fault(d.m, "err-verify=0x08004000") == 0);
        assert(stm32_model_add_fault(d.m, "power-loss=0x08000400") == 0);
        assert(stm32_model_add_fault(d.m, "hang-after=100") == 0);
        assert(stm32_model_add_fault(d.m, "bogus") == -EINVAL);
        assert(stm32_model_add_fault(d.m, "stall=FOO") == -EINVAL);
        assert(stm32_model_add_fault(d.m, "disconnect-after=x") == -EINVAL);
        assert(stm32_model_add_fault(d.m, "disconnect-at=") == -EINVAL);
        dev_close(&d);
}

/* Every profile's alt strings parse with the real layout parser and describe exactly the regions
 * the model implements. */
static void test_profiles_match_layouts(void) {
        const Stm32Profile *const *ps;
        size_t n;

        ps = stm32_profiles(&n);
        assert(n >= 7);
        for (size_t i = 0; i < n; i++) {
                const Stm32Profile *p = ps[i];

                printf("profile %s: %zu alts, memory %zu bytes\n", p->name, p->n_regions,
                       stm32_profile_memory_size(p));
                assert(stm32_profile_find(p->name) == p);
                if (p->dfu_version != DFU_VERSION_DFUSE || p->n_regions == 0)
                        continue;
                for (size_t a = 0; a < p->n_regions; a++) {
                        const Stm32Region *r = &p->regions[a];
                        DfuseLayout l;
                        uint64_t addr = r->address;

                        assert(dfuse_layout_parse(r->alt_string, &l) == 0);
                        assert(dfuse_layout_size(&l) == stm32_region_size(r));
                        /* The parser may split or merge groups; compare sector by sector. */
                        for (size_t g = 0; g < r->n_groups; g++)
                                for (uint32_t k = 0; k < r->groups[g].count; k++) {
                                        DfuseSector s;

                                        assert(dfuse_layout_find_sector(&l, (uint32_t) addr, &s) == 0);
                                        assert(s.address == addr && s.size == r->groups[g].size);
                                        if (r->writable)
                                                assert(s.attributes & DFUSE_SECTOR_WRITABLE);
                                        if (r->kind == STM32_MEMORY_FLASH)
                                                assert(s.attributes & DFUSE_SECTOR_ERASABLE);
                                        addr += r->groups[g].size;
                                }
                        {
                                DfuseSector s;

                                assert(addr == 0x100000000ull ||
                                       dfuse_layout_find_sector(&l, (uint32_t) addr, &s) == -ENOENT);
                        }
                        assert(stm32_profile_memory_offset(p, (uint8_t) a, r->address, 1) >= 0);
                        assert(stm32_profile_memory_offset(p, (uint8_t) a, (uint32_t) addr, 1) == -ERANGE);
                }
        }
        /* H7: bank 2 starts at 0x08100000. */
        {
                const Stm32Profile *h7 = stm32_profile_find("h7-rom");
                DfuseLayout l;
                DfuseSector s;

                assert(dfuse_layout_parse(h7->regions[0].alt_string, &l) == 0);
                assert(dfuse_layout_find_sector(&l, 0x08100000, &s) == 0 && s.address == 0x08100000);
                assert(stm32_profile_memory_offset(h7, 0, 0x08100000, 1) == 0x100000);
        }
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = v & 0xFF;
        p[1] = (v >> 8) & 0xFF;
        p[2] = (v >> 16) & 0xFF;
        p[3] = v >> 24;
}

static void test_boot(void) {
        const Stm32Profile *p = stm32_profile_find("f4-rom");
        uint8_t *mem = malloc(stm32_profile_memory_size(p));
        uint16_t version = 0;
        uint32_t length = 0x2000, crc;

        stm32_profile_memory_init(p, mem);
        assert(!stm32_memory_valid_app(p, mem, NULL));
        for (uint32_t i = 8; i < length; i++)
                mem[i] = (uint8_t) (i ^ 0x5A);
        put32(mem, 0x20020000);
        put32(mem + 4, 0x08000401);
        put32(mem + 0x400, VSTM32_HEADER_MAGIC);
        put32(mem + 0x404, 0x0203);
        put32(mem + 0x408, length);
        put32(mem + 0x40C, 0);
        crc = dfu_crc32(mem, length);
        put32(mem + 0x40C, crc);
        assert(stm32_memory_valid_app(p, mem, &version) && version == 0x0203);
        assert(stm32_memory_valid_app(stm32_profile_find("app"), mem, NULL));
        mem[0x1000] ^= 1;
        assert(!stm32_memory_valid_app(p, mem, NULL));
        mem[0x1000] ^= 1;
        put32(mem + 4, 0x08000400); /* even reset vector: not Thumb */
        assert(!stm32_memory_valid_app(p, mem, NULL));
        free(mem);
}

static void test_app_detach(void) {
        Dev d;
        DfuStatusReply st;
        uint16_t v;

        dev_open(&d, "app");
        st = getstatus(&d);
        assert(st.state == DFU_STATE_APP_IDLE);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 0, NULL, 0, NULL) == STM32_STALL);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DETACH, 1000, NULL, 0, NULL) == STM32_REPLY);
        assert(stm32_model_disconnect_pending(d.m, NULL));
        assert(stm32_model_boot(d.m, &v) == stm32_profile_find("f4-rom"));
        dev_close(&d);
}

/* Option bytes: a write resets the MCU right after programming (no second GETSTATUS). */
static void test_option_bytes_reset(void) {
        Dev d;
        DfuStatusReply st;
        uint8_t ob[16];

        dev_open(&d, "f072-rom");
        set_address(&d, 0x1FFFF800);
        memset(ob, 0x55, sizeof(ob));
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 2, ob, sizeof(ob), NULL) == STM32_REPLY);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNBUSY);
        assert(stm32_model_disconnect_pending(d.m, NULL));
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, ob, 6, NULL) == STM32_DISCONNECT);
        assert(memcmp(d.mem + stm32_profile_memory_offset(d.p, 1, 0x1FFFF800, 16),
                      (uint8_t[16]) { [0 ... 15] = 0x55 }, 16) == 0);
        /* Empty-check part with blank flash at power-on: the reset brings the ROM back. */
        assert(stm32_model_boot(d.m, NULL) == d.p);
        dev_close(&d);
}

/* Read unprotect: wipes flash, lifts RDP, resets. */
static void test_read_unprotect(void) {
        Dev d;
        DfuStatusReply st;

        dev_open(&d, "f4-rom");
        assert(stm32_model_add_fault(d.m, "rdp") == 0);
        memset(d.mem, 0x11, 4096);
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        command(&d, (const uint8_t[]) { DFUSE_CMD_READ_UNPROTECT }, 1);
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNBUSY);
        assert(d.mem[0] == 0xFF);
        assert(stm32_model_disconnect_pending(d.m, NULL));
        d.now += 60 * 1000000ull;
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, (uint8_t[6]){}, 6, NULL) ==
               STM32_DISCONNECT);
        dev_close(&d);
}

static void test_get_commands_and_stall_fault(void) {
        Dev d;
        uint8_t b[16];
        size_t n;

        dev_open(&d, "l4-rom");
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_UPLOAD, 0, b, sizeof(b), &n) == STM32_REPLY);
        assert(n == 4 && b[0] == 0x00 && b[1] == 0x21 && b[2] == 0x41 && b[3] == 0x92);
        assert(stm32_model_add_fault(d.m, "stall=GETSTATUS@2") == 0);
        getstatus(&d);
        assert(req(&d, DFU_REQUEST_TYPE_IN, DFU_REQUEST_GETSTATUS, 0, b, 6, NULL) == STM32_STALL);
        getstatus(&d);
        /* block 1 is not a valid DfuSe block */
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_DNLOAD, 1, b, 4, NULL) == STM32_STALL);
        assert(stm32_model_get_state(d.m) == DFU_STATE_DFU_ERROR);
        dev_close(&d);
}

/* time_scale multiplies the busy time and the reported poll timeouts. */
static void test_time_scale(void) {
        Dev d;
        DfuStatusReply st;
        Stm32Stats stats;
        uint64_t t0;

        d.p = stm32_profile_find("f4-rom");
        d.mem = malloc(stm32_profile_memory_size(d.p));
        stm32_profile_memory_init(d.p, d.mem);
        assert(stm32_model_new(d.p, d.mem, 0.01, &d.m) == 0);
        d.now = 0;
        assert(req(&d, DFU_REQUEST_TYPE_OUT, DFU_REQUEST_CLRSTATUS, 0, NULL, 0, NULL) == STM32_REPLY);
        st = erase(&d, 0x08020000);
        assert(st.state == DFU_STATE_DFU_DNBUSY && st.poll_timeout_ms == 1);
        t0 = d.now;
        st = getstatus(&d);
        assert(st.state == DFU_STATE_DFU_DNLOAD_IDLE);
        assert(d.now - t0 >= 19000 && d.now - t0 < 25000);
        stm32_model_get_stats(d.m, &stats);
        assert(stats.busy_us == 20000);
        dev_close(&d);
}

int main(void) {
        test_option_bytes_reset();
        test_read_unprotect();
        test_get_commands_and_stall_fault();
        test_time_scale();
        test_f4_basics();
        test_rdp();
        test_l4_early_poll_stall();
        test_f072_manifest_polls();
        test_faults_parse();
        test_profiles_match_layouts();
        test_boot();
        test_app_detach();
        printf("stm32-model: ok\n");
        return 0;
}
