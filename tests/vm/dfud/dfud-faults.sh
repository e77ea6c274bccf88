#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot (dfud 3): jobs survive what happens to real devices and daemons.
#  - unplug mid-write: the ROM drops off the bus when the download reaches 0x08008000 (vstm32 --fault
#    disconnect-at, and --reattach-ms long enough that it stays off); the job waits for the device;
#    vstm32 restarted on the same flash file (a replug) lets it resume and finish; the flash is
#    byte-exact and the waiting `dfuctl update` exits 0.
#  - dfud SIGKILLed mid-write: the client waits for dfud to come back; dfud restarted on the same state
#    directory resumes the job from its journal and finishes byte-exact; the same client exits 0.
set -eu
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib-dfud.sh"

for f in fw-v1-dfuse.dfu fw-v1.bin fw-v2-dfuse.dfu fw-v2.bin; do
        [ -e "$FW_DIR/$f" ] || { echo "no test firmware $FW_DIR/$f"; exit 77; }
done

udev_watch_start
dfud_install_system_files
# The kill scenario's board honours bwPollTimeout (dfu-util's pace, ~50 ms per block at time scale
# 0.5): with the built-in early polling its 64 KiB are written in well under a second, too fast for
# the test to catch the job in the middle of writing. Also checks a serial-specific rule overrides the
# built-in one.
dfud_write_conf '{ "devices": [ { "match": { "vendor-id": "0483", "product-id": "df11",
  "serial": "KILLED000002" }, "poll-policy": "honour" } ] }'
check "dfud starts" dfud_start

# ---- unplug in the middle of the download, then replug ----
S=FAULT0000001
FLASH=$WORK/unplug.bin
vstm32_start unplug --profile f4-rom --flash "$FLASH" --serial "$S" --time-scale "$TIME_SCALE" \
        --fault disconnect-at=0x08008000 --reattach-ms 600000
check "unplug: the ROM enumerates" wait_usb 0483:df11
check "unplug: dfud lists it" wait_device "$S" dfu
ctl_update "$S" "$FW_DIR/fw-v1-dfuse.dfu" > "$WORK/unplug-update.out" 2>&1 &
UPD=$!
JOB=
n=0
while [ -z "$JOB" ] && [ $n -lt 100 ]; do
        JOB=$(sed -n 's/^Job \([0-9]*\): updating.*/\1/p' "$WORK/unplug-update.out")
        sleep 0.1
        n=$((n + 1))
done
check "unplug: the job started" test -n "$JOB"
check "unplug: the device drops off the bus mid-write" wait_usb_gone 0483:df11 30
check "unplug: the job waits for the device" wait_job "$JOB" 'j["state"] == "waiting-for-device"' 30
check "unplug: the flash is not complete yet" not flash_matches "$FLASH" "$FW_DIR/fw-v1.bin" 0
vstm32_stop
check "unplug: dfuctl is still waiting" kill -0 $UPD
sleep 1
check "unplug: the job is still waiting after the emulator is gone" \
        wait_job "$JOB" 'j["state"] == "waiting-for-device"' 5
vstm32_start replug --profile f4-rom --flash "$FLASH" --serial "$S" --time-scale "$TIME_SCALE"
wait $UPD && rc=0 || rc=$?
[ $rc = 0 ] || cat "$WORK/unplug-update.out"
check "replug: the waiting dfuctl update exits 0" test $rc = 0
check "replug: the job succeeded" wait_job "$JOB" 'j["state"] == "succeeded"' 10
check "replug: the flash holds v1 byte-exact" flash_matches "$FLASH" "$FW_DIR/fw-v1.bin" 0
check "replug: the application enumerates" wait_usb 0483:5740 20
check "replug: application bcdDevice 0001" test "$(usb_attr 0483:5740 bcdDevice 2>/dev/null)" = 0001
ctl log "$JOB" > "$WORK/unplug-log.txt" 2>&1 || true
vstm32_stop
wait_usb_gone 0483:5740 10 || true

# ---- dfud killed in the middle of the download, then restarted ----
S=KILLED000002
FLASH=$WORK/killed.bin
# slower flash (and the honour rule above) so the kill lands in the download
vstm32_start killed --profile f4-rom --flash "$FLASH" --serial "$S" --time-scale 0.5
check "kill: the ROM enumerates" wait_usb 0483:df11
check "kill: dfud lists it" wait_device "$S" dfu
ctl_update "$S" "$FW_DIR/fw-v1-dfuse.dfu" > "$WORK/kill-update.out" 2> "$WORK/kill-update.err" &
UPD=$!
JOB=
n=0
while [ -z "$JOB" ] && [ $n -lt 100 ]; do
        JOB=$(sed -n 's/^Job \([0-9]*\): updating.*/\1/p' "$WORK/kill-update.out")
        sleep 0.1
        n=$((n + 1))
done
check "kill: the job started" test -n "$JOB"
check "kill: the job is writing" wait_job "$JOB" 'j["state"] == "writing" and j["bytes_done"] >= 8192' 60
dfud_kill
check "kill: dfuctl notices dfud is gone and keeps waiting" wait_grep "dfud went away" "$WORK/kill-update.err"
check "kill: dfuctl is still waiting" kill -0 $UPD
check "kill: dfud restarts on the same state directory" dfud_start
wait $UPD && rc=0 || rc=$?
[ $rc = 0 ] || cat "$WORK/kill-update.out" "$WORK/kill-update.err"
check "kill: the same dfuctl update exits 0 after the restart" test $rc = 0
check "kill: the job resumed under its id and succeeded" wait_job "$JOB" 'j["state"] == "succeeded"' 10
check "kill: the flash holds v1 byte-exact" flash_matches "$FLASH" "$FW_DIR/fw-v1.bin" 0
ctl log "$JOB" > "$WORK/kill-log.txt" 2>&1 || true
check "kill: the job's log tells the daemon restarted" grep -qi "daemon started" "$WORK/kill-log.txt"
vstm32_stop
