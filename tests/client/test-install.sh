#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `meson install --destdir` puts every file of dfuctl, the unit, D-Bus, polkit, udev and the man pages
# where the configured directories say, and the installed unit starts the installed daemon.
#   test-install.sh MESON BUILD_ROOT UNIT_PATH DFUD_PATH -- EXPECTED_PATH...
set -u
MESON=$1
BUILD_ROOT=$2
UNIT=$3
DFUD=$4
shift 5
. "$(dirname "$0")/lib-bus.sh"

DEST=$TMP/root
"$MESON" install -C "$BUILD_ROOT" --destdir "$DEST" --no-rebuild --quiet >"$TMP/install.log" 2>&1 \
        || { cat "$TMP/install.log"; fail "meson install failed"; }

for p in "$@"; do
        [ -f "$DEST$p" ] || { (cd "$DEST" && find . -type f | sort); fail "not installed: $p"; }
        echo "installed: $p"
done

grep -qE '@[a-z_]+@' "$DEST$UNIT" && fail "unsubstituted @variable@ in $UNIT"
grep -qx "ExecStart=$DFUD" "$DEST$UNIT" || fail "$UNIT does not start $DFUD"
if [ -e "$DEST$DFUD" ]; then
        [ -x "$DEST$DFUD" ] || fail "$DFUD is not executable"
        echo "installed: $DFUD (ExecStart matches)"
else
        echo "note: $DFUD is not installed by this build (daemon not built yet), ExecStart not cross-checked"
fi
echo OK
