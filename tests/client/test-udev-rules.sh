#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Parses udev/70-dfud.rules with udev's own parser: `udevadm verify` where it exists (systemd >= 253),
# otherwise `udevadm test` in a private mount namespace where only our rules file is visible (Debian 12's
# udevadm has no verify). A deliberately broken copy must be reported, or the check proves nothing.
#   test-udev-rules.sh RULES
set -u
RULES=$1
. "$(dirname "$0")/lib-bus.sh"

command -v udevadm >/dev/null || skip "udevadm not installed"

if udevadm verify --help >/dev/null 2>&1; then
        udevadm verify --resolve-names=never "$RULES" || fail "udevadm verify rejected $RULES"
        printf 'FOO=="bar", GOTO="nowhere"\n' >"$TMP/99-bad.rules"
        udevadm verify --resolve-names=never "$TMP/99-bad.rules" >/dev/null 2>&1 \
                && fail "udevadm verify accepted a broken file"
        echo OK
        exit 0
fi

# parse_rules FILE LOG: in a private mount namespace, only FILE in the rules directories and /run on a
# tmpfs. The device parsed against is a CPU: it has no device node, so nothing under /dev is touched.
DEVICE=/sys/devices/system/cpu/cpu0
parse_rules() {
        local dir=$TMP/ns.$RANDOM
        mkdir -p "$dir/empty" "$dir/rules"
        cp "$1" "$dir/rules/"
        local script="
                set -e
                mount -t tmpfs tmpfs /run
                mkdir -p /run/udev/rules.d
                mount --bind '$dir/rules' /run/udev/rules.d
                for d in /etc/udev/rules.d /lib/udev/rules.d /usr/lib/udev/rules.d /usr/local/lib/udev/rules.d; do
                        if [ -d \$d ]; then mount --bind '$dir/empty' \$d; fi
                done
                udevadm test --action=add $DEVICE
        "
        unshare -m --propagation private sh -c "$script" >"$2" 2>&1 && return 0
        unshare -rm --propagation private sh -c "$script" >"$2" 2>&1
}

[ -e $DEVICE ] || skip "no $DEVICE to run udevadm test on"
parse_rules "$RULES" "$TMP/test.log" || { cat "$TMP/test.log"; skip "cannot make a private mount namespace"; }
name=$(basename "$RULES")
grep -q "Reading rules file: /run/udev/rules.d/$name" "$TMP/test.log" \
        || { cat "$TMP/test.log"; fail "udevadm did not read $name"; }
if grep -E "^/run/udev/rules.d/$name:[0-9]+" "$TMP/test.log"; then
        fail "udevadm reported problems in $name"
fi

printf 'FOO=="bar", BAZ+="x"\nSUBSYSTEM=="usb" GOTO="nowhere"\n' >"$TMP/99-bad.rules"
parse_rules "$TMP/99-bad.rules" "$TMP/bad.log"
grep -qE "^/run/udev/rules.d/99-bad.rules:[0-9]+" "$TMP/bad.log" \
        || { cat "$TMP/bad.log"; fail "udevadm did not report a broken rules file; the check proves nothing"; }
echo OK
