/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The DFU engine. An operation is a list of stages; each stage is planned when the previous one has
 * finished (so the read-back results can decide what to erase) into a list of ops; each op is a small
 * state machine that hands out one step at a time. Facts: dfu-protocol.md §1, §2, §4, §7.3. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dfu-engine.h"
#include "macro.h"

#define DEFAULT_TIMEOUT_MS 5000        /* ordinary requests: dfu-util's DFU_TIMEOUT */
#define DEFAULT_BUSY_TIMEOUT_MS 10000  /* F4 128 KiB sector erase: 4 s max (§7.1) with margin */
#define MASS_ERASE_TIMEOUT_MS 40000    /* F405 mass erase: "up to 32 seconds" (dfu-util) */
#define MAX_ENTER_TRIES 6
#define MAX_BUSY_POLLS 1000
#define MAX_STALL_RETRIES 3            /* dfu-util c15ee60 retries a stalled L4 poll 3 times */
#define MAX_RESENDS 2
#define MAX_MANIFEST_POLLS 50
#define MIN_MANIFEST_WAIT_USEC 5000ULL
#define FIRST_DATA_BLOCK 2             /* DfuSe: blocks 0 and 1 are not data */
#define MAX_RUN_BYTES(xfer) ((uint64_t) (0xFFFF - FIRST_DATA_BLOCK + 1) * (xfer))
/* Erase, write and verify in groups of at most this many bytes (or one sector, if larger), so that
 * verified sectors reach the caller (and its journal) while the update runs, not only at its end: a
 * resume after unplug then re-sends at most one group. Costs one SET_ADDRESS per group. */
#define MAX_CLUSTER_BYTES (64U * 1024U)

static const char *const dfu_poll_policy_table[_DFU_POLL_MAX] = {
        [DFU_POLL_HONOUR] = "honour",
        [DFU_POLL_EARLY] = "early",
};
DEFINE_STRING_TABLE_LOOKUP(dfu_poll_policy, DfuPollPolicy);

static const char *const dfu_phase_table[_DFU_PHASE_MAX] = {
        [DFU_PHASE_IDLE] = "idle",
        [DFU_PHASE_ENTERING] = "entering",
        [DFU_PHASE_DETACHING] = "detaching",
        [DFU_PHASE_READING] = "reading",
        [DFU_PHASE_ERASING] = "erasing",
        [DFU_PHASE_WRITING] = "writing",
        [DFU_PHASE_VERIFYING] = "verifying",
        [DFU_PHASE_LEAVING] = "leaving",
        [DFU_PHASE_DONE] = "done",
        [DFU_PHASE_FAILED] = "failed",
};
DEFINE_STRING_TABLE_LOOKUP(dfu_phase, DfuPhase);

typedef enum Operation {
        OPERATION_NONE,
        OPERATION_UPDATE,
        OPERATION_UPLOAD,
        OPERATION_DETACH,
        OPERATION_LEAVE,
} Operation;

typedef enum Stage {
        STAGE_START,
        STAGE_READBACK,
        STAGE_DECIDE,
        STAGE_COMMIT_ERASE,
        STAGE_CLUSTERS,
        STAGE_COMMIT_WRITE,
        STAGE_LEAVE,
        STAGE_FINISH,
} Stage;

typedef enum OpKind {
        OP_SET_ALT,
        OP_ENTER,
        OP_COMMAND,      /* DfuSe block 0: SET_ADDRESS, ERASE, mass erase */
        OP_ABORT,
        OP_WRITE,        /* DfuSe: consecutive blocks from 2 after one SET_ADDRESS */
        OP_READ,         /* DfuSe: UPLOAD blocks from 2, then ABORT */
        OP_MARK_WRITTEN,
        OP_LEAVE,        /* zero-length DNLOAD, GETSTATUS until the device is gone */
        OP_DETACH,
        OP_DFU_DOWNLOAD, /* plain DFU 1.1: blocks 0.., zero-length DNLOAD, manifestation */
        OP_DFU_UPLOAD,
} OpKind;

typedef enum ReadSink {
        SINK_READBACK, /* compare with the plan before erasing */
        SINK_VERIFY,   /* compare after writing: a mismatch fails */
        SINK_USER,     /* dfu_engine_start_upload()'s buffer */
} ReadSink;

typedef struct Op {
        OpKind kind;
        DfuPhase phase;
        uint8_t alt;
        uint8_t cmd[5];
        uint8_t cmd_len;
        uint32_t address;
        uint64_t length;
        size_t first, last; /* plan sectors covered */
        ReadSink sink;
} Op;

/* A DNLOAD followed by GETSTATUS until dfuDNLOAD-IDLE (AN2662: the first GETSTATUS starts the
 * operation and answers dfuDNBUSY, a later one tells the outcome). */
typedef enum TxnState {
        TXN_DNLOAD_SENT,
        TXN_POLL_SENT,
        TXN_WAITING,
        TXN_CLEAR_SENT,
} TxnState;

/* What a DNLOAD asks the device to do, for the busy-time estimates of the learned poll mode. */
typedef enum BusyKind {
        BUSY_WRITE,
        BUSY_ERASE,
        BUSY_OTHER,
        _BUSY_KIND_MAX,
} BusyKind;

typedef struct Txn {
        TxnState state;
        uint16_t block, length;
        unsigned timeout_ms;
        unsigned polls, busy_in_row, stalls, resends;
        bool seen_busy, stalled, probed;
        uint32_t poll_ms, first_poll_ms;
        BusyKind kind;
        uint64_t busy_since_usec; /* when dfuDNBUSY was reported */
} Txn;

typedef struct SectorWork {
        uint32_t crc;  /* running (raw) CRC of what was read back */
        uint32_t seen; /* bytes read back so far */
        uint8_t attributes;
        bool blank, read, identical, todo, erased, trusted;
} SectorWork;

struct DfuEngine {
        DfuDeviceInfo info;
        bool dfuse;
        uint16_t xfer;
        DfuEventFunc event_func;
        void *event_userdata;
        DfuClockFunc clock_func;
        void *clock_userdata;

        Operation operation;
        DfuUpdateOptions opts;
        DfuPollPolicy policy; /* effective: EARLY may fall back to HONOUR */
        /* Set with that fallback: wait a learned estimate of each kind of operation's busy time
         * instead of the full bwPollTimeout (see txn_learned_wait()). */
        bool learned;
        uint32_t busy_estimate_us[_BUSY_KIND_MAX];
        const DfuImage *image;
        uint8_t *user_buf;
        uint16_t detach_timeout;
        DfuPhase phase;
        DfuEngineError error;
        bool finished, failed, left;

        DfuPlanSector *plan;
        SectorWork *work;
        size_t n_plan;
        uint32_t leave_address;

        Stage stage;
        Op *ops;
        size_t n_ops, n_ops_allocated, op_index;
        bool op_started;
        int sub;
        uint64_t offset;
        size_t cursor;
        unsigned tries;
        Txn txn;
        bool diagnosing;
        int diagnose_error;
        DfuRequest diagnose_request;
        uint64_t op_start_usec;
        uint32_t op_polls;
        bool dnload_sent; /* leave/detach: the request that makes the device go was sent */

        int current_alt;
        DfuStatusReply last;
        bool have_last;

        DfuStep step;
        bool step_ready;
        uint8_t *buf;
        size_t buf_size;

        int result_r;         /* the result of the step just done */
        size_t result_actual;
        uint32_t upload_address;

        uint64_t bytes_done, bytes_total;
        DfuEngineStats stats;
        char line[320];
};

static void set_phase(DfuEngine *e, DfuPhase p);

static bool in_set(int v, size_t n, const int *set) {
        for (size_t i = 0; i < n; i++)
                if (set[i] == v)
                        return true;
        return false;
}
#define IN_SET(v, ...)                                                                                      \
        in_set((int) (v), ELEMENTSOF(((const int[]) { __VA_ARGS__ })), (const int[]) { __VA_ARGS__ })

void dfu_update_options_init(DfuUpdateOptions *o) {
        *o = (DfuUpdateOptions) {
                .poll_policy = DFU_POLL_HONOUR,
                .busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS,
                .verify = true,
        };
}

static uint64_t monotonic_usec(void *userdata) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t now_usec(const DfuEngine *e) {
        return e->clock_func(e->clock_userdata);
}

static void emit(DfuEngine *e, const DfuEvent *ev) {
        if (e->event_func)
                e->event_func(e, ev, e->event_userdata);
}

_printf_(2, 3) static void log_line(DfuEngine *e, const char *fmt, ...) {
        va_list ap;

        if (!e->event_func)
                return;
        va_start(ap, fmt);
        vsnprintf(e->line, sizeof(e->line), fmt, ap);
        va_end(ap);
        emit(e, &(DfuEvent) { .kind = DFU_EVENT_LOG, .phase = e->phase, .message = e->line });
}

static void emit_progress(DfuEngine *e) {
        emit(e, &(DfuEvent) {
                .kind = DFU_EVENT_PROGRESS,
                .phase = e->phase,
                .bytes_done = e->bytes_done,
                .bytes_total = e->bytes_total,
        });
}

static void set_phase(DfuEngine *e, DfuPhase p) {
        if (e->phase == p)
                return;
        e->phase = p;
        emit(e, &(DfuEvent) { .kind = DFU_EVENT_PHASE, .phase = p });
}

static const char *state_name(DfuState s) {
        return dfu_state_to_string(s) ?: "invalid-state";
}

static const char *status_name(DfuStatus s) {
        return dfu_status_to_string(s) ?: "invalid-status";
}

static const char *request_name(DfuRequest r) {
        return dfu_request_to_string(r) ?: "request";
}

static const char *errno_name(int r) {
        switch (r) {
        case -EPIPE:
                return "the device stalled the request";
        case -ETIMEDOUT:
                return "the device did not answer in time";
        case -ENODEV:
                return "the device disappeared";
        case -EIO:
                return "USB I/O error";
        case -EPROTO:
                return "protocol error";
        case -EBADMSG:
                return "malformed reply";
        case -ECANCELED:
                return "cancelled";
        default:
                return "failed";
        }
}

static const Op *current_op(const DfuEngine *e) {
        return e->op_index < e->n_ops ? &e->ops[e->op_index] : NULL;
}

/* What the current op is doing, in words, with the address it works on. */
static void describe_op(const DfuEngine *e, char *buf, size_t size) {
        const Op *op = current_op(e);

        if (!op) {
                snprintf(buf, size, "%s", dfu_phase_to_string(e->phase));
                return;
        }
        switch (op->kind) {
        case OP_ENTER:
                snprintf(buf, size, "entering DFU mode");
                break;
        case OP_COMMAND:
                if (op->cmd[0] == DFUSE_CMD_SET_ADDRESS)
                        snprintf(buf, size, "setting the address to 0x%08" PRIx32, op->address);
                else if (op->cmd_len == 1)
                        snprintf(buf, size, "mass erasing");
                else
                        snprintf(buf, size, "erasing 0x%08" PRIx32, op->address);
                break;
        case OP_WRITE:
                snprintf(buf, size, "writing 0x%08" PRIx32, (uint32_t) (op->address + e->offset));
                break;
        case OP_READ:
                if (op->sink == SINK_USER)
                        snprintf(buf, size, "reading 0x%08" PRIx32, (uint32_t) (op->address + e->offset));
                else
                        snprintf(buf, size, "%s 0x%08" PRIx32 "..0x%08" PRIx32,
                                 op->sink == SINK_VERIFY ? "verifying" : "reading back", op->address,
                                 (uint32_t) (op->address + op->length - 1));
                break;
        case OP_LEAVE:
                snprintf(buf, size, e->dfuse ? "leaving to 0x%08" PRIx32 : "manifesting", e->leave_address);
                break;
        case OP_DETACH:
                snprintf(buf, size, "detaching");
                break;
        case OP_DFU_DOWNLOAD:
                snprintf(buf, size, "downloading block %" PRIu64, e->offset / e->xfer);
                break;
        case OP_DFU_UPLOAD:
                snprintf(buf, size, "uploading block %" PRIu64, e->offset / e->xfer);
                break;
        case OP_ABORT:
                snprintf(buf, size, "aborting");
                break;
        case OP_SET_ALT:
                snprintf(buf, size, "selecting alt %u", op->alt);
                break;
        case OP_MARK_WRITTEN:
                snprintf(buf, size, "writing");
                break;
        }
}

static bool op_has_address(const DfuEngine *e, uint32_t *ret) {
        const Op *op = current_op(e);

        if (!op)
                return false;
        switch (op->kind) {
        case OP_COMMAND:
                if (op->cmd_len == 1)
                        return false;
                *ret = op->address;
                return true;
        case OP_WRITE:
        case OP_READ:
                *ret = (uint32_t) (op->address + e->offset);
                return true;
        case OP_LEAVE:
                if (!e->dfuse)
                        return false;
                *ret = e->leave_address;
                return true;
        default:
                return false;
        }
}

/* Ends the operation with an error; the message names the device's state/status and what we were
 * doing: "read protection is active (errVENDOR) while erasing 0x08020000". */
_printf_(4, 5) static void fail(DfuEngine *e, int error, DfuRequest request, const char *fmt, ...) {
        DfuEngineError *err = &e->error;
        char what[96], detail[160] = "";

        if (e->finished)
                return;
        describe_op(e, what, sizeof(what));
        *err = (DfuEngineError) {
                .error = error,
                .state = e->have_last ? e->last.state : _DFU_STATE_INVALID,
                .status = e->have_last ? e->last.status : _DFU_STATUS_INVALID,
                .request = request,
                .phase = e->phase,
        };
        err->has_address = op_has_address(e, &err->address);

        if (fmt) {
                va_list ap;

                va_start(ap, fmt);
                vsnprintf(detail, sizeof(detail), fmt, ap);
                va_end(ap);
        }
        if (error == -EPROTO && e->have_last && e->last.status != DFU_STATUS_OK)
                snprintf(err->message, sizeof(err->message), "%s (%s) while %s%s%s",
                         dfu_status_to_description(e->last.status), status_name(e->last.status), what,
                         detail[0] ? ": " : "", detail);
        else if ((int) request < 0)
                snprintf(err->message, sizeof(err->message), "%s while %s",
                         detail[0] ? detail : errno_name(error), what);
        else {
                char suffix[64];

                if (detail[0])
                        snprintf(suffix, sizeof(suffix), "%s%s", e->have_last ? "last state " : "",
                                 e->have_last ? state_name(e->last.state) : "");
                else
                        snprintf(suffix, sizeof(suffix), "%s%s%s", request_name(request),
                                 e->have_last ? ", last state " : "",
                                 e->have_last ? state_name(e->last.state) : "");
                snprintf(err->message, sizeof(err->message), "%s while %s%s%s%s",
                         detail[0] ? detail : errno_name(error), what, suffix[0] ? " (" : "", suffix,
                         suffix[0] ? ")" : "");
        }

        e->finished = e->failed = true;
        e->step_ready = false;
        log_line(e, "failed: %s", err->message);
        set_phase(e, DFU_PHASE_FAILED);
}

static void finish(DfuEngine *e) {
        e->finished = true;
        e->step_ready = false;
        set_phase(e, DFU_PHASE_DONE);
}

/* ---- steps ---- */

static void queue_control(DfuEngine *e, bool in, DfuRequest request, uint16_t value, uint16_t length,
                          unsigned timeout_ms) {
        e->step = (DfuStep) {
                .kind = DFU_STEP_CONTROL,
                .request_type = in ? DFU_REQUEST_TYPE_IN : DFU_REQUEST_TYPE_OUT,
                .request = (uint8_t) request,
                .value = value,
                .index = e->info.interface_number,
                .length = length,
                .data = length > 0 ? e->buf : NULL,
                .timeout_ms = timeout_ms,
        };
        e->step_ready = true;
        e->stats.control_transfers++;
        if (request == DFU_REQUEST_GETSTATUS)
                e->stats.getstatus_requests++;
}

static void queue_getstatus(DfuEngine *e, unsigned timeout_ms) {
        queue_control(e, true, DFU_REQUEST_GETSTATUS, 0, DFU_STATUS_LENGTH, timeout_ms);
}

static void queue_wait(DfuEngine *e, uint64_t usec) {
        e->step = (DfuStep) { .kind = DFU_STEP_WAIT, .wait_usec = usec };
        e->step_ready = true;
        e->stats.waited_usec += usec;
}

static unsigned busy_timeout(const DfuEngine *e) {
        return e->opts.busy_timeout_ms ?: DEFAULT_BUSY_TIMEOUT_MS;
}

static int parse_status(DfuEngine *e) {
        DfuStatusReply st;
        int r;

        r = dfu_status_reply_parse(e->buf, e->result_actual, &st);
        if (r < 0)
                return r;
        e->last = st;
        e->have_last = true;
        return 0;
}

typedef enum StepResult {
        STEP_PENDING,  /* a step was queued */
        STEP_COMPLETE, /* this (sub-)machine is done */
        STEP_FAILED,
} StepResult;

static StepResult fail_malformed(DfuEngine *e) {
        fail(e, -EBADMSG, DFU_REQUEST_GETSTATUS, "malformed GETSTATUS reply (%zu bytes)", e->result_actual);
        return STEP_FAILED;
}

/* Before failing on a stalled request, ask the device why: a stalled UPLOAD under RDP says errVENDOR. */
static StepResult start_diagnose(DfuEngine *e, DfuRequest request) {
        e->diagnosing = true;
        e->diagnose_error = e->result_r;
        e->diagnose_request = request;
        queue_getstatus(e, DEFAULT_TIMEOUT_MS);
        return STEP_PENDING;
}

static void finish_diagnose(DfuEngine *e) {
        e->diagnosing = false;
        if (e->result_r >= 0 && parse_status(e) >= 0 && e->last.status != DFU_STATUS_OK) {
                log_line(e, "GETSTATUS after the stall: %s, %s", state_name(e->last.state),
                         status_name(e->last.status));
                fail(e, -EPROTO, e->diagnose_request, "the device stalled %s",
                     request_name(e->diagnose_request));
                return;
        }
        fail(e, e->diagnose_error, e->diagnose_request, "the device stalled %s",
             request_name(e->diagnose_request));
}

/* ---- the DNLOAD transaction ---- */

static void txn_send(DfuEngine *e) {
        queue_control(e, false, DFU_REQUEST_DNLOAD, e->txn.block, e->txn.length, DEFAULT_TIMEOUT_MS);
        e->txn.state = TXN_DNLOAD_SENT;
}

/* e->buf holds the data. */
static void txn_start(DfuEngine *e, uint16_t block, uint16_t length, unsigned timeout_ms) {
        BusyKind kind = BUSY_OTHER;

        if (!e->dfuse || block >= FIRST_DATA_BLOCK)
                kind = BUSY_WRITE;
        else if (block == 0 && length == 5 && e->buf[0] == DFUSE_CMD_ERASE)
                kind = BUSY_ERASE;
        e->txn = (Txn) {
                .block = block,
                .length = length,
                .timeout_ms = timeout_ms,
                .kind = kind,
        };
        txn_send(e);
}

static void txn_poll(DfuEngine *e) {
        queue_getstatus(e, e->txn.timeout_ms);
        e->txn.state = TXN_POLL_SENT;
}

static void txn_wait_us(DfuEngine *e, uint64_t us) {
        queue_wait(e, us);
        e->txn.state = TXN_WAITING;
}

static void txn_wait(DfuEngine *e, uint32_t ms) {
        txn_wait_us(e, (uint64_t) MAX(ms, 1u) * 1000);
}

#define MIN_BUSY_ESTIMATE_US 500U
#define MAX_PROBE_STALLS 2 /* then the rest of bwPollTimeout, which a device never stalls */

static void fall_back_to_learned(DfuEngine *e) {
        if (e->policy != DFU_POLL_EARLY)
                return;
        e->policy = DFU_POLL_HONOUR;
        e->learned = true;
        memset(e->busy_estimate_us, 0, sizeof e->busy_estimate_us);
        e->stats.poll_fallbacks++;
        log_line(e, "the device stalled a GETSTATUS sent before its bwPollTimeout of %" PRIu32
                 " ms: from now on polling after the busy time learned per kind of operation, within "
                 "bwPollTimeout", e->txn.poll_ms);
}

/* How long to wait before the next GETSTATUS of a busy transaction in learned mode. A device like the
 * L4 ROM stalls a GETSTATUS that comes before its bwPollTimeout while it is still busy, and answers
 * one that comes after the operation has ended, however early: so wait an estimate of the operation's
 * real duration (starting at a quarter of bwPollTimeout), raise it by a quarter on a stall and try
 * again (at most MAX_PROBE_STALLS times, then the rest of bwPollTimeout), and lower it by an eighth
 * each time it was enough. The estimate saw-tooths just above the real busy time: a 1 KiB L4 write
 * takes 11.5 ms against a bwPollTimeout of 104 ms. Each stall costs one control transfer. */
static uint64_t txn_learned_wait(DfuEngine *e) {
        Txn *t = &e->txn;
        uint32_t *est = &e->busy_estimate_us[t->kind];
        uint64_t poll_us = (uint64_t) t->poll_ms * 1000, elapsed = now_usec(e) - t->busy_since_usec;

        if (*est == 0)
                *est = (uint32_t) MAX(poll_us / 4, (uint64_t) MIN_BUSY_ESTIMATE_US);
        if (t->stalls > MAX_PROBE_STALLS)
                return poll_us > elapsed ? poll_us - elapsed : 1000;
        t->probed = true;
        return MAX(MIN((uint64_t) *est, poll_us), elapsed + 1000) - elapsed;
}

static void txn_learned_stalled(DfuEngine *e) {
        uint32_t *est = &e->busy_estimate_us[e->txn.kind];

        /* bwPollTimeout is 24 bits of ms: compute in 64 bits, the cap fits 32 */
        uint64_t raised = (uint64_t) *est + MAX(*est / 4, MIN_BUSY_ESTIMATE_US), cap = (uint64_t) e->txn.poll_ms * 1000;

        *est = (uint32_t) MIN(MIN(raised, cap), (uint64_t) UINT32_MAX);
}

static void txn_learned_done(DfuEngine *e) {
        uint32_t *est = &e->busy_estimate_us[e->txn.kind];

        if (e->learned && e->txn.probed && e->txn.stalls == 0)
                *est = MAX(*est - *est / 8, MIN_BUSY_ESTIMATE_US);
}

/* Handles the result of the transaction's last step. */
static StepResult txn_result(DfuEngine *e) {
        Txn *t = &e->txn;
        int r = e->result_r;

        switch (t->state) {
        case TXN_DNLOAD_SENT:
                if (r == -EPIPE)
                        return start_diagnose(e, DFU_REQUEST_DNLOAD);
                if (r < 0) {
                        fail(e, r, DFU_REQUEST_DNLOAD, NULL);
                        return STEP_FAILED;
                }
                if (t->block >= FIRST_DATA_BLOCK || !e->dfuse)
                        e->stats.bytes_downloaded += t->length;
                /* The first GETSTATUS starts the operation: never wait before it. */
                txn_poll(e);
                return STEP_PENDING;

        case TXN_WAITING:
                txn_poll(e);
                return STEP_PENDING;

        case TXN_CLEAR_SENT:
                if (r < 0) {
                        fail(e, r, DFU_REQUEST_CLRSTATUS, NULL);
                        return STEP_FAILED;
                }
                t->seen_busy = t->stalled = false;
                t->busy_in_row = 0;
                txn_send(e);
                return STEP_PENDING;

        case TXN_POLL_SENT:
                break;
        }

        t->polls++;
        e->op_polls++;
        if (r == -EPIPE && t->stalls < MAX_STALL_RETRIES) {
                /* L4 ROM: polled while busy. The operation goes on; ask again later. A stalled
                 * GETSTATUS changes nothing else, so this is safe before DNBUSY too. */
                bool probing = e->learned && t->seen_busy;

                t->stalls++;
                t->stalled = true;
                e->stats.stalled_polls++;
                fall_back_to_learned(e);
                if (probing) {
                        txn_learned_stalled(e);
                        txn_wait_us(e, txn_learned_wait(e));
                        return STEP_PENDING;
                }
                log_line(e, "GETSTATUS stalled while busy (%u/%u): asking again in %" PRIu32 " ms",
                         t->stalls, MAX_STALL_RETRIES, MAX(t->poll_ms, 1u));
                txn_wait(e, t->poll_ms);
                return STEP_PENDING;
        }
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        fail(e, r, DFU_REQUEST_GETSTATUS, "no GETSTATUS answer within %u ms (the device is "
                             "busy for longer, or hung)", t->timeout_ms);
                else
                        fail(e, r, DFU_REQUEST_GETSTATUS, NULL);
                return STEP_FAILED;
        }
        if (parse_status(e) < 0)
                return fail_malformed(e);

        switch (e->last.state) {
        case DFU_STATE_DFU_DNBUSY:
        case DFU_STATE_DFU_DNLOAD_SYNC:
                if (!t->seen_busy) {
                        t->first_poll_ms = e->last.poll_timeout_ms;
                        t->busy_since_usec = now_usec(e);
                }
                t->seen_busy = true;
                t->poll_ms = e->last.poll_timeout_ms;
                t->busy_in_row++;
                if (t->polls >= MAX_BUSY_POLLS) {
                        fail(e, -ETIMEDOUT, DFU_REQUEST_GETSTATUS, "the device is stuck in %s",
                             state_name(e->last.state));
                        return STEP_FAILED;
                }
                /* EARLY: ask at once and let the device hold the transfer until it is done; one that
                 * answers busy again without holding gets its poll timeout. */
                if (e->policy == DFU_POLL_EARLY && t->busy_in_row < 2)
                        txn_poll(e);
                else if (e->learned && t->busy_in_row < 2 && t->poll_ms > 0)
                        txn_wait_us(e, txn_learned_wait(e));
                else if (t->poll_ms > 0 || t->busy_in_row >= 2)
                        txn_wait(e, t->poll_ms);
                else
                        txn_poll(e);
                return STEP_PENDING;

        case DFU_STATE_DFU_DNLOAD_IDLE:
                txn_learned_done(e);
                return STEP_COMPLETE;

        case DFU_STATE_DFU_ERROR:
                /* A device following DFU 1.1 to the letter aborts the operation when polled while
                 * busy: clear and send the same block again. */
                if (t->stalled && t->resends < MAX_RESENDS &&
                    IN_SET(e->last.status, DFU_STATUS_ERR_STALLEDPKT, DFU_STATUS_ERR_UNKNOWN)) {
                        log_line(e, "%s after a stalled GETSTATUS: CLRSTATUS and sending block %u again",
                                 status_name(e->last.status), t->block);
                        t->resends++;
                        queue_control(e, false, DFU_REQUEST_CLRSTATUS, 0, 0, DEFAULT_TIMEOUT_MS);
                        t->state = TXN_CLEAR_SENT;
                        return STEP_PENDING;
                }
                fail(e, -EPROTO, DFU_REQUEST_DNLOAD, NULL);
                return STEP_FAILED;

        default:
                fail(e, -EPROTO, DFU_REQUEST_GETSTATUS, "unexpected state %s (%s)",
                     state_name(e->last.state), status_name(e->last.status));
                return STEP_FAILED;
        }
}

/* ---- ops ---- */

static int add_op(DfuEngine *e, const Op *op) {
        if (e->n_ops == e->n_ops_allocated) {
                size_t n = MAX(e->n_ops_allocated * 2, (size_t) 16);
                Op *ops = realloc(e->ops, n * sizeof(Op));

                if (!ops)
                        return -ENOMEM;
                e->ops = ops;
                e->n_ops_allocated = n;
        }
        e->ops[e->n_ops++] = *op;
        return 0;
}

static int add_set_alt(DfuEngine *e, uint8_t alt, DfuPhase phase) {
        return add_op(e, &(Op) { .kind = OP_SET_ALT, .alt = alt, .phase = phase });
}

static int add_command(DfuEngine *e, uint8_t cmd, bool with_address, uint32_t address, size_t sector,
                       DfuPhase phase) {
        Op op = {
                .kind = OP_COMMAND,
                .phase = phase,
                .cmd = { cmd, address & 0xFF, (address >> 8) & 0xFF, (address >> 16) & 0xFF, address >> 24 },
                .cmd_len = with_address ? 5 : 1,
                .address = address,
                .first = sector,
                .last = sector,
        };
        return add_op(e, &op);
}

static int add_simple(DfuEngine *e, OpKind kind, DfuPhase phase) {
        return add_op(e, &(Op) { .kind = kind, .phase = phase });
}

static int add_read(DfuEngine *e, uint8_t alt, uint32_t address, uint64_t length, size_t first, size_t last,
                    ReadSink sink, DfuPhase phase) {
        int r;

        r = add_command(e, DFUSE_CMD_SET_ADDRESS, true, address, SIZE_MAX, phase);
        if (r < 0)
                return r;
        /* UPLOAD is only accepted in dfuIDLE; SET_ADDRESS left dfuDNLOAD-IDLE (AN2662 p.72). */
        r = add_simple(e, OP_ABORT, phase);
        if (r < 0)
                return r;
        return add_op(e, &(Op) { .kind = OP_READ, .phase = phase, .alt = alt, .address = address,
                                 .length = length, .first = first, .last = last, .sink = sink });
}

static void sector_verified(DfuEngine *e, size_t i, DfuSectorState state) {
        e->plan[i].state = state;
        emit(e, &(DfuEvent) { .kind = DFU_EVENT_SECTOR_VERIFIED, .phase = e->phase, .sector = &e->plan[i] });
}

/* A sector has been read back completely. */
static StepResult sector_read(DfuEngine *e, size_t i, ReadSink sink) {
        DfuPlanSector *s = &e->plan[i];
        SectorWork *w = &e->work[i];
        uint32_t crc = w->crc ^ 0xFFFFFFFFu;

        w->read = true;
        w->identical = crc == s->crc;
        if (sink == SINK_READBACK) {
                log_line(e, "sector 0x%08" PRIx32 " (%" PRIu32 " KiB) reads back CRC 0x%08" PRIx32
                         ", image 0x%08" PRIx32 "%s", s->address, s->size / 1024, crc, s->crc,
                         w->identical ? ": identical" : w->blank ? ": blank" : "");
                return STEP_COMPLETE;
        }
        if (!w->identical) {
                fail(e, -EIO, _DFU_REQUEST_INVALID,
                     "verification failed: sector 0x%08" PRIx32 " reads back CRC 0x%08" PRIx32
                     " instead of 0x%08" PRIx32, s->address, crc, s->crc);
                return STEP_FAILED;
        }
        log_line(e, "sector 0x%08" PRIx32 " verified (CRC 0x%08" PRIx32 ")", s->address, crc);
        sector_verified(e, i, DFU_SECTOR_VERIFIED);
        return STEP_COMPLETE;
}

static StepResult feed_sectors(DfuEngine *e, const Op *op, const uint8_t *data, size_t n) {
        while (n > 0 && e->cursor <= op->last) {
                DfuPlanSector *s = &e->plan[e->cursor];
                SectorWork *w = &e->work[e->cursor];
                size_t take = MIN(n, (size_t) (s->size - w->seen));

                if (w->seen == 0) {
                        w->crc = 0xFFFFFFFFu;
                        w->blank = true;
                }
                w->crc = dfu_crc32_update(w->crc, data, take);
                for (size_t k = 0; k < take && w->blank; k++)
                        if (data[k] != 0xFF)
                                w->blank = false;
                w->seen += (uint32_t) take;
                data += take;
                n -= take;
                if (w->seen == s->size) {
                        w->seen = 0;
                        if (sector_read(e, e->cursor, op->sink) == STEP_FAILED)
                                return STEP_FAILED;
                        e->cursor++;
                }
        }
        return STEP_COMPLETE;
}

static StepResult op_set_alt(DfuEngine *e, const Op *op, bool start) {
        if (start) {
                if (e->current_alt == op->alt)
                        return STEP_COMPLETE;
                e->step = (DfuStep) { .kind = DFU_STEP_SET_ALT, .alt = op->alt };
                e->step_ready = true;
                return STEP_PENDING;
        }
        if (e->result_r < 0) {
                fail(e, e->result_r, _DFU_REQUEST_INVALID, "SET_INTERFACE to alt %u failed", op->alt);
                return STEP_FAILED;
        }
        e->current_alt = op->alt;
        log_line(e, "selected alt %u", op->alt);
        return STEP_COMPLETE;
}

/* GETSTATUS first, then only what the state needs: CLRSTATUS from dfuERROR, ABORT from the idle states
 * of an earlier session. Never a blind CLRSTATUS: STLIB turns that into errUNKNOWN (§2.6). */
static StepResult op_enter(DfuEngine *e, bool start) {
        enum { SENT_STATUS, SENT_CLEAR, SENT_ABORT, WAITING };

        if (start || e->sub == WAITING) {
                queue_getstatus(e, busy_timeout(e));
                e->sub = SENT_STATUS;
                return STEP_PENDING;
        }
        if (e->sub == SENT_CLEAR || e->sub == SENT_ABORT) {
                if (e->result_r < 0) {
                        fail(e, e->result_r,
                             e->sub == SENT_CLEAR ? DFU_REQUEST_CLRSTATUS : DFU_REQUEST_ABORT, NULL);
                        return STEP_FAILED;
                }
                queue_getstatus(e, busy_timeout(e));
                e->sub = SENT_STATUS;
                return STEP_PENDING;
        }

        if (++e->tries > MAX_ENTER_TRIES) {
                fail(e, -EPROTO, DFU_REQUEST_GETSTATUS, "the device does not reach dfuIDLE");
                return STEP_FAILED;
        }
        if (e->result_r == -EPIPE && e->tries < MAX_ENTER_TRIES) {
                log_line(e, "GETSTATUS stalled: asking again");
                queue_getstatus(e, busy_timeout(e));
                return STEP_PENDING;
        }
        if (e->result_r < 0) {
                fail(e, e->result_r, DFU_REQUEST_GETSTATUS, NULL);
                return STEP_FAILED;
        }
        if (parse_status(e) < 0)
                return fail_malformed(e);
        log_line(e, "GETSTATUS: %s, %s, bwPollTimeout %" PRIu32 " ms", state_name(e->last.state),
                 status_name(e->last.status), e->last.poll_timeout_ms);

        switch (e->last.state) {
        case DFU_STATE_DFU_IDLE:
                return STEP_COMPLETE;

        case DFU_STATE_DFU_ERROR:
                if (e->last.status == DFU_STATUS_ERR_FIRMWARE && e->tries == 1)
                        log_line(e, "errFIRMWARE at power-up is harmless: the STM32 ROM reports it when it "
                                 "did not start an application; clearing it");
                else
                        log_line(e, "the device is in dfuERROR (%s: %s), probably left by an earlier "
                                 "session; clearing it", status_name(e->last.status),
                                 dfu_status_to_description(e->last.status));
                queue_control(e, false, DFU_REQUEST_CLRSTATUS, 0, 0, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_CLEAR;
                return STEP_PENDING;

        case DFU_STATE_DFU_DNLOAD_IDLE:
        case DFU_STATE_DFU_UPLOAD_IDLE:
        case DFU_STATE_DFU_DNLOAD_SYNC:
        case DFU_STATE_DFU_MANIFEST_SYNC:
                log_line(e, "the device is in %s, left by an earlier session: ABORT",
                         state_name(e->last.state));
                queue_control(e, false, DFU_REQUEST_ABORT, 0, 0, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_ABORT;
                return STEP_PENDING;

        case DFU_STATE_DFU_DNBUSY:
                queue_wait(e, (uint64_t) MAX(e->last.poll_timeout_ms, 1u) * 1000);
                e->sub = WAITING;
                return STEP_PENDING;

        case DFU_STATE_APP_IDLE:
        case DFU_STATE_APP_DETACH:
                fail(e, -EPROTO, DFU_REQUEST_GETSTATUS, "the device is in %s: it runs its application",
                     state_name(e->last.state));
                return STEP_FAILED;

        default:
                fail(e, -EPROTO, DFU_REQUEST_GETSTATUS, "the device is in %s and needs a USB reset",
                     state_name(e->last.state));
                return STEP_FAILED;
        }
}

static StepResult op_command(DfuEngine *e, const Op *op, bool start) {
        StepResult s;
        double ms;

        if (start) {
                unsigned timeout = busy_timeout(e);

                if (op->cmd_len == 1)
                        timeout = MAX(timeout, (unsigned) MASS_ERASE_TIMEOUT_MS);
                if (op->cmd[0] == DFUSE_CMD_SET_ADDRESS)
                        e->stats.set_address_requests++;
                memcpy(e->buf, op->cmd, op->cmd_len);
                txn_start(e, 0, op->cmd_len, timeout);
                return STEP_PENDING;
        }
        s = txn_result(e);
        if (s != STEP_COMPLETE)
                return s;

        ms = (double) (now_usec(e) - e->op_start_usec) / 1000.0;
        if (op->cmd[0] == DFUSE_CMD_SET_ADDRESS) {
                log_line(e,
                         "SET_ADDRESS 0x%08" PRIx32 ": done in %.1f ms, %u GETSTATUS (bwPollTimeout %" PRIu32
                         " ms)",
                         op->address, ms, e->txn.polls, e->txn.first_poll_ms);
                return STEP_COMPLETE;
        }
        if (op->cmd_len == 1) {
                log_line(e, "mass ERASE: done in %.1f ms, %u GETSTATUS (bwPollTimeout %" PRIu32 " ms)", ms,
                         e->txn.polls, e->txn.first_poll_ms);
                return STEP_COMPLETE;
        }
        log_line(e, "ERASE 0x%08" PRIx32 ": done in %.1f ms, %u GETSTATUS (bwPollTimeout %" PRIu32 " ms)",
                 op->address, ms, e->txn.polls, e->txn.first_poll_ms);
        e->stats.sectors_erased++;
        if (op->first < e->n_plan) {
                e->work[op->first].erased = true;
                e->plan[op->first].state = DFU_SECTOR_ERASED;
        }
        return STEP_COMPLETE;
}

static StepResult op_abort(DfuEngine *e, bool start) {
        if (start) {
                queue_control(e, false, DFU_REQUEST_ABORT, 0, 0, DEFAULT_TIMEOUT_MS);
                return STEP_PENDING;
        }
        if (e->result_r < 0) {
                fail(e, e->result_r, DFU_REQUEST_ABORT, NULL);
                return STEP_FAILED;
        }
        return STEP_COMPLETE;
}

/* DfuSe data: block 2 + k is (k * wTransferSize) past the address set by the op's SET_ADDRESS. */
static void write_chunk(DfuEngine *e, const Op *op) {
        uint16_t n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);

        dfu_image_read(e->image, op->alt, (uint32_t) (op->address + e->offset), e->buf, n, 0xFF);
        txn_start(e, (uint16_t) (FIRST_DATA_BLOCK + e->offset / e->xfer), n, busy_timeout(e));
}

static StepResult op_write(DfuEngine *e, const Op *op, bool start) {
        StepResult s;

        if (start) {
                write_chunk(e, op);
                return STEP_PENDING;
        }
        s = txn_result(e);
        if (s != STEP_COMPLETE)
                return s;
        e->offset += e->txn.length;
        e->bytes_done += e->txn.length;
        emit_progress(e);
        if (e->offset < op->length) {
                write_chunk(e, op);
                return STEP_PENDING;
        }
        log_line(e,
                 "DNLOAD 0x%08" PRIx32 "..0x%08" PRIx32 ": %" PRIu64 " bytes in blocks %u..%" PRIu64
                 " after one SET_ADDRESS, %.2f s, %u GETSTATUS",
                 op->address, (uint32_t) (op->address + op->length - 1), op->length, FIRST_DATA_BLOCK,
                 FIRST_DATA_BLOCK + (op->length - 1) / e->xfer,
                 (double) (now_usec(e) - e->op_start_usec) / 1e6, e->op_polls);
        return STEP_COMPLETE;
}

static void read_chunk(DfuEngine *e, const Op *op) {
        uint16_t n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);

        queue_control(e, true, DFU_REQUEST_UPLOAD, (uint16_t) (FIRST_DATA_BLOCK + e->offset / e->xfer), n,
                      DEFAULT_TIMEOUT_MS);
}

static StepResult op_read(DfuEngine *e, const Op *op, bool start) {
        enum { READING, ABORTING };
        uint16_t n;

        if (start) {
                e->cursor = op->first;
                e->sub = READING;
                read_chunk(e, op);
                return STEP_PENDING;
        }
        if (e->sub == ABORTING) {
                if (e->result_r < 0) {
                        fail(e, e->result_r, DFU_REQUEST_ABORT, NULL);
                        return STEP_FAILED;
                }
                log_line(e, "UPLOAD 0x%08" PRIx32 "..0x%08" PRIx32 ": %" PRIu64 " bytes, %.2f s",
                         op->address, (uint32_t) (op->address + op->length - 1), op->length,
                         (double) (now_usec(e) - e->op_start_usec) / 1e6);
                return STEP_COMPLETE;
        }

        n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);
        if (e->result_r == -EPIPE)
                return start_diagnose(e, DFU_REQUEST_UPLOAD);
        if (e->result_r < 0) {
                fail(e, e->result_r, DFU_REQUEST_UPLOAD, NULL);
                return STEP_FAILED;
        }
        if (e->result_actual != n) {
                fail(e, -EIO, DFU_REQUEST_UPLOAD, "short UPLOAD: %zu of %u bytes", e->result_actual, n);
                return STEP_FAILED;
        }
        e->stats.bytes_uploaded += n;
        if (op->sink == SINK_USER) {
                memcpy(e->user_buf + (op->address - e->upload_address) + e->offset, e->buf, n);
                e->bytes_done += n;
                emit_progress(e);
        } else if (feed_sectors(e, op, e->buf, n) == STEP_FAILED)
                return STEP_FAILED;
        e->offset += n;

        if (e->offset < op->length) {
                read_chunk(e, op);
                return STEP_PENDING;
        }
        queue_control(e, false, DFU_REQUEST_ABORT, 0, 0, DEFAULT_TIMEOUT_MS);
        e->sub = ABORTING;
        return STEP_PENDING;
}

static bool is_gone(int r) {
        return IN_SET(r, -ENODEV, -EPIPE, -EIO, -ETIMEDOUT, -ESHUTDOWN);
}

/* Leave (DfuSe) or the end of a plain DFU download: zero-length DNLOAD, then GETSTATUS through the
 * manifestation states. A DfuSe device answers dfuMANIFEST and drops off the bus (the F072 only after a
 * few more polls); losing it then is the success (§2.5). */
static StepResult op_leave(DfuEngine *e, uint16_t block, bool start) {
        enum { SENT_DNLOAD = 10, SENT_STATUS, WAITING };

        if (start) {
                queue_control(e, false, DFU_REQUEST_DNLOAD, block, 0, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_DNLOAD;
                e->op_polls = 0;
                e->dnload_sent = true;
                return STEP_PENDING;
        }

        switch (e->sub) {
        case WAITING:
                queue_getstatus(e, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_STATUS;
                return STEP_PENDING;

        case SENT_DNLOAD:
                if (e->result_r == -EPIPE) {
                        e->dnload_sent = false;
                        return start_diagnose(e, DFU_REQUEST_DNLOAD);
                }
                if (e->result_r < 0 && is_gone(e->result_r)) {
                        e->left = true;
                        log_line(e, "the device dropped off the bus on the zero-length DNLOAD");
                        return STEP_COMPLETE;
                }
                if (e->result_r < 0) {
                        fail(e, e->result_r, DFU_REQUEST_DNLOAD, NULL);
                        return STEP_FAILED;
                }
                log_line(e, "zero-length DNLOAD (block %u) accepted", block);
                queue_getstatus(e, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_STATUS;
                return STEP_PENDING;

        default:
                break;
        }

        /* SENT_STATUS */
        e->op_polls++;
        if (e->result_r < 0) {
                if (is_gone(e->result_r)) {
                        e->left = true;
                        log_line(e, "the device left the bus at GETSTATUS %u (%s): done", e->op_polls,
                                 errno_name(e->result_r));
                        return STEP_COMPLETE;
                }
                fail(e, e->result_r, DFU_REQUEST_GETSTATUS, NULL);
                return STEP_FAILED;
        }
        if (parse_status(e) < 0)
                return fail_malformed(e);
        log_line(e, "GETSTATUS: %s, %s, bwPollTimeout %" PRIu32 " ms", state_name(e->last.state),
                 status_name(e->last.status), e->last.poll_timeout_ms);

        switch (e->last.state) {
        case DFU_STATE_DFU_MANIFEST:
        case DFU_STATE_DFU_MANIFEST_SYNC:
                if (e->op_polls >= MAX_MANIFEST_POLLS) {
                        fail(e, -ETIMEDOUT, DFU_REQUEST_GETSTATUS,
                             "the device stayed in %s after %u GETSTATUS", state_name(e->last.state),
                             e->op_polls);
                        return STEP_FAILED;
                }
                /* Keep asking: the F072 ROM only goes after a few more polls. */
                queue_wait(e, MAX((uint64_t) e->last.poll_timeout_ms * 1000, MIN_MANIFEST_WAIT_USEC));
                e->sub = WAITING;
                return STEP_PENDING;

        case DFU_STATE_DFU_MANIFEST_WAIT_RESET:
                log_line(e, "the device waits for a USB reset to run the new firmware");
                return STEP_COMPLETE;

        case DFU_STATE_DFU_IDLE:
                if (e->dfuse) {
                        fail(e, -EPROTO, DFU_REQUEST_GETSTATUS,
                             "the device did not leave DFU mode (dfuIDLE)");
                        return STEP_FAILED;
                }
                log_line(e, "manifestation done: the device is back in dfuIDLE");
                return STEP_COMPLETE;

        default:
                fail(e, -EPROTO, DFU_REQUEST_GETSTATUS, "unexpected state %s (%s)",
                     state_name(e->last.state), status_name(e->last.status));
                return STEP_FAILED;
        }
}

static StepResult op_detach(DfuEngine *e, bool start) {
        enum { SENT_STATUS, SENT_DETACH };

        if (start) {
                queue_getstatus(e, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_STATUS;
                return STEP_PENDING;
        }
        if (e->sub == SENT_STATUS) {
                if (e->result_r >= 0 && parse_status(e) >= 0) {
                        log_line(e, "GETSTATUS: %s, %s", state_name(e->last.state),
                                 status_name(e->last.status));
                        if (!IN_SET(e->last.state, DFU_STATE_APP_IDLE, DFU_STATE_APP_DETACH)) {
                                log_line(e, "the device is already in DFU mode");
                                return STEP_COMPLETE;
                        }
                } else if (e->result_r == -EPIPE)
                        /* Runtime interfaces need not implement GETSTATUS (dfu-util assumes appIDLE). */
                        log_line(e, "GETSTATUS stalled: assuming appIDLE");
                else if (e->result_r < 0) {
                        fail(e, e->result_r, DFU_REQUEST_GETSTATUS, NULL);
                        return STEP_FAILED;
                }
                queue_control(e, false, DFU_REQUEST_DETACH, e->detach_timeout, 0, DEFAULT_TIMEOUT_MS);
                e->sub = SENT_DETACH;
                e->dnload_sent = true;
                return STEP_PENDING;
        }

        if (e->result_r < 0 && e->result_r != -ENODEV && e->result_r != -EIO) {
                fail(e, e->result_r, DFU_REQUEST_DETACH, NULL);
                return STEP_FAILED;
        }
        if (e->result_r < 0 || (e->info.functional.attributes & DFU_ATTR_WILL_DETACH)) {
                e->left = true;
                log_line(e, "DETACH (wTimeout %u ms) accepted: the device re-enumerates by itself",
                         e->detach_timeout);
        } else
                log_line(e,
                         "DETACH (wTimeout %u ms) accepted: the device needs a USB reset within that time",
                         e->detach_timeout);
        return STEP_COMPLETE;
}

/* Plain DFU 1.1: the image as one payload, blocks 0, 1, 2... each acknowledged through GETSTATUS, then
 * the zero-length DNLOAD and manifestation. */
static void dfu_block(DfuEngine *e, const Op *op) {
        uint16_t n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);

        dfu_image_read(e->image, DFU_ALT_ANY, (uint32_t) (op->address + e->offset), e->buf, n, 0xFF);
        txn_start(e, (uint16_t) (e->offset / e->xfer), n, busy_timeout(e));
}

static StepResult op_dfu_download(DfuEngine *e, const Op *op, bool start) {
        uint16_t last_block = (uint16_t) ((op->length + e->xfer - 1) / e->xfer);
        StepResult s;

        if (start) {
                dfu_block(e, op);
                return STEP_PENDING;
        }
        if (e->sub != 0)
                return op_leave(e, last_block, false);

        s = txn_result(e);
        if (s != STEP_COMPLETE)
                return s;
        e->offset += e->txn.length;
        e->bytes_done += e->txn.length;
        emit_progress(e);
        if (e->offset < op->length) {
                dfu_block(e, op);
                return STEP_PENDING;
        }
        log_line(e, "DNLOAD %" PRIu64 " bytes in blocks 0..%u, %.2f s, %u GETSTATUS", op->length,
                 last_block - 1, (double) (now_usec(e) - e->op_start_usec) / 1e6, e->op_polls);
        set_phase(e, DFU_PHASE_LEAVING);
        return op_leave(e, last_block, true);
}

static StepResult op_dfu_upload(DfuEngine *e, const Op *op, bool start) {
        enum { READING, ABORTING };
        uint16_t n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);

        if (start) {
                e->sub = READING;
                queue_control(e, true, DFU_REQUEST_UPLOAD, 0, n, DEFAULT_TIMEOUT_MS);
                return STEP_PENDING;
        }
        if (e->sub == ABORTING) {
                if (e->result_r < 0) {
                        fail(e, e->result_r, DFU_REQUEST_ABORT, NULL);
                        return STEP_FAILED;
                }
                return STEP_COMPLETE;
        }
        if (e->result_r == -EPIPE)
                return start_diagnose(e, DFU_REQUEST_UPLOAD);
        if (e->result_r < 0) {
                fail(e, e->result_r, DFU_REQUEST_UPLOAD, NULL);
                return STEP_FAILED;
        }
        memcpy(e->user_buf + e->offset, e->buf, e->result_actual);
        e->offset += e->result_actual;
        e->stats.bytes_uploaded += e->result_actual;
        e->bytes_done = e->offset;
        emit_progress(e);
        if (e->result_actual < n) {
                /* A short frame ends the upload and puts the device back in dfuIDLE. */
                if (e->offset < op->length) {
                        fail(e, -EIO, DFU_REQUEST_UPLOAD, "the device has only %" PRIu64 " bytes",
                             e->offset);
                        return STEP_FAILED;
                }
                return STEP_COMPLETE;
        }
        if (e->offset >= op->length) {
                queue_control(e, false, DFU_REQUEST_ABORT, 0, 0, DEFAULT_TIMEOUT_MS);
                e->sub = ABORTING;
                return STEP_PENDING;
        }
        n = (uint16_t) MIN((uint64_t) e->xfer, op->length - e->offset);
        queue_control(e, true, DFU_REQUEST_UPLOAD, (uint16_t) (e->offset / e->xfer), n, DEFAULT_TIMEOUT_MS);
        return STEP_PENDING;
}

static StepResult op_run(DfuEngine *e, const Op *op, bool start) {
        switch (op->kind) {
        case OP_SET_ALT:
                return op_set_alt(e, op, start);
        case OP_ENTER:
                return op_enter(e, start);
        case OP_COMMAND:
                return op_command(e, op, start);
        case OP_ABORT:
                return op_abort(e, start);
        case OP_WRITE:
                return op_write(e, op, start);
        case OP_READ:
                return op_read(e, op, start);
        case OP_MARK_WRITTEN:
                for (size_t i = op->first; i <= op->last && i < e->n_plan; i++)
                        if (e->plan[i].state < DFU_SECTOR_WRITTEN)
                                e->plan[i].state = DFU_SECTOR_WRITTEN;
                return STEP_COMPLETE;
        case OP_LEAVE:
                return op_leave(e, FIRST_DATA_BLOCK, start);
        case OP_DETACH:
                return op_detach(e, start);
        case OP_DFU_DOWNLOAD:
                return op_dfu_download(e, op, start);
        case OP_DFU_UPLOAD:
                return op_dfu_upload(e, op, start);
        }
        return STEP_FAILED;
}

/* ---- planning ---- */

static bool adjacent(const DfuEngine *e, size_t a, size_t b) {
        return e->plan[a].alt == e->plan[b].alt &&
               (uint64_t) e->plan[a].address + e->plan[a].size == e->plan[b].address;
}

/* The plan is in write order: every sector but the first by address, ascending, then the one holding
 * the image start (the vector table), which is erased first and written last. */
static size_t commit_index(const DfuEngine *e) {
        return e->n_plan - 1;
}

static int cmp_sector(const void *a, const void *b) {
        const DfuPlanSector *x = a, *y = b;

        if (x->alt != y->alt)
                return x->alt < y->alt ? -1 : 1;
        if (x->address != y->address)
                return x->address < y->address ? -1 : 1;
        return 0;
}

static int build_plan(DfuEngine *e) {
        const DfuImage *img = e->image;
        _cleanup_free_ uint8_t *sector_buf = NULL;
        size_t n = 0, allocated = 0;
        DfuPlanSector first;

        for (size_t i = 0; i < img->n_segments; i++) {
                const DfuSegment *seg = &img->segments[i];
                const DfuseLayout *l;
                uint64_t a = seg->address, end = (uint64_t) seg->address + seg->size;

                if (seg->alt >= e->info.n_alts || !(l = e->info.layouts[seg->alt]))
                        return -EINVAL; /* not placed, or an alt without a memory layout */
                while (a < end) {
                        DfuseSector s;
                        uint64_t s_end;

                        if (dfuse_layout_find_sector(l, (uint32_t) a, &s) < 0)
                                return -ERANGE;
                        s_end = (uint64_t) s.address + s.size;
                        if (n == 0 || e->plan[n - 1].alt != seg->alt ||
                            e->plan[n - 1].address != s.address) {
                                if (n == allocated) {
                                        size_t k = MAX(allocated * 2, 16u);
                                        DfuPlanSector *p = realloc(e->plan, k * sizeof(*p));
                                        SectorWork *w = realloc(e->work, k * sizeof(*w));

                                        if (p)
                                                e->plan = p;
                                        if (w)
                                                e->work = w;
                                        if (!p || !w)
                                                return -ENOMEM;
                                        allocated = k;
                                }
                                e->plan[n] = (DfuPlanSector) { .alt = seg->alt, .address = s.address,
                                                               .size = s.size };
                                e->work[n] = (SectorWork) { .attributes = s.attributes };
                                n++;
                        }
                        e->plan[n - 1].data_size += (uint32_t) (MIN(end, s_end) - a);
                        a = MIN(end, s_end);
                }
        }
        if (n == 0)
                return -EINVAL;

        /* Segments are sorted by (alt, address), so the plan is too: merge sectors that two
         * segments share. */
        {
                size_t k = 0;

                for (size_t i = 0; i < n; i++) {
                        if (k > 0 && cmp_sector(&e->plan[k - 1], &e->plan[i]) == 0) {
                                e->plan[k - 1].data_size += e->plan[i].data_size;
                                continue;
                        }
                        e->plan[k] = e->plan[i];
                        e->work[k] = e->work[i];
                        k++;
                }
                n = k;
        }

        for (size_t i = 0; i < n; i++) {
                DfuPlanSector *s = &e->plan[i];
                uint8_t *p = realloc(sector_buf, s->size);

                if (!p)
                        return -ENOMEM;
                sector_buf = p;
                dfu_image_read(img, s->alt, s->address, sector_buf, s->size, 0xFF);
                s->crc = dfu_crc32(sector_buf, s->size);
                e->bytes_total += s->data_size;
        }

        /* Write order: the first sector goes last. */
        first = e->plan[0];
        {
                SectorWork w = e->work[0];

                memmove(e->plan, e->plan + 1, (n - 1) * sizeof(*e->plan));
                memmove(e->work, e->work + 1, (n - 1) * sizeof(*e->work));
                e->plan[n - 1] = first;
                e->work[n - 1] = w;
        }
        e->n_plan = n;

        for (size_t i = 0; i < n; i++)
                for (size_t v = 0; v < e->opts.n_verified; v++)
                        if (e->opts.verified[v].alt == e->plan[i].alt &&
                            e->opts.verified[v].address == e->plan[i].address) {
                                e->work[i].trusted = true;
                                e->plan[i].state = DFU_SECTOR_VERIFIED;
                        }
        return 0;
}

/* Adds the DNLOAD runs for the image data inside plan sectors [first, last] (adjacent sectors): one
 * SET_ADDRESS per contiguous run, then consecutive blocks. */
static int add_writes(DfuEngine *e, size_t first, size_t last) {
        uint8_t alt = e->plan[first].alt;
        uint64_t lo = e->plan[first].address, hi = (uint64_t) e->plan[last].address + e->plan[last].size;
        int r;

        for (size_t i = 0; i < e->image->n_segments; i++) {
                const DfuSegment *seg = &e->image->segments[i];
                uint64_t a = MAX((uint64_t) seg->address, lo),
                         end = MIN((uint64_t) seg->address + seg->size, hi);

                if (seg->alt != alt || a >= end)
                        continue;
                while (a < end) {
                        uint64_t len = MIN(end - a, MAX_RUN_BYTES(e->xfer));

                        r = add_command(e, DFUSE_CMD_SET_ADDRESS, true, (uint32_t) a, SIZE_MAX,
                                        DFU_PHASE_WRITING);
                        if (r < 0)
                                return r;
                        r = add_op(e, &(Op) { .kind = OP_WRITE, .phase = DFU_PHASE_WRITING, .alt = alt,
                                              .address = (uint32_t) a, .length = len });
                        if (r < 0)
                                return r;
                        a += len;
                }
        }
        return add_op(e, &(Op) { .kind = OP_MARK_WRITTEN, .phase = DFU_PHASE_WRITING, .first = first,
                                 .last = last });
}

/* Reads back plan sectors [first, last] (adjacent) with one SET_ADDRESS. */
static int add_sector_read(DfuEngine *e, size_t first, size_t last, ReadSink sink, DfuPhase phase) {
        uint64_t len = 0;

        for (size_t i = first; i <= last; i++)
                len += e->plan[i].size;
        return add_read(e, e->plan[first].alt, e->plan[first].address, len, first, last, sink, phase);
}

static int add_verifies(DfuEngine *e, size_t first, size_t last);

static bool readable(const DfuEngine *e, size_t i) {
        return e->work[i].attributes & DFUSE_SECTOR_READABLE;
}

static bool erasable(const DfuEngine *e, size_t i) {
        return e->work[i].attributes & DFUSE_SECTOR_ERASABLE;
}

/* Calls f for every maximal group of adjacent plan sectors in [0, n) that satisfy pred and span at
 * most max_bytes (a single sector may be larger). */
static int for_clusters(DfuEngine *e, size_t n, uint64_t max_bytes, bool (*pred)(const DfuEngine *e, size_t i),
                        int (*f)(DfuEngine *e, size_t first, size_t last)) {
        size_t i = 0;
        int r;

        while (i < n) {
                size_t j;

                if (!pred(e, i)) {
                        i++;
                        continue;
                }
                j = i;
                while (j + 1 < n && pred(e, j + 1) && adjacent(e, j, j + 1) &&
                       (uint64_t) e->plan[j + 1].address + e->plan[j + 1].size - e->plan[i].address <=
                               MIN(max_bytes, MAX_RUN_BYTES(e->xfer)))
                        j++;
                r = f(e, i, j);
                if (r < 0)
                        return r;
                i = j + 1;
        }
        return 0;
}

static bool needs_readback(const DfuEngine *e, size_t i) {
        return !e->work[i].trusted && readable(e, i);
}

static int readback_cluster(DfuEngine *e, size_t first, size_t last) {
        int r = add_set_alt(e, e->plan[first].alt, DFU_PHASE_READING);

        return r < 0 ? r : add_sector_read(e, first, last, SINK_READBACK, DFU_PHASE_READING);
}

static bool is_todo(const DfuEngine *e, size_t i) {
        return e->work[i].todo;
}

static bool is_todo_readable(const DfuEngine *e, size_t i) {
        return e->work[i].todo && readable(e, i);
}

static int add_erases(DfuEngine *e, size_t first, size_t last) {
        int r;

        for (size_t i = first; i <= last; i++) {
                if (!erasable(e, i) || e->work[i].erased)
                        continue;
                if (e->work[i].read && e->work[i].blank) {
                        log_line(e, "sector 0x%08" PRIx32 " is blank: no erase needed", e->plan[i].address);
                        continue;
                }
                r = add_command(e, DFUSE_CMD_ERASE, true, e->plan[i].address, i, DFU_PHASE_ERASING);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int cluster_ops(DfuEngine *e, size_t first, size_t last) {
        int r;

        r = add_set_alt(e, e->plan[first].alt, DFU_PHASE_ERASING);
        if (r < 0)
                return r;
        r = add_erases(e, first, last);
        if (r < 0)
                return r;
        r = add_writes(e, first, last);
        if (r < 0)
                return r;
        if (e->opts.verify)
                r = add_verifies(e, first, last);
        return r;
}

static int verify_cluster(DfuEngine *e, size_t first, size_t last) {
        return add_sector_read(e, first, last, SINK_VERIFY, DFU_PHASE_VERIFYING);
}

/* Verify the readable sectors of [first, last]. */
static int add_verifies(DfuEngine *e, size_t first, size_t last) {
        size_t i = first;
        int r;

        while (i <= last) {
                size_t j;

                if (!readable(e, i)) {
                        i++;
                        continue;
                }
                j = i;
                while (j + 1 <= last && readable(e, j + 1))
                        j++;
                r = verify_cluster(e, i, j);
                if (r < 0)
                        return r;
                i = j + 1;
        }
        return 0;
}

static uint32_t default_leave_address(const DfuEngine *e) {
        for (size_t i = 0; i < e->image->n_segments; i++)
                if (e->image->segments[i].alt == 0)
                        return e->image->segments[i].address;
        if (e->info.n_alts > 0 && e->info.layouts[0] && e->info.layouts[0]->n_groups > 0)
                return e->info.layouts[0]->groups[0].address;
        return 0x08000000;
}

static int plan_update_stage(DfuEngine *e) {
        size_t c = commit_index(e);
        bool any_todo = false;
        int r = 0;

        switch (e->stage) {
        case STAGE_START:
                r = add_set_alt(e, e->plan[c].alt, DFU_PHASE_ENTERING);
                if (r >= 0)
                        r = add_simple(e, OP_ENTER, DFU_PHASE_ENTERING);
                if (r >= 0 && e->opts.mass_erase)
                        r = add_command(e, DFUSE_CMD_ERASE, false, 0, SIZE_MAX, DFU_PHASE_ERASING);
                e->stage = STAGE_READBACK;
                return r;

        case STAGE_READBACK:
                if (e->opts.mass_erase)
                        for (size_t i = 0; i < e->n_plan; i++)
                                if (e->plan[i].alt == e->plan[c].alt && erasable(e, i))
                                        e->work[i].erased = true;
                /* Resume and incremental: compare what is there before erasing anything. The first
                 * sector is read separately: it is written last. */
                if (e->opts.incremental || e->opts.resume || e->opts.n_verified > 0) {
                        r = for_clusters(e, c, UINT64_MAX, needs_readback, readback_cluster);
                        if (r >= 0 && needs_readback(e, c))
                                r = readback_cluster(e, c, c);
                }
                e->stage = STAGE_DECIDE;
                return r;

        case STAGE_DECIDE:
                for (size_t i = 0; i < e->n_plan; i++) {
                        SectorWork *w = &e->work[i];

                        if (w->trusted) {
                                e->bytes_done += e->plan[i].data_size;
                                continue;
                        }
                        if (w->read && w->identical && i != c) {
                                e->stats.sectors_skipped++;
                                e->bytes_done += e->plan[i].data_size;
                                log_line(e, "sector 0x%08" PRIx32 " already holds the image: skipped",
                                         e->plan[i].address);
                                sector_verified(e, i, DFU_SECTOR_SKIPPED);
                                continue;
                        }
                        w->todo = true;
                        if (i != c)
                                any_todo = true;
                }
                /* The first sector is rewritten whenever anything else changes, so that no mix of old
                 * vector table and new image is ever bootable. */
                if (!any_todo && e->work[c].read && e->work[c].identical) {
                        e->work[c].todo = false;
                        e->stats.sectors_skipped++;
                        e->bytes_done += e->plan[c].data_size;
                        log_line(e, "sector 0x%08" PRIx32 " already holds the image: skipped",
                                 e->plan[c].address);
                        sector_verified(e, c, DFU_SECTOR_SKIPPED);
                } else if (any_todo && !e->work[c].trusted)
                        e->work[c].todo = true;
                emit_progress(e);
                e->stage = STAGE_COMMIT_ERASE;
                return 0;

        case STAGE_COMMIT_ERASE:
                if (e->work[c].todo) {
                        r = add_set_alt(e, e->plan[c].alt, DFU_PHASE_ERASING);
                        if (r >= 0)
                                r = add_erases(e, c, c);
                }
                e->stage = STAGE_CLUSTERS;
                return r;

        case STAGE_CLUSTERS:
                r = for_clusters(e, c, MAX_CLUSTER_BYTES, is_todo, cluster_ops);
                e->stage = STAGE_COMMIT_WRITE;
                return r;

        case STAGE_COMMIT_WRITE:
                if (e->work[c].todo) {
                        r = add_set_alt(e, e->plan[c].alt, DFU_PHASE_WRITING);
                        if (r >= 0)
                                r = add_writes(e, c, c);
                        if (r >= 0 && e->opts.verify && is_todo_readable(e, c))
                                r = verify_cluster(e, c, c);
                }
                e->stage = STAGE_LEAVE;
                return r;

        case STAGE_LEAVE:
                if (e->opts.leave) {
                        r = add_command(e, DFUSE_CMD_SET_ADDRESS, true, e->leave_address, SIZE_MAX,
                                        DFU_PHASE_LEAVING);
                        if (r >= 0)
                                r = add_simple(e, OP_LEAVE, DFU_PHASE_LEAVING);
                } else
                        r = add_simple(e, OP_ABORT, e->phase);
                e->stage = STAGE_FINISH;
                return r;

        case STAGE_FINISH:
                return 1;
        }
        return 1;
}

/* Appends the ops of the next stage; 1 when the operation is complete. */
static int plan_next(DfuEngine *e) {
        e->n_ops = e->op_index = 0;

        if (e->operation == OPERATION_UPDATE && e->dfuse) {
                while (e->n_ops == 0) {
                        int r = plan_update_stage(e);

                        if (r != 0)
                                return r;
                }
                return 0;
        }
        /* Everything else is planned at start in one stage. */
        if (e->stage == STAGE_FINISH)
                return 1;
        e->stage = STAGE_FINISH;
        return 1;
}

/* Runs ops until one of them needs the caller. `have_result`: the step handed out last is done
 * (e->result_r, e->result_actual). */
static void advance(DfuEngine *e, bool have_result) {
        while (!e->finished && !e->step_ready) {
                const Op *op = current_op(e);
                bool start = !e->op_started;
                StepResult s;

                if (!op) {
                        int r = plan_next(e);

                        if (r < 0) {
                                fail(e, r, _DFU_REQUEST_INVALID, "planning failed");
                                return;
                        }
                        if (r > 0) {
                                finish(e);
                                return;
                        }
                        continue;
                }

                if (have_result && e->diagnosing) {
                        finish_diagnose(e);
                        return;
                }
                if (!start && !have_result) {
                        fail(e, -EINVAL, _DFU_REQUEST_INVALID, "internal error: op without a step");
                        return;
                }
                if (start) {
                        if (op->kind != OP_MARK_WRITTEN && op->kind != OP_SET_ALT)
                                set_phase(e, op->phase);
                        e->sub = 0;
                        e->offset = 0;
                        e->tries = 0;
                        e->op_polls = 0;
                        e->op_start_usec = now_usec(e);
                }

                s = op_run(e, op, start);
                e->op_started = true;
                have_result = false;
                if (s == STEP_FAILED || e->finished)
                        return;
                if (s == STEP_COMPLETE) {
                        e->op_index++;
                        e->op_started = false;
                } else if (!e->step_ready) {
                        fail(e, -EINVAL, _DFU_REQUEST_INVALID, "internal error: pending op without a step");
                        return;
                }
        }
}

/* ---- API ---- */

int dfu_engine_new(const DfuDeviceInfo *info, DfuEngine **ret) {
        _cleanup_free_ DfuEngine *e = NULL;

        if (!info || !ret || info->n_alts > DFU_MAX_ALTS)
                return -EINVAL;
        if (info->functional.transfer_size == 0 && !info->runtime)
                return -EINVAL;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->info = *info;
        e->dfuse = info->functional.dfu_version == DFU_VERSION_DFUSE && !info->runtime;
        e->xfer = info->functional.transfer_size;
        e->buf_size = MAX((size_t) e->xfer, (size_t) 64);
        e->buf = calloc(1, e->buf_size);
        if (!e->buf)
                return -ENOMEM;
        e->clock_func = monotonic_usec;
        e->current_alt = -1;
        e->phase = DFU_PHASE_IDLE;
        *ret = TAKE_PTR(e);
        return 0;
}

DfuEngine *dfu_engine_free(DfuEngine *e) {
        if (!e)
                return NULL;
        free(e->buf);
        free(e->ops);
        free(e->plan);
        free(e->work);
        free(e);
        return NULL;
}

void dfu_engine_set_event_func(DfuEngine *e, DfuEventFunc f, void *userdata) {
        e->event_func = f;
        e->event_userdata = userdata;
}

void dfu_engine_set_clock(DfuEngine *e, DfuClockFunc f, void *userdata) {
        e->clock_func = f ?: monotonic_usec;
        e->clock_userdata = f ? userdata : NULL;
}

static bool running(const DfuEngine *e) {
        return e->operation != OPERATION_NONE && !e->finished;
}

static void reset_operation(DfuEngine *e, Operation op, const DfuUpdateOptions *opts) {
        e->operation = op;
        if (opts)
                e->opts = *opts;
        else
                dfu_update_options_init(&e->opts);
        e->policy = e->opts.poll_policy;
        e->learned = false;
        e->image = NULL;
        e->user_buf = NULL;
        e->error = (DfuEngineError) {};
        e->finished = e->failed = e->left = e->dnload_sent = false;
        e->n_plan = 0;
        e->stage = STAGE_START;
        e->n_ops = e->op_index = 0;
        e->op_started = false;
        e->diagnosing = false;
        e->step_ready = false;
        e->have_last = false;
        e->bytes_done = e->bytes_total = 0;
        e->stats = (DfuEngineStats) {};
        e->phase = DFU_PHASE_IDLE;
}

int dfu_engine_start_update(DfuEngine *e, const DfuImage *image, const DfuUpdateOptions *opts) {
        int r;

        if (!e || !image)
                return -EINVAL;
        if (running(e))
                return -EBUSY;
        if (e->info.runtime || image->n_segments == 0)
                return -EINVAL;
        if (opts && ((int) opts->poll_policy < 0 || opts->poll_policy >= _DFU_POLL_MAX))
                return -EINVAL;

        reset_operation(e, OPERATION_UPDATE, opts);
        e->image = image;

        if (e->dfuse) {
                r = build_plan(e);
                if (r < 0) {
                        e->operation = OPERATION_NONE;
                        return r;
                }
                e->leave_address =
                        e->opts.has_leave_address ? e->opts.leave_address : default_leave_address(e);
                log_line(e, "update: %" PRIu64 " bytes in %zu sectors, first sector 0x%08" PRIx32
                         " written last; poll policy %s", e->bytes_total, e->n_plan,
                         e->plan[commit_index(e)].address, dfu_poll_policy_to_string(e->policy));
                return 0;
        }

        /* Plain DFU 1.1: the bytes from the first to the last segment, gaps filled with 0xFF. */
        {
                const DfuSegment *a = &image->segments[0], *z = &image->segments[image->n_segments - 1];
                uint64_t len = (uint64_t) z->address + z->size - a->address;

                if (len > 0xFFFFull * e->xfer) {
                        e->operation = OPERATION_NONE;
                        return -EFBIG;
                }
                e->bytes_total = len;
                r = add_set_alt(e, 0, DFU_PHASE_ENTERING);
                if (r >= 0)
                        r = add_simple(e, OP_ENTER, DFU_PHASE_ENTERING);
                if (r >= 0)
                        r = add_op(e, &(Op) { .kind = OP_DFU_DOWNLOAD, .phase = DFU_PHASE_WRITING,
                                              .address = a->address, .length = len });
                if (r < 0) {
                        e->operation = OPERATION_NONE;
                        return r;
                }
                e->stage = STAGE_FINISH;
                log_line(e, "plain DFU download: %" PRIu64 " bytes in blocks of %u", len, e->xfer);
        }
        return 0;
}

int dfu_engine_start_upload(DfuEngine *e, uint8_t alt, uint32_t address, uint8_t *buf, size_t size,
                            const DfuUpdateOptions *opts) {
        int r;

        if (!e || !buf || size == 0 || size > UINT32_MAX)
                return -EINVAL;
        if (running(e))
                return -EBUSY;
        if (e->info.runtime || alt >= MAX(e->info.n_alts, (size_t) 1))
                return -EINVAL;
        if (!(e->info.functional.attributes & DFU_ATTR_CAN_UPLOAD))
                return -EOPNOTSUPP;

        reset_operation(e, OPERATION_UPLOAD, opts);
        e->user_buf = buf;
        e->upload_address = address;
        e->bytes_total = size;
        r = add_set_alt(e, alt, DFU_PHASE_ENTERING);
        if (r >= 0)
                r = add_simple(e, OP_ENTER, DFU_PHASE_ENTERING);
        if (r >= 0 && e->dfuse) {
                uint64_t done = 0;

                /* Block numbers are 16 bit: one SET_ADDRESS per 128 MiB at 2 KiB transfers. */
                while (r >= 0 && done < size) {
                        uint64_t len = MIN((uint64_t) size - done, MAX_RUN_BYTES(e->xfer));

                        r = add_read(e, alt, (uint32_t) (address + done), len, 0, 0, SINK_USER,
                                     DFU_PHASE_READING);
                        done += len;
                }
        } else if (r >= 0)
                r = add_op(e, &(Op) { .kind = OP_DFU_UPLOAD, .phase = DFU_PHASE_READING, .length = size });
        if (r < 0) {
                e->operation = OPERATION_NONE;
                return r;
        }
        e->stage = STAGE_FINISH;
        return 0;
}

int dfu_engine_start_detach(DfuEngine *e, uint16_t timeout_ms) {
        int r;

        if (!e)
                return -EINVAL;
        if (running(e))
                return -EBUSY;
        reset_operation(e, OPERATION_DETACH, NULL);
        e->detach_timeout = timeout_ms;
        r = add_simple(e, OP_DETACH, DFU_PHASE_DETACHING);
        if (r < 0) {
                e->operation = OPERATION_NONE;
                return r;
        }
        e->stage = STAGE_FINISH;
        return 0;
}

int dfu_engine_start_leave(DfuEngine *e, uint32_t address, const DfuUpdateOptions *opts) {
        int r;

        if (!e)
                return -EINVAL;
        if (running(e))
                return -EBUSY;
        if (e->info.runtime || !e->dfuse)
                return -EOPNOTSUPP;
        reset_operation(e, OPERATION_LEAVE, opts);
        e->leave_address = address;
        r = add_simple(e, OP_ENTER, DFU_PHASE_ENTERING);
        if (r >= 0)
                r = add_command(e, DFUSE_CMD_SET_ADDRESS, true, address, SIZE_MAX, DFU_PHASE_LEAVING);
        if (r >= 0)
                r = add_simple(e, OP_LEAVE, DFU_PHASE_LEAVING);
        if (r < 0) {
                e->operation = OPERATION_NONE;
                return r;
        }
        e->stage = STAGE_FINISH;
        return 0;
}

int dfu_engine_next(DfuEngine *e, DfuStep *ret) {
        if (!e || !ret)
                return -EINVAL;
        if (e->operation == OPERATION_NONE)
                return -ENOENT;
        if (!e->finished && !e->step_ready)
                advance(e, false);
        if (e->finished) {
                *ret = (DfuStep) { .kind = e->failed ? DFU_STEP_FAILED : DFU_STEP_DONE };
                return 0;
        }
        *ret = e->step;
        return 0;
}

static void step_done(DfuEngine *e, DfuStepKind kind, int r, size_t actual) {
        if (!e || e->finished || !e->step_ready || e->step.kind != kind)
                return;
        e->step_ready = false;
        e->result_r = r;
        e->result_actual = MIN(actual, (size_t) e->step.length);
        advance(e, true);
}

void dfu_engine_control_done(DfuEngine *e, int r, size_t actual) {
        step_done(e, DFU_STEP_CONTROL, r, actual);
}

void dfu_engine_set_alt_done(DfuEngine *e, int r) {
        step_done(e, DFU_STEP_SET_ALT, r, 0);
}

void dfu_engine_wait_done(DfuEngine *e) {
        step_done(e, DFU_STEP_WAIT, 0, 0);
}

void dfu_engine_device_gone(DfuEngine *e) {
        const Op *op;

        if (!e || e->finished || e->operation == OPERATION_NONE)
                return;
        op = current_op(e);
        /* Expected once leave/detach sent the request that makes the device go. */
        if (op && IN_SET(op->kind, OP_LEAVE, OP_DETACH, OP_DFU_DOWNLOAD) && e->dnload_sent) {
                e->left = true;
                log_line(e, "the device left the bus: done");
                finish(e);
                return;
        }
        fail(e, -ENODEV,
             e->step_ready && e->step.kind == DFU_STEP_CONTROL ? e->step.request : _DFU_REQUEST_INVALID,
             "the device disappeared");
}

void dfu_engine_cancel(DfuEngine *e) {
        if (!e || e->finished || e->operation == OPERATION_NONE)
                return;
        fail(e, -ECANCELED, _DFU_REQUEST_INVALID, "cancelled");
}

DfuPhase dfu_engine_get_phase(const DfuEngine *e) {
        return e->phase;
}

const DfuEngineError *dfu_engine_get_error(const DfuEngine *e) {
        return e->failed ? &e->error : NULL;
}

void dfu_engine_get_progress(const DfuEngine *e, uint64_t *ret_done, uint64_t *ret_total) {
        if (ret_done)
                *ret_done = e->bytes_done;
        if (ret_total)
                *ret_total = e->bytes_total;
}

const DfuPlanSector *dfu_engine_get_plan(const DfuEngine *e, size_t *ret_n) {
        if (ret_n)
                *ret_n = e->n_plan;
        return e->plan;
}

bool dfu_engine_device_left(const DfuEngine *e) {
        return e->left;
}

void dfu_engine_get_stats(const DfuEngine *e, DfuEngineStats *ret) {
        *ret = e->stats;
}
