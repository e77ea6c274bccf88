/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A non-blocking DFU 1.1 / DfuSe engine. It never sleeps and never touches USB: the caller asks it
 * for the next step (a control transfer to perform, an alt setting to select, or a time to wait),
 * performs it however it likes (libusb async on sd-event in dfud, an in-process device model in the
 * tests) and reports the result back. One engine drives one device; many engines share one loop.
 *
 *   dfu_engine_new(&info, &e);
 *   dfu_engine_start_update(e, image, &opts);
 *   for (;;) {
 *           dfu_engine_next(e, &step);
 *           switch (step.kind) {
 *           case DFU_STEP_CONTROL:  ...perform...; dfu_engine_control_done(e, r, actual); break;
 *           case DFU_STEP_SET_ALT:  ...;            dfu_engine_set_alt_done(e, r); break;
 *           case DFU_STEP_WAIT:     ...after step.wait_usec...; dfu_engine_wait_done(e); break;
 *           case DFU_STEP_DONE / DFU_STEP_FAILED: finished (dfu_engine_get_error() on failure)
 *           }
 *   }
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfu-image.h"
#include "dfu.h"
#include "dfuse-layout.h"

#define DFU_MAX_ALTS 16

typedef struct DfuEngine DfuEngine;

/* What the engine knows about the device; the caller reads it from the descriptors. */
typedef struct DfuDeviceInfo {
        uint8_t interface_number;
        DfuFunctionalDescriptor functional;
        bool runtime;                        /* interface protocol 1: only DETACH makes sense */
        size_t n_alts;
        const DfuseLayout *layouts[DFU_MAX_ALTS]; /* DfuSe: parsed alt strings; NULL if none */
} DfuDeviceInfo;

typedef enum DfuPollPolicy {
        DFU_POLL_HONOUR,     /* wait bwPollTimeout before every GETSTATUS (what dfu-util/fwupd do) */
        DFU_POLL_EARLY,      /* poll at once and let the device hold the transfer while busy; on a
                              * stall of an early poll fall back to HONOUR for the rest of the run */
        _DFU_POLL_MAX,
        _DFU_POLL_INVALID = -22,
} DfuPollPolicy;

const char *dfu_poll_policy_to_string(DfuPollPolicy p); /* "honour", "early" */
DfuPollPolicy dfu_poll_policy_from_string(const char *s);

typedef enum DfuPhase {
        DFU_PHASE_IDLE,
        DFU_PHASE_ENTERING,  /* bringing the device to dfuIDLE */
        DFU_PHASE_DETACHING,
        DFU_PHASE_READING,   /* reading back before writing (resume, incremental), or upload */
        DFU_PHASE_ERASING,
        DFU_PHASE_WRITING,
        DFU_PHASE_VERIFYING,
        DFU_PHASE_LEAVING,
        DFU_PHASE_DONE,
        DFU_PHASE_FAILED,
        _DFU_PHASE_MAX,
        _DFU_PHASE_INVALID = -22,
} DfuPhase;

const char *dfu_phase_to_string(DfuPhase p); /* "entering", "erasing", ... */
DfuPhase dfu_phase_from_string(const char *s);

typedef enum DfuStepKind {
        DFU_STEP_CONTROL,
        DFU_STEP_SET_ALT,
        DFU_STEP_WAIT,
        DFU_STEP_DONE,
        DFU_STEP_FAILED,
} DfuStepKind;

typedef struct DfuStep {
        DfuStepKind kind;
        /* DFU_STEP_CONTROL: a class request on the DFU interface. For OUT requests `data` holds
         * `length` bytes to send; for IN requests the caller fills `data` (capacity `length`) and
         * reports how many bytes arrived. The buffer belongs to the engine and stays valid until
         * the matching *_done() call. */
        uint8_t request_type;
        uint8_t request;
        uint16_t value;
        uint16_t index;
        uint16_t length;
        uint8_t *data;
        unsigned timeout_ms; /* USB timeout for this transfer (long for a GETSTATUS that may be held) */
        /* DFU_STEP_SET_ALT */
        uint8_t alt;
        /* DFU_STEP_WAIT */
        uint64_t wait_usec;
} DfuStep;

/* Every update is planned as a list of sectors in write order. */
typedef enum DfuSectorState {
        DFU_SECTOR_PENDING,
        DFU_SECTOR_ERASED,
        DFU_SECTOR_WRITTEN,
        DFU_SECTOR_VERIFIED,
        DFU_SECTOR_SKIPPED, /* read back and found identical: nothing written */
} DfuSectorState;

typedef struct DfuPlanSector {
        uint8_t alt;
        uint32_t address;
        uint32_t size;
        uint32_t data_size; /* bytes of the image that fall in this sector */
        uint32_t crc;       /* dfu_crc32 of the sector's intended content (0xFF fill) */
        DfuSectorState state;
} DfuPlanSector;

typedef enum DfuEventKind {
        DFU_EVENT_PHASE,           /* .phase changed */
        DFU_EVENT_PROGRESS,        /* .bytes_done / .bytes_total changed (at most once per transfer) */
        DFU_EVENT_SECTOR_VERIFIED, /* .sector reached VERIFIED or SKIPPED: the caller journals it */
        DFU_EVENT_LOG,             /* .message: one line of the DFU exchange in words */
} DfuEventKind;

typedef struct DfuEvent {
        DfuEventKind kind;
        DfuPhase phase;
        uint64_t bytes_done, bytes_total;
        const DfuPlanSector *sector;
        const char *message;
} DfuEvent;

/* Called synchronously from the engine's functions; it may call the getters but must not start,
 * step or free the engine. Pointers in the event are valid during the call only. */
typedef void (*DfuEventFunc)(DfuEngine *e, const DfuEvent *ev, void *userdata);

typedef struct DfuUpdateOptions {
        DfuPollPolicy poll_policy;
        unsigned busy_timeout_ms;  /* USB timeout for transfers the device may hold while busy;
                                    * long enough for the slowest sector erase (default 10000) */
        bool verify;               /* read back and compare every written sector (default true) */
        bool incremental;          /* read back first, skip sectors that are already identical */
        bool leave;                /* finish with the DfuSe leave / DFU manifestation */
        bool mass_erase;           /* explicit request only */
        bool resume;               /* continue an interrupted update: read back and compare every
                                    * untrusted sector before erasing it (implied by n_verified > 0) */
        bool has_leave_address;
        uint32_t leave_address;    /* default: start of the image's first segment */
        /* Resume: sectors already verified by an earlier, interrupted run (alt, address). They are
         * trusted; every other sector is read back and compared before it is erased, so the one
         * that was in flight is re-checked instead of rewritten blindly. */
        size_t n_verified;
        const DfuPlanSector *verified;
} DfuUpdateOptions;

void dfu_update_options_init(DfuUpdateOptions *o); /* sensible defaults */

/* Why the engine failed, in words a user understands, e.g.
 * "read protection is active (errVENDOR) while erasing 0x08020000". */
typedef struct DfuEngineError {
        int error;            /* negative errno: -EPROTO device reported an error status, -ETIMEDOUT,
                               * -ENODEV device gone, -EPIPE unexpected stall, -EIO, -EINVAL ... */
        DfuState state;       /* last state the device reported */
        DfuStatus status;     /* last status the device reported */
        DfuRequest request;   /* the request that failed */
        DfuPhase phase;
        bool has_address;
        uint32_t address;
        char message[256];
} DfuEngineError;

/* info is copied; the layouts it points to must outlive the engine. */
int dfu_engine_new(const DfuDeviceInfo *info, DfuEngine **ret);
DfuEngine *dfu_engine_free(DfuEngine *e);
void dfu_engine_set_event_func(DfuEngine *e, DfuEventFunc f, void *userdata);
/* The engine reads a clock only to put durations into its LOG lines (it never waits on it).
 * Default CLOCK_MONOTONIC; tests pass their virtual clock. Microseconds. */
typedef uint64_t (*DfuClockFunc)(void *userdata);
void dfu_engine_set_clock(DfuEngine *e, DfuClockFunc f, void *userdata);

/* Operations; one at a time. -EBUSY if one is running, -EINVAL for a bad argument.
 * update: enter, [incremental/resume read-back], erase exactly the sectors the image touches (the
 *   sector holding the image start is erased first and written last, after every other sector
 *   verified), write (one SET_ADDRESS per contiguous run, consecutive block numbers), verify,
 *   [leave]. The image must have been placed (dfu_image_place) for DfuSe devices; plain DFU 1.1
 *   devices get the image's bytes as one download with manifestation.
 * upload: read `size` bytes from alt/address into buf (kept by the caller until done).
 * detach: DFU_DETACH on a runtime interface (plus nothing else: the caller resets if needed).
 * leave: the DfuSe leave alone (SET_ADDRESS, zero-length DNLOAD, GETSTATUS through dfuMANIFEST until
 *   the device drops off the bus).
 * The image (and upload buffer) must stay valid until the operation has finished. start_update
 * returns -EINVAL for a runtime interface or an image that was not placed on this device's layouts,
 * -ERANGE if a segment lies outside them; start_leave returns -EOPNOTSUPP on a non-DfuSe device. */
int dfu_engine_start_update(DfuEngine *e, const DfuImage *image, const DfuUpdateOptions *opts);
int dfu_engine_start_upload(DfuEngine *e, uint8_t alt, uint32_t address, uint8_t *buf, size_t size,
                            const DfuUpdateOptions *opts);
int dfu_engine_start_detach(DfuEngine *e, uint16_t timeout_ms);
int dfu_engine_start_leave(DfuEngine *e, uint32_t address, const DfuUpdateOptions *opts);

/* The next thing to do. Calling it again before the matching *_done() returns the same step.
 * -ENOENT before any operation was started. */
int dfu_engine_next(DfuEngine *e, DfuStep *ret);

/* r: 0 success, -EPIPE stall, -ETIMEDOUT, -ENODEV device gone, other negative errno. */
void dfu_engine_control_done(DfuEngine *e, int r, size_t actual);
void dfu_engine_set_alt_done(DfuEngine *e, int r);
void dfu_engine_wait_done(DfuEngine *e);
/* The device went away (unplug). Fails the operation with -ENODEV unless it was expected (leave). */
void dfu_engine_device_gone(DfuEngine *e);
/* Abort the operation (job cancelled): the next step becomes FAILED with -ECANCELED. */
void dfu_engine_cancel(DfuEngine *e);

DfuPhase dfu_engine_get_phase(const DfuEngine *e);
const DfuEngineError *dfu_engine_get_error(const DfuEngine *e);
void dfu_engine_get_progress(const DfuEngine *e, uint64_t *ret_done, uint64_t *ret_total);
/* The plan of the current/last update, in write order. */
const DfuPlanSector *dfu_engine_get_plan(const DfuEngine *e, size_t *ret_n);
/* Did the device drop off the bus as expected at the end (leave)? */
bool dfu_engine_device_left(const DfuEngine *e);
/* Counters for diagnostics and benchmarks. */
typedef struct DfuEngineStats {
        uint64_t control_transfers;
        uint64_t bytes_downloaded;
        uint64_t bytes_uploaded;
        uint64_t set_address_requests;
        uint64_t getstatus_requests;
        uint64_t sectors_erased;
        uint64_t sectors_skipped;
        uint64_t waited_usec; /* total asked via DFU_STEP_WAIT */
        uint64_t poll_fallbacks; /* EARLY fell back to HONOUR after a stalled early poll */
        uint64_t stalled_polls;  /* GETSTATUS stalled while the device was busy */
} DfuEngineStats;
void dfu_engine_get_stats(const DfuEngine *e, DfuEngineStats *ret);
