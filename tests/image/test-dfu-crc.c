/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CRC-32: zlib check value, incremental use, and the DFU suffix form (dfu-protocol.md §3.1). */

#undef NDEBUG
#include <assert.h>
#include <string.h>

#include "dfu-image.h"

static void test_check_value(void) {
        const uint8_t s[] = "123456789";

        assert(dfu_crc32(s, 9) == 0xCBF43926u);
        assert(dfu_crc32(s, 0) == 0);
        /* incremental: the register carries over, the final xor is applied once */
        uint32_t crc = dfu_crc32_update(dfu_crc32_update(0xFFFFFFFFu, s, 4), s + 4, 5);

        assert((crc ^ 0xFFFFFFFFu) == 0xCBF43926u);
}

static void test_dfu_suffix_example(void) {
        /* "hello world" + suffix bcdDevice 0x0200, PID df11, VID 0483, bcdDFU 0100: dwCRC 0x25A28CB7. */
        const uint8_t f[] = { 'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', 0x00, 0x02, 0x11, 0xdf,
                              0x83, 0x04, 0x00, 0x01, 'U', 'F', 'D', 16 };

        assert(dfu_crc32_update(0xFFFFFFFFu, f, sizeof f) == 0x25A28CB7u);
        assert((dfu_crc32(f, sizeof f) ^ 0xFFFFFFFFu) == 0x25A28CB7u);
}

int main(void) {
        test_check_value();
        test_dfu_suffix_example();
        return 0;
}
