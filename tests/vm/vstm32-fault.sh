#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot 3: injected faults as an independent client (dfu-util) sees them, and what the flash file
# holds afterwards. A disconnect mid-download is a real USB disconnect that makes dfu-util fail, and
# the flash file shows exactly what had been written; the device re-enumerates and a second download
# works (faults arm the first session only). Plus: power loss mid-write, errVERIFY, a stalled
# request, a hung device (dfu-util times out: CMD_UNLINK), and persistence across emulator restarts.
set -eu
source "$(dirname "$0")/lib.sh"

udev_watch_start
# 128 KiB: every fault below strikes within it, and downloads stay short.
SIZE=131072
IMG=$WORK/img.bin
random_image "$IMG" $SIZE

# prefix_then_erased FLASH IMAGE N: the flash holds IMAGE[0:N], then erased flash up to IMAGE's size.
prefix_then_erased() {
        local size
        size=$(stat -c %s "$2")
        cmp -s -n "$3" "$1" "$2" && is_erased "$1" "$3" $((size - $3))
}

# ---- disconnect when the write reaches 0x08010000: 64 KiB written ----
vstm32_start dis-at --profile f4-rom --flash "$WORK/f1.bin" --time-scale "$TIME_SCALE" \
        --fault disconnect-at=0x08010000 --stats "$WORK/f1.json"
check "disconnect-at: enumerates" wait_usb 0483:df11
udev_mark
check "disconnect-at 0x08010000: dfu-util download fails" \
        bash -c "! dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-dis-at.log' 2>&1"
check "disconnect-at: real USB disconnect + re-enumeration as the ROM (udev)" \
        udev_saw_reenumeration 0483 df11
check "disconnect-at: flash = first 64 KiB of the image, the rest erased" \
        prefix_then_erased "$WORK/f1.bin" "$IMG" 65536
wait_usb 0483:df11 || true
check "disconnect-at: the fault does not re-arm: second download works" \
        quiet dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D "$IMG"
check "disconnect-at: flash holds the whole image" flash_matches "$WORK/f1.bin" "$IMG" 0
vstm32_stop
check "disconnect-at: stats count 2 disconnects" python3 -c "
import json
s = json.load(open('$WORK/f1.json'))
assert s['disconnects'] == 2 and s['enumerations'] == 2, s"

# ---- flash file persists across an emulator restart ----
vstm32_start restart --profile f4-rom --flash "$WORK/f1.bin" --time-scale "$TIME_SCALE"
check "restart: enumerates again" wait_usb 0483:df11
check "restart: upload returns the image written before the restart" \
        bash -c "dfu-util -d 0483:df11 -a 0 -s 0x08000000:$SIZE -U '$WORK/up-restart.bin' >/dev/null 2>&1 &&
                 cmp '$IMG' '$WORK/up-restart.bin'"
vstm32_stop

# ---- disconnect after N control transfers: whatever was written is a clean prefix ----
vstm32_start dis-after --profile f4-rom --flash "$WORK/f2.bin" --time-scale "$TIME_SCALE" \
        --fault disconnect-after=200
check "disconnect-after: enumerates" wait_usb 0483:df11
udev_mark
check "disconnect-after=200: dfu-util download fails" \
        bash -c "! dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-dis-after.log' 2>&1"
check "disconnect-after: real USB disconnect + re-enumeration (udev)" udev_saw_reenumeration 0483 df11
N=$(cmp "$WORK/f2.bin" "$IMG" 2>/dev/null | sed -n 's/.* byte \([0-9]*\),.*/\1/p')
N=$(( ${N:-1} - 1 ))
# Writes are whole 2 KiB chunks: the prefix ends on a chunk boundary, as far as bytes can tell.
N=$(( N / 2048 * 2048 ))
figure "disconnect-after=200: $N bytes written before the disconnect"
check "disconnect-after: flash = a prefix of the image ($N bytes), the rest erased" \
        prefix_then_erased "$WORK/f2.bin" "$IMG" "$N"
check "disconnect-after: something was written, not everything" test "$N" -gt 0 -a "$N" -lt $SIZE
vstm32_stop

# ---- power loss during the write at 0x08008000: that chunk is half programmed ----
vstm32_start power --profile f4-rom --flash "$WORK/f3.bin" --time-scale "$TIME_SCALE" \
        --fault power-loss=0x08008000
check "power-loss: enumerates" wait_usb 0483:df11
check "power-loss 0x08008000: dfu-util download fails" \
        bash -c "! dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-power.log' 2>&1"
check "power-loss: flash = image up to 0x8000 + half a chunk, the rest erased" \
        prefix_then_erased "$WORK/f3.bin" "$IMG" $((0x8000 + 1024))
vstm32_stop
wait_usb_gone 0483:df11 || true

# ---- errVERIFY on the write at 0x08004000 ----
vstm32_start verify --profile f4-rom --flash "$WORK/f4.bin" --time-scale "$TIME_SCALE" \
        --fault err-verify=0x08004000
check "err-verify: enumerates" wait_usb 0483:df11
check "err-verify 0x08004000: dfu-util download fails" \
        bash -c "! dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-verify.log' 2>&1"
check "err-verify: dfu-util reports errVERIFY" grep -qi 'verification' "$WORK/dfu-verify.log"
check "err-verify: no disconnect, still enumerated" test -n "$(usb_dev 0483 df11)"
vstm32_stop
wait_usb_gone 0483:df11 || true

# ---- a stalled DNLOAD ----
vstm32_start stall --profile f4-rom --flash "$WORK/f5.bin" --time-scale "$TIME_SCALE" --fault stall=DNLOAD@3
check "stall: enumerates" wait_usb 0483:df11
check "stall=DNLOAD@3: dfu-util download fails" \
        bash -c "! dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-stall.log' 2>&1"
vstm32_stop
wait_usb_gone 0483:df11 || true

# ---- a hung device: dfu-util's 5 s timeout cancels the URB, vhci sends CMD_UNLINK ----
vstm32_start hang --profile f4-rom --flash "$WORK/f6.bin" --time-scale "$TIME_SCALE" \
        --fault hang-after=20 --stats "$WORK/f6.json"
check "hang: enumerates" wait_usb 0483:df11
t0=$EPOCHREALTIME
check "hang-after=20: dfu-util download fails (timeout)" \
        bash -c "! timeout 60 dfu-util -d 0483:df11 -a 0 -s 0x08000000 -D '$IMG' > '$WORK/dfu-hang.log' 2>&1"
figure "hang: dfu-util gave up after $(elapsed "$t0") s"
check "hang: vstm32 survived the unlink" vstm32_alive
check "hang: the hung device is still enumerated" test -n "$(usb_dev 0483 df11)"
vstm32_stop
check "hang: stats count the CMD_UNLINK" python3 -c "
import json
s = json.load(open('$WORK/f6.json'))
assert s['unlinks'] >= 1, s"
