#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The D-Bus and polkit files: well-formed (xmllint; the polkit DTD where installed), the polkit action ids
# are the contract's, and a dbus-daemon configured like the system bus loads org.dfud1.conf and the
# activation file. Run as root, it also checks what the policy means: root owns org.dfud1, an unprivileged
# user may not own it but may call dfud (the daemon authorizes mutations through polkit).
#   test-dbus-policy.sh CONF ACTIVATION POLKIT DFUD_DBUS_H DFUCTL FAKE_DFUD
set -u
CONF=$1
ACTIVATION=$2
POLKIT=$3
HEADER=$4
DFUCTL=$5
FAKE=$6
. "$(dirname "$0")/lib-bus.sh"

if command -v xmllint >/dev/null; then
        xmllint --noout --nonet "$CONF" || fail "$CONF is not well-formed"
        if [ -e /usr/share/polkit-1/policyconfig-1.dtd ]; then
                xmllint --noout --nonet --dtdvalid /usr/share/polkit-1/policyconfig-1.dtd "$POLKIT" \
                        || fail "$POLKIT does not follow policyconfig-1.dtd"
        else
                xmllint --noout --nonet "$POLKIT" || fail "$POLKIT is not well-formed"
        fi
else
        echo "xmllint not installed, XML not checked"
fi

# the action ids dfud checks are the ones declared
for define in DFUD_POLKIT_ACTION_UPDATE DFUD_POLKIT_ACTION_MANAGE; do
        id=$(sed -n "s/^#define $define \"\(.*\)\"/\1/p" "$HEADER")
        [ -n "$id" ] || fail "$define not in $HEADER"
        grep -q "<action id=\"$id\">" "$POLKIT" || fail "polkit action $id is not declared in $POLKIT"
done

command -v dbus-daemon >/dev/null || skip "dbus-daemon not installed"
command -v busctl >/dev/null || skip "busctl not installed"

# A system-bus-like daemon: deny by default as /usr/share/dbus-1/system.conf does, plus our policy.
chmod 755 "$TMP"
mkdir -p "$TMP/services"
cp "$ACTIVATION" "$TMP/services/"
cat >"$TMP/system.conf" <<EOB
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$TMP/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$TMP/services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny send_destination="*" eavesdrop="true"/>
    <deny eavesdrop="true"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>$CONF</include>
</busconfig>
EOB
dbus-daemon --config-file="$TMP/system.conf" --nofork --nopidfile --print-address=3 3>"$TMP/bus.address" \
        2>"$TMP/daemon.err" &
PIDS+=($!)
for _ in $(seq 100); do
        [ -s "$TMP/bus.address" ] && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.05
done
BUS_ADDRESS=$(head -n1 "$TMP/bus.address" 2>/dev/null)
[ -n "$BUS_ADDRESS" ] || { cat "$TMP/daemon.err"; fail "dbus-daemon rejected the configuration"; }

busctl --address="$BUS_ADDRESS" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
        ListActivatableNames >"$TMP/names" || fail "ListActivatableNames"
grep -q '"org.dfud1"' "$TMP/names" || { cat "$TMP/names"; fail "the activation file was not loaded"; }

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
        echo "not root (or no setpriv): policy semantics not checked"
        echo OK
        exit 0
fi
as_nobody() {
        setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}
as_nobody "$DFUCTL" --version >/dev/null 2>&1 || { echo "nobody cannot run $DFUCTL: policy semantics not checked"; echo OK; exit 0; }

# root may own the name
"$FAKE" --bus-address "$BUS_ADDRESS" &
PIDS+=($!)
wait_for_name org.dfud1

# anybody may read, and may call the mutating methods (dfud asks polkit, not the bus)
run 0 as_nobody "$DFUCTL" --bus-address "$BUS_ADDRESS" devices
contains "$OUT" "f4-rom-0001"
head -c 1024 /dev/zero >"$TMP/fw.bin"
chmod 644 "$TMP/fw.bin"
run 0 as_nobody "$DFUCTL" --bus-address "$BUS_ADDRESS" update f4-rom-0001 "$TMP/fw.bin"
run 0 as_nobody busctl --address="$BUS_ADDRESS" introspect org.dfud1 /org/dfud1

# but only root may own org.dfud1
run 1 as_nobody busctl --address="$BUS_ADDRESS" call org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus RequestName su org.dfud1 0
contains "$ERR" "Access denied" "busctl error"

# and nobody may send dfud anything outside its interfaces
run 1 as_nobody busctl --address="$BUS_ADDRESS" call org.dfud1 /org/dfud1 org.example.Other Frob
contains "$ERR" "Access denied" "busctl error"
echo OK
