#!/usr/bin/env python3
"""Latency from a binary sensor edge to `nvrctl watch --json` output (scripts/bench-state.sh).

Usage:
  bench_state_latency.py --sensor NAME --edges N --trigger sim --edgenvr BIN --config FILE -- WATCH...
  bench_state_latency.py --sensor NAME --edges N --trigger socket --socket PATH -- WATCH...
  bench_state_latency.py --sensor NAME --edges N --trigger fifo --fifo PATH -- WATCH...

WATCH is the nvrctl command line (e.g. `ip netns exec NS nvrctl watch --json HOST:PORT`). Its
stdout is read line by line in a thread that stamps each line with the wall clock as it
arrives. After NAME's snapshot line, N edges alternate high/low, 100-300 ms apart (random):
- `sim`: the clock is read, then `edgenvr sim set NAME high|low --config FILE` runs (the edge
  happens inside that call, so its process start-up counts against us);
- `socket`: the clock is read, then `set NAME high|low` is written to the box's control socket
  PATH (what `edgenvr sim set` sends; the sim pin changes when the box reads it) and the `ok`
  awaited: the edge itself, without a process start;
- `fifo`: the clock is read, then `NAME high|low` is written to PATH, which a state_site
  `--trigger-stdin` reads (an edge on the load generator's own bus, in process).
The edges start after --wait-file exists and no snapshot line came for 5 s. Each edge's latency ends when nvrctl prints the matching change. The box's own time of the
change (the line's "time") splits it into edge-to-bus and bus-to-output. Prints one JSON object.
"""

import argparse
import datetime
import json
import os
import random
import socket
import subprocess
import threading
import time


# Seconds without a snapshot line before the edges start.
QUIET_S = 5.0


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sensor", required=True)
    parser.add_argument("--edges", type=int, default=100)
    parser.add_argument("--trigger", choices=["sim", "socket", "fifo"], required=True)
    parser.add_argument("--socket")
    parser.add_argument("--edgenvr")
    parser.add_argument("--config")
    parser.add_argument("--fifo")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--wait-file", help="start the edges only once this file exists")
    parser.add_argument("watch", nargs="+")
    args = parser.parse_args()

    watch = subprocess.Popen(args.watch, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen = []  # (arrival wall time, value, box time in s)
    ready = threading.Event()
    last_snapshot = [time.monotonic()]
    changed = threading.Condition()

    def read_lines():
        for raw in watch.stdout:
            arrived = time.time()
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("sensor") != args.sensor:
                continue
            if line.get("event") == "snapshot":
                last_snapshot[0] = time.monotonic()
                ready.set()
            elif line.get("event") == "change":
                box_time = datetime.datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
                with changed:
                    seen.append((arrived, line["value"], box_time.timestamp()))
                    changed.notify_all()

    threading.Thread(target=read_lines, daemon=True).start()
    if not ready.wait(300):
        raise SystemExit(f"nvrctl never showed {args.sensor} in a snapshot")
    while args.wait_file and not os.path.exists(args.wait_file):
        time.sleep(0.2)
    # A watcher behind a slow link is resent a snapshot once its catalog is through; start the
    # edges once no snapshot has come for QUIET_S.
    while time.monotonic() - last_snapshot[0] < QUIET_S:
        time.sleep(0.2)
    fifo = open(args.fifo, "w", buffering=1) if args.trigger == "fifo" else None

    def trigger(level):
        word = "high" if level else "low"
        if fifo:
            fifo.write(f"{args.sensor} {word}\n")
        elif args.trigger == "socket":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
                control.connect(args.socket)
                control.sendall(f"set {args.sensor} {word}\n".encode())
                reply = control.makefile().readline()
                if not reply.startswith("ok"):
                    raise SystemExit(f"control socket said {reply!r}")
        else:
            subprocess.run(
                [args.edgenvr, "sim", "set", args.sensor, word, "--config", args.config],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    # Start from a known level: low.
    trigger(False)
    time.sleep(0.5)
    totals, to_bus, bus_to_output, lost = [], [], [], 0
    level = False
    for _ in range(args.edges):
        level = not level
        with changed:
            already = len(seen)
        started = time.time()
        trigger(level)
        deadline = started + args.timeout
        match = None
        with changed:
            while match is None and time.time() < deadline:
                match = next((s for s in seen[already:] if s[1] == level), None)
                if match is None:
                    changed.wait(max(0.0, deadline - time.time()))
        if match is None:
            lost += 1
        else:
            arrived, _, box_time = match
            totals.append(arrived - started)
            to_bus.append(box_time - started)
            bus_to_output.append(arrived - box_time)
        time.sleep(random.uniform(0.1, 0.3))
    watch.terminate()
    watch.wait()

    def ms(value):
        return None if value is None else round(value * 1000, 1)

    print(
        json.dumps(
            {
                "edges": args.edges,
                "measured": len(totals),
                "lost": lost,
                "p50_ms": ms(percentile(totals, 0.50)),
                "p99_ms": ms(percentile(totals, 0.99)),
                "max_ms": ms(max(totals) if totals else None),
                "edge_to_bus_p50_ms": ms(percentile(to_bus, 0.50)),
                "bus_to_output_p50_ms": ms(percentile(bus_to_output, 0.50)),
                "bus_to_output_p99_ms": ms(percentile(bus_to_output, 0.99)),
            }
        )
    )


if __name__ == "__main__":
    main()
