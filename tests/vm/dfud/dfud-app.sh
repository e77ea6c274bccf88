#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot (dfud 2): the application flow with each way into the bootloader. Three emulated boards run
# app v1, each allowing one jump (vstm32 --jump) and configured for it in dfud.conf: DFU_DETACH,
# 1200-baud touch, text command. Two are updated to v2 at the same time (Intel HEX), then the third
# (a DfuSe file, whose suffix names the bootloader's USB id, not the application's); each ends with
# the application back on v2 (bcdDevice, flash byte-exact, dfuctl devices). `dfuctl watch --json` follows
# it all; `dfuctl enter-bootloader` is tried last.
set -eu
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib-dfud.sh"

for f in fw-v1.bin fw-v2-dfuse.dfu fw-v2.hex fw-v2.bin; do
        [ -e "$FW_DIR/$f" ] || { echo "no test firmware $FW_DIR/$f"; exit 77; }
done

udev_watch_start
dfud_install_system_files

# Three boards, each with its own vstm32 (lib.sh tracks one; the others are ours).
declare -A SERIAL=([detach]=APPDETACH001 [1200]=APPTOUCH1200 [command]=APPCOMMAND01)
# (explicit vhci ports: boards started together would all pick the same first free one)
declare -A PORT=([detach]=0 [1200]=1 [command]=2)
declare -A PID=()
BOARD_PIDS=()
stop_boards() {
        local p
        for p in "${BOARD_PIDS[@]}"; do
                kill -TERM "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        BOARD_PIDS=()
}
trap 'rc_=$?; set +e; stop_boards; dfud_stop; (exit $rc_); finish' EXIT

# board_start KIND: vstm32 --profile app with only that jump, on the flash file prepared below.
board_start() {
        local k=$1
        "$VSTM32" --profile app --flash "$WORK/$k.bin" --serial "${SERIAL[$k]}" --time-scale "$TIME_SCALE" \
                --jump "$k" --port "${PORT[$k]}" --stats "$WORK/$k.json" >> "$WORK/vstm32-$k.log" 2>&1 &
        PID[$k]=$!
        BOARD_PIDS+=($!)
}

# app v1 in the flash files: a first start creates the erased file (the ROM comes up), then v1 goes at
# offset 0 (0x08000000) and the next start boots it.
for k in detach 1200 command; do
        board_start "$k"
done
n=0
while [ $n -lt 100 ] && [ "$(for k in detach 1200 command; do [ -s "$WORK/$k.bin" ] && echo x; done | wc -l)" != 3 ]; do
        sleep 0.1
        n=$((n + 1))
done
stop_boards
for k in detach 1200 command; do
        dd if="$FW_DIR/fw-v1.bin" of="$WORK/$k.bin" conv=notrunc status=none
done

cat > "$DFUD_CONF/dfud.conf" <<EOF
{ "devices": [
  { "match": { "serial": "${SERIAL[detach]}" }, "jump": "detach" },
  { "match": { "serial": "${SERIAL[1200]}" }, "jump": "1200-baud" },
  { "match": { "serial": "${SERIAL[command]}" }, "jump": "command", "jump-command": "DFU\\n" }
] }
EOF
check "dfud starts with the per-board jump configuration" dfud_start

"$DFUCTL" watch --json > "$WORK/watch.json" 2> "$WORK/watch.err" &
WATCH=$!
n=0
while [ $n -lt 100 ] && ! grep -q Watching "$WORK/watch.err"; do sleep 0.05; n=$((n + 1)); done

for k in detach 1200 command; do
        board_start "$k"
done
for k in detach 1200 command; do
        check "$k board: dfud lists the application" wait_device "${SERIAL[$k]}" application 30
done
app_count() {
        local d n=0
        for d in /sys/bus/usb/devices/*; do
                [ "$(cat "$d/idProduct" 2>/dev/null)" = 5740 ] && n=$((n + 1))
        done
        [ $n = 3 ]
}
check "three applications 0483:5740 enumerated" app_count
V1=$(device_field "${SERIAL[detach]}" firmware_version || true)

# bcd_of SERIAL: bcdDevice of the USB device with that serial
bcd_of() {
        local d
        for d in /sys/bus/usb/devices/*; do
                [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && cat "$d/bcdDevice" && return 0
        done
        return 1
}
check "boards run v1 (bcdDevice 0001)" test "$(bcd_of "${SERIAL[detach]}")" = 0001

# saw_jump KIND: the emulator's log names the way the board left its application.
saw_jump() {
        case $1 in
        # a DETACH is the device resetting itself from the app into the ROM, without a CDC trigger
        detach) ! grep -q "jump to the bootloader" "$WORK/vstm32-detach.log" &&
                awk '/attached as app/ { app = 1 } /attached as f4-rom/ && app { found = 1 }
                     END { exit found ? 0 : 1 }' "$WORK/vstm32-detach.log" ;;
        1200) grep -q "jump to the bootloader: 1200 baud touch" "$WORK/vstm32-1200.log" ;;
        command) grep -q "jump to the bootloader: text command" "$WORK/vstm32-command.log" ;;
        esac
}

# ---- two boards at once: DFU_DETACH and the 1200-baud touch ----
t0=$EPOCHREALTIME
ctl_update "${SERIAL[detach]}" "$FW_DIR/fw-v2.hex" > "$WORK/up-detach.out" 2>&1 &
U1=$!
ctl_update "${SERIAL[1200]}" "$FW_DIR/fw-v2.hex" > "$WORK/up-1200.out" 2>&1 &
U2=$!
rc1=0 rc2=0
wait $U1 || rc1=$?
wait $U2 || rc2=$?
figure "two boards updated at once: $(elapsed "$t0") s"
[ $rc1 = 0 ] || cat "$WORK/up-detach.out"
[ $rc2 = 0 ] || cat "$WORK/up-1200.out"
check "detach board: dfuctl update exits 0" test $rc1 = 0
check "1200 board: dfuctl update exits 0 (at the same time)" test $rc2 = 0

# ---- then the text command, with a DfuSe file (its suffix names the bootloader, 0483:df11, which dfud
# has not seen for this board yet) ----
check "command board: dfuctl update with a DfuSe file exits 0" \
        update_ok command "${SERIAL[command]}" "$FW_DIR/fw-v2-dfuse.dfu"

for k in detach 1200 command; do
        check "$k board: flash holds v2 byte-exact" flash_matches "$WORK/$k.bin" "$FW_DIR/fw-v2.bin" 0
        check "$k board: the application is back (dfuctl devices)" wait_device "${SERIAL[$k]}" application 30
        check "$k board: bcdDevice 0002" test "$(bcd_of "${SERIAL[$k]}")" = 0002
        check "$k board: dfud reports the new firmware version" \
                test "$(device_field "${SERIAL[$k]}" firmware_version)" != "$V1"
        check "$k board: vstm32 saw the $k jump" saw_jump "$k"
done
ctl devices > "$WORK/devices.txt" 2>&1 || true
cat "$WORK/devices.txt"

# ---- dfuctl enter-bootloader: the app goes to the ROM and stays there ----
udev_mark
check "enter-bootloader (detach board): dfuctl exits 0" ctl enter-bootloader "${SERIAL[detach]}"
check "enter-bootloader: USB disconnect, the ROM enumerates (udev)" udev_saw_reenumeration 0483 df11 20
check "enter-bootloader: dfud lists the board in dfu mode" wait_device "${SERIAL[detach]}" dfu 30

# ---- what watch saw ----
sleep 0.5
kill -TERM $WATCH
wait $WATCH && rc=0 || rc=$?
check "dfuctl watch: exits 0 on SIGTERM" test $rc = 0
watch_saw() {
        python3 - "$WORK/watch.json" "${SERIAL[@]}" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
removed = [e for e in events if e["event"] == "job-removed"]
assert len(removed) >= 3 and all(e["result"] == "succeeded" for e in removed[:3]), removed
modes = [e["properties"]["mode"] for e in events if e["event"] == "device-changed" and "mode" in e["properties"]]
assert "dfu" in modes and "application" in modes, modes
states = {e["properties"]["state"] for e in events if e["event"] == "job-changed" and "state" in e["properties"]}
assert {"entering-bootloader", "writing", "succeeded"} <= states, states
print("figure: watch saw %d events" % len(events))
PY
}
check "dfuctl watch: the jobs' states, the boards' modes, three JobRemoved succeeded" watch_saw
