/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A tiny but real Cortex-M4 application used as test firmware: vector table, a reset handler that sets
 * up .data/.bss like any C runtime, and a main loop. It carries the vstm32 application header at image
 * offset 0x400 (tests/emulator/stm32-model.h); make-firmware.sh fills in its length and CRC after
 * linking. The .cm4.* sections form the second core's image in the dual-core (STM32H7 style) link and
 * are discarded otherwise. */

#include <stdint.h>

#ifndef FW_VERSION
#define FW_VERSION 1
#endif

typedef struct Vstm32Header {
        uint32_t magic;
        uint32_t version;
        uint32_t length;
        uint32_t crc;
} Vstm32Header;

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;

void Reset_Handler(void);
void Default_Handler(void);
void CM4_Reset_Handler(void);
int main(void);

__attribute__((section(".vs32_header"), used)) const Vstm32Header vs32_header = {
        .magic = 0x32335356u, /* "VS32" */
        .version = FW_VERSION,
        .length = 0,          /* patched */
        .crc = 0,             /* patched */
};

/* Initialised data lives in RAM but is stored in flash (ELF p_paddr != p_vaddr). */
volatile uint32_t fw_version = FW_VERSION;
volatile uint32_t fw_ticks;

__attribute__((section(".isr_vector"), used)) void (*const vector_table[16])(void) = {
        (void (*)(void)) &_estack,
        Reset_Handler,
        Default_Handler, /* NMI */
        Default_Handler, /* HardFault */
        Default_Handler, /* MemManage */
        Default_Handler, /* BusFault */
        Default_Handler, /* UsageFault */
        0, 0, 0, 0,
        Default_Handler, /* SVCall */
        Default_Handler, /* DebugMon */
        0,
        Default_Handler, /* PendSV */
        Default_Handler, /* SysTick */
};

void Default_Handler(void) {
        for (;;)
                __asm__ volatile("wfi");
}

void Reset_Handler(void) {
        uint32_t *src = &_sidata, *dst = &_sdata;

        while (dst < &_edata)
                *dst++ = *src++;
        for (dst = &_sbss; dst < &_ebss;)
                *dst++ = 0;
        (void) main();
        Default_Handler();
}

int main(void) {
        for (;;) {
                fw_ticks = fw_ticks + fw_version;
                __asm__ volatile("nop");
        }
}

/* Second core (dual-core link only): its own vector table at the start of bank 2. */
__attribute__((section(".cm4.text"))) void CM4_Reset_Handler(void) {
        for (;;)
                __asm__ volatile("wfe");
}

__attribute__((section(".cm4.vectors"), used)) void (*const cm4_vector_table[2])(void) = {
        (void (*)(void)) 0x10048000u, /* D2 SRAM top */
        CM4_Reset_Handler,
};
