#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the synthetic seeds of corpus/<target>/: valid files (seed-*) and malformed regression cases
(regress-*). The seed-real-* files are tests/data/make-firmware.sh output, copied by hand:
  make-firmware.sh --version 7 --seed 7 --size 2048 --name real --dual-core --out DIR
(image-load seeds carry one leading option byte, see fuzz-image-load.c)."""

import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def suffix(data, vid=0x0483, pid=0xDF11, bcd=0x0100):
    s = data + struct.pack('<HHHH3sB', 0x0200, pid, vid, bcd, b'UFD', 16)
    return s + struct.pack('<I', zlib.crc32(s) ^ 0xFFFFFFFF)


def dfuse(targets, with_suffix_size=True):
    body = b''
    for alt, name, elements in targets:
        el = b''.join(struct.pack('<II', a, len(d)) + d for a, d in elements)
        nm = (name or '').encode().ljust(255, b'\0')
        body += b'Target' + struct.pack('<BI', alt, 1 if name else 0) + nm + struct.pack('<II', len(el), len(elements)) + el
    size = 11 + len(body) + (16 if with_suffix_size else 0)
    return suffix(b'DfuSe' + struct.pack('<BIB', 1, size, len(targets)) + body, bcd=0x011A)


def ihex_record(t, off, data):
    rec = bytes([len(data), off >> 8, off & 0xFF, t]) + data
    return ':' + rec.hex().upper() + '%02X' % ((-sum(rec)) & 0xFF)


def ihex(segments, eol='\n'):
    lines = []
    for addr, data in segments:
        upper = None
        for i in range(0, len(data), 16):
            a = addr + i
            if a >> 16 != upper:
                upper = a >> 16
                lines.append(ihex_record(4, 0, struct.pack('>H', upper)))
            lines.append(ihex_record(0, a & 0xFFFF, data[i:i + 16]))
    lines.append(ihex_record(5, 0, struct.pack('>I', 0x08000199)))
    lines.append(ihex_record(1, 0, b''))
    return eol.join(lines) + eol


def elf(loads):
    """loads: list of (paddr, vaddr, data, memsz)"""
    phoff = 52
    data_off = phoff + 32 * len(loads)
    ph = b''
    blobs = b''
    for paddr, vaddr, d, memsz in loads:
        ph += struct.pack('<IIIIIIII', 1, data_off + len(blobs), vaddr, paddr, len(d), memsz, 5, 4)
        blobs += d
    hdr = b'\x7fELF' + bytes([1, 1, 1]) + b'\0' * 9
    hdr += struct.pack('<HHIIIIIHHHHHH', 2, 40, 1, 0x08000199, phoff, 0, 0x05000200, 52, 32, len(loads), 40, 0, 0)
    return hdr + ph + blobs


def main():
    code = bytes(range(64))
    layouts = [
        '@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg',
        '@Option Bytes  /0x1FFFC000/01*016 g',
        '@OTP Memory /0x1FFF7800/01*512 g,01*016 g',
        '@Device Feature/0xFFFF0000/01*004 g',
        '@Internal Flash  /0x08000000/128*002Kg',
        '@Option Bytes   /0x1FFF7800/01*048 e/0x1FFFF800/01*048 e',
        '@Internal Flash   /0x08000000/256*02Kg',
        '@Partition0 /0x00/1*256Ke',
        '@virtual /0xF1/1*512Ba',
        '@X/0x90000000/16*001Mg,01*512Ba,04*256g',
        '@Top/0xFFFF0000/01*064Kg',
        # regressions: overflow, overlap, junk
        '@X/0xFFFF0000/01*065Kg',
        '@X/0x08000000/02*004Kg/0x08001000/01*004Kg',
        '@X/0x08000000/4294967296*1Kg',
        '@X/0x08000000/1*4096Mg',
        '@Internal Flash/0x08000000/04*016Kg,',
    ]
    for i, s in enumerate(layouts):
        out('dfuse-layout', 'seed-%02d' % i, s)

    two = dfuse([(0, 'Internal Flash', [(0x08000000, code), (0x08004000, code[:8])]),
                 (1, None, [(0x90000000, code[:24])])])
    out('dfuse-file', 'seed-two-targets.dfu', two)
    out('dfuse-file', 'seed-old-size.dfu', dfuse([(0, 'ST...', [(0x08000000, b'ABCDEFGH')])], False))
    out('dfuse-file', 'seed-option-bytes.dfu', dfuse([(1, 'Option Bytes', [(0x1FFFC000, b'\xaa' * 16)])]))
    out('dfuse-file', 'regress-truncated.dfu', two[:200])
    bad = bytearray(two)
    bad[300 % len(bad)] ^= 1
    out('dfuse-file', 'regress-bad-crc.dfu', bytes(bad))
    out('dfuse-file', 'regress-overlap.dfu', dfuse([(0, None, [(0x08000000, code), (0x08000010, code)])]))
    out('dfuse-file', 'regress-wrap.dfu', dfuse([(0, None, [(0xFFFFFFF0, code)])]))

    out('dfu-suffix', 'seed-plain.dfu', suffix(code))
    out('dfu-suffix', 'seed-any-id.dfu', suffix(code, 0xFFFF, 0xFFFF))
    out('dfu-suffix', 'seed-other-id.dfu', suffix(code, 0x1209, 0x0001))
    out('dfu-suffix', 'regress-suffix-only.dfu', suffix(b''))
    out('dfu-suffix', 'regress-bad-crc.dfu', suffix(code)[:-1] + b'\0')
    out('dfu-suffix', 'regress-long-blength.dfu', code + struct.pack('<HHHH3sB', 0, 0, 0, 0x100, b'UFD', 255) + b'\0' * 4)

    out('ihex', 'seed-crlf.hex', ihex([(0x08000000, code * 2)], '\r\n'))
    out('ihex', 'seed-boundary.hex', ihex([(0x0800FFF0, code)]))
    out('ihex', 'seed-gap.hex', ihex([(0x08000000, code), (0x08010000, code[:16])]))
    out('ihex', 'seed-segment.hex', ':020000021000EC\n:0400100001020304E2\n:00000001FF\n')
    out('ihex', 'regress-checksum.hex', ':0400000001020304F3\n:00000001FF\n')
    out('ihex', 'regress-no-eof.hex', ':0400000001020304F2\n')
    out('ihex', 'regress-overlap.hex', ihex([(0, code[:16])]).replace(':00000001FF\n', '') + ihex([(8, code[:16])]))
    out('ihex', 'regress-wrap.hex', ':02000004FFFFFC\n:10FFF800000102030405060708090A0B0C0D0E0F81\n:00000001FF\n')

    out('elf', 'seed-text-data.elf', elf([(0x08000000, 0x08000000, code, 64), (0x08000040, 0x20000000, code[:16], 16)]))
    out('elf', 'seed-dual-core.elf', elf([(0x08000000, 0x08000000, code, 64), (0x08100000, 0x08100000, code, 64)]))
    out('elf', 'regress-overlap.elf', elf([(0x08000000, 0x08000000, code, 64), (0x08000020, 0x20000000, code, 64)]))
    out('elf', 'regress-phdr-past-end.elf', elf([(0x08000000, 0x08000000, code, 64)])[:60])
    e = bytearray(elf([(0x08000000, 0x08000000, code, 64)]))
    struct.pack_into('<I', e, 52 + 16, 0x7FFFFFFF)
    out('elf', 'regress-filesz-huge.elf', bytes(e))

    # image-load: first byte = option flags (see fuzz-image-load.c)
    out('image-load', 'seed-dfuse', b'\x04' + two)
    out('image-load', 'seed-hex', b'\x00' + ihex([(0x08000000, code)]).encode())
    out('image-load', 'seed-elf', b'\x00' + elf([(0x08000000, 0x08000000, code, 64)]))
    out('image-load', 'seed-bin', b'\x03' + code)
    out('image-load', 'seed-qspi-bin', b'\x01' + code)
    out('image-load', 'seed-dfu', b'\x07' + suffix(code))
    out('image-load', 'seed-option-bytes', b'\x08' + dfuse([(1, None, [(0x1FFFC000, b'\xaa' * 16)])]))
    out('image-load', 'regress-cross-block', b'\x00' + ihex([(0x900FFFF0, code)]).encode())
    return 0


if __name__ == '__main__':
    sys.exit(main())
