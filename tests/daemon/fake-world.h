/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A JobHost for job-exec tests: boards simulated by the STM32 model (tests/emulator) on a virtual
 * clock. USB transfers cost bus time and whatever the model holds them for; a disconnect is a
 * udev remove, a re-enumeration a udev add on the same port, as on the VM bench. */

#include "conf.h"
#include "device.h"
#include "job-exec.h"
#include "stm32-model.h"

#define WORLD_MAX_EVENTS 64
#define WORLD_MAX_STATES 64

typedef struct World World;

typedef struct Board {
        World *world;
        const Stm32Profile *rom;
        const Stm32Profile *current; /* app or rom while present */
        uint8_t *memory;
        size_t memory_size;
        Stm32Model *model;
        Device *device;
        bool present;
        unsigned generation;           /* bumped by close: completions of a closed transport are dropped */
        bool ignore_detach;            /* the application acknowledges DETACH and does nothing */
        bool stay_away;                /* after the next disconnect, do not come back */
        bool boot_as_app_with_version; /* the application reports a forced version */
        uint16_t forced_version;
        const char *rom_faults[4]; /* for the next bootloader model only */
        unsigned plugs, unplugs;
} Board;

typedef struct WorldEvent {
        uint64_t at;
        int kind;
        Board *board;
        unsigned generation;
        TransportDoneFunc done;
        void *userdata;
        int r;
        size_t actual;
} WorldEvent;

struct World {
        uint64_t now;
        Config *config;
        JobHost host;
        Board *board;
        Job *job;
        JobExec *exec;
        uint64_t timer;
        WorldEvent events[WORLD_MAX_EVENTS];
        size_t n_events;
        uint8_t *image;
        size_t image_size;
        JobState states[WORLD_MAX_STATES];
        size_t n_states;
        unsigned sector_changes, progress_changes;
        bool finished;
        bool verbose;
};

void world_init(World *w, const char *rom_profile);
void world_free(World *w);
/* Plug the board in as its application (app) or its bootloader (rom), now. */
void world_plug(World *w, bool app);
void world_unplug(World *w);
/* Creates the job (and its executor) for an image. */
void world_new_job(World *w, const uint8_t *image, size_t size, uint16_t version);
/* Runs until the job finishes, it waits with nothing scheduled, or until `until` (virtual µs).
 * Returns true if the job finished. */
bool world_run(World *w, uint64_t until);
bool world_saw_state(const World *w, JobState s);
/* Firmware with a vector table and a Vstm32Header (what the boot model accepts). */
uint8_t *world_make_firmware(uint32_t base, size_t size, uint16_t version, uint32_t seed);
/* Does the flash hold these bytes at (alt 0, address)? */
bool world_flash_equals(const World *w, uint32_t address, const uint8_t *data, size_t size);
