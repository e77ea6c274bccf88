#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README demo: boots the VM bench (tests/vm/run: QEMU, real kernel USB through USB/IP, udev, a
# system bus), plugs in an emulated STM32 board running application v1, starts dfud on the guest's
# system bus, updates the board to v2 with `dfuctl update` (progress shown) and ends with `dfuctl
# devices` showing the application back, on v2.
#   tests/vm/demo.sh [BUILD_DIR]     (default: build; installs the dependencies and builds first)
set -eu

if [ -z "${DFUD_DEMO_IN_VM:-}" ]; then
        ROOT=$(cd "$(dirname "$0")/../.." && pwd)
        "$ROOT/tests/deps.sh"
        BUILD=${1:-${DFUD_BUILD_DIR:-$ROOT/build}}
        [ -e "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" -Dfuzz=false >/dev/null
        BUILD=$(realpath "$BUILD")
        echo "demo: building in $BUILD"
        ninja -C "$BUILD" >/dev/null
        for f in daemon/dfud client/dfuctl tests/emulator/vstm32/vstm32 tests/data/fw-v1.bin \
                 tests/data/fw-v2-dfuse.dfu; do
                [ -e "$BUILD/$f" ] || { echo "demo: $BUILD/$f is missing after the build" >&2; exit 1; }
        done
        export DFUD_DEMO_IN_VM=1 DFUD_BUILD_DIR=$BUILD DFUD_SOURCE_DIR=$ROOT
        exec "$ROOT/tests/vm/run" "$ROOT/tests/vm/demo.sh"
fi

# ---- in the guest, as root ----
B=$DFUD_BUILD_DIR
WORK=$(mktemp -d /tmp/demo.XXXXXX)
SERIAL=DEMO00000001
VSTM32_PID=
DFUD_PID=
cleanup() {
        [ -n "$DFUD_PID" ] && kill "$DFUD_PID" 2>/dev/null && wait "$DFUD_PID" 2>/dev/null
        [ -n "$VSTM32_PID" ] && kill "$VSTM32_PID" 2>/dev/null && wait "$VSTM32_PID" 2>/dev/null
        true
}
trap cleanup EXIT

say() { printf '\n$ %s\n' "$*"; }
run() { say "$*"; "$@"; }
wait_for() {
        local n=200
        while [ $n -gt 0 ]; do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
                n=$((n - 1))
        done
        echo "demo: timed out waiting for: $*" >&2
        return 1
}
export PATH=$B/client:$B/daemon:$PATH
cd "$WORK"
cp "$B/tests/data/fw-v2-dfuse.dfu" firmware-v2.dfu
mode_is() {
        dfuctl devices --json | python3 -c '
import json, sys
sys.exit(0 if any(d["serial"] == sys.argv[1] and d["mode"] == sys.argv[2] for d in json.load(sys.stdin)) else 1)' \
                "$SERIAL" "$1"
}
vstm32() { "$B/tests/emulator/vstm32/vstm32" --profile app --flash "$WORK/flash.bin" --serial "$SERIAL" \
                --time-scale 0.05 "$@" >> "$WORK/vstm32.log" 2>&1 & VSTM32_PID=$!; }

# What a package installs: the D-Bus policy (so dfud may own org.dfud1), the polkit actions and the
# udev rules; and polkitd, which no systemd starts here.
mkdir -p /etc/dbus-1/system.d /etc/udev/rules.d /usr/share/polkit-1/actions
cp "$DFUD_SOURCE_DIR/systemd/org.dfud1.conf" /etc/dbus-1/system.d/
cp "$DFUD_SOURCE_DIR/systemd/org.dfud1.policy" /usr/share/polkit-1/actions/
cp "$DFUD_SOURCE_DIR/udev/70-dfud.rules" /etc/udev/rules.d/
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
udevadm control --reload
polkit_up() {
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s \
                org.freedesktop.PolicyKit1 | grep -q true
}
if [ -x /usr/lib/polkit-1/polkitd ]; then
        /usr/lib/polkit-1/polkitd --no-debug > "$WORK/polkitd.log" 2>&1 &
        wait_for polkit_up
fi

# A board whose flash holds application v1: the first start creates the erased flash file.
vstm32
wait_for test -s "$WORK/flash.bin"
kill "$VSTM32_PID"; wait "$VSTM32_PID" 2>/dev/null || true
dd if="$B/tests/data/fw-v1.bin" of="$WORK/flash.bin" conv=notrunc status=none
vstm32
wait_for lsusb -d 0483:5740
run lsusb -d 0483:5740

say "dfud &"
dfud --state-dir "$WORK/state" --config-dir "$WORK/config" > "$WORK/dfud.log" 2>&1 &
DFUD_PID=$!
wait_for mode_is application
run dfuctl devices
run dfuctl update "$SERIAL" firmware-v2.dfu
wait_for mode_is application
run dfuctl devices
run lsusb -d 0483:5740
