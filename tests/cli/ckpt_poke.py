#!/usr/bin/env python3
"""ckpt_poke.py IN OUT TENSOR INDEX VALUE | IN OUT step N | IN OUT text OLD NEW
- a copy of a ringattn checkpoint with value INDEX of tensor TENSOR
("params", "adam_m", "adam_v") replaced by the float32 VALUE ("nan", "inf",
"1.5"), or with the step of its state set to the u64 N, or with the text
OLD of its stored config replaced by NEW of the same length ("timeout =
120" by "timeout = 0.5"), and the checksum computed again: a file
changed on purpose, which the checksum cannot catch, for the tests of what
the loaders refuse. The format is src/model/checkpoint.c's (version 1); no
numpy needed."""
import struct
import sys

POLY = 0xC96C5795D7870F42  # CRC-64/XZ, reflected ECMA-182


def crc64(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFFFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF


def tensor_offsets(buf):
    """{name: (offset of the values, count)}"""
    if buf[:8] != b"RACKPT\r\n":
        sys.exit("ckpt_poke.py: not a ringattn checkpoint (magic)")
    config_len = struct.unpack_from("<I", buf, 24)[0]
    at = 28 + config_len + 7 * 8
    n = struct.unpack_from("<I", buf, at)[0]
    at += 4
    out = {}
    for _ in range(n):
        name_len = struct.unpack_from("<H", buf, at)[0]
        name = buf[at + 2:at + 2 + name_len].decode()
        count = struct.unpack_from("<Q", buf, at + 2 + name_len)[0]
        at = (at + 2 + name_len + 8 + 63) // 64 * 64
        out[name] = (at, count)
        at += 4 * count
    return out


def main():
    step = len(sys.argv) == 5 and sys.argv[3] == "step"
    text = len(sys.argv) == 6 and sys.argv[3] == "text"
    if len(sys.argv) != 6 and not step:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if crc64(b"123456789") != 0x995DC9BBDF1939FA:
        sys.exit("ckpt_poke.py: CRC-64/XZ self-check failed")
    buf = bytearray(open(src, "rb").read())
    if crc64(bytes(buf[:-8])) != struct.unpack_from("<Q", buf, len(buf) - 8)[0]:
        sys.exit("ckpt_poke.py: %s: the checksum does not match before the change" % src)
    offsets = tensor_offsets(buf)
    if text:  # within the config text only, length kept: no offset moves
        old, new = sys.argv[4].encode(), sys.argv[5].encode()
        end = 28 + struct.unpack_from("<I", buf, 24)[0]
        at = bytes(buf[28:end]).find(old)
        if len(old) != len(new) or at < 0:
            sys.exit("ckpt_poke.py: '%s' is not in the config text, or '%s' is another length" % (sys.argv[4], sys.argv[5]))
        buf[28 + at:28 + at + len(new)] = new
    elif step:  # the state's first u64, right after the config text
        struct.pack_into("<Q", buf, 28 + struct.unpack_from("<I", buf, 24)[0], int(sys.argv[4]))
    else:
        tensor, index, value = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        if tensor not in offsets or not 0 <= index < offsets[tensor][1]:
            sys.exit("ckpt_poke.py: no value %d in tensor %s (tensors: %s)" % (index, tensor, offsets))
        struct.pack_into("<f", buf, offsets[tensor][0] + 4 * index, value)
    struct.pack_into("<Q", buf, len(buf) - 8, crc64(bytes(buf[:-8])))
    open(dst, "wb").write(buf)


main()
