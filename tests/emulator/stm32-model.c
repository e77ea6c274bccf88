/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The STM32 DFU/DfuSe device model. Behaviour follows dfu-protocol.md: the ST ROM and STLIB state
 * machine (§1.4, §2.3-§2.7), NAK-while-busy (§7.3) and the quirks of the profiles. */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfu-image.h"
#include "dfu.h"
#include "macro.h"
#include "stm32-model.h"

#define MAX_FAULTS 16
/* The RAM ranges a sane initial stack pointer may point into: SRAM (F0..F7, L4) and AXI SRAM (H7). */
#define RAM_START 0x20000000u
#define RAM_END 0x20100000u
#define AXI_RAM_START 0x24000000u
#define AXI_RAM_END 0x24100000u

static bool in_set(int v, size_t n, const int *set) {
        for (size_t i = 0; i < n; i++)
                if (set[i] == v)
                        return true;
        return false;
}
#define IN_SET(v, ...)                                                                                      \
        in_set((int) (v), ELEMENTSOF(((const int[]) { __VA_ARGS__ })), (const int[]) { __VA_ARGS__ })

typedef enum FaultKind {
        FAULT_DISCONNECT_AFTER,
        FAULT_DISCONNECT_AT,
        FAULT_STALL,
        FAULT_ERR_VERIFY,
        FAULT_ERR_WRITE,
        FAULT_HANG_AFTER,
        FAULT_POWER_LOSS,
        FAULT_RDP,
} FaultKind;

typedef struct Fault {
        FaultKind kind;
        uint64_t n;          /* transfer number, or Nth request (0 = every) */
        uint32_t address;
        DfuRequest request;
} Fault;

/* How the device left the bus decides what it boots into next. */
typedef enum LeaveKind {
        LEAVE_POWER,  /* unplug/fault: power-on reset */
        LEAVE_JUMP,   /* DfuSe leave: jump to the address pointer */
        LEAVE_RESET,  /* system reset (option bytes, read unprotect) */
        LEAVE_DETACH, /* runtime DETACH: the application asks for its bootloader */
} LeaveKind;

struct Stm32Model {
        const Stm32Profile *p;   /* what is emulated (ROM, custom loader, app) */
        const Stm32Profile *mem; /* whose regions the memory holds (app: its bootloader) */
        uint8_t *memory;
        double time_scale;
        bool dfuse, runtime;
        size_t region_offset[STM32_MAX_ALTS];

        DfuState state;
        DfuStatus status;
        uint8_t alt;
        uint32_t pointer;

        /* The DNLOAD waiting for its GETSTATUS. */
        bool pending;
        uint16_t pending_block;
        size_t pending_len;
        uint8_t *buf;

        /* Busy: requests before busy_until are held (or stalled, L4). */
        bool busy;
        uint64_t busy_until, poll_ready_at;
        DfuState after_state;
        DfuStatus after_status;

        unsigned manifest_polls_left;
        bool manifest_done;

        bool disconnect_pending, disconnected, hung;
        uint64_t disconnect_at;
        LeaveKind leave_kind;
        bool empty_at_por;
        bool rdp;

        /* Plain DFU: blocks go to consecutive offsets of the alt's region. */
        uint64_t dfu_offset;
        uint16_t dfu_next_block;
        uint64_t upload_offset;
        uint8_t *erased_in_session; /* per sector of region 0.. of the current alt */
        size_t n_erased_in_session;

        Fault faults[MAX_FAULTS];
        size_t n_faults;
        uint64_t request_count[_DFU_REQUEST_MAX];

        Stm32Stats stats;
        Stm32TraceFunc trace;
        void *trace_userdata;
};

uint32_t stm32_region_size(const Stm32Region *r) {
        uint64_t s = 0;

        for (size_t i = 0; i < r->n_groups; i++)
                s += (uint64_t) r->groups[i].count * r->groups[i].size;
        return (uint32_t) s;
}

static const Stm32Profile *memory_profile(const Stm32Profile *p) {
        const Stm32Profile *b;

        if (p->n_regions > 0 || !p->bootloader)
                return p;
        b = stm32_profile_find(p->bootloader);
        return b ?: p;
}

size_t stm32_profile_memory_size(const Stm32Profile *p) {
        size_t s = 0;

        p = memory_profile(p);
        for (size_t i = 0; i < p->n_regions; i++)
                s += stm32_region_size(&p->regions[i]);
        return s;
}

int64_t stm32_profile_memory_offset(const Stm32Profile *p, uint8_t alt, uint32_t address, uint32_t size) {
        int64_t off = 0;
        const Stm32Region *r;

        p = memory_profile(p);
        if (alt >= p->n_regions)
                return -ERANGE;
        for (size_t i = 0; i < alt; i++)
                off += stm32_region_size(&p->regions[i]);
        r = &p->regions[alt];
        if (address < r->address || (uint64_t) address + size > (uint64_t) r->address + stm32_region_size(r))
                return -ERANGE;
        return off + (address - r->address);
}

void stm32_profile_memory_init(const Stm32Profile *p, uint8_t *memory) {
        /* Factory option-byte values are not modelled: erased flash and blank OTP read 0xFF. */
        memset(memory, 0xFF, stm32_profile_memory_size(p));
}

static uint64_t scale_us(const Stm32Model *m, uint64_t us) {
        return (uint64_t) ((double) us * m->time_scale + 0.5);
}

static uint32_t scale_ms(const Stm32Model *m, uint32_t ms) {
        double v = (double) ms * m->time_scale;
        uint32_t r = (uint32_t) v;

        /* A nonzero poll timeout stays nonzero so the host still sees that the device is busy. */
        if ((double) r < v)
                r++;
        return r;
}

static void trace(Stm32Model *m, Stm32TraceKind kind, uint8_t alt, uint32_t address, uint32_t size) {
        if (m->trace)
                m->trace(m->trace_userdata, kind, alt, address, size);
}

/* The region (any alt) that holds [address, address + size). */
static const Stm32Region *find_region(const Stm32Model *m, uint32_t address, uint32_t size,
                                      uint8_t *ret_alt) {
        for (size_t i = 0; i < m->mem->n_regions; i++) {
                const Stm32Region *r = &m->mem->regions[i];
                uint64_t end = (uint64_t) r->address + stm32_region_size(r);

                if (address >= r->address && (uint64_t) address + size <= end) {
                        if (ret_alt)
                                *ret_alt = (uint8_t) i;
                        return r;
                }
        }
        return NULL;
}

static uint8_t *region_memory(const Stm32Model *m, uint8_t alt, uint32_t address) {
        return m->memory + m->region_offset[alt] + (address - m->mem->regions[alt].address);
}

/* The sector holding address: its start, size, erase time and index within the region. */
static int find_sector(const Stm32Region *r, uint32_t address, uint32_t *ret_start, uint32_t *ret_size,
                       uint64_t *ret_erase_us, size_t *ret_index) {
        uint64_t a = r->address;
        size_t index = 0;

        for (size_t g = 0; g < r->n_groups; g++) {
                const Stm32SectorGroup *sg = &r->groups[g];
                uint64_t end = a + (uint64_t) sg->count * sg->size;

                if (address >= a && address < end) {
                        uint32_t k = (uint32_t) ((address - a) / sg->size);

                        *ret_start = (uint32_t) (a + (uint64_t) k * sg->size);
                        *ret_size = sg->size;
                        if (ret_erase_us)
                                *ret_erase_us = sg->erase_us;
                        if (ret_index)
                                *ret_index = index + k;
                        return 0;
                }
                index += sg->count;
                a = end;
        }
        return -ENOENT;
}

static size_t region_sector_count(const Stm32Region *r) {
        size_t n = 0;

        for (size_t g = 0; g < r->n_groups; g++)
                n += r->groups[g].count;
        return n;
}

static bool flash_is_blank(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0xFF)
                        return false;
        return true;
}

int stm32_model_new(const Stm32Profile *p, uint8_t *memory, double time_scale, Stm32Model **ret) {
        _cleanup_free_ Stm32Model *m = NULL;
        size_t off = 0;

        if (!p || !memory || !ret || time_scale < 0)
                return -EINVAL;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->p = p;
        m->mem = memory_profile(p);
        m->memory = memory;
        m->time_scale = time_scale;
        m->runtime = p->n_regions == 0;
        m->dfuse = p->dfu_version == DFU_VERSION_DFUSE && !m->runtime;
        if (m->mem->n_regions > STM32_MAX_ALTS)
                return -EINVAL;
        for (size_t i = 0; i < m->mem->n_regions; i++) {
                m->region_offset[i] = off;
                off += stm32_region_size(&m->mem->regions[i]);
        }

        m->buf = malloc(MAX(p->transfer_size, 64u));
        if (!m->buf)
                return -ENOMEM;

        if (m->runtime) {
                m->state = DFU_STATE_APP_IDLE;
                m->status = DFU_STATUS_OK;
        } else if (p->initial_err_firmware) {
                m->state = DFU_STATE_DFU_ERROR;
                m->status = DFU_STATUS_ERR_FIRMWARE;
        } else {
                m->state = DFU_STATE_DFU_IDLE;
                m->status = DFU_STATUS_OK;
        }
        /* AN2662: the address pointer defaults to the start of flash. */
        m->pointer = m->mem->n_regions > 0 ? m->mem->regions[0].address : 0x08000000;
        m->leave_kind = LEAVE_POWER;
        for (size_t i = 0; i < m->mem->n_regions; i++)
                if (m->mem->regions[i].boot)
                        m->empty_at_por = flash_is_blank(m->memory + m->region_offset[i], 4);

        *ret = TAKE_PTR(m);
        return 0;
}

Stm32Model *stm32_model_free(Stm32Model *m) {
        if (!m)
                return NULL;
        free(m->buf);
        free(m->erased_in_session);
        free(m);
        return NULL;
}

void stm32_model_set_trace(Stm32Model *m, Stm32TraceFunc f, void *userdata) {
        m->trace = f;
        m->trace_userdata = userdata;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end != '\0' || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_address(const char *s, uint32_t *ret) {
        uint64_t v;

        if (parse_u64(s, &v) < 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

int stm32_model_add_fault(Stm32Model *m, const char *spec) {
        Fault f = {};
        const char *v;

        if (!m || !spec)
                return -EINVAL;
        if (m->n_faults >= MAX_FAULTS)
                return -E2BIG;

        if ((v = startswith(spec, "disconnect-after="))) {
                f.kind = FAULT_DISCONNECT_AFTER;
                if (parse_u64(v, &f.n) < 0 || f.n == 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "hang-after="))) {
                f.kind = FAULT_HANG_AFTER;
                if (parse_u64(v, &f.n) < 0 || f.n == 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "disconnect-at="))) {
                f.kind = FAULT_DISCONNECT_AT;
                if (parse_address(v, &f.address) < 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "err-verify="))) {
                f.kind = FAULT_ERR_VERIFY;
                if (parse_address(v, &f.address) < 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "err-write="))) {
                f.kind = FAULT_ERR_WRITE;
                if (parse_address(v, &f.address) < 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "power-loss="))) {
                f.kind = FAULT_POWER_LOSS;
                if (parse_address(v, &f.address) < 0)
                        return -EINVAL;
        } else if ((v = startswith(spec, "stall="))) {
                char name[32];
                const char *at = strchr(v, '@');
                size_t l = at ? (size_t) (at - v) : strlen(v);

                if (l == 0 || l >= sizeof(name))
                        return -EINVAL;
                memcpy(name, v, l);
                name[l] = '\0';
                f.kind = FAULT_STALL;
                f.request = dfu_request_from_string(name);
                if ((int) f.request < 0)
                        return -EINVAL;
                if (at && (parse_u64(at + 1, &f.n) < 0 || f.n == 0))
                        return -EINVAL;
        } else if (streq(spec, "rdp")) {
                f.kind = FAULT_RDP;
                m->rdp = true;
        } else
                return -EINVAL;

        m->faults[m->n_faults++] = f;
        return 0;
}

static const Fault *find_address_fault(const Stm32Model *m, FaultKind kind, uint32_t address, size_t len) {
        for (size_t i = 0; i < m->n_faults; i++) {
                const Fault *f = &m->faults[i];

                if (f->kind == kind && f->address >= address &&
                    (uint64_t) f->address < (uint64_t) address + len)
                        return f;
        }
        return NULL;
}

static void set_error(Stm32Model *m, DfuStatus status) {
        m->state = DFU_STATE_DFU_ERROR;
        m->status = status;
        m->pending = false;
}

static void disconnect_later(Stm32Model *m, uint64_t at_us, LeaveKind kind) {
        m->disconnect_pending = true;
        m->disconnect_at = at_us;
        m->leave_kind = kind;
}

static void go_busy(Stm32Model *m, uint64_t now, uint64_t busy_us, uint32_t poll_ms, DfuState after,
                    DfuStatus after_status) {
        uint64_t b = scale_us(m, busy_us);

        m->busy = true;
        m->busy_until = now + b;
        m->poll_ready_at = now + (uint64_t) scale_ms(m, poll_ms) * 1000;
        m->after_state = after;
        m->after_status = after_status;
        m->state = DFU_STATE_DFU_DNBUSY;
        m->status = DFU_STATUS_OK;
        m->stats.busy_us += b;
}

/* The busy period is over at `now`: the operation's outcome becomes the state. */
static void settle(Stm32Model *m, uint64_t now) {
        if (!m->busy || now < m->busy_until)
                return;
        m->busy = false;
        m->state = m->after_state;
        m->status = m->after_status;
}

static void reply_status(Stm32Model *m, uint32_t poll_ms, uint8_t *data, size_t len, size_t *actual) {
        uint8_t b[DFU_STATUS_LENGTH];
        DfuStatusReply r = {
                .status = m->status,
                .poll_timeout_ms = poll_ms,
                .state = m->state,
        };

        dfu_status_reply_write(&r, b);
        *actual = MIN(len, sizeof(b));
        memcpy(data, b, *actual);
}

static uint64_t program_time(const Stm32Model *m, const Stm32Region *r, size_t len) {
        uint64_t per_kib = r->program_us_per_kib ?: m->p->timing.program_us_per_kib;

        return (per_kib * len + 1023) / 1024;
}

static void program(Stm32Model *m, const Stm32Region *r, uint8_t alt, uint32_t address, const uint8_t *data,
                    size_t len) {
        uint8_t *dst = region_memory(m, alt, address);

        switch (r->kind) {
        case STM32_MEMORY_FLASH:
        case STM32_MEMORY_OTP:
                /* Programming only clears bits: writing unerased flash yields data & old. */
                for (size_t i = 0; i < len; i++)
                        dst[i] &= data[i];
                break;
        case STM32_MEMORY_OPTION_BYTES:
        case STM32_MEMORY_FEATURE:
                memcpy(dst, data, len);
                break;
        }
        m->stats.bytes_written += len;
        trace(m, STM32_TRACE_WRITE, alt, address, (uint32_t) len);
}

/* Erase every flash sector of a region; returns the datasheet time. */
static uint64_t erase_region(Stm32Model *m, uint8_t alt) {
        const Stm32Region *r = &m->mem->regions[alt];
        uint64_t t = 0;

        if (r->kind != STM32_MEMORY_FLASH)
                return 0;
        memset(m->memory + m->region_offset[alt], 0xFF, stm32_region_size(r));
        for (size_t g = 0; g < r->n_groups; g++) {
                t += r->groups[g].erase_us * r->groups[g].count;
                m->stats.sectors_erased += r->groups[g].count;
        }
        return t;
}

/* DfuSe block 0: SET_ADDRESS, ERASE, mass erase, read unprotect, get commands. */
static Stm32Result execute_command(Stm32Model *m, uint64_t now, uint32_t *ret_poll) {
        const Stm32Timing *t = &m->p->timing;
        const uint8_t *c = m->buf;
        size_t len = m->pending_len;
        uint32_t address = 0;
        const Stm32Region *r;
        uint8_t alt;

        if (len == 5)
                address = (uint32_t) c[1] | (uint32_t) c[2] << 8 | (uint32_t) c[3] << 16 |
                          (uint32_t) c[4] << 24;

        if (c[0] == DFUSE_CMD_SET_ADDRESS && len == 5) {
                m->stats.set_address_commands++;
                /* AN2662: "allowed and executed when Flash Read Protection is enabled". */
                if (!find_region(m, address, 1, NULL)) {
                        set_error(m, DFU_STATUS_ERR_TARGET);
                        return STM32_REPLY;
                }
                m->pointer = address;
                trace(m, STM32_TRACE_SET_ADDRESS, m->alt, address, 0);
                go_busy(m, now, t->set_address_us, t->set_address_poll_ms, DFU_STATE_DFU_DNLOAD_SYNC,
                        DFU_STATUS_OK);
                *ret_poll = scale_ms(m, t->set_address_poll_ms);
                return STM32_REPLY;
        }

        if (c[0] == DFUSE_CMD_ERASE && len == 5) {
                uint32_t start, size;
                uint64_t erase_us;

                m->stats.erase_commands++;
                if (m->rdp) {
                        set_error(m, DFU_STATUS_ERR_VENDOR);
                        return STM32_REPLY;
                }
                r = find_region(m, address, 1, &alt);
                if (!r || r->kind != STM32_MEMORY_FLASH || !r->writable ||
                    find_sector(r, address, &start, &size, &erase_us, NULL) < 0) {
                        set_error(m, DFU_STATUS_ERR_TARGET);
                        return STM32_REPLY;
                }
                memset(region_memory(m, alt, start), 0xFF, size);
                m->stats.sectors_erased++;
                trace(m, STM32_TRACE_ERASE, alt, start, size);
                go_busy(m, now, erase_us, t->erase_poll_ms, DFU_STATE_DFU_DNLOAD_SYNC, DFU_STATUS_OK);
                *ret_poll = scale_ms(m, t->erase_poll_ms);
                return STM32_REPLY;
        }

        if (c[0] == DFUSE_CMD_ERASE && len == 1) {
                uint64_t us;

                m->stats.erase_commands++;
                if (m->rdp) {
                        set_error(m, DFU_STATUS_ERR_VENDOR);
                        return STM32_REPLY;
                }
                /* Mass erase clears the flash of the selected alt; the ROM still says 100 ms. */
                us = erase_region(m, m->alt);
                trace(m, STM32_TRACE_MASS_ERASE, m->alt, m->mem->regions[m->alt].address,
                      stm32_region_size(&m->mem->regions[m->alt]));
                go_busy(m, now, us, t->erase_poll_ms, DFU_STATE_DFU_DNLOAD_SYNC, DFU_STATUS_OK);
                *ret_poll = scale_ms(m, t->erase_poll_ms);
                return STM32_REPLY;
        }

        if (c[0] == DFUSE_CMD_READ_UNPROTECT && len == 1) {
                uint64_t us = 0;

                /* Removing RDP wipes flash and resets: no second GETSTATUS (AN2662 p.79). */
                for (size_t i = 0; i < m->mem->n_regions; i++)
                        us += erase_region(m, (uint8_t) i);
                m->rdp = false;
                trace(m, STM32_TRACE_RESET, m->alt, 0, 0);
                go_busy(m, now, us, t->erase_poll_ms, DFU_STATE_DFU_DNLOAD_SYNC, DFU_STATUS_OK);
                disconnect_later(m, m->busy_until, LEAVE_RESET);
                *ret_poll = scale_ms(m, t->erase_poll_ms);
                return STM32_REPLY;
        }

        if (c[0] == DFUSE_CMD_GET_COMMANDS && len == 1) {
                go_busy(m, now, 0, 0, DFU_STATE_DFU_DNLOAD_SYNC, DFU_STATUS_OK);
                *ret_poll = scale_ms(m, 0);
                return STM32_REPLY;
        }

        /* AN2662 Fig.55: an unsupported command byte. */
        set_error(m, DFU_STATUS_ERR_STALLEDPKT);
        return STM32_REPLY;
}

/* DfuSe block >= 2: Write Memory at (wBlockNum - 2) * wTransferSize + pointer. */
static Stm32Result execute_write(Stm32Model *m, uint64_t now, uint32_t *ret_poll) {
        const Stm32Timing *t = &m->p->timing;
        uint64_t a = (uint64_t) (m->pending_block - 2) * m->p->transfer_size + m->pointer;
        size_t len = m->pending_len;
        const Stm32Region *r;
        uint32_t address;
        uint8_t alt;
        DfuStatus after = DFU_STATUS_OK;
        uint64_t busy;

        if (m->rdp) {
                set_error(m, DFU_STATUS_ERR_VENDOR);
                return STM32_REPLY;
        }
        if (a > UINT32_MAX || !(r = find_region(m, (uint32_t) a, (uint32_t) len, &alt)) || !r->writable) {
                set_error(m, DFU_STATUS_ERR_TARGET);
                return STM32_REPLY;
        }
        address = (uint32_t) a;

        if (find_address_fault(m, FAULT_DISCONNECT_AT, address, len)) {
                m->disconnected = true;
                m->leave_kind = LEAVE_POWER;
                return STM32_DISCONNECT;
        }
        if (find_address_fault(m, FAULT_POWER_LOSS, address, len)) {
                program(m, r, alt, address, m->buf, len / 2);
                m->disconnected = true;
                m->leave_kind = LEAVE_POWER;
                return STM32_DISCONNECT;
        }

        busy = program_time(m, r, len);
        if (find_address_fault(m, FAULT_ERR_WRITE, address, len))
                after = DFU_STATUS_ERR_WRITE;
        else {
                program(m, r, alt, address, m->buf, len);
                if (find_address_fault(m, FAULT_ERR_VERIFY, address, len))
                        after = DFU_STATUS_ERR_VERIFY;
        }

        go_busy(m, now, busy, t->write_poll_ms,
                after == DFU_STATUS_OK ? DFU_STATE_DFU_DNLOAD_SYNC : DFU_STATE_DFU_ERROR, after);
        *ret_poll = scale_ms(m, t->write_poll_ms);

        /* Option bytes are reloaded by a system reset right after programming (AN3156 §5.1). */
        if (r->kind == STM32_MEMORY_OPTION_BYTES && after == DFU_STATUS_OK) {
                trace(m, STM32_TRACE_RESET, alt, address, 0);
                disconnect_later(m, m->busy_until, LEAVE_RESET);
        }
        return STM32_REPLY;
}

/* Plain DFU: consecutive blocks from the start of the alt's memory; each page is erased the first
 * time a block touches it in this download. */
static Stm32Result execute_dfu_write(Stm32Model *m, uint64_t now, uint32_t *ret_poll) {
        const Stm32Region *r = &m->mem->regions[m->alt];
        uint32_t size = stm32_region_size(r), address;
        size_t len = m->pending_len;
        uint64_t busy = 0;

        if (m->dfu_offset + len > size) {
                set_error(m, DFU_STATUS_ERR_ADDRESS);
                return STM32_REPLY;
        }
        address = (uint32_t) (r->address + m->dfu_offset);

        if (find_address_fault(m, FAULT_DISCONNECT_AT, address, len)) {
                m->disconnected = true;
                return STM32_DISCONNECT;
        }

        for (uint64_t a = address; a < (uint64_t) address + len;) {
                uint32_t start, ssize;
                uint64_t erase_us;
                size_t index;

                if (find_sector(r, (uint32_t) a, &start, &ssize, &erase_us, &index) < 0)
                        break;
                if (index < m->n_erased_in_session && !m->erased_in_session[index]) {
                        m->erased_in_session[index] = 1;
                        memset(region_memory(m, m->alt, start), 0xFF, ssize);
                        m->stats.sectors_erased++;
                        trace(m, STM32_TRACE_ERASE, m->alt, start, ssize);
                        busy += erase_us;
                }
                a = (uint64_t) start + ssize;
        }

        program(m, r, m->alt, address, m->buf, len);
        busy += program_time(m, r, len);
        m->dfu_offset += len;
        go_busy(m, now, busy, m->p->timing.write_poll_ms, DFU_STATE_DFU_DNLOAD_SYNC, DFU_STATUS_OK);
        *ret_poll = scale_ms(m, m->p->timing.write_poll_ms);
        return STM32_REPLY;
}

static Stm32Result handle_getstatus(Stm32Model *m, uint64_t now, uint8_t *data, size_t len, size_t *actual) {
        uint32_t poll = 0;
        Stm32Result res;

        m->stats.getstatus_requests++;

        if (m->runtime) {
                reply_status(m, 0, data, len, actual);
                return STM32_REPLY;
        }

        switch (m->state) {
        case DFU_STATE_DFU_DNLOAD_SYNC:
                if (!m->pending) {
                        /* The operation finished: the "second GETSTATUS" of AN2662. */
                        m->state = DFU_STATE_DFU_DNLOAD_IDLE;
                        m->status = DFU_STATUS_OK;
                        break;
                }
                m->pending = false;
                if (!m->dfuse)
                        res = execute_dfu_write(m, now, &poll);
                else if (m->pending_block == 0)
                        res = execute_command(m, now, &poll);
                else
                        res = execute_write(m, now, &poll);
                if (res != STM32_REPLY)
                        return res;
                break;

        case DFU_STATE_DFU_MANIFEST_SYNC:
                if (m->dfuse) {
                        /* Leave: answer dfuMANIFEST, then jump to the address pointer. */
                        m->state = DFU_STATE_DFU_MANIFEST;
                        poll = scale_ms(m, m->p->timing.manifest_poll_ms);
                        trace(m, STM32_TRACE_LEAVE, m->alt, m->pointer, 0);
                        m->leave_kind = LEAVE_JUMP;
                        m->manifest_polls_left = m->p->manifest_polls;
                        if (m->manifest_polls_left == 0)
                                disconnect_later(m, now + scale_us(m, m->p->timing.manifest_us), LEAVE_JUMP);
                } else if (!m->manifest_done) {
                        bool tolerant = m->p->dfu_attributes & DFU_ATTR_MANIFESTATION_TOLERANT;

                        m->manifest_done = true;
                        poll = scale_ms(m, m->p->timing.manifest_poll_ms);
                        go_busy(m, now, m->p->timing.manifest_us, m->p->timing.manifest_poll_ms,
                                tolerant ? DFU_STATE_DFU_MANIFEST_SYNC : DFU_STATE_DFU_MANIFEST_WAIT_RESET,
                                DFU_STATUS_OK);
                        m->state = DFU_STATE_DFU_MANIFEST;
                } else {
                        m->state = DFU_STATE_DFU_IDLE;
                        m->status = DFU_STATUS_OK;
                }
                break;

        case DFU_STATE_DFU_MANIFEST:
                /* F072: stays here until it has seen a few more GETSTATUS requests. */
                poll = scale_ms(m, m->p->timing.manifest_poll_ms);
                if (m->dfuse && m->manifest_polls_left > 0 && --m->manifest_polls_left == 0)
                        disconnect_later(m, now + scale_us(m, m->p->timing.manifest_us), LEAVE_JUMP);
                break;

        default:
                break;
        }

        reply_status(m, poll, data, len, actual);
        return STM32_REPLY;
}

/* An invalid request: stall, and outside dfuERROR the device also enters dfuERROR (DFU 1.1 App. A). */
static Stm32Result stall_request(Stm32Model *m) {
        if (!m->runtime && m->state != DFU_STATE_DFU_ERROR)
                set_error(m, DFU_STATUS_ERR_STALLEDPKT);
        return STM32_STALL;
}

static Stm32Result handle_dnload(Stm32Model *m, const Stm32Setup *s, const uint8_t *data) {
        bool idle = m->state == DFU_STATE_DFU_IDLE;

        if (m->runtime)
                return STM32_STALL;
        if (!idle && m->state != DFU_STATE_DFU_DNLOAD_IDLE)
                return stall_request(m);
        if (s->length > m->p->transfer_size || !(m->p->dfu_attributes & DFU_ATTR_CAN_DOWNLOAD))
                return stall_request(m);

        if (s->length == 0) {
                /* DfuSe accepts the leave in dfuIDLE too (AN2662 p.79); DFU 1.1 does not. */
                if (!m->dfuse && idle)
                        return stall_request(m);
                m->state = DFU_STATE_DFU_MANIFEST_SYNC;
                m->manifest_done = false;
                return STM32_REPLY;
        }

        if (m->dfuse && s->value == 1)
                return stall_request(m);

        if (!m->dfuse) {
                if (idle) {
                        const Stm32Region *r = &m->mem->regions[m->alt];

                        m->dfu_offset = 0;
                        m->dfu_next_block = s->value;
                        free(m->erased_in_session);
                        m->n_erased_in_session = region_sector_count(r);
                        m->erased_in_session = calloc(m->n_erased_in_session, 1);
                        if (!m->erased_in_session)
                                m->n_erased_in_session = 0;
                }
                if (s->value != m->dfu_next_block)
                        return stall_request(m);
                m->dfu_next_block++;
        }

        memcpy(m->buf, data, s->length);
        m->pending = true;
        m->pending_block = s->value;
        m->pending_len = s->length;
        m->state = DFU_STATE_DFU_DNLOAD_SYNC;
        return STM32_REPLY;
}

static Stm32Result handle_upload(Stm32Model *m, const Stm32Setup *s, uint8_t *data, size_t *actual) {
        const Stm32Region *r;
        uint8_t alt;
        uint64_t a;

        if (m->runtime)
                return STM32_STALL;
        if (m->state != DFU_STATE_DFU_IDLE && m->state != DFU_STATE_DFU_UPLOAD_IDLE)
                return stall_request(m);
        if (s->length > m->p->transfer_size || !(m->p->dfu_attributes & DFU_ATTR_CAN_UPLOAD))
                return stall_request(m);

        if (!m->dfuse) {
                size_t n;

                r = &m->mem->regions[m->alt];
                if (m->state == DFU_STATE_DFU_IDLE)
                        m->upload_offset = 0;
                n = (size_t) MIN((uint64_t) s->length, stm32_region_size(r) - m->upload_offset);
                memcpy(data, region_memory(m, m->alt, (uint32_t) (r->address + m->upload_offset)), n);
                trace(m, STM32_TRACE_READ, m->alt, (uint32_t) (r->address + m->upload_offset), (uint32_t) n);
                m->upload_offset += n;
                m->stats.bytes_read += n;
                *actual = n;
                /* A short frame ends the upload. */
                m->state = n < s->length ? DFU_STATE_DFU_IDLE : DFU_STATE_DFU_UPLOAD_IDLE;
                return STM32_REPLY;
        }

        if (s->value == 0) {
                static const uint8_t commands[] = { DFUSE_CMD_GET_COMMANDS, DFUSE_CMD_SET_ADDRESS,
                                                    DFUSE_CMD_ERASE, DFUSE_CMD_READ_UNPROTECT };

                *actual = MIN((size_t) s->length, sizeof(commands));
                memcpy(data, commands, *actual);
                m->state = DFU_STATE_DFU_IDLE;
                return STM32_REPLY;
        }
        if (s->value == 1)
                return stall_request(m);

        if (m->rdp) {
                set_error(m, DFU_STATUS_ERR_VENDOR);
                return STM32_STALL;
        }
        a = (uint64_t) (s->value - 2) * m->p->transfer_size + m->pointer;
        if (a > UINT32_MAX || !(r = find_region(m, (uint32_t) a, s->length, &alt))) {
                set_error(m, DFU_STATUS_ERR_TARGET);
                return STM32_STALL;
        }
        memcpy(data, region_memory(m, alt, (uint32_t) a), s->length);
        *actual = s->length;
        m->stats.bytes_read += s->length;
        trace(m, STM32_TRACE_READ, alt, (uint32_t) a, s->length);
        m->state = DFU_STATE_DFU_UPLOAD_IDLE;
        return STM32_REPLY;
}

static Stm32Result handle_request(Stm32Model *m, uint64_t now, const Stm32Setup *s, uint8_t *data,
                                  size_t *actual) {
        bool in = s->request_type & 0x80;

        /* Only class requests to the interface reach the DFU function. */
        if ((s->request_type & 0x7F) != (DFU_REQUEST_TYPE_OUT & 0x7F))
                return STM32_STALL;

        switch (s->request) {
        case DFU_REQUEST_GETSTATUS:
                if (!in)
                        return stall_request(m);
                return handle_getstatus(m, now, data, s->length, actual);

        case DFU_REQUEST_GETSTATE:
                if (!in || s->length < 1)
                        return stall_request(m);
                data[0] = (uint8_t) m->state;
                *actual = 1;
                return STM32_REPLY;

        case DFU_REQUEST_DNLOAD:
                if (in)
                        return stall_request(m);
                return handle_dnload(m, s, data);

        case DFU_REQUEST_UPLOAD:
                if (!in)
                        return stall_request(m);
                return handle_upload(m, s, data, actual);

        case DFU_REQUEST_CLRSTATUS:
                if (m->runtime)
                        return STM32_STALL;
                /* STLIB: outside dfuERROR this is itself an error. */
                if (m->state == DFU_STATE_DFU_ERROR) {
                        m->state = DFU_STATE_DFU_IDLE;
                        m->status = DFU_STATUS_OK;
                } else
                        set_error(m, DFU_STATUS_ERR_UNKNOWN);
                return STM32_REPLY;

        case DFU_REQUEST_ABORT:
                if (m->runtime)
                        return STM32_STALL;
                /* STLIB honours ABORT only in these states and silently ignores it elsewhere. */
                if (IN_SET(m->state, DFU_STATE_DFU_IDLE, DFU_STATE_DFU_DNLOAD_SYNC,
                           DFU_STATE_DFU_DNLOAD_IDLE, DFU_STATE_DFU_MANIFEST_SYNC,
                           DFU_STATE_DFU_UPLOAD_IDLE)) {
                        m->state = DFU_STATE_DFU_IDLE;
                        m->status = DFU_STATUS_OK;
                        m->pending = false;
                }
                return STM32_REPLY;

        case DFU_REQUEST_DETACH:
                if (!m->runtime)
                        return STM32_STALL; /* the ROM "can't detach" */
                m->state = DFU_STATE_APP_DETACH;
                if (m->p->dfu_attributes & DFU_ATTR_WILL_DETACH)
                        disconnect_later(m, now + scale_us(m, m->p->timing.manifest_us), LEAVE_DETACH);
                return STM32_REPLY;

        default:
                return stall_request(m);
        }
}

Stm32Result stm32_model_control(Stm32Model *m, uint64_t now_us, const Stm32Setup *setup, uint8_t *data,
                                size_t *actual, uint64_t *reply_at_us) {
        uint64_t t = now_us;
        Stm32Result res;

        *actual = 0;
        *reply_at_us = now_us;

        if (m->disconnected)
                return STM32_DISCONNECT;
        if (m->hung)
                return STM32_HANG;
        if (m->disconnect_pending && now_us >= m->disconnect_at) {
                m->disconnected = true;
                return STM32_DISCONNECT;
        }

        m->stats.control_transfers++;
        if (setup->request < _DFU_REQUEST_MAX)
                m->request_count[setup->request]++;

        for (size_t i = 0; i < m->n_faults; i++) {
                const Fault *f = &m->faults[i];

                switch (f->kind) {
                case FAULT_DISCONNECT_AFTER:
                        if (m->stats.control_transfers == f->n) {
                                m->disconnected = true;
                                m->leave_kind = LEAVE_POWER;
                                return STM32_DISCONNECT;
                        }
                        break;
                case FAULT_HANG_AFTER:
                        if (m->stats.control_transfers >= f->n) {
                                m->hung = true;
                                return STM32_HANG;
                        }
                        break;
                case FAULT_STALL:
                        if (setup->request == f->request &&
                            (f->n == 0 || m->request_count[setup->request] == f->n))
                                return STM32_STALL;
                        break;
                default:
                        break;
                }
        }

        if (m->busy && now_us < m->busy_until) {
                if (m->p->stall_early_poll && setup->request == DFU_REQUEST_GETSTATUS &&
                    now_us < m->poll_ready_at) {
                        /* L4 ROM: polled before its own bwPollTimeout; the operation goes on and the
                         * state is unchanged, so a later GETSTATUS still finds it (dfu-util c15ee60). */
                        m->stats.early_poll_stalls++;
                        return STM32_STALL;
                }
                /* The ROM works inside the USB interrupt: EP0 NAKs until it is done. */
                t = m->busy_until;
                m->stats.held_us += t - now_us;
        }
        settle(m, t);
        if (m->disconnect_pending && t >= m->disconnect_at) {
                m->disconnected = true;
                return STM32_DISCONNECT;
        }

        *reply_at_us = t;
        res = handle_request(m, t, setup, data, actual);
        if (res == STM32_DISCONNECT)
                *actual = 0;
        return res;
}

int stm32_model_set_alt(Stm32Model *m, uint8_t alt) {
        size_t n = m->runtime ? 1 : m->p->n_regions;

        if (m->disconnected)
                return -ENODEV;
        if (alt >= n)
                return -EINVAL;
        m->alt = alt;
        return 0;
}

bool stm32_model_disconnect_pending(const Stm32Model *m, uint64_t *ret_at_us) {
        if (!m->disconnect_pending)
                return false;
        if (ret_at_us)
                *ret_at_us = m->disconnect_at;
        return true;
}

bool stm32_model_disconnected(const Stm32Model *m) {
        return m->disconnected;
}

bool stm32_memory_valid_app(const Stm32Profile *p, const uint8_t *memory, uint16_t *ret_version) {
        const Stm32Region *boot = NULL;
        size_t off = 0;
        uint32_t size, msp, reset, crc;
        Vstm32Header h;
        const uint8_t *base;
        static const uint8_t zero[4] = {};

        p = memory_profile(p);
        for (size_t i = 0; i < p->n_regions; i++) {
                if (p->regions[i].boot) {
                        boot = &p->regions[i];
                        break;
                }
                off += stm32_region_size(&p->regions[i]);
        }
        if (!boot)
                return false;
        size = stm32_region_size(boot);
        if (size < VSTM32_HEADER_OFFSET + sizeof(h))
                return false;
        base = memory + off;

        /* Vector table: initial MSP inside RAM, reset handler a Thumb address inside the region. */
        memcpy(&msp, base, 4);
        memcpy(&reset, base + 4, 4);
        msp = le32toh(msp);
        reset = le32toh(reset);
        if (!((msp > RAM_START && msp <= RAM_END) || (msp > AXI_RAM_START && msp <= AXI_RAM_END)))
                return false;
        if (!(reset & 1) || reset < boot->address || (uint64_t) reset >= (uint64_t) boot->address + size)
                return false;

        memcpy(&h, base + VSTM32_HEADER_OFFSET, sizeof(h));
        if (le32toh(h.magic) != VSTM32_HEADER_MAGIC)
                return false;
        h.length = le32toh(h.length);
        if (h.length < VSTM32_HEADER_OFFSET + sizeof(h) || h.length > size)
                return false;

        crc = dfu_crc32_update(0xFFFFFFFFu, base, VSTM32_HEADER_OFFSET + offsetof(Vstm32Header, crc));
        crc = dfu_crc32_update(crc, zero, sizeof(zero));
        crc = dfu_crc32_update(crc, base + VSTM32_HEADER_OFFSET + sizeof(h),
                               h.length - VSTM32_HEADER_OFFSET - sizeof(h));
        crc ^= 0xFFFFFFFFu;
        if (crc != le32toh(h.crc))
                return false;

        if (ret_version)
                *ret_version = (uint16_t) (le32toh(h.version) & 0xFFFF);
        return true;
}

const Stm32Profile *stm32_model_boot(const Stm32Model *m, uint16_t *ret_version) {
        const Stm32Profile *rom = m->mem, *app = stm32_profile_find("app");
        uint16_t version = 0;
        bool valid;

        if (m->leave_kind == LEAVE_DETACH) {
                if (ret_version)
                        *ret_version = rom->bcd_device;
                return rom;
        }

        valid = stm32_memory_valid_app(rom, m->memory, &version);
        /* Empty check (§5.2): a reset that is not a power-on keeps the flag sampled at power-on. */
        if (m->leave_kind == LEAVE_RESET && rom->empty_check && m->empty_at_por)
                valid = false;

        if (!valid || !app) {
                if (ret_version)
                        *ret_version = rom->bcd_device;
                return rom;
        }
        if (ret_version)
                *ret_version = version;
        return app;
}

void stm32_model_get_stats(const Stm32Model *m, Stm32Stats *ret) {
        *ret = m->stats;
}

int stm32_model_get_state(const Stm32Model *m) {
        return (int) m->state;
}
