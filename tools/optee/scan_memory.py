#!/usr/bin/env python3
"""The attacker's view of the TrustZone machine's normal world, for tools/optee/test.sh.

  scan_memory.py mark MODEL OUT NEEDLES [FILE...]
      Writes OUT, MODEL (micro_speech_quantized.tflite) with the lowest bit of every 16th
      weight of its fully connected layer (the one 16,000-byte buffer) flipped, and NEEDLES,
      four 64-byte windows of those weights. A model no file of the machine holds in plaintext
      (the reference model is in the omg binary and the reference data), so any of its windows
      found in the normal world came from decrypting the package. Fails when a window occurs
      in MODEL or in one of the FILEs.
  scan_memory.py dump SOCKET OUT MIB
      Saves the machine's normal-world RAM (MIB MiB from 0x40000000, QEMU virt's RAM) to OUT
      through QEMU's machine protocol on SOCKET (pmemsave: the non-secure address space).
  scan_memory.py scan NEEDLES FILE...
      Prints, for each FILE, how many of the windows it holds; exits 0.
"""
import json
import mmap
import os
import socket
import struct
import sys

WINDOW = 64
RAM_BASE = 0x40000000


def fc_weights(model):
    """Offset of the data of the one 16,000-byte buffer (4 x 4000 int8 weights)."""
    hits = [i + 4 for i in range(0, len(model) - 4, 4)
            if struct.unpack_from("<I", model, i)[0] == 16000 and i + 4 + 16000 <= len(model)]
    if len(hits) != 1:
        sys.exit(f"error: expected one 16,000-byte buffer in the model, found {len(hits)}")
    return hits[0]


def mark(model_path, out, needles_path, others):
    model = open(model_path, "rb").read()
    at = fc_weights(model)
    changed = bytearray(model)
    for i in range(at, at + 16000, 16):
        changed[i] ^= 1
    windows = [bytes(changed[at + k * 4000 + 8:at + k * 4000 + 8 + WINDOW]) for k in range(4)]
    for path in [model_path] + others:
        data = open(path, "rb").read()
        for w in windows:
            if w in data:
                sys.exit(f"error: a marked window is already in {path}")
    with open(out + ".tmp", "wb") as f:
        f.write(changed)
    os.replace(out + ".tmp", out)
    with open(needles_path + ".tmp", "wb") as f:
        f.write(b"".join(windows))
    os.replace(needles_path + ".tmp", needles_path)


def qmp(sock_path, command, arguments=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    f = s.makefile("rw")

    def call(cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        f.write(json.dumps(msg) + "\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                sys.exit(f"error: QEMU closed the monitor during {cmd}")
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                sys.exit(f"error: QEMU refused {cmd}: {reply['error']}")

    f.readline()  # the greeting
    call("qmp_capabilities")
    result = call(command, arguments)
    s.close()
    return result


def dump(sock_path, out, mib):
    qmp(sock_path, "pmemsave", {"val": RAM_BASE, "size": int(mib) << 20,
                                "filename": os.path.abspath(out)})
    size = os.path.getsize(out)
    if size != int(mib) << 20:
        sys.exit(f"error: the dump holds {size} bytes, not {mib} MiB")


def scan(needles_path, files):
    data = open(needles_path, "rb").read()
    windows = [data[i:i + WINDOW] for i in range(0, len(data), WINDOW)]
    for path in files:
        found = 0
        if os.path.getsize(path) > 0:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                found = sum(1 for w in windows if m.find(w) >= 0)
        print(f"{found} {path}")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "mark":
        mark(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) == 5 and sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 4 and sys.argv[1] == "scan":
        scan(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
