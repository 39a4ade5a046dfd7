#!/usr/bin/env python3
"""Counts what a state-port client receives, byte for byte (scripts/bench-state.sh).

Usage: bench_state_client.py HOST:PORT SECONDS SETTLE_SECONDS [READY_FILE]

SETTLE_SECONDS after the first complete snapshot are not counted: a client behind a slow link
falls behind the bus while its catalog (~1.4 MB at site scale) crawls through, and is then sent a
fresh snapshot and the changes queued behind it; the window starts once that has drained.
READY_FILE is created when the window starts.

Connects to HOST:PORT as a client that keeps no catalog (it sends no hello, so after a second
the box sends its whole catalog, compressed), reads raw bytes, splits frames at the 00
delimiter, COBS-decodes them, checks the CRC-16/IBM-SDLC and parses the body as
firmware/proto/README.md describes (protocol version 2: the catalog pack is inflated with
zlib's raw DEFLATE and its entries give each id's kind, so a batch's changes can be walked).
Counting starts after the last part of the latest snapshot and runs for SECONDS; a later
snapshot (the box resent state because this client fell behind) restarts the count and is
reported as a resync.

Prints one JSON object: wire bytes after the snapshot (delimiters included), frames by kind,
binary and scalar changes, and the bytes the scalar changes themselves take (their key varint
plus the 4-byte value), so the rest (frame overhead included) can be charged to binary changes.
"""

import json
import socket
import sys
import time
import zlib

KINDS = {0: "hello", 1: "catalog", 2: "snapshot", 3: "changes", 4: "heartbeat",
         5: "catalog_pack", 6: "packed_snapshot"}


def crc16_x25(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def cobs_decode(data):
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad COBS")
        out += data[i + 1 : i + code]
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def varint(self):
        value = shift = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def string(self):
        length = self.varint()
        text = self.data[self.pos : self.pos + length]
        self.pos += length
        return text

    def done(self):
        return self.pos >= len(self.data)


def read_kind_and_role(reader):
    """A catalog entry's kind (0 binary, 1 scalar, 2 complex, 3 unsigned) and role."""
    kind = reader.varint()
    if kind in (1, 3):
        reader.string()
    if reader.varint() == 3:
        reader.varint()
    return kind


def parse_pack(pack, kinds):
    """Reads a complete catalog pack into kinds (id -> kind)."""
    reader = Reader(zlib.decompress(pack, -15))
    reader.varint()  # format
    next_id = reader.varint()  # base
    for _ in range(reader.varint()):
        sensor_id = next_id + reader.varint()
        reader.varint()  # shared name prefix
        reader.string()  # name suffix
        kinds[sensor_id] = read_kind_and_role(reader)
        next_id = sensor_id + 1


def walk_batch(reader, kinds):
    """Returns (binary changes, scalar changes, bytes of the scalar changes)."""
    reader.varint()  # batch time
    previous = 0
    binary = scalar = scalar_bytes = 0
    while not reader.done():
        start = reader.pos
        key = reader.varint()
        zz = key >> 1
        previous += (zz >> 1) ^ -(zz & 1)
        kind = kinds.get(previous)
        if kind == 0:
            binary += 1
        elif kind == 1:
            reader.pos += 4
            scalar += 1
            scalar_bytes += reader.pos - start
        elif kind == 2:
            reader.pos += reader.varint()
        elif kind == 3:
            reader.varint()
            scalar += 1
            scalar_bytes += reader.pos - start
        else:
            raise ValueError(f"change of unknown sensor id {previous}")
    return binary, scalar, scalar_bytes


def main():
    target, seconds, settle = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    ready_file = sys.argv[4] if len(sys.argv) > 4 else None
    settled_at = None
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    kinds = {}
    counting = False
    resyncs = crc_errors = 0
    stats = {}
    start_catalog = time.monotonic()
    catalog_bytes = 0
    session_start_seconds = None
    buffer = bytearray()
    expected_seq = None
    gaps = 0
    pack = bytearray()

    def reset():
        nonlocal stats
        stats = {
            "bytes": 0,
            "frames": {name: 0 for name in KINDS.values()},
            "binary_changes": 0,
            "scalar_changes": 0,
            "scalar_change_bytes": 0,
            "started": time.monotonic(),
        }

    reset()
    while True:
        if counting and time.monotonic() - stats["started"] >= seconds:
            break
        if settled_at is not None and not counting and time.monotonic() >= settled_at:
            counting = True
            reset()
            if ready_file:
                open(ready_file, "w").close()
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("state port closed the connection")
        buffer += chunk
        while True:
            end = buffer.find(0)
            if end < 0:
                break
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            wire_bytes = len(raw) + 1
            try:
                decoded = cobs_decode(raw)
            except ValueError:
                crc_errors += 1
                continue
            body, crc = decoded[:-2], decoded[-2:]
            if len(crc) != 2 or crc16_x25(body) != int.from_bytes(crc, "little"):
                crc_errors += 1
                continue
            reader = Reader(body)
            header = reader.varint()
            seq, kind = header >> 3, KINDS.get(header & 7, "unknown")
            if expected_seq is not None and seq != expected_seq:
                gaps += 1
            expected_seq = (seq + 1) & 0xFFFFFFFF
            if settled_at is None:
                catalog_bytes += wire_bytes
            if kind == "catalog":
                while not reader.done():
                    sensor_id = reader.varint()
                    reader.string()
                    kinds[sensor_id] = read_kind_and_role(reader)
            elif kind == "catalog_pack":
                last_part = reader.data[reader.pos]
                pack += reader.data[reader.pos + 1:]
                if last_part:
                    parse_pack(bytes(pack), kinds)
                    pack.clear()
            elif kind in ("snapshot", "packed_snapshot"):
                # Version 1: a bool byte; version 2: flags, bit 0 is the last part.
                last_part = reader.data[reader.pos] & 1
                if last_part:
                    if settled_at is None:
                        session_start_seconds = time.monotonic() - start_catalog
                        settled_at = time.monotonic() + settle
                    if counting:
                        resyncs += 1
                        reset()
                    continue
            if counting:
                stats["bytes"] += wire_bytes
                stats["frames"][kind] = stats["frames"].get(kind, 0) + 1
                if kind == "changes":
                    binary, scalar, scalar_bytes = walk_batch(reader, kinds)
                    stats["binary_changes"] += binary
                    stats["scalar_changes"] += scalar
                    stats["scalar_change_bytes"] += scalar_bytes
    elapsed = time.monotonic() - stats.pop("started")
    stats.update(
        seconds=elapsed,
        sensors=len(kinds),
        session_start_bytes=catalog_bytes,
        session_start_seconds=session_start_seconds,
        resyncs=resyncs,
        crc_errors=crc_errors,
        seq_gaps=gaps,
    )
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
