#!/usr/bin/env python3
"""Time from starting `nvrctl watch` to a live, consistent view (scripts/bench-state.sh).

Usage: bench_state_connect.py --cache DIR [--follow-seconds S] -- WATCH...

WATCH is the nvrctl command line (e.g. `ip netns exec NS nvrctl watch --json HOST:PORT`); it runs
with XDG_CACHE_HOME=DIR, so the same DIR twice measures a first connect (empty cache: the box
sends its catalog) and then a reconnect with the catalog known. The view is live and consistent
when nvrctl prints its `{"event": "link", "status": "connected"}` line: the catalog is whole and
the snapshot's last part has arrived, and changes follow. After that the watch is followed for
S seconds, counting any further `connected` line (a resynchronisation: the session was
restarted from a fresh snapshot) and lost links. stderr says whether the catalog came from the
cache. Prints one JSON object.
"""

import argparse
import json
import os
import subprocess
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", required=True)
    parser.add_argument("--follow-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("watch", nargs="+")
    args = parser.parse_args()

    env = dict(os.environ, XDG_CACHE_HOME=args.cache)
    started = time.monotonic()
    watch = subprocess.Popen(args.watch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stderr_lines = []
    threading.Thread(
        target=lambda: stderr_lines.extend(l.decode(errors="replace") for l in watch.stderr),
        daemon=True,
    ).start()

    live_s = None
    resyncs = lost = changes = 0
    end = None
    deadline = started + args.timeout
    for raw in watch.stdout:
        now = time.monotonic()
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("event") == "link":
            if line.get("status") == "connected":
                if live_s is None:
                    live_s = now - started
                    end = now + args.follow_seconds
                else:
                    resyncs += 1
            elif line.get("status") == "lost":
                lost += 1
        elif line.get("event") == "change" and live_s is not None:
            changes += 1
        if (end is not None and now >= end) or now >= deadline:
            break
    watch.kill()
    watch.wait()
    from_cache = any("catalog from the cache" in l for l in stderr_lines)
    print(json.dumps({
        "live_s": live_s,
        "from_cache": from_cache,
        "resyncs_after_live": resyncs,
        "lost_links": lost,
        "changes_followed": changes,
        "follow_seconds": args.follow_seconds,
    }))


if __name__ == "__main__":
    main()
