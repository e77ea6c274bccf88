#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The bench's guest script for tests/vm/run: runs bench.py as root in the VM (see bench.py for what it
# measures). Results go to $VM_OUT/results.json; tests/bench/run turns them into the table.
set -u
: "${DFUD_BUILD_DIR:?run through tests/bench/run}"
: "${VM_OUT:?run through tests/vm/run}"
[ "$(id -u)" = 0 ] || { echo "must run as root (inside tests/vm/run)"; exit 1; }
[ -w /sys/devices/platform/vhci_hcd.0/attach ] || { echo "no vhci_hcd: run through tests/vm/run"; exit 1; }
exec /usr/bin/python3 -u "$(dirname "$0")/bench.py" "$@"
