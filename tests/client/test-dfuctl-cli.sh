#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dfuctl's command line without a bus: help, version, usage errors and their exit codes.
#   test-dfuctl-cli.sh DFUCTL VERSION
set -u
DFUCTL=$1
VERSION=$2
. "$(dirname "$0")/lib-bus.sh"

run 0 "$DFUCTL" --help
for verb in devices "info DEVICE" "update DEVICE FILE" jobs "cancel JOB" watch "log JOB" "enter-bootloader DEVICE"; do
        contains "$OUT" "  $verb " "--help"
done
for opt in --json --system --user --bus-address --address --format --no-verify --no-incremental \
           --allow-downgrade --no-wait --version; do
        contains "$OUT" " $opt" "--help"
done
[ -z "$ERR" ] || fail "--help wrote to stderr"
run 0 "$DFUCTL" -h
run 0 "$DFUCTL" --version
[ "$OUT" = "dfuctl $VERSION" ] || fail "--version printed '$OUT'"

run 2 "$DFUCTL"
[ "$ERR" = "dfuctl: missing command; see 'dfuctl --help'" ] || fail "no verb: $ERR"
run 2 "$DFUCTL" frobnicate
[ "$ERR" = "dfuctl: unknown command 'frobnicate'; see 'dfuctl --help'" ] || fail "unknown verb: $ERR"
run 2 "$DFUCTL" --frobnicate devices
[ "$ERR" = "dfuctl: unknown option '--frobnicate'" ] || fail "unknown option: $ERR"
run 2 "$DFUCTL" update dev
[ "$ERR" = "dfuctl: 'update' needs a DEVICE and a FILE" ] || fail "update dev: $ERR"
run 2 "$DFUCTL" info
[ "$ERR" = "dfuctl: 'info' needs a DEVICE argument" ] || fail "info: $ERR"
run 2 "$DFUCTL" devices --no-verify
[ "$ERR" = "dfuctl: --no-verify only applies to 'update'" ] || fail "devices --no-verify: $ERR"
run 2 "$DFUCTL" update d f --format zip
contains "$ERR" "unknown image format 'zip'"
[ -z "$OUT" ] || fail "usage errors wrote to stdout"

# no bus there: a clear message and exit code 1, not a usage error
run 1 "$DFUCTL" --bus-address "unix:path=$TMP/nothing-here" devices
[ "$ERR" = "dfuctl: Failed to connect to the given bus: No such file or directory" ] || fail "no bus: $ERR"
echo OK
