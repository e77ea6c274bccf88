#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building and testing dfud needs on Debian 12, only when something is missing.
set -eu
PKGS=(
        # build
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev llvm
        libusb-1.0-0-dev libudev-dev libsystemd-dev libjson-c-dev
        # test firmware from real tools
        gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi srecord dfu-util python3
        # VM bench: QEMU + stock Debian kernel + USB/IP
        qemu-system-x86 busybox-static cpio kmod udev dbus usbutils
        # system bus integration
        policykit-1
)
missing=()
for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
