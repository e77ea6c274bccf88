# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the VM test scripts (sourced; they run inside the guest as root, see tests/vm/run).
# Every check prints one "ok - NAME" / "not ok - NAME" line; figures print as "figure: ...".

: "${DFUD_BUILD_DIR:?run through meson test or set DFUD_BUILD_DIR}"
VSTM32=${VSTM32:-$DFUD_BUILD_DIR/tests/emulator/vstm32/vstm32}
CTLBENCH=${CTLBENCH:-$DFUD_BUILD_DIR/tests/vm/ctlbench}
VM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Busy times scaled down so a 256 KiB download takes seconds, not minutes; the ratios stay.
TIME_SCALE=${VSTM32_TIME_SCALE:-0.05}

[ "$(id -u)" = 0 ] || { echo "must run as root (inside tests/vm/run)"; exit 1; }
[ -w /sys/devices/platform/vhci_hcd.0/attach ] || { echo "no vhci_hcd: run through tests/vm/run"; exit 1; }

WORK=$(mktemp -d /tmp/vmtest.XXXXXX)
PASSED=0
FAILED=0
VPID=
VLOG=
UDEV_PID=
NSTART=0

check() {
        local name=$1
        shift
        if "$@"; then
                echo "ok - $name"
                PASSED=$((PASSED + 1))
        else
                echo "not ok - $name"
                FAILED=$((FAILED + 1))
        fi
}

figure() { echo "figure: $*"; }

# quiet CMD...: output into $WORK/<cmd>.log (shown when the run fails), keeps check's line on stdout.
quiet() { "$@" >> "$WORK/$(basename "$1").log" 2>&1; }

# Seconds since $1 (an $EPOCHREALTIME), one decimal... or three.
elapsed() { awk -v s="$1" -v n="$EPOCHREALTIME" 'BEGIN { printf "%.2f", n - s }'; }

finish() {
        local rc=$?
        vstm32_stop
        [ -n "$UDEV_PID" ] && kill "$UDEV_PID" 2>/dev/null
        if [ "$FAILED" -gt 0 ] || [ "$rc" != 0 ]; then
                echo "--- logs of failed run (also in \$VM_OUT)"
                for f in "$WORK"/*.log; do
                        [ -e "$f" ] || continue
                        echo "--- $(basename "$f") (tail)"
                        tail -n 25 "$f"
                done
                echo "--- dmesg (tail)"
                dmesg | tail -n 25
                [ -n "${VM_OUT:-}" ] && cp "$WORK"/*.log "$VM_OUT"/ 2>/dev/null
        fi
        echo "$PASSED passed, $FAILED failed"
        [ "$FAILED" = 0 ] && [ "$rc" = 0 ] && exit 0
        exit 1
}
trap finish EXIT

# ---- USB devices, seen through sysfs ----

# usb_dev VID PID: the sysfs directory of the first such device, or nothing.
usb_dev() {
        local d
        for d in /sys/bus/usb/devices/*; do
                [ -e "$d/idVendor" ] || continue
                if [ "$(cat "$d/idVendor")" = "$1" ] && [ "$(cat "$d/idProduct")" = "$2" ]; then
                        echo "$d"
                        return 0
                fi
        done
        return 1
}

# wait_usb VID:PID [SECONDS]: until it is enumerated (and udev is done with it).
wait_usb() {
        local vid=${1%:*} pid=${1#*:} n=$((${2:-10} * 20))
        while [ $n -gt 0 ]; do
                if usb_dev "$vid" "$pid" >/dev/null; then
                        udevadm settle --timeout=10
                        return 0
                fi
                sleep 0.05
                n=$((n - 1))
        done
        return 1
}

wait_usb_gone() {
        local vid=${1%:*} pid=${1#*:} n=$((${2:-10} * 20))
        while [ $n -gt 0 ]; do
                usb_dev "$vid" "$pid" >/dev/null || return 0
                sleep 0.05
                n=$((n - 1))
        done
        return 1
}

# usb_attr VID:PID ATTR
usb_attr() {
        local d
        d=$(usb_dev "${1%:*}" "${1#*:}") || return 1
        cat "$d/$2"
}

# ---- udev: every re-enumeration must be a real remove + add seen by udev ----

udev_watch_start() {
        udevadm monitor --udev --property --subsystem-match=usb/usb_device > "$WORK/udev.log" 2>&1 &
        UDEV_PID=$!
        sleep 0.3
}

udev_mark() { UDEV_MARK=$(wc -l < "$WORK/udev.log"); }

# udev_saw_reenumeration VID PID [SECONDS]: since the mark, a usb_device remove followed by an add
# of VID:PID (hex, as in PRODUCT=483/df11/2200).
udev_saw_reenumeration() {
        local v=${1#0} n=$((${3:-10} * 10)) p=$2
        v=${v#0}
        v=${v#0}
        while [ $n -gt 0 ]; do
                if tail -n +"$((UDEV_MARK + 1))" "$WORK/udev.log" | awk -v prod="PRODUCT=$v/$p/" '
                        /^ACTION=remove/ { removed = 1 }
                        /^ACTION=add/ { adding = 1 }
                        /^PRODUCT=/ { if (adding && removed && index($0, prod) == 1) found = 1 }
                        /^$/ { adding = 0 }
                        END { exit found ? 0 : 1 }'; then
                        return 0
                fi
                sleep 0.1
                n=$((n - 1))
        done
        return 1
}

# ---- vstm32 ----

# vstm32_start NAME ARGS...: in the background, log in $WORK/NAME.log.
vstm32_start() {
        local name=$1
        shift
        NSTART=$((NSTART + 1))
        VLOG=$WORK/$name.log
        "$VSTM32" "$@" >> "$VLOG" 2>&1 &
        VPID=$!
}

vstm32_stop() {
        [ -n "$VPID" ] || return 0
        kill -TERM "$VPID" 2>/dev/null
        wait "$VPID" 2>/dev/null
        VPID=
}

vstm32_alive() { [ -n "$VPID" ] && kill -0 "$VPID" 2>/dev/null; }

# ---- images ----

random_image() { head -c "$2" /dev/urandom > "$1"; }

# make_app OUT VERSION [SIZE]: a Cortex-M application the model boots (vector table, Vstm32Header at
# 0x400 with its CRC). The real-tool image from tests/data/make-firmware.sh when meson built it
# (VM_FIRMWARE_DIR/vstm32-app-VVVV.bin, 32 KiB), else an equivalent one made here.
make_app() {
        local out=$1 version=$2 size=${3:-32768} fw
        fw=${VM_FIRMWARE_DIR:-/nonexistent}/vstm32-app-$(printf '%04x' "$version").bin
        if [ -e "$fw" ] && [ "$(stat -c %s "$fw")" = "$size" ]; then
                cp "$fw" "$out"
                return 0
        fi
        python3 - "$out" "$version" "$size" <<'PY'
import os, struct, sys, zlib
out, version, size = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0)
img = bytearray(os.urandom(size))
img[0:8] = struct.pack("<II", 0x20008000, 0x08000401)
img[0x400:0x410] = struct.pack("<IIII", 0x32335356, version, size, 0)
struct.pack_into("<I", img, 0x40C, zlib.crc32(bytes(img)) & 0xFFFFFFFF)
open(out, "wb").write(img)
PY
}

# flash_matches FLASH IMAGE OFFSET: the flash file holds IMAGE at OFFSET.
flash_matches() { cmp -s -n "$(stat -c %s "$2")" -i "$3:0" "$1" "$2"; }

# is_erased FILE OFFSET LENGTH
is_erased() {
        [ "$(tail -c +$(($2 + 1)) "$1" | head -c "$3" | tr -d '\377' | wc -c)" = 0 ]
}
