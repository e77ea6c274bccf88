#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dfuctl against fake-dfud (the D-Bus contract with simulated jobs) on a private bus: tables, --json,
# error names and exit codes, update progress (plain and on a terminal), options on the wire, Ctrl-C
# cancelling, cancel/log/enter-bootloader, watch.
#   test-dfuctl-bus.sh DFUCTL FAKE_DFUD
set -u
DFUCTL=$1
FAKE=$2
. "$(dirname "$0")/lib-bus.sh"
command -v python3 >/dev/null || skip "python3 not installed"

start_private_bus
"$FAKE" --bus-address "$BUS_ADDRESS" &
FAKE_PID=$!
PIDS+=($FAKE_PID)
wait_for_name org.dfud1

ctl() {
        "$DFUCTL" --bus-address "$BUS_ADDRESS" "$@"
}

head -c 4096 /dev/zero >"$TMP/fw.bin"
{ printf 'BAD'; head -c 100 /dev/zero; } >"$TMP/bad.bin"
{ printf 'FAIL'; head -c 4092 /dev/zero; } >"$TMP/fail.bin"
{ printf 'SLOW'; head -c 65532 /dev/zero; } >"$TMP/slow.bin"

# wait_job_state ID STATE
wait_job_state() {
        for _ in $(seq 200); do
                ctl jobs --json >"$TMP/jobs.json" 2>/dev/null
                python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if any(x["id"]==int(sys.argv[2]) and x["state"]==sys.argv[3] for x in j) else 1)' \
                        "$TMP/jobs.json" "$1" "$2" && return 0
                sleep 0.05
        done
        fail "job $1 never reached state $2"
}

echo "== devices"
run 0 ctl devices
contains "$OUT" "ID           MODE         USB        SERIAL  PORT  PRODUCT"
contains "$OUT" "f4-rom-0001  dfu          0483:df11  0001    1-1   STM32  BOOTLOADER  -         ok"
contains "$OUT" "app-0002     application  0483:5740  0002    1-2   vstm32 app?[2J     1.0.0     ok"
not_contains "$OUT" $'\033'

run 0 ctl devices --json
J=$OUT
json_check "$J" 'len(j) == 2 and [d["id"] for d in j] == ["f4-rom-0001", "app-0002"]'
json_check "$J" 'j[0]["vendor_id"] == 0x0483 and j[0]["product_id"] == 0xdf11 and j[0]["mode"] == "dfu"'
json_check "$J" 'set(["id", "mode", "vendor_id", "product_id", "serial", "port", "product", "firmware_version", "memory", "health", "last_seen", "current_job", "object_path"]) <= set(j[0])'
json_check "$J" 'j[0]["memory"] == [{"name": "Internal Flash", "address": 0x08000000, "size": 1048576, "alt": 0, "layout": "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"}]'
json_check "$J" 'j[1]["product"] == "vstm32 app\x1b[2J" and j[0]["object_path"].startswith("/org/dfud1/device/")'

echo "== info"
run 0 ctl info 0001
contains "$OUT" "                Id: f4-rom-0001"
contains "$OUT" "            USB ID: 0483:df11"
contains "$OUT" "            Memory: Internal Flash at 0x08000000, 1.0 MiB (alt 0): @Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
contains "$OUT" "       Current job: -"
run 0 ctl info 1-2 --json
json_check "$OUT" 'j["id"] == "app-0002" and j["serial"] == "0002"'
run 1 ctl info nope
[ "$ERR" = "dfuctl: No device 'nope' (org.dfud1.Error.DeviceNotFound)" ] || fail "info nope: $ERR"
[ -z "$OUT" ] || fail "info nope printed to stdout"

echo "== jobs, empty"
run 0 ctl jobs
[ "$OUT" = "No jobs." ] || fail "jobs: $OUT"
run 0 ctl jobs --json
[ "$OUT" = "[]" ] || fail "jobs --json: $OUT"

echo "== update, plain output"
run 0 ctl update f4-rom-0001 "$TMP/fw.bin"
contains "$OUT" "Job 1: updating f4-rom-0001."
contains "$OUT" "erasing: 0%"
contains "$OUT" "writing: 50% (2.0/4.0 KiB"
contains "$OUT" "verifying: 100% (4.0/4.0 KiB"
contains "$OUT" "Job 1 succeeded: f4-rom-0001 updated, 4.0 KiB in "
[ "$(echo "$OUT" | grep -c '^writing: ')" -le 12 ] || fail "too many progress lines"
run 0 ctl log 1
contains "$OUT" "image: 4096 bytes"
contains "$OUT" "DNLOAD"
contains "$OUT" "job succeeded"
not_contains "$OUT" "option "  # defaults are left to the daemon
run 0 ctl log 1 --json
json_check "$OUT" 'j[0]["message"] == "image: 4096 bytes" and j[0]["timestamp"] > 1600000000000000'

echo "== update options on the wire"
run 0 ctl update 1-1 "$TMP/fw.bin" --no-verify --no-incremental --allow-downgrade --address 0x08004000 --format bin
run 0 ctl log 2
contains "$OUT" "option address=0x8004000"
contains "$OUT" "option format=bin"
contains "$OUT" "option verify=false"
contains "$OUT" "option incremental=false"
contains "$OUT" "option allow-downgrade=true"

echo "== update --json"
run 0 ctl update f4-rom-0001 "$TMP/fw.bin" --json
json_check "$OUT" 'j["id"] == 3 and j["result"] == "succeeded" and j["bytes_total"] == 4096 and j["error_name"] == "" and j["object_path"] == "/org/dfud1/job/3"'

echo "== invalid image"
run 1 ctl update f4-rom-0001 "$TMP/bad.bin"
[ "$ERR" = "dfuctl: Firmware image is invalid: no DFU suffix and no known format (org.dfud1.Error.InvalidImage)" ] \
        || fail "bad image: $ERR"
run 1 ctl update nope "$TMP/fw.bin"
[ "$ERR" = "dfuctl: No device 'nope' (org.dfud1.Error.DeviceNotFound)" ] || fail "update nope: $ERR"
run 1 ctl update f4-rom-0001 "$TMP/does-not-exist"
[ "$ERR" = "dfuctl: Failed to open '$TMP/does-not-exist': No such file or directory" ] || fail "missing file: $ERR"
run 1 ctl update f4-rom-0001 "$TMP"
contains "$ERR" "Is a directory"

echo "== failing job"
run 1 ctl update f4-rom-0001 "$TMP/fail.bin"
contains "$ERR" "dfuctl: Job 4 failed: Verification failed at 0x08000400 (org.dfud1.Error.VerifyFailed)"
contains "$OUT" "writing: "
run 0 ctl jobs
contains "$OUT" " 4  f4-rom-0001  failed          50%  2.0/4.0 KiB"
contains "$OUT" "org.dfud1.Error.VerifyFailed"
run 0 ctl jobs --json
json_check "$OUT" 'j[3]["state"] == "failed" and j[3]["error_name"] == "org.dfud1.Error.VerifyFailed" and j[3]["device_id"] == "f4-rom-0001"'

echo "== --no-wait, busy, cancel"
run 0 ctl update app-0002 "$TMP/slow.bin" --no-wait --json
json_check "$OUT" 'j["id"] == 5 and j["object_path"] == "/org/dfud1/job/5"'
run 1 ctl update app-0002 "$TMP/fw.bin"
contains "$ERR" "(org.dfud1.Error.Busy)"
run 0 ctl info app-0002
contains "$OUT" "Current job: /org/dfud1/job/5"
run 0 ctl cancel 5
[ "$OUT" = "Cancelling job 5." ] || fail "cancel: $OUT"
wait_job_state 5 cancelled
run 1 ctl cancel 5
contains "$ERR" "(org.dfud1.Error.JobNotFound)"
run 1 ctl cancel 999
[ "$ERR" = "dfuctl: No job '999' (org.dfud1.Error.JobNotFound)" ] || fail "cancel 999: $ERR"
run 1 ctl log 999
contains "$ERR" "(org.dfud1.Error.JobNotFound)"
run 1 ctl cancel abc
[ "$ERR" = "dfuctl: invalid job id 'abc'" ] || fail "cancel abc: $ERR"

echo "== Ctrl-C cancels and waits"
# (the binary itself in the background, not the ctl function: its subshell would get the signal)
"$DFUCTL" --bus-address "$BUS_ADDRESS" update f4-rom-0001 "$TMP/slow.bin" >"$TMP/int.out" 2>"$TMP/int.err" &
UPD=$!
wait_job_state 6 writing
kill -INT $UPD
wait $UPD
rc=$?
[ $rc = 1 ] || { cat "$TMP/int.out" "$TMP/int.err"; fail "interrupted update exited $rc"; }
contains "$(cat "$TMP/int.err")" "Cancelling job 6..."
contains "$(cat "$TMP/int.err")" "dfuctl: Job 6 cancelled: Cancelled by the user (org.dfud1.Error.Cancelled)"
wait_job_state 6 cancelled

echo "== progress bar on a terminal"
if command -v script >/dev/null; then
        TERM=xterm COLUMNS=70 script -qfec "$DFUCTL --bus-address $BUS_ADDRESS update f4-rom-0001 $TMP/fw.bin" /dev/null \
                >"$TMP/tty.out" 2>&1 || { cat "$TMP/tty.out"; fail "update on a terminal"; }
        T=$(cat "$TMP/tty.out")
        contains "$T" $'\r'"writing     [" "terminal output"
        contains "$T" "] 100%  4.0/4.0 KiB" "terminal output"
        contains "$T" $'\033[K' "terminal output"
        contains "$T" "Job 7 succeeded" "terminal output"
        # each redraw fits in 69 columns
        python3 -c '
import re, sys
for part in open(sys.argv[1], encoding="utf-8").read().split("\r"):
    line = part.split("\x1b[K")[0].split("\n")[0]
    if "[" in line and len(line) > 69:
        sys.exit("too wide: %r" % line)
' "$TMP/tty.out" || fail "progress bar wider than the terminal"
else
        echo "script(1) not installed, terminal progress not checked"
        ctl update f4-rom-0001 "$TMP/fw.bin" >/dev/null || fail "update"
fi

echo "== enter-bootloader"
run 0 ctl enter-bootloader app-0002
[ "$OUT" = "Device app-0002 is switching to its bootloader." ] || fail "enter-bootloader: $OUT"
run 1 ctl enter-bootloader app-0002
contains "$ERR" "(org.dfud1.Error.NotSupported)"
run 1 ctl enter-bootloader nope
contains "$ERR" "(org.dfud1.Error.DeviceNotFound)"

echo "== watch"
"$DFUCTL" --bus-address "$BUS_ADDRESS" watch --json >"$TMP/watch.json" 2>"$TMP/watch.err" &
W1=$!
"$DFUCTL" --bus-address "$BUS_ADDRESS" watch >"$TMP/watch.txt" 2>"$TMP/watch2.err" &
W2=$!
for _ in $(seq 200); do
        grep -q Watching "$TMP/watch.err" && grep -q Watching "$TMP/watch2.err" && break
        sleep 0.05
done
ctl update f4-rom-0001 "$TMP/fw.bin" >/dev/null || fail "update under watch"
ctl update f4-rom-0001 "$TMP/fail.bin" >/dev/null 2>&1
sleep 0.2
kill -TERM $W1 $W2
wait $W1 || fail "watch --json exited $?"
wait $W2 || fail "watch exited $?"
python3 - "$TMP/watch.json" <<'PY' || fail "watch --json events"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in events]
assert "job-added" in kinds, kinds
added = next(e for e in events if e["event"] == "job-added")
assert added["object_path"] == "/org/dfud1/job/8" and added["properties"]["device_id"] == "f4-rom-0001", added
assert any(e["event"] == "job-changed" and e["properties"].get("state") == "writing" for e in events)
assert any(e["event"] == "device-changed" and "current_job" in e["properties"] for e in events)
removed = [e for e in events if e["event"] == "job-removed"]
assert [(e["id"], e["result"]) for e in removed] == [(8, "succeeded"), (9, "failed")], removed
assert all(e["timestamp"] > 1600000000000000 for e in events)
PY
T=$(cat "$TMP/watch.txt")
contains "$T" "job 8 added for f4-rom-0001" "watch"
contains "$T" "job 8: writing: " "watch"
contains "$T" "job 8 finished: succeeded" "watch"
contains "$T" "job 9: error_name=org.dfud1.Error.VerifyFailed, error_message=Verification failed at 0x08000400" "watch"
contains "$T" "job 9 finished: failed" "watch"

echo "== dfud gone"
kill $FAKE_PID
wait $FAKE_PID
run 1 ctl devices
contains "$ERR" "(org.freedesktop.DBus.Error.ServiceUnknown)"
echo "OK"
