#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd-analyze verify on dfud.service. The unit checked is the same template configured with the build
# tree's daemon as ExecStart (verify insists the executable exists); any diagnostic fails the test, as
# verify returns 0 even for unknown keys.
#   test-unit-verify.sh UNIT DFUD
set -u
UNIT=$1
DFUD=$2
. "$(dirname "$0")/lib-bus.sh"

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
[ -x "$DFUD" ] || skip "$DFUD not built yet"

systemd-analyze verify --man=no "$UNIT" >"$TMP/verify.log" 2>&1
rc=$?
cat "$TMP/verify.log"
[ $rc = 0 ] || fail "systemd-analyze verify exited $rc"
grep -q "dfud.service" "$TMP/verify.log" && fail "systemd-analyze verify complained about dfud.service"

# and the checker notices mistakes: a misspelt key must be reported
mkdir -p "$TMP/bad"
sed 's/^ProtectHome=/ProtectHoem=/' "$UNIT" >"$TMP/bad/dfud.service"
systemd-analyze verify --man=no "$TMP/bad/dfud.service" 2>&1 | grep -q "ProtectHoem" \
        || fail "systemd-analyze verify did not report a bad key; the check proves nothing"
echo OK
