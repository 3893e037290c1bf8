#!/usr/bin/env python3
"""Seeds fuzz/corpus/ (gitignored) from the JSON examples in docs/protocol.md.

Gives the JSON targets every documented event and the frame targets event, audio and viseme
frames, so a 60-second run starts from valid inputs. Run from protocol/fuzz.
"""
import hashlib
import json
import os
import re
import struct

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "protocol.md")


def put(directory, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def frame(kind, seq, media_us, payload, flags=0):
    """A binary frame: magic, version 1, type, flags, sequence, media time (us), length."""
    return b"CP" + bytes([1, kind]) + struct.pack(">HIQI", flags, seq, media_us, len(payload)) + payload


def main():
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```json (server|client)\n(.*?)```", f.read(), re.S)
    stream = b""
    for direction, body in blocks:
        compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
        put(f"corpus/json_{direction}_event", compact)
        event_frame = frame(3, 1, 0, compact)
        put("corpus/frame_decode", event_frame)
        stream += event_frame
    put("corpus/frame_decode", frame(1, 7, 140_000, b"\xf8\xff\xfe"))
    put("corpus/frame_decode", frame(2, 3, 40_000, bytes([7, 3, 0, 64, 255])))
    for chunking_seed in (0, 5, 22, 96):
        put(
            "corpus/frame_stream",
            bytes([chunking_seed])
            + frame(1, 1, 20_000, b"\xf8" * 60)
            + frame(2, 2, 20_000, bytes([7, 0]))
            + stream[:600],
        )
    print(f"seeded from {len(blocks)} documented events")


if __name__ == "__main__":
    main()
