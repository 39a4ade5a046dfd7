#!/usr/bin/python3
"""Measuring and reporting helpers for scripts/bench-record.sh (standard library only).

Subcommands:

    measure --spec FILE --duration S --out JSON [--n N] [--watch LABEL=PID ...]
        Starts every process listed in FILE (one per line: GROUP<TAB>STOP<TAB>CWD<TAB>LOG<TAB>
        COMMAND, the command shell-quoted; STOP is `int` for SIGINT or `q` for a "q" on stdin, how
        ffmpeg closes its last segment properly), lets them run for S seconds of real time, samples
        each one's /proc status, stops all of them, and reaps each with wait4(): CPU seconds
        (user + sys) and peak RSS (ru_maxrss) come from the kernel's own accounting of the whole
        process life, start-up and clean close included. A process that has not exited 30 s after
        SIGINT is killed and marked so. --watch PIDs (the RTSP server) are not children: their CPU
        is read from /proc/PID/stat at the start and at the end of the window.

    disk-stat DEVICE OUT
        Saves the block-layer write counters of /sys/block/DEVICE/stat (fields 5, 7 and 16:
        write requests, sectors written, flushes) as JSON. The caller runs `sync` first.

    store-video STORE_DIR          prints the video payload bytes and frames in a store's slot
                                   files (sum of ffprobe packet sizes; slot files are playable MP4)
    ffmpeg-video LOG               prints the video payload bytes and frames an ffmpeg run muxed
                                   (its final `video:NKiB` and `frame=N` lines)
    annotate RESULT --ls LS_JSON   adds to a `measure` RESULT the frames and bytes each recorder
                                   wrote (edgenvr: `edgenvr store ls --json`; ffmpeg: its logs)

    report --cpu JSON... [--loop JSON] [--fps F]
        Prints the CPU/memory table with ratios, the write-amplification table, and whether each
        target of issue 3 is met.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

# Clock ticks per second, for /proc/PID/stat utime/stime.
CLK_TCK = os.sysconf("SC_CLK_TCK")
# How long a recorder may take to close cleanly after SIGINT before it is killed: ffmpeg finishes
# its segment and edgenvr syncs and closes its slots; both take well under a second normally.
CLOSE_TIMEOUT_S = 30.0
# Targets from issue 3.
CPU_TARGET_RATIO = 0.25
MEMORY_TARGET_RATIO = 0.10
MEMORY_TARGET_N = 8
WRITE_AMPLIFICATION_TARGET = 1.02
SECTOR_BYTES = 512


def proc_cpu_s(pid):
    """User + system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; fields after it are split from the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def proc_status_kib(pid):
    """VmHWM, VmRSS and RssAnon of a live process, KiB (missing fields are absent)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def read_spec(path):
    procs = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            group, stop, cwd, log, command = line.split("\t", 4)
            if stop not in ("int", "q"):
                sys.exit(f"bench_record: unknown stop method {stop!r} in {path}")
            procs.append({"group": group, "stop": stop, "cwd": cwd, "log": log,
                          "argv": shlex.split(command)})
    return procs


def measure(args):
    procs = read_spec(args.spec)
    watch = {}
    for item in args.watch:
        label, _, pid = item.partition("=")
        watch[label] = {"pid": int(pid), "cpu_start_s": proc_cpu_s(int(pid))}

    started = []

    def kill_all(*_):
        for p in started:
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.exit("bench_record: interrupted; children killed")

    signal.signal(signal.SIGTERM, kill_all)
    signal.signal(signal.SIGINT, kill_all)

    t0 = time.monotonic()
    for p in procs:
        log = open(p["log"], "wb")
        # Own session: a Ctrl-C on the terminal reaches the benchmark, which then kills its
        # children, rather than every recorder closing at a different moment.
        child = subprocess.Popen(
            p["argv"], cwd=p["cwd"], stdout=log, stderr=log,
            stdin=subprocess.PIPE if p["stop"] == "q" else subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        p["pid"] = child.pid
        p["popen"] = child
        started.append(p)

    deadline = t0 + args.duration
    early = {}
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        for p in started:
            if p["pid"] in early:
                continue
            pid, status, usage = os.wait4(p["pid"], os.WNOHANG)
            if pid:
                early[p["pid"]] = (status, usage, time.monotonic() - t0)

    for p in started:
        p["status_at_end"] = proc_status_kib(p["pid"]) if p["pid"] not in early else {}
    for label, w in watch.items():
        w["cpu_s"] = proc_cpu_s(w["pid"]) - w["cpu_start_s"]
    window_s = time.monotonic() - t0

    for p in started:
        if p["pid"] in early:
            continue
        if p["stop"] == "q":
            try:
                p["popen"].stdin.write(b"q")
                p["popen"].stdin.close()
            except BrokenPipeError:
                os.kill(p["pid"], signal.SIGINT)
        else:
            os.kill(p["pid"], signal.SIGINT)
    results = []
    for p in started:
        killed = False
        if p["pid"] in early:
            status, usage, exited_at = early[p["pid"]]
        else:
            close_deadline = time.monotonic() + CLOSE_TIMEOUT_S
            exited_at = None
            while True:
                pid, status, usage = os.wait4(p["pid"], os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > close_deadline:
                    os.kill(p["pid"], signal.SIGKILL)
                    killed = True
                    pid, status, usage = os.wait4(p["pid"], 0)
                    break
                time.sleep(0.05)
        p["popen"].returncode = status  # reaped by wait4; keep Popen from waiting again
        results.append({
            "group": p["group"],
            "pid": p["pid"],
            "argv": p["argv"],
            "log": p["log"],
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
            "status_at_end_kib": p["status_at_end"],
            "exit_code": os.waitstatus_to_exitcode(status),
            "exited_early_after_s": exited_at,
            "killed_after_close_timeout": killed,
        })
    out = {"n": args.n, "duration_s": args.duration, "window_s": window_s, "procs": results,
           "watch": {k: {"pid": v["pid"], "cpu_s": v["cpu_s"]} for k, v in watch.items()}}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


def disk_stat(args):
    with open(f"/sys/block/{args.device}/stat") as f:
        fields = f.read().split()
    # Documented in the kernel's Documentation/block/stat.rst: field 5 write I/Os, 7 write
    # sectors, 16 flush I/Os (counted from 1).
    out = {
        "device": args.device,
        "write_requests": int(fields[4]),
        "sectors_written": int(fields[6]),
        "flushes": int(fields[15]) if len(fields) > 15 else None,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)


def ffprobe_packets(path):
    """(payload bytes, packets) of the first video stream of `path`, or None if unreadable."""
    run = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=size",
         "-of", "csv=p=0", path],
        capture_output=True, text=True,
    )
    if run.returncode != 0:
        return None
    sizes = [int(line) for line in run.stdout.split() if line.strip().isdigit()]
    return sum(sizes), len(sizes)


def store_video(args):
    slots = os.path.join(args.dir, "slots")
    total_bytes = total_frames = used = 0
    for name in sorted(os.listdir(slots)):
        path = os.path.join(slots, name)
        with open(path, "rb") as f:
            head = f.read(8)
        if head[4:8] != b"free":  # never written: still zero-filled
            continue
        got = ffprobe_packets(path)
        if got is None:
            continue
        total_bytes += got[0]
        total_frames += got[1]
        used += 1
    print(json.dumps({"video_bytes": total_bytes, "frames": total_frames, "slots_used": used}))


def parse_ffmpeg_log(path):
    with open(path, errors="replace") as f:
        text = f.read()
    video = re.findall(r"video:(\d+)\s*(KiB|kB)", text)
    frames = re.findall(r"frame=\s*(\d+)", text)
    return {
        # ffmpeg 5 prints "kB" but means 1024 bytes (it is KiB from ffmpeg 6 on).
        "video_bytes": int(video[-1][0]) * 1024 if video else None,
        "frames": int(frames[-1]) if frames else None,
    }


def ffmpeg_video(args):
    print(json.dumps(parse_ffmpeg_log(args.log)))


def annotate(args):
    """Adds what each recorder wrote to a `measure` result: per edgenvr camera the frames and
    bytes `edgenvr store ls --json` lists, per ffmpeg process what its log says it muxed."""
    with open(args.result) as f:
        run = json.load(f)
    with open(args.ls) as f:
        listing = json.load(f)
    cameras = {}
    for camera in listing:
        ranges = camera.get("ranges", [])
        cameras[camera["camera"]] = {
            "frames": sum(r.get("frames", 0) for r in ranges),
            "bytes": sum(r.get("bytes", 0) for r in ranges),
            "ranges": len(ranges),
        }
    run["edgenvr_video"] = cameras
    run["ffmpeg_video"] = [parse_ffmpeg_log(p["log"]) for p in run["procs"]
                           if p["group"] == "ffmpeg"]
    with open(args.result, "w") as f:
        json.dump(run, f, indent=1)


def fmt_ratio(a, b):
    return f"{a / b:.3f}" if b else "n/a"


def report(args):
    rows = []
    for path in args.cpu:
        with open(path) as f:
            run = json.load(f)
        n = run["n"]
        groups = {}
        for p in run["procs"]:
            g = groups.setdefault(p["group"], {"cpu_s": 0.0, "maxrss_kib": 0, "anon_kib": 0,
                                               "procs": 0, "bad": []})
            g["cpu_s"] += p["cpu_s"]
            g["maxrss_kib"] += p["maxrss_kib"]
            g["anon_kib"] += p["status_at_end_kib"].get("RssAnon", 0)
            g["procs"] += 1
            if p["exit_code"] != 0 or p["killed_after_close_timeout"] or p["exited_early_after_s"]:
                g["bad"].append(p)
        rows.append((n, run, groups))

    print()
    print("CPU and memory: N cameras recorded for the same real time, side by side")
    print("(CPU = user+sys seconds over the whole process life; memory = peak RSS, summed over")
    print(" processes for ffmpeg; anon = anonymous RSS just before SIGINT, without shared libraries)")
    print()
    header = (f"{'N':>3} {'secs':>5} | {'edgenvr CPU s':>13} {'ffmpeg CPU s':>12} {'ratio':>6} | "
              f"{'edgenvr MB':>10} {'ffmpeg MB':>9} {'ratio':>6} | {'anon MB e/f':>13} | "
              f"{'server CPU s':>12} | {'video s/cam e/f':>15}")
    print(header)
    print("-" * len(header))
    verdicts = []
    for n, run, groups in sorted(rows, key=lambda r: r[0]):
        e, m = groups.get("edgenvr"), groups.get("ffmpeg")
        if not e or not m:
            continue
        server = run["watch"].get("server", {}).get("cpu_s", float("nan"))
        fps = args.fps
        e_video = run.get("edgenvr_video", {})
        m_video = run.get("ffmpeg_video", [])
        e_secs = (sum(v["frames"] for v in e_video.values()) / max(1, len(e_video)) / fps
                  if e_video else float("nan"))
        m_frames = [v["frames"] for v in m_video if v.get("frames") is not None]
        m_secs = sum(m_frames) / max(1, len(m_frames)) / fps if m_frames else float("nan")
        print(f"{n:>3} {run['duration_s']:>5.0f} | {e['cpu_s']:>13.2f} {m['cpu_s']:>12.2f} "
              f"{fmt_ratio(e['cpu_s'], m['cpu_s']):>6} | {e['maxrss_kib'] / 1024:>10.1f} "
              f"{m['maxrss_kib'] / 1024:>9.1f} {fmt_ratio(e['maxrss_kib'], m['maxrss_kib']):>6} | "
              f"{e['anon_kib'] / 1024:>6.1f}/{m['anon_kib'] / 1024:<6.1f} | {server:>12.2f} | "
              f"{e_secs:>7.1f}/{m_secs:<7.1f}")
        for name, g in (("edgenvr", e), ("ffmpeg", m)):
            for p in g["bad"]:
                print(f"    ! {name} pid {p['pid']}: exit {p['exit_code']}, "
                      f"early exit after {p['exited_early_after_s']} s, "
                      f"killed after close timeout: {p['killed_after_close_timeout']} "
                      f"(log {p['log']})")
        cpu_ok = m["cpu_s"] > 0 and e["cpu_s"] / m["cpu_s"] <= CPU_TARGET_RATIO
        verdicts.append((f"CPU at most 1/4 of ffmpeg's at N = {n}",
                         fmt_ratio(e["cpu_s"], m["cpu_s"]), cpu_ok))
        if n == MEMORY_TARGET_N:
            mem_ok = e["maxrss_kib"] / m["maxrss_kib"] <= MEMORY_TARGET_RATIO
            verdicts.append((f"memory at most 1/10 of ffmpeg's at N = {n}",
                             fmt_ratio(e["maxrss_kib"], m["maxrss_kib"]), mem_ok))

    if args.loop:
        with open(args.loop) as f:
            loop = json.load(f)
        print()
        print(f"Write amplification on an ext4 loop device, {loop['duration_s']:.0f} s real time, "
              f"one camera (kernel block-layer counters)")
        print()
        header = (f"{'recorder':<36} | {'video MB':>8} | {'device MB':>9} | {'dev B/video B':>13} | "
                  f"{'write reqs':>10} | {'flushes':>7}")
        print(header)
        print("-" * len(header))
        for name in ("edgenvr", "ffmpeg"):
            r = loop[name]
            device_bytes = (r["after"]["sectors_written"] - r["before"]["sectors_written"]) \
                * SECTOR_BYTES
            reqs = r["after"]["write_requests"] - r["before"]["write_requests"]
            flushes = (r["after"]["flushes"] - r["before"]["flushes"]
                       if r["after"]["flushes"] is not None else None)
            video = r["video"]["video_bytes"]
            amp = device_bytes / video if video else float("nan")
            r["amplification"] = amp
            print(f"{r['label']:<36} | {video / 1e6:>8.1f} | {device_bytes / 1e6:>9.1f} | "
                  f"{amp:>13.3f} | {reqs:>10} | {flushes if flushes is not None else 'n/a':>7}")
        p = loop.get("provisioning")
        if p:
            device_bytes = (p["after"]["sectors_written"] - p["before"]["sectors_written"]) \
                * SECTOR_BYTES
            print(f"(one-time provisioning, `edgenvr store init --size {p['size']}`: "
                  f"{device_bytes / 1e6:.1f} MB, "
                  f"{p['after']['write_requests'] - p['before']['write_requests']} write requests, "
                  f"{p['after']['flushes'] - p['before']['flushes']} flushes)")
        amp = loop["edgenvr"]["amplification"]
        verdicts.append(("device bytes per video byte at most 1.02 (edgenvr)", f"{amp:.3f}",
                         amp <= WRITE_AMPLIFICATION_TARGET))

    print()
    print("Targets (issue 3)")
    for what, value, ok in verdicts:
        print(f"  {'MET    ' if ok else 'NOT MET'}  {what}: {value}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--spec", required=True)
    m.add_argument("--duration", type=float, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--watch", action="append", default=[])
    m.add_argument("--n", type=int)
    d = sub.add_parser("disk-stat")
    d.add_argument("device")
    d.add_argument("out")
    s = sub.add_parser("store-video")
    s.add_argument("dir")
    f = sub.add_parser("ffmpeg-video")
    f.add_argument("log")
    a = sub.add_parser("annotate")
    a.add_argument("result")
    a.add_argument("--ls", required=True)
    r = sub.add_parser("report")
    r.add_argument("--cpu", nargs="*", default=[])
    r.add_argument("--loop")
    r.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args()
    {"measure": measure, "disk-stat": disk_stat, "store-video": store_video,
     "ffmpeg-video": ffmpeg_video, "annotate": annotate, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
