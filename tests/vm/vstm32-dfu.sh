#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot 1: the ROM bootloaders as independent clients see them. lsusb -v shows the f4-rom
# descriptors, dfu-util -l its four alts, and dfu-util downloads + uploads a random image byte-exact
# on f4-rom, f072-rom, l4-rom and h7-rom (leave, then upload after the re-enumeration). Figures:
# control transfers per second (libusb loop), 1 MiB upload rate, download time per profile.
set -eu
source "$(dirname "$0")/lib.sh"

udev_watch_start
IMG=$WORK/img256.bin
random_image "$IMG" 262144

# ---- f4-rom: descriptors ----
vstm32_start f4 --profile f4-rom --flash "$WORK/f4.bin" --serial 315A28A0B956 --time-scale "$TIME_SCALE" \
        --stats "$WORK/f4.json"
check "f4-rom enumerates as 0483:df11" wait_usb 0483:df11
lsusb -v -d 0483:df11 > "$WORK/lsusb-f4.txt" 2>&1 || true
L=$WORK/lsusb-f4.txt
has() { grep -Eq "$1" "$L"; }
count() { [ "$(grep -Ec "$1" "$L")" = "$2" ]; }
check "lsusb: bcdDevice 22.00" has '^ +bcdDevice +22\.00$'
check "lsusb: bMaxPacketSize0 64" has '^ +bMaxPacketSize0 +64$'
check "lsusb: device class 0 (per interface)" has '^ +bDeviceClass +0 '
check "lsusb: iManufacturer STMicroelectronics" has '^ +iManufacturer +1 STMicroelectronics$'
check "lsusb: iProduct 'STM32  BOOTLOADER'" has '^ +iProduct +2 STM32  BOOTLOADER$'
check "lsusb: iSerial 315A28A0B956" has '^ +iSerial +3 315A28A0B956$'
check "lsusb: one configuration, one interface" has '^ +bNumInterfaces +1$'
check "lsusb: four alt settings of interface 0, class FE/01/02" \
        count '^ +bInterfaceProtocol +2 ' 4
check "lsusb: DFU functional descriptor after each alt: attributes 0x0B" count '^ +bmAttributes +11$' 4
check "lsusb: wDetachTimeout 255 ms" count '^ +wDetachTimeout +255 milliseconds$' 4
check "lsusb: wTransferSize 2048" count '^ +wTransferSize +2048 bytes$' 4
check "lsusb: bcdDFUVersion 1.1a" count '^ +bcdDFUVersion +1\.1a$' 4
for alt in "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg" "@Option Bytes  /0x1FFFC000/01*016 g" \
           "@OTP Memory /0x1FFF7800/01*512 g,01*016 g" "@Device Feature/0xFFFF0000/01*004 g"; do
        check "lsusb: alt string '$alt'" grep -Fq " $alt" "$L"
done

dfu-util -l > "$WORK/dfu-l.txt" 2>&1 || true
check "dfu-util -l: four alts of 0483:df11 ver=2200" \
        test "$(grep -c 'Found DFU: \[0483:df11\] ver=2200, .*serial="315A28A0B956"' "$WORK/dfu-l.txt")" = 4
for i in 0 1 2 3; do
        check "dfu-util -l: alt=$i" grep -q "alt=$i, name=\"@" "$WORK/dfu-l.txt"
done

check "GET_DESCRIPTOR(0x21) on interface 0: 09 21 0b ff 00 00 08 1a 01" \
        test "$("$CTLBENCH" 0483:df11 desc 2>&1)" = "09 21 0b ff 00 00 08 1a 01"

# ---- figures: control transfers per second, upload rate ----
"$CTLBENCH" 0483:df11 2000 > "$WORK/ctlbench.txt" 2>&1 || true
check "ctlbench: 2000 GETSTATE transfers" grep -q 'control transfers in' "$WORK/ctlbench.txt"
figure "$(cat "$WORK/ctlbench.txt")"

# dl PROFILE VIDPID IMAGE ADDRESS_SPEC: time a dfu-util download.
dl() {
        local t0 rc=0
        t0=$EPOCHREALTIME
        dfu-util -d "$2" -a 0 -s "$4" -D "$3" > "$WORK/dl-$1.log" 2>&1 || rc=$?
        DL_TIME=$(elapsed "$t0")
        return $rc
}

# ---- download/upload per profile ----
# f4-rom: 256 KiB into 4x16K + 64K + 128K sectors.
check "f4-rom: dfu-util download 256 KiB" dl f4 0483:df11 "$IMG" 0x08000000
figure "f4-rom dfu-util download 256 KiB: $DL_TIME s (time scale $TIME_SCALE)"
check "f4-rom: upload 256 KiB byte-exact" \
        bash -c "dfu-util -d 0483:df11 -a 0 -s 0x08000000:262144 -U '$WORK/up-f4.bin' >/dev/null 2>&1 && cmp '$IMG' '$WORK/up-f4.bin'"
check "f4-rom: flash file holds the image" flash_matches "$WORK/f4.bin" "$IMG" 0
t0=$EPOCHREALTIME
check "f4-rom: upload 1 MiB" quiet dfu-util -d 0483:df11 -a 0 -s 0x08000000:1048576 -U "$WORK/up-1m.bin"
t=$(elapsed "$t0")
figure "dfu-util upload 1 MiB: $t s ($(awk -v t="$t" 'BEGIN { printf "%.2f", 1 / t }') MiB/s, 2 KiB UPLOADs)"
vstm32_stop
check "f4-rom: stats JSON written at exit" python3 -c "
import json, sys
s = json.load(open('$WORK/f4.json'))
assert s['bytes_written'] >= 262144 and s['bytes_read'] >= 262144 + 1048576 and s['busy_us'] > 0, s
print('figure: f4-rom stats:', json.dumps(s))"
check "f4-rom: unplugged after SIGTERM" wait_usb_gone 0483:df11

# f072-rom: 64 x 2 KiB pages = 128 KiB of flash, so a 128 KiB image.
IMG128=$WORK/img128.bin
head -c 131072 "$IMG" > "$IMG128"
vstm32_start f072 --profile f072-rom --flash "$WORK/f072.bin" --time-scale "$TIME_SCALE"
check "f072-rom enumerates" wait_usb 0483:df11
check "f072-rom: dfu-util download 128 KiB (whole flash)" dl f072 0483:df11 "$IMG128" 0x08000000
figure "f072-rom dfu-util download 128 KiB: $DL_TIME s (time scale $TIME_SCALE)"
check "f072-rom: upload byte-exact" \
        bash -c "dfu-util -d 0483:df11 -a 0 -s 0x08000000:131072 -U '$WORK/up-f072.bin' >/dev/null 2>&1 && cmp '$IMG128' '$WORK/up-f072.bin'"
vstm32_stop

# l4-rom: 1 KiB transfers, 2 KiB pages, stalls a GETSTATUS sent before its poll timeout.
vstm32_start l4 --profile l4-rom --flash "$WORK/l4.bin" --time-scale "$TIME_SCALE" --stats "$WORK/l4.json"
check "l4-rom enumerates" wait_usb 0483:df11
check "l4-rom: dfu-util -l shows transfer size 1024" \
        bash -c "lsusb -v -d 0483:df11 2>/dev/null | grep -Eq '^ +wTransferSize +1024 bytes$'"
check "l4-rom: dfu-util download 256 KiB" dl l4 0483:df11 "$IMG" 0x08000000
figure "l4-rom dfu-util download 256 KiB: $DL_TIME s (time scale $TIME_SCALE)"
check "l4-rom: upload byte-exact" \
        bash -c "dfu-util -d 0483:df11 -a 0 -s 0x08000000:262144 -U '$WORK/up-l4.bin' >/dev/null 2>&1 && cmp '$IMG' '$WORK/up-l4.bin'"
vstm32_stop
python3 -c "import json; s = json.load(open('$WORK/l4.json')); print('figure: l4-rom early-poll stalls', s['early_poll_stalls'])" || true

# h7-rom: download with :leave; a random image is no application, so the ROM comes back.
vstm32_start h7 --profile h7-rom --flash "$WORK/h7.bin" --time-scale "$TIME_SCALE"
check "h7-rom enumerates" wait_usb 0483:df11
udev_mark
check "h7-rom: dfu-util download 256 KiB with leave" dl h7 0483:df11 "$IMG" 0x08000000:leave
figure "h7-rom dfu-util download 256 KiB: $DL_TIME s (time scale $TIME_SCALE)"
check "h7-rom: leave = USB disconnect, re-enumerates as the ROM (no valid app)" \
        udev_saw_reenumeration 0483 df11
wait_usb 0483:df11 || true
check "h7-rom: upload after re-enumeration byte-exact" \
        bash -c "dfu-util -d 0483:df11 -a 0 -s 0x08000000:262144 -U '$WORK/up-h7.bin' >/dev/null 2>&1 && cmp '$IMG' '$WORK/up-h7.bin'"
vstm32_stop

# ---- two devices at once: an automatic port and --port 5 (root hub port 6: busid 1-6) ----
vstm32_start two-a --profile f4-rom --flash "$WORK/f4.bin" --serial AAAAAAAAAAAA
SECOND_LOG=$WORK/two-b.log
"$VSTM32" --profile l4-rom --flash "$WORK/l4.bin" --serial BBBBBBBBBBBB --port 5 > "$SECOND_LOG" 2>&1 &
SECOND=$!
n=100
while [ $n -gt 0 ] && [ "$(dfu-util -l 2>/dev/null | grep -c 'alt=0, ')" -lt 2 ]; do sleep 0.1; n=$((n - 1)); done
dfu-util -l > "$WORK/dfu-l-two.txt" 2>&1 || true
check "two devices: dfu-util -l lists both serials" \
        bash -c "grep -q 'serial=\"AAAAAAAAAAAA\"' '$WORK/dfu-l-two.txt' && grep -q 'serial=\"BBBBBBBBBBBB\"' '$WORK/dfu-l-two.txt'"
check "two devices: --port 5 is busid 1-6" test "$(cat /sys/bus/usb/devices/1-6/serial 2>/dev/null)" = BBBBBBBBBBBB
kill -TERM "$SECOND"
wait "$SECOND" || true
vstm32_stop
