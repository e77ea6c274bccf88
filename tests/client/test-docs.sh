#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The docs keep up with the code: the man pages format without warnings, dfuctl(1) covers every command
# and option of `dfuctl --help`, and docs/dbus-api.md covers every method, property, signal, error, option
# and polkit action of the D-Bus contract.
#   test-docs.sh DFUCTL DFUCTL_MAN DFUD_MAN DFUD_CONF_MAN DBUS_API_MD DFUD_DBUS_H XML...
set -u
DFUCTL=$1
MAN1=$2
MAN8=$3
MAN5=$4
API=$5
HEADER=$6
shift 6
. "$(dirname "$0")/lib-bus.sh"

for page in "$MAN1" "$MAN8" "$MAN5"; do
        head -n1 "$page" | grep -q '^\.\\" SPDX-License-Identifier: LGPL-2.1-or-later$' || fail "$page: no SPDX line"
        if command -v groff >/dev/null; then
                LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>"$TMP/groff.err"
                [ -s "$TMP/groff.err" ] && { cat "$TMP/groff.err"; fail "groff warns about $page"; }
        else
                echo "groff not installed, $page not formatted"
        fi
done

# every command and long option of --help is in dfuctl(1) (man pages write '-' as '\-')
MAN1_TEXT=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$MAN1")
"$DFUCTL" --help >"$TMP/help" || fail "dfuctl --help"
for opt in $(grep -oE -- '--[a-z-]+' "$TMP/help" | sort -u); do
        contains "$MAN1_TEXT" "$opt" "dfuctl.1"
done
for verb in $(sed -n '/^Commands:/,/^$/p' "$TMP/help" | awk 'NR > 1 && NF { print $1 }'); do
        grep -qE "^\.BI? $verb( |\$)" <<<"$MAN1_TEXT" || fail "dfuctl.1 does not describe the command $verb"
done

# every member of the introspection XML is documented
API_TEXT=$(cat "$API")
python3 - "$@" >"$TMP/members" <<'PY' || fail "cannot read the introspection XML"
import sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    for iface in ET.parse(path).getroot().iter("interface"):
        print("iface", iface.get("name"))
        for kind in ("method", "signal", "property"):
            for m in iface.iter(kind):
                print(kind, m.get("name"))
PY
while read -r kind name; do
        case $kind in
        iface) contains "$API_TEXT" "## $name" "dbus-api.md" ;;
        method | signal) contains "$API_TEXT" "\`$name(" "dbus-api.md ($kind $name)" ;;
        property) contains "$API_TEXT" "| \`$name\` |" "dbus-api.md (property $name)" ;;
        esac
done <"$TMP/members"
[ -s "$TMP/members" ] || fail "no members found"

# every error, option and polkit action of dfud-dbus.h
for v in $(sed -n 's/^#define DFUD_\(ERROR\|OPTION\|POLKIT_ACTION\)_[A-Z_]* "\([^"]*\)".*/\2/p' "$HEADER"); do
        contains "$API_TEXT" "\`$v\`" "dbus-api.md"
done
for state in $(sed -n '/^#define DFUD_JOB_STATES/,/[^\\]$/p' "$HEADER" | grep -oE '"[a-z-]+"' | tr -d '"'); do
        contains "$API_TEXT" "\`$state\`" "dbus-api.md (job state)"
done
echo OK
