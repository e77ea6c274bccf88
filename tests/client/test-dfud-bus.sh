#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dfuctl against the real dfud on a private bus, without USB devices: devices and jobs list (empty),
# an unknown device is DeviceNotFound, a malformed image is InvalidImage, with the right exit codes.
# Skipped until dfud is built and can publish on a bus other than the system bus.
#   test-dfud-bus.sh DFUCTL DFUD
set -u
DFUCTL=$1
DFUD=$2
. "$(dirname "$0")/lib-bus.sh"

[ -x "$DFUD" ] || skip "$DFUD not built yet"
"$DFUD" --help 2>&1 | grep -q -- "--bus-address" || skip "dfud has no --bus-address yet"
command -v python3 >/dev/null || skip "python3 not installed"

start_private_bus
mkdir -p "$TMP/state" "$TMP/config"
"$DFUD" --bus-address "$BUS_ADDRESS" --state-dir "$TMP/state" --config-dir "$TMP/config" \
        >"$TMP/dfud.log" 2>&1 &
DFUD_PID=$!
PIDS+=($DFUD_PID)
for _ in $(seq 200); do
        busctl --address="$BUS_ADDRESS" status org.dfud1 >/dev/null 2>&1 && break
        kill -0 $DFUD_PID 2>/dev/null || { cat "$TMP/dfud.log"; fail "dfud exited"; }
        sleep 0.05
done
busctl --address="$BUS_ADDRESS" status org.dfud1 >/dev/null 2>&1 || { cat "$TMP/dfud.log"; fail "dfud did not take org.dfud1"; }
ctl() {
        "$DFUCTL" --bus-address "$BUS_ADDRESS" "$@"
}

run 0 ctl devices --json
json_check "$OUT" 'isinstance(j, list)'
run 0 ctl devices
run 0 ctl jobs
run 0 ctl jobs --json
json_check "$OUT" 'isinstance(j, list)'

run 1 ctl info no-such-device
contains "$ERR" "(org.dfud1.Error.DeviceNotFound)"
[ -z "$OUT" ] || fail "stdout not empty on error"

# a malformed image is refused whatever the device: checked before anything is queued
printf 'this is not firmware' >"$TMP/bad.dfu"
SERIAL=$(ctl devices --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j[0]["id"] if j else "")')
if [ -n "$SERIAL" ]; then
        run 1 ctl update "$SERIAL" "$TMP/bad.dfu" --format dfuse
        contains "$ERR" "(org.dfud1.Error.InvalidImage)"
else
        run 1 ctl update no-such-device "$TMP/bad.dfu"
        contains "$ERR" "(org.dfud1.Error.DeviceNotFound)"
fi

kill -TERM $DFUD_PID
wait $DFUD_PID || { cat "$TMP/dfud.log"; fail "dfud did not exit cleanly on SIGTERM"; }
echo OK
