# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the dfud end-to-end VM scripts (sourced after tests/vm/lib.sh, inside the guest as root):
# dfud on the guest's system bus with the project's D-Bus policy and udev rules installed, dfuctl, and
# waiting for devices and jobs.

DFUD=${DFUD:-$DFUD_BUILD_DIR/daemon/dfud}
DFUCTL=${DFUCTL:-$DFUD_BUILD_DIR/client/dfuctl}
FW_DIR=${FW_DIR:-$DFUD_BUILD_DIR/tests/data}
SRC_DIR=${DFUD_SOURCE_DIR:-$(cd "$VM_SRC/../.." && pwd)}
DFUD_PID=
DFUD_STATE=$WORK/dfud-state
DFUD_CONF=$WORK/dfud-conf
DFUD_NSTART=0
mkdir -p "$DFUD_STATE" "$DFUD_CONF"

for f in "$DFUD" "$DFUCTL" "$VSTM32"; do
        [ -x "$f" ] || { echo "not built: $f"; exit 1; }
done

# The guest root is an overlay with a writable upper layer: install the D-Bus policy, the polkit actions
# and the udev rules the way a package would, make the system bus and udev read them, and start polkitd
# (there is no systemd to activate it), so authorization is the real thing.
dfud_install_system_files() {
        mkdir -p /etc/dbus-1/system.d /etc/udev/rules.d /usr/share/polkit-1/actions
        cp "$SRC_DIR/systemd/org.dfud1.conf" /etc/dbus-1/system.d/
        cp "$SRC_DIR/systemd/org.dfud1.policy" /usr/share/polkit-1/actions/
        cp "$SRC_DIR/udev/70-dfud.rules" /etc/udev/rules.d/
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig \
                >/dev/null
        udevadm control --reload
        if [ -x /usr/lib/polkit-1/polkitd ]; then
                /usr/lib/polkit-1/polkitd --no-debug >> "$WORK/polkitd.log" 2>&1 &
                local n=300
                while [ $n -gt 0 ]; do
                        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                                NameHasOwner s org.freedesktop.PolicyKit1 2>/dev/null | grep -q true && return 0
                        sleep 0.1
                        n=$((n - 1))
                done
                echo "polkitd did not start:"
                cat "$WORK/polkitd.log"
                return 1
        fi
}

# dfud_start [ARGS...]: dfud on the system bus, journal in $DFUD_STATE, configuration in $DFUD_CONF;
# returns once org.dfud1 answers.
dfud_start() {
        DFUD_NSTART=$((DFUD_NSTART + 1))
        "$DFUD" --state-dir "$DFUD_STATE" --config-dir "$DFUD_CONF" --debug "$@" \
                >> "$WORK/dfud.log" 2>&1 &
        DFUD_PID=$!
        local n=200
        while [ $n -gt 0 ]; do
                busctl --system call org.dfud1 /org/dfud1 org.dfud1.Manager Version >/dev/null 2>&1 && return 0
                kill -0 "$DFUD_PID" 2>/dev/null || return 1
                sleep 0.05
                n=$((n - 1))
        done
        return 1
}

dfud_stop() {
        [ -n "$DFUD_PID" ] || return 0
        kill -TERM "$DFUD_PID" 2>/dev/null || true
        wait "$DFUD_PID" 2>/dev/null || true
        DFUD_PID=
}

dfud_kill() {
        [ -n "$DFUD_PID" ] || return 0
        kill -KILL "$DFUD_PID" 2>/dev/null || true
        wait "$DFUD_PID" 2>/dev/null || true
        DFUD_PID=
}

# A hung daemon must not eat the boot's whole time budget: every call has its own limit (and -k, as
# dfuctl answers SIGTERM by cancelling the job and waiting for its end), updates a longer one.
ctl() { timeout -k 5 30 "$DFUCTL" --no-ask-password "$@"; }
ctl_update() { timeout -k 10 300 "$DFUCTL" --no-ask-password update "$@"; }

# dfud_write_conf JSON: the configuration dfud reads at its next start.
dfud_write_conf() { printf '%s\n' "$1" > "$DFUD_CONF/dfud.conf"; }

# py EXPR-PROGRAM ARGS...: python3 with json imported.
jq_py() { python3 -c "import json, sys; $1" "${@:2}"; }

# device_field SERIAL KEY: a property (snake_case) of the device with that serial, from `dfuctl devices
# --json`; fails when there is none.
device_field() {
        ctl devices --json 2>/dev/null | jq_py '
j = json.load(sys.stdin)
d = [d for d in j if d.get("serial") == sys.argv[1]]
if not d: sys.exit(1)
print(d[0].get(sys.argv[2], ""))' "$1" "$2"
}

# wait_device SERIAL MODE [SECONDS]: until dfud lists the device in that mode (dfu, application).
wait_device() {
        local end=$((SECONDS + ${3:-20}))
        while [ $SECONDS -lt $end ]; do
                [ "$(device_field "$1" mode 2>/dev/null)" = "$2" ] && return 0
                sleep 0.1
        done
        echo "device $1 never reached mode $2; dfuctl devices:"
        ctl devices
        return 1
}

# job_field ID KEY
job_field() {
        ctl jobs --json 2>/dev/null | jq_py '
j = [x for x in json.load(sys.stdin) if x["id"] == int(sys.argv[1])]
if not j: sys.exit(1)
print(j[0].get(sys.argv[2], ""))' "$1" "$2"
}

# wait_job ID PYTHON-CONDITION-ON-j [SECONDS]: e.g. 'j["state"] == "writing" and j["bytes_done"] > 0'.
wait_job() {
        local end=$((SECONDS + ${3:-30}))
        while [ $SECONDS -lt $end ]; do
                if ctl jobs --json 2>/dev/null | jq_py '
jobs = [x for x in json.load(sys.stdin) if x["id"] == int(sys.argv[1])]
sys.exit(0 if jobs and eval(sys.argv[2], {"j": jobs[0]}) else 1)' "$1" "$2"; then
                        return 0
                fi
                sleep 0.1
        done
        echo "job $1 never satisfied: $2"
        ctl jobs
        return 1
}

# last_job_id: the highest job id dfud lists.
last_job_id() { ctl jobs --json | jq_py 'print(max([x["id"] for x in json.load(sys.stdin)] or [0]))'; }

# update_ok NAME SERIAL IMAGE [DFUCTL-OPTIONS...]: `dfuctl update` exits 0; output in $WORK/NAME.out.
update_ok() {
        local name=$1 serial=$2 image=$3
        shift 3
        ctl_update "$serial" "$image" "$@" > "$WORK/$name.out" 2>&1 && return 0
        echo "dfuctl update $serial $(basename "$image") $*:"
        cat "$WORK/$name.out"
        return 1
}

# has_tag VID:PID TAG: udev tagged the USB device.
has_tag() {
        local d
        d=$(usb_dev "${1%:*}" "${1#*:}") || return 1
        udevadm info --query=property --path="$d" | grep -E '^(CURRENT_)?TAGS=' | grep -q ":$2:"
}

not() { ! "$@"; }

# wait_grep TEXT FILE: until FILE contains TEXT (5 s).
wait_grep() {
        local n=50
        while [ $n -gt 0 ]; do
                grep -q "$1" "$2" 2>/dev/null && return 0
                sleep 0.1
                n=$((n - 1))
        done
        return 1
}

# snapshot FILE / unchanged FILE: a copy, and whether FILE still equals it.
snapshot() { cp "$1" "$1.before"; }
unchanged() { cmp -s "$1" "$1.before"; }

# dfud must be gone before lib.sh's finish (which keeps the exit status and prints the logs of a failed run,
# dfud.log among them).
trap 'rc_=$?; set +e; dfud_stop; (exit $rc_); finish' EXIT
