#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds one test firmware in every file format dfud loads, with real tools only:
#   arm-none-eabi-gcc/ld  NAME.elf        Cortex-M4 program (firmware/app.c) linked at BASE, SIZE bytes
#   objcopy -O binary     NAME.bin
#   objcopy -O ihex       NAME.hex
#   objcopy -O srec       NAME.srec, then srec_cat -> NAME-srec.hex
#   dfu-suffix -a         NAME-suffix.dfu (NAME.bin + DFU suffix 0483:df11)
#   dfuse-pack -b         NAME-dfuse.dfu  (DfuSe file, one target on alt 0)
#   with --dual-core:     NAME-dual.elf / NAME-dual.hex, STM32H7-style: the same CM7 image plus a CM4
#                         part at BASE + 0x100000 (two PT_LOAD segments)
# The image is padded to SIZE with deterministic pseudo-random bytes (xorshift32 seeded with
# SEED * 2654435761 + VERSION), and carries the vstm32 application header at offset 0x400:
# magic "VS32", VERSION, length = SIZE, crc = CRC-32 (zlib) of the image with the crc field as 0.
# The header and padding are patched into the ELF with objcopy --update-section before any other
# format is derived from it, so every format carries identical bytes.
#
# Usage: make-firmware.sh --version V --out DIR [--size BYTES] [--base ADDR] [--seed N] [--name NAME]
#                         [--dual-core]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version= out= size=16384 base=0x08000000 seed=1 name=firmware dual=0
CROSS=${CROSS:-arm-none-eabi-}

usage() {
        sed -n '3,20s/^# \{0,1\}//p' "$0" >&2
        exit 2
}

while [ $# -gt 0 ]; do
        case "$1" in
        --version) version=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --dual-core) dual=1; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
        esac
done
[ -n "$version" ] && [ -n "$out" ] || usage
# Normalise numbers (decimal or 0x hex) and sanity-check them.
version=$((version)) size=$((size)) base=$((base)) seed=$((seed))
if [ "$size" -lt 2048 ] || [ "$size" -gt $((16 * 1024 * 1024)) ] || [ $((size % 4)) -ne 0 ]; then
        echo "--size must be a multiple of 4 between 2048 and 16 MiB" >&2
        exit 2
fi
[ "$version" -ge 0 ] && [ "$version" -le 4294967295 ] || { echo "--version must fit 32 bits" >&2; exit 2; }
base_hex=$(printf '0x%08X' "$base")
base2_hex=$(printf '0x%08X' $((base + 0x100000)))

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cflags=(-mcpu=cortex-m4 -mthumb -Os -g0 -ffreestanding -nostdlib -nostartfiles -fno-common
        -ffunction-sections -Wall -Wextra -Werror "-DFW_VERSION=${version}u")
ldflags=(-Wl,--gc-sections -Wl,--no-warn-rwx-segments -Wl,--build-id=none)

subst() {
        sed -e "s/@BASE@/$base_hex/g" -e "s/@BASE2@/$base2_hex/g" -e "s/@SIZE@/$size/g" "$1" > "$2"
}

subst "$here/firmware/app.ld.in" "$tmp/app.ld"
"${CROSS}gcc" "${cflags[@]}" -T "$tmp/app.ld" "${ldflags[@]}" -o "$tmp/app.elf" "$here/firmware/app.c"
"${CROSS}objcopy" -O binary "$tmp/app.elf" "$tmp/unpatched.bin"
pad_start=$("${CROSS}nm" "$tmp/app.elf" | awk '$3 == "__pad_start" { print $1 }')

# Header and padding: the only step not done by a binary tool.
python3 - "$tmp" "$((0x$pad_start - base))" "$version" "$size" "$seed" <<'PY'
import struct, sys, zlib
tmp, pad_off, version, size, seed = sys.argv[1], *map(int, sys.argv[2:])
img = bytearray(open(tmp + '/unpatched.bin', 'rb').read())
assert len(img) == size, 'linked image is %d bytes, expected %d' % (len(img), size)
magic = struct.unpack_from('<I', img, 0x400)[0]
assert magic == 0x32335356, 'no VS32 header at 0x400'
x = (seed * 2654435761 + version) & 0xFFFFFFFF or 0x9E3779B9
pad = bytearray()
while len(pad) < size - pad_off:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    pad += struct.pack('<I', x)
img[pad_off:] = pad[:size - pad_off]
struct.pack_into('<IIII', img, 0x400, 0x32335356, version, size, 0)
struct.pack_into('<I', img, 0x40C, zlib.crc32(img) & 0xFFFFFFFF)
open(tmp + '/header.bin', 'wb').write(img[0x400:0x410])
open(tmp + '/pad.bin', 'wb').write(img[pad_off:])
open(tmp + '/expected.bin', 'wb').write(img)
PY

update=(--update-section ".vs32_header=$tmp/header.bin" --update-section ".pad=$tmp/pad.bin")
"${CROSS}objcopy" "${update[@]}" "$tmp/app.elf" "$out/$name.elf"
"${CROSS}objcopy" -O binary "$out/$name.elf" "$out/$name.bin"
if ! cmp -s "$out/$name.bin" "$tmp/expected.bin"; then
        echo "objcopy output differs from the patched image" >&2
        exit 1
fi
"${CROSS}objcopy" -O ihex "$out/$name.elf" "$out/$name.hex"
"${CROSS}objcopy" -O srec "$out/$name.elf" "$out/$name.srec"
srec_cat "$out/$name.srec" -Motorola -o "$out/$name-srec.hex" -Intel
cp "$out/$name.bin" "$tmp/suffix.dfu"
dfu-suffix -v 0483 -p df11 -a "$tmp/suffix.dfu" > /dev/null
mv "$tmp/suffix.dfu" "$out/$name-suffix.dfu"
dfuse-pack -b "$base_hex:$out/$name.bin" -D 0x0483:0xdf11 "$tmp/dfuse.dfu" > /dev/null
mv "$tmp/dfuse.dfu" "$out/$name-dfuse.dfu"

if [ "$dual" = 1 ]; then
        subst "$here/firmware/app-dual.ld.in" "$tmp/app-dual.ld"
        "${CROSS}gcc" "${cflags[@]}" -T "$tmp/app-dual.ld" "${ldflags[@]}" -o "$tmp/dual.elf" \
                "$here/firmware/app.c"
        "${CROSS}objcopy" "${update[@]}" "$tmp/dual.elf" "$out/$name-dual.elf"
        "${CROSS}objcopy" -O ihex "$out/$name-dual.elf" "$out/$name-dual.hex"
fi
