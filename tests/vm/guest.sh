#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Stage 2 of the VM bench, run as PID 1 in the chroot (host tree over an overlay): a minimal system
# (udevd, system bus, lo), then the test script with the host's argv, cwd and environment. The exit
# code goes to the job share; then power off.
set -u
job=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

poweroff_now() {
        sync
        echo o > /proc/sysrq-trigger
        sleep 30
}
trap poweroff_now EXIT

# The host's /run and /tmp contents are stale here: fresh tmpfs for /run (never over a shared path).
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/lock /run/udev /run/dbus /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd 2>/dev/null || true
# udev's modprobe calls need this kernel's modules, which live in the cache on the host.
kmods=$(cat "$job/modules")
mkdir -p "/lib/modules/$(uname -r)"
mount --bind "$kmods" "/lib/modules/$(uname -r)"
echo 0 > /proc/sys/kernel/printk_ratelimit 2>/dev/null || true
hostname dfud-vm 2>/dev/null || true
ip link set lo up

/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1
udevadm trigger --action=add --type=subsystems >/dev/null 2>&1
# Coldplug only what tests look at: the whole tree makes udev load drivers for QEMU's legacy
# hardware (floppy, ata, kvm...), seconds under TCG.
udevadm trigger --action=add --type=devices --subsystem-match=usb --subsystem-match=tty \
        --subsystem-match=misc --subsystem-match=net >/dev/null 2>&1
udevadm settle --timeout=60
dbus-daemon --system --fork

# The host's environment and working directory.
while IFS= read -r -d '' kv; do
        case "${kv%%=*}" in
        PWD|OLDPWD|SHLVL|_|PATH|HOSTNAME|TERM) ;;
        *) export "$kv" ;;
        esac
done < "$job/env"
export TERM=dumb
mapfile -d '' -t argv < "$job/argv"
cd "$(cat "$job/cwd")" || exit 1
stty -onlcr 2>/dev/null || true

echo "@@DFUD-VM-READY uptime=$(cut -d' ' -f1 /proc/uptime)@@"
rc=0
/bin/bash "${argv[@]}" </dev/null || rc=$?
echo "$rc" > "$job/rc"
