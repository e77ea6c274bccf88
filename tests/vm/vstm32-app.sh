#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot 2: the application and its ways into the bootloader, one emulated device going round:
# blank flash -> ROM; dfu-util leave with a valid app -> app v1 (bcdDevice, ttyACM); 1200-baud touch
# -> ROM -> app v2; text command -> ROM -> app v3; dfu-util -e (DFU runtime DETACH) -> ROM. Every
# jump must be a real USB disconnect + re-enumeration that udev sees. Then persistence across an
# emulator restart, and --jump restricting the triggers.
set -eu
source "$(dirname "$0")/lib.sh"

udev_watch_start
FLASH=$WORK/app-flash.bin
SERIAL=0123456789AB
for v in 1 2 3; do
        make_app "$WORK/app$v.bin" "0x010$v" 32768
done
if [ -e "${VM_FIRMWARE_DIR:-/nonexistent}/vstm32-app-0101.bin" ]; then
        echo "# application images: tests/data/make-firmware.sh (arm-none-eabi, versions 0x0101-0x0103)"
else
        echo "# application images: made by lib.sh (no ARM toolchain at build time)"
fi

# tty_of_serial: the ttyACM of our device, through udev's by-id link.
tty_dev() {
        local l
        for l in /dev/serial/by-id/*"_${SERIAL}-if00"; do
                [ -e "$l" ] && readlink -f "$l" && return 0
        done
        return 1
}
wait_tty() {
        local n=100
        while [ $n -gt 0 ]; do
                TTY=$(tty_dev) && [ -c "$TTY" ] && return 0
                sleep 0.05
                n=$((n - 1))
        done
        return 1
}

# leave_into_app IMAGE VERSION: download with :leave from the ROM; the app must come back.
leave_into_app() {
        local img=$1 ver=$2
        udev_mark
        check "rom: dfu-util download $(basename "$img") with leave" \
                quiet dfu-util -d 0483:df11 -a 0 -s 0x08000000:leave -D "$img"
        check "leave: USB disconnect, re-enumerates as the app 0483:5740 (udev)" \
                udev_saw_reenumeration 0483 5740
        check "app: enumerated" wait_usb 0483:5740
        check "app: bcdDevice = firmware version $ver" test "$(usb_attr 0483:5740 bcdDevice)" = "$ver"
        check "app: /dev/ttyACM* appears" wait_tty
}

# ---- blank flash: --profile app comes up as the ROM ----
vstm32_start app --profile app --flash "$FLASH" --serial "$SERIAL" --time-scale "$TIME_SCALE" \
        --stats "$WORK/app.json" --verbose
check "blank flash: --profile app enumerates as the ROM 0483:df11" wait_usb 0483:df11
check "rom: same serial as the app" test "$(usb_attr 0483:df11 serial)" = "$SERIAL"
leave_into_app "$WORK/app1.bin" 0101

lsusb -v -d 0483:5740 > "$WORK/lsusb-app.txt" 2>&1 || true
L=$WORK/lsusb-app.txt
check "lsusb app: composite class EF/02/01" bash -c "grep -Eq '^ +bDeviceClass +239 ' '$L' && grep -Eq '^ +bDeviceProtocol +1 ' '$L'"
check "lsusb app: interface association descriptors" grep -q 'Interface Association:' "$L"
check "lsusb app: CDC ACM comm + data interfaces" \
        bash -c "grep -Eq '^ +bInterfaceClass +2 Communications' '$L' && grep -Eq '^ +bInterfaceClass +10 CDC Data' '$L'"
check "lsusb app: bulk endpoints 0x01 OUT / 0x81 IN" \
        bash -c "grep -Eq 'bEndpointAddress +0x01 +EP 1 OUT' '$L' && grep -Eq 'bEndpointAddress +0x81 +EP 1 IN' '$L'"
check "lsusb app: DFU runtime interface FE/01/01" \
        bash -c "grep -A3 -E 'bInterfaceClass +254' '$L' | grep -Eq 'bInterfaceProtocol +1 '"
bound_driver() { basename "$(readlink -f "$(usb_dev 0483 5740)/$(basename "$(usb_dev 0483 5740)"):1.$1/driver")"; }
check "app: cdc_acm bound to the comm interface" test "$(bound_driver 0)" = cdc_acm
dfu-util -l > "$WORK/dfu-l-app.txt" 2>&1 || true
check "dfu-util -l: runtime interface of 0483:5740 ver=0101" \
        grep -q 'Found Runtime: \[0483:5740\] ver=0101' "$WORK/dfu-l-app.txt"
check "app: GET_LINE_CODING/SET_LINE_CODING via stty 57600" \
        bash -c "stty -F '$TTY' 57600 && test \"\$(stty -F '$TTY' speed)\" = 57600"
check "app: write to the data interface (bulk OUT) is consumed" \
        timeout 5 bash -c "printf 'hello\n' > '$TTY'"

# ---- 1200-baud touch ----
udev_mark
t0=$EPOCHREALTIME
stty -F "$TTY" 1200 || true
check "1200 baud touch: USB disconnect, re-enumerates as 0483:df11 (udev)" udev_saw_reenumeration 0483 df11
figure "1200 baud touch to ROM seen by udev: $(elapsed "$t0") s"
check "rom after the touch: enumerated" wait_usb 0483:df11
leave_into_app "$WORK/app2.bin" 0102

# ---- text command on the data interface ----
# cdc-acm keeps the termios of the last open (1200 now): open at another speed, or closing is a touch.
udev_mark
stty -F "$TTY" 115200 raw -echo
t0=$EPOCHREALTIME
timeout 5 bash -c "printf 'DFU\n' > '$TTY'" || true
check "text command 'DFU\\n': USB disconnect, re-enumerates as 0483:df11 (udev)" \
        udev_saw_reenumeration 0483 df11
figure "text command to ROM seen by udev: $(elapsed "$t0") s"
check "rom after the command: enumerated" wait_usb 0483:df11
leave_into_app "$WORK/app3.bin" 0103

# ---- DFU runtime DETACH ----
udev_mark
t0=$EPOCHREALTIME
check "dfu-util -e: detach through the runtime interface" quiet dfu-util -d 0483:5740 -e
check "DFU_DETACH: USB disconnect, re-enumerates as 0483:df11 (udev)" udev_saw_reenumeration 0483 df11
figure "DFU_DETACH to ROM seen by udev: $(elapsed "$t0") s"
check "rom after detach: enumerated" wait_usb 0483:df11
check "rom after detach: the flash still holds app v3" flash_matches "$FLASH" "$WORK/app3.bin" 0

# ---- emulator restart: the flash file persists ----
vstm32_stop
check "SIGTERM: device unplugged" wait_usb_gone 0483:df11
check "stats: 7 enumerations (ROM, app, ROM, app, ROM, app, ROM), counters" python3 -c "
import json
s = json.load(open('$WORK/app.json'))
assert s['enumerations'] == 7 and s['bytes_written'] >= 3 * 32768, s
print('figure: app stats:', json.dumps(s))"
vstm32_start app2 --profile app --flash "$FLASH" --serial "$SERIAL" --time-scale "$TIME_SCALE" --jump 1200
check "restart with --profile app: the app v3 from the flash file" wait_usb 0483:5740
check "restart: bcdDevice 0103" test "$(usb_attr 0483:5740 bcdDevice)" = 0103
wait_tty || true

# ---- --jump 1200 only: no DFU runtime interface, text command ignored ----
check "--jump 1200: no DFU runtime interface" \
        bash -c "! lsusb -v -d 0483:5740 2>/dev/null | grep -Eq 'bInterfaceClass +254'"
stty -F "$TTY" 115200 raw -echo
timeout 5 bash -c "printf 'DFU\n' > '$TTY'" || true
sleep 1
check "--jump 1200: text command ignored, still the app" test -n "$(usb_dev 0483 5740)"
udev_mark
stty -F "$TTY" 1200 || true
check "--jump 1200: the touch still works" udev_saw_reenumeration 0483 df11
vstm32_stop
