#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM boot (dfud 1): dfud on the guest's system bus with the project's udev rules and D-Bus policy, one
# f4-rom going ROM -> app v1 -> v2 -> v1 -> v2 -> v1 through every image format (DfuSe .dfu, Intel HEX,
# ELF, raw .bin, plain DFU suffix), each byte-exact in the flash file; bad images refused before any USB
# request (flash file unchanged, no re-enumeration); an unprivileged user can list but not update; then
# an f072-rom whose leave needs GETSTATUS polling through the manifestation; an l4-rom that stalls
# early polls.
set -eu
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib-dfud.sh"

for v in 1 2; do
        for f in fw-v$v-dfuse.dfu fw-v$v.hex fw-v$v.elf fw-v$v.bin fw-v$v-suffix.dfu; do
                [ -e "$FW_DIR/$f" ] || { echo "no $FW_DIR/$f (tests/data needs arm-none-eabi-gcc)"; exit 77; }
        done
done

udev_watch_start
dfud_install_system_files
check "dfud: takes org.dfud1 on the system bus (policy installed)" dfud_start
no_devices() { [ "$(ctl devices)" = "No devices." ]; }
check "dfuctl devices: no devices yet" no_devices

# ---- the ROM: found, tagged, described ----
S=315A28A0B956
FLASH=$WORK/f4.bin
vstm32_start f4 --profile f4-rom --flash "$FLASH" --serial "$S" --time-scale "$TIME_SCALE" --stats "$WORK/f4.json"
check "f4-rom enumerates" wait_usb 0483:df11
check "udev: 0483:df11 tagged dfud" has_tag 0483:df11 dfud
wants_dfud() { udevadm info --query=property --path="$(usb_dev 0483 df11)" | grep -q '^SYSTEMD_WANTS=.*dfud.service'; }
check "udev: 0483:df11 pulls in dfud.service (SYSTEMD_WANTS)" wants_dfud
check "dfud lists the ROM in dfu mode" wait_device "$S" dfu
ctl info "$S" > "$WORK/info.txt" 2>&1 || true
check "dfuctl info: USB ID 0483:df11" grep -q "USB ID: 0483:df11" "$WORK/info.txt"
check "dfuctl info: Internal Flash layout at 0x08000000" \
        grep -q "Memory: Internal Flash at 0x08000000, 1.0 MiB (alt 0): @Internal Flash" "$WORK/info.txt"

# ---- every format; each update must leave the flash byte-exact and the app running ----
# update_to NAME IMAGE VERSION [OPTIONS...]
update_to() {
        local name=$1 image=$2 version=$3
        shift 3
        udev_mark
        check "update $name: dfuctl exits 0" update_ok "$name" "$S" "$image" "$@"
        check "update $name: flash file holds fw-v$version byte-exact" \
                flash_matches "$FLASH" "$FW_DIR/fw-v$version.bin" 0
        check "update $name: the application is back (0483:5740)" wait_usb 0483:5740 20
        check "update $name: application bcdDevice 000$version" \
                test "$(usb_attr 0483:5740 bcdDevice 2>/dev/null)" = "000$version"
        check "update $name: dfud lists it as an application again" wait_device "$S" application
}

update_to "DfuSe .dfu (ROM -> app v1)" "$FW_DIR/fw-v1-dfuse.dfu" 1
OUT1="$WORK/DfuSe .dfu (ROM -> app v1).out"
check "plain progress: a line per phase and tenth" grep -q '^writing: [0-9]*% (' "$OUT1"
check "plain progress: no terminal control characters" not grep -q $'[\r\033]' "$OUT1"
check "plain progress: the result line" grep -q "^Job [0-9]* succeeded: $S updated" "$OUT1"
check "udev: 0483:5740 tagged dfud" has_tag 0483:5740 dfud
acm_tagged() {
        local t
        for t in /sys/class/tty/ttyACM*; do
                udevadm info --query=property --path="$(readlink -f "$t")" | grep -E '^(CURRENT_)?TAGS=' |
                        grep -q ':dfud:' && return 0
        done
        return 1
}
check "udev: the app's ttyACM tagged dfud" acm_tagged
V1_VERSION=$(device_field "$S" firmware_version || true)
check "dfud: the application reports a firmware version" test -n "$V1_VERSION"

update_to "Intel HEX (app v1 -> v2, jump)" "$FW_DIR/fw-v2.hex" 2
check "dfud: the firmware version changed with v2" test "$(device_field "$S" firmware_version)" != "$V1_VERSION"

# a downgrade is refused without --allow-downgrade, before anything happens on USB
snapshot "$FLASH"
ctl_update "$S" "$FW_DIR/fw-v1.elf" > "$WORK/downgrade.out" 2>&1 && rc=0 || rc=$?
check "downgrade v2 -> v1 refused: exit 1" test "$rc" = 1
check "downgrade refused: org.dfud1.Error.Downgrade" grep -q "(org.dfud1.Error.Downgrade)" "$WORK/downgrade.out"
check "downgrade refused: flash file unchanged" unchanged "$FLASH"
update_to "ELF (v2 -> v1, --allow-downgrade)" "$FW_DIR/fw-v1.elf" 1 --allow-downgrade
update_to "raw .bin --address 0x08000000 (v1 -> v2)" "$FW_DIR/fw-v2.bin" 2 --address 0x08000000 --format bin
update_to "DFU suffix .dfu --address (v2 -> v1)" "$FW_DIR/fw-v1-suffix.dfu" 1 --address 0x08000000 \
        --allow-downgrade
update_to "DfuSe .dfu, --no-incremental --no-verify (v1 -> v2)" "$FW_DIR/fw-v2-dfuse.dfu" 2 \
        --no-incremental --no-verify
N_JOBS=$(last_job_id)
all_succeeded() {
        ctl jobs --json |
                jq_py 'j = json.load(sys.stdin); sys.exit(0 if j and all(x["state"] == "succeeded" for x in j) else 1)'
}
check "dfuctl jobs: every update succeeded" all_succeeded
ctl log "$N_JOBS" > "$WORK/log.txt" 2>&1 || true
check "dfuctl log: the DFU exchange of the last job, in words" grep -qi "dnload" "$WORK/log.txt"

# ---- bad images: InvalidImage, nothing written, no USB re-enumeration ----
# refused NAME FILE [OPTIONS...]
refused() {
        local name=$1 file=$2 rc=0
        shift 2
        snapshot "$FLASH"
        udev_mark
        ctl_update "$S" "$file" "$@" > "$WORK/refused.out" 2>&1 || rc=$?
        grep -q "(org.dfud1.Error.InvalidImage)" "$WORK/refused.out" || cat "$WORK/refused.out"
        check "bad image ($name): dfuctl exits 1" test "$rc" = 1
        check "bad image ($name): org.dfud1.Error.InvalidImage" \
                grep -q "(org.dfud1.Error.InvalidImage)" "$WORK/refused.out"
        sleep 0.5
        check "bad image ($name): flash file unchanged" unchanged "$FLASH"
        check "bad image ($name): no USB re-enumeration" not udev_saw_reenumeration 0483 df11 1
        check "bad image ($name): the app still runs" usb_dev 0483 5740
}
head -c 1000 "$FW_DIR/fw-v1-dfuse.dfu" > "$WORK/truncated.dfu"
refused "truncated DfuSe" "$WORK/truncated.dfu"
cp "$FW_DIR/fw-v1-suffix.dfu" "$WORK/badcrc.dfu"
# the CRC is the suffix's last 4 bytes
printf '\x00\x00\x00\x00' |
        dd of="$WORK/badcrc.dfu" bs=1 seek=$(($(stat -c %s "$WORK/badcrc.dfu") - 4)) conv=notrunc 2>/dev/null
refused "DFU suffix with a bad CRC" "$WORK/badcrc.dfu" --address 0x08000000
sed '3s/..$/00/' "$FW_DIR/fw-v1.hex" > "$WORK/badsum.hex"
refused "Intel HEX checksum" "$WORK/badsum.hex"
cp "$FW_DIR/fw-v1.elf" "$WORK/x86.elf"
printf '\x3e' | dd of="$WORK/x86.elf" bs=1 seek=18 conv=notrunc status=none   # e_machine: x86-64
refused "ELF for another architecture" "$WORK/x86.elf"
refused "raw .bin outside the flash" "$FW_DIR/fw-v1.bin" --address 0x20000000
head -c 2000000 /dev/urandom > "$WORK/too-big.bin"
refused "2 MB image for 1 MiB of flash" "$WORK/too-big.bin" --address 0x08000000

# ---- an unprivileged user may look but not touch ----
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
chmod 755 "$WORK"
cp "$FW_DIR/fw-v1-dfuse.dfu" "$WORK/user.dfu"
chmod 644 "$WORK/user.dfu"
nobody_sees() { as_nobody "$DFUCTL" devices | grep -q "$S"; }
check "nobody: dfuctl devices lists the device" nobody_sees
check "nobody: dfuctl jobs works" as_nobody "$DFUCTL" jobs
snapshot "$FLASH"
as_nobody "$DFUCTL" --no-ask-password update "$S" "$WORK/user.dfu" --allow-downgrade > "$WORK/nobody.out" 2>&1 \
        && rc=0 || rc=$?
check "nobody: dfuctl update exits 1" test "$rc" = 1
check "nobody: org.dfud1.Error.AccessDenied" grep -q "(org.dfud1.Error.AccessDenied)" "$WORK/nobody.out"
check "nobody: flash file unchanged" unchanged "$FLASH"
as_nobody "$DFUCTL" --no-ask-password enter-bootloader "$S" > "$WORK/nobody2.out" 2>&1 && rc=0 || rc=$?
check "nobody: enter-bootloader exits 1" test "$rc" = 1
check "nobody: enter-bootloader refused with AccessDenied" grep -q "(org.dfud1.Error.AccessDenied)" "$WORK/nobody2.out"
vstm32_stop
check "f4: unplugged" wait_usb_gone 0483:5740

# ---- f072-rom: leaving DFU mode needs GETSTATUS polls through the manifestation ----
S2=F072C0FFEE01
FLASH2=$WORK/f072.bin
vstm32_start f072 --profile f072-rom --flash "$FLASH2" --serial "$S2" --time-scale "$TIME_SCALE" \
        --stats "$WORK/f072.json"
check "f072-rom enumerates" wait_usb 0483:df11
check "dfud lists the f072 ROM" wait_device "$S2" dfu
udev_mark
check "f072: dfuctl update DfuSe v1 exits 0" update_ok f072 "$S2" "$FW_DIR/fw-v1-dfuse.dfu"
check "f072: flash holds v1 byte-exact" flash_matches "$FLASH2" "$FW_DIR/fw-v1.bin" 0
check "f072: left DFU mode: USB disconnect, the app enumerates (udev)" udev_saw_reenumeration 0483 5740 20
check "f072: the application runs v1 (bcdDevice 0001)" test "$(usb_attr 0483:5740 bcdDevice)" = 0001
check "f072: dfud lists the application" wait_device "$S2" application
vstm32_stop

# ---- l4-rom: stalls a GETSTATUS sent before its bwPollTimeout while busy ----
# Time scale 0.5 keeps a 2 KiB page programming (5.8 ms) longer than a control round trip, so the
# engine's early poll really is stalled (through usbfs: -EPIPE) and it switches to learned waits.
S3=L4C0FFEE0001
FLASH3=$WORK/l4.bin
vstm32_start l4 --profile l4-rom --flash "$FLASH3" --serial "$S3" --time-scale 0.5 --stats "$WORK/l4.json"
check "l4-rom enumerates" wait_usb 0483:df11
check "dfud lists the l4 ROM" wait_device "$S3" dfu
check "l4: dfuctl update Intel HEX v2 exits 0" update_ok l4 "$S3" "$FW_DIR/fw-v2.hex"
check "l4: flash holds v2 byte-exact" flash_matches "$FLASH3" "$FW_DIR/fw-v2.bin" 0
ctl log "$(last_job_id)" > "$WORK/l4-log.txt" 2>&1 || true
check "l4: the job log tells the early poll was stalled and waits are learned" \
        grep -q "busy time learned per kind of operation" "$WORK/l4-log.txt"
check "l4: dfud lists the application" wait_device "$S3" application
vstm32_stop
l4_stalls() {
        python3 -c 'import json, sys; n = json.load(open(sys.argv[1]))["early_poll_stalls"]; print(f"figure: l4-rom early-poll stalls {n}"); sys.exit(0 if n > 0 else 1)' "$WORK/l4.json"
}
check "l4: vstm32 stalled early polls, and the update still succeeded" l4_stalls
