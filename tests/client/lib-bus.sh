# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the client tests: a private dbus-daemon per test (never the system bus), and small checks.
# Exit code 77 is meson's "skipped".

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfud-client-test.XXXXXX")
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do
                kill "$p" 2>/dev/null
        done
        for p in "${PIDS[@]}"; do
                wait "$p" 2>/dev/null
        done
        rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}
skip() {
        echo "SKIP: $*" >&2
        exit 77
}

# start_private_bus: sets BUS_ADDRESS. Its own config, so no session services or user policy leak in.
start_private_bus() {
        command -v dbus-daemon >/dev/null || skip "dbus-daemon not installed"
        cat >"$TMP/bus.conf" <<EOB
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=$TMP</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOB
        dbus-daemon --config-file="$TMP/bus.conf" --nofork --nopidfile --print-address=3 3>"$TMP/bus.address" &
        PIDS+=($!)
        for _ in $(seq 100); do
                [ -s "$TMP/bus.address" ] && break
                sleep 0.05
        done
        BUS_ADDRESS=$(head -n1 "$TMP/bus.address")
        [ -n "$BUS_ADDRESS" ] || fail "dbus-daemon did not start"
        export BUS_ADDRESS
}

# wait_for_name NAME: until NAME has an owner on the private bus (up to 10 s).
wait_for_name() {
        for _ in $(seq 200); do
                if busctl --address="$BUS_ADDRESS" status "$1" >/dev/null 2>&1; then
                        return 0
                fi
                sleep 0.05
        done
        fail "$1 did not appear on the bus"
}

# run EXPECTED_RC CMD...: runs CMD with stdout/stderr in $OUT/$ERR and checks the exit code.
run() {
        local expected=$1 rc
        shift
        "$@" >"$TMP/out" 2>"$TMP/err"
        rc=$?
        OUT=$(cat "$TMP/out")
        ERR=$(cat "$TMP/err")
        if [ "$rc" != "$expected" ]; then
                echo "--- stdout of: $*" >&2
                echo "$OUT" >&2
                echo "--- stderr" >&2
                echo "$ERR" >&2
                fail "'$*' exited $rc, expected $expected"
        fi
}

# contains HAYSTACK NEEDLE [what]
contains() {
        case "$1" in
        *"$2"*) ;;
        *) printf '%s\n' "--- in:" "$1" >&2; fail "${3:-output} does not contain '$2'" ;;
        esac
}
not_contains() {
        case "$1" in
        *"$2"*) printf '%s\n' "--- in:" "$1" >&2; fail "${3:-output} contains '$2'" ;;
        esac
}

# json_check JSON PYTHON-EXPR: the expression (over `j`) must be true.
json_check() {
        python3 -c '
import json, sys
j = json.loads(sys.argv[1])
if not eval(sys.argv[2]):
    print("JSON check failed:", sys.argv[2], "\non:", json.dumps(j, indent=1), file=sys.stderr)
    sys.exit(1)
' "$1" "$2" || fail "JSON check"
}
