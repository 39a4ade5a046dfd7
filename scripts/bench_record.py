#!/usr/bin/python3
"""Measuring and reporting helpers for scripts/bench-record.sh (standard library only).

Subcommands:

    measure --spec FILE --duration S --out JSON [--n N] [--warmup S] [--watch LABEL=PID ...]
        Starts every process listed in FILE (one per line: GROUP<TAB>STOP<TAB>CWD<TAB>LOG<TAB>
        COMMAND, the command shell-quoted; STOP is `int` for SIGINT or `q` for a "q" on stdin, how
        ffmpeg closes its last segment properly), lets them run for S seconds of real time, samples
        each one's /proc status, stops all of them, and reaps each with wait4(): CPU seconds
        (user + sys) and peak RSS (ru_maxrss) come from the kernel's own accounting of the whole
        process life, start-up and clean close included. A process that has not exited 30 s after
        its stop is killed and marked so. --watch PIDs (the RTSP server) are not children: their CPU
        is read from /proc/PID/stat at the start and at the end of the window. Every process's
        /proc/PID/stat CPU is also sampled --warmup seconds in (default 5) and at the end of the
        window: the steady-state rate, without start-up costs.

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
        Prints the CPU/memory table with ratios, the floor's table when the runs had one (group
        `floor`: examples/bench_floor.rs), the write-amplification table, and whether each target
        of issues 3 and 15 is met.
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
# Targets from issue 15: steady-state CPU against ffmpeg's, anonymous memory per camera.
STEADY_TARGET_RATIO = {1: 0.25}
STEADY_TARGET_RATIO_MANY = 0.15
ANON_PER_CAMERA_TARGET_MB = 1.5
SECTOR_BYTES = 512


def proc_cpu_s(pid):
    """User + system CPU seconds of a live process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; fields after it are split from the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def cpu_or_none(pid):
    try:
        return proc_cpu_s(pid)
    except OSError:
        return None


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
    # Start-up (ffmpeg loads its libraries and decodes frames to probe the stream) is a fixed cost
    # that a 30 s run over-weights; the CPU between the end of the warm-up and the end of the
    # window is the steady-state rate a recorder running for days costs.
    warm_at = t0 + min(args.warmup, args.duration / 3)
    warm_sampled = False
    early = {}
    while time.monotonic() < deadline:
        now = time.monotonic()
        wake = min(now + 0.5, deadline, deadline if warm_sampled else warm_at)
        time.sleep(max(0.0, wake - now))
        if not warm_sampled and time.monotonic() >= warm_at:
            warm_sampled = True
            warm_s = time.monotonic()
            for p in started:
                p["cpu_warm_s"] = cpu_or_none(p["pid"])
        for p in started:
            if p["pid"] in early:
                continue
            pid, status, usage = os.wait4(p["pid"], os.WNOHANG)
            if pid:
                early[p["pid"]] = (status, usage, time.monotonic() - t0)

    end_s = time.monotonic()
    for p in started:
        p["status_at_end"] = proc_status_kib(p["pid"]) if p["pid"] not in early else {}
        end_cpu = cpu_or_none(p["pid"]) if p["pid"] not in early else None
        warm_cpu = p.get("cpu_warm_s")
        p["steady_cpu_s"] = end_cpu - warm_cpu if None not in (end_cpu, warm_cpu) else None
    for label, w in watch.items():
        w["cpu_s"] = proc_cpu_s(w["pid"]) - w["cpu_start_s"]
    window_s = end_s - t0
    steady_window_s = end_s - warm_s if warm_sampled else None

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
            "steady_cpu_s": p["steady_cpu_s"],
            "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
            "status_at_end_kib": p["status_at_end"],
            "exit_code": os.waitstatus_to_exitcode(status),
            "exited_early_after_s": exited_at,
            "killed_after_close_timeout": killed,
        })
    out = {"n": args.n, "duration_s": args.duration, "window_s": window_s,
           "steady_window_s": steady_window_s, "procs": results,
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
    if isinstance(listing, dict):  # {"cameras": [...]} since store format 2
        listing = listing.get("cameras", [])
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


def group_totals(run):
    """Per recorder group: summed CPU (whole life and steady state), peak RSS and anon RSS."""
    groups = {}
    for p in run["procs"]:
        g = groups.setdefault(p["group"], {"cpu_s": 0.0, "steady_cpu_s": 0.0, "maxrss_kib": 0,
                                           "anon_kib": 0, "procs": 0, "bad": []})
        g["cpu_s"] += p["cpu_s"]
        if p.get("steady_cpu_s") is None or g["steady_cpu_s"] is None:
            g["steady_cpu_s"] = None
        else:
            g["steady_cpu_s"] += p["steady_cpu_s"]
        g["maxrss_kib"] += p["maxrss_kib"]
        g["anon_kib"] += p["status_at_end_kib"].get("RssAnon", 0)
        g["procs"] += 1
        if p["exit_code"] != 0 or p["killed_after_close_timeout"] or p["exited_early_after_s"]:
            g["bad"].append(p)
    return groups


def steady_ms_per_s(g, run):
    window = run.get("steady_window_s")
    if g["steady_cpu_s"] is None or not window:
        return float("nan")
    return g["steady_cpu_s"] * 1000 / window


def report(args):
    rows = []
    for path in args.cpu:
        with open(path) as f:
            run = json.load(f)
        groups = group_totals(run)
        if "edgenvr" in groups and "ffmpeg" in groups:
            rows.append((run["n"], run, groups))
    rows.sort(key=lambda r: r[0])
    verdicts = []

    if rows:
        print()
        print("CPU: N cameras, one edgenvr process vs N ffmpeg processes, same server, same time")
        print("(CPU s = user+sys over the whole process life, from wait4(); steady = CPU per second of")
        print(" real time after a warm-up, from /proc/PID/stat at 10 ms resolution; server = the RTSP")
        print(" server's CPU over the window, counted for neither recorder)")
        print()
        header = (f"{'N':>3} {'secs':>5} | {'edgenvr CPU s':>13} {'ffmpeg CPU s':>12} {'ratio':>6} | "
                  f"{'steady ms/s e':>13} {'f':>6} {'ratio':>6} | {'server CPU s':>12}")
        print(header)
        print("-" * len(header))
        for n, run, groups in rows:
            e, m = groups["edgenvr"], groups["ffmpeg"]
            server = run["watch"].get("server", {}).get("cpu_s", float("nan"))
            e_rate, m_rate = steady_ms_per_s(e, run), steady_ms_per_s(m, run)
            print(f"{n:>3} {run['duration_s']:>5.0f} | {e['cpu_s']:>13.2f} {m['cpu_s']:>12.2f} "
                  f"{fmt_ratio(e['cpu_s'], m['cpu_s']):>6} | {e_rate:>13.1f} {m_rate:>6.1f} "
                  f"{fmt_ratio(e_rate, m_rate):>6} | {server:>12.2f}")
            verdicts.append((f"CPU at most 1/4 of ffmpeg's at N = {n}",
                             f"{fmt_ratio(e['cpu_s'], m['cpu_s'])} over the run, "
                             f"{fmt_ratio(e_rate, m_rate)} steady state",
                             m["cpu_s"] > 0 and e["cpu_s"] / m["cpu_s"] <= CPU_TARGET_RATIO))

        print()
        print("Memory: peak RSS (ru_maxrss; summed over the ffmpeg processes, so ffmpeg's shared")
        print(" libraries count once per process, as they do in each process's RSS); anon = anonymous")
        print(" RSS just before the stop, without file-backed pages; video = seconds recorded per camera")
        print()
        header = (f"{'N':>3} | {'edgenvr MB':>10} {'ffmpeg MB':>9} {'ratio':>6} | "
                  f"{'anon MB e':>9} {'f':>6} {'ratio':>6} | {'video s/cam e':>13} {'f':>5}")
        print(header)
        print("-" * len(header))
        for n, run, groups in rows:
            e, m = groups["edgenvr"], groups["ffmpeg"]
            e_video = run.get("edgenvr_video", {})
            e_secs = (sum(v["frames"] for v in e_video.values()) / max(1, len(e_video)) / args.fps
                      if e_video else float("nan"))
            m_frames = [v["frames"] for v in run.get("ffmpeg_video", [])
                        if v.get("frames") is not None]
            m_secs = sum(m_frames) / max(1, len(m_frames)) / args.fps if m_frames else float("nan")
            print(f"{n:>3} | {e['maxrss_kib'] / 1024:>10.1f} {m['maxrss_kib'] / 1024:>9.1f} "
                  f"{fmt_ratio(e['maxrss_kib'], m['maxrss_kib']):>6} | {e['anon_kib'] / 1024:>9.1f} "
                  f"{m['anon_kib'] / 1024:>6.1f} {fmt_ratio(e['anon_kib'], m['anon_kib']):>6} | "
                  f"{e_secs:>13.1f} {m_secs:>5.1f}")
            if n == MEMORY_TARGET_N:
                verdicts.append((f"memory at most 1/10 of ffmpeg's at N = {n}",
                                 f"{fmt_ratio(e['maxrss_kib'], m['maxrss_kib'])} peak RSS, "
                                 f"{fmt_ratio(e['anon_kib'], m['anon_kib'])} anonymous",
                                 e["maxrss_kib"] / m["maxrss_kib"] <= MEMORY_TARGET_RATIO))
        verdicts15 = []
        for n, run, groups in rows:
            e, m = groups["edgenvr"], groups["ffmpeg"]
            e_rate, m_rate = steady_ms_per_s(e, run), steady_ms_per_s(m, run)
            target = STEADY_TARGET_RATIO.get(n, STEADY_TARGET_RATIO_MANY)
            verdicts15.append((f"steady-state CPU at most {target} of ffmpeg's at N = {n}",
                               fmt_ratio(e_rate, m_rate), m_rate > 0 and e_rate / m_rate <= target))
            per_camera = e["anon_kib"] / 1024 / n
            verdicts15.append((f"anonymous memory at most {ANON_PER_CAMERA_TARGET_MB} MB per camera "
                               f"at N = {n}", f"{per_camera:.2f} MB",
                               per_camera <= ANON_PER_CAMERA_TARGET_MB))
        floor_rows = [(n, run, groups) for n, run, groups in rows if "floor" in groups]
        if floor_rows:
            print()
            print("The floor: examples/bench_floor.rs, one process of N bare retina sessions writing")
            print(" access units through a 1 MiB buffered file, in the same run (steady ms/s as above;")
            print(" anon MB per camera = anonymous RSS / N, the process's own base included)")
            print()
            header = (f"{'N':>3} | {'steady ms/s floor':>17} {'floor/ffmpeg':>12} {'edgenvr/floor':>13} | "
                      f"{'anon MB/cam e':>13} {'floor':>6}")
            print(header)
            print("-" * len(header))
            for n, run, groups in floor_rows:
                e, m, fl = groups["edgenvr"], groups["ffmpeg"], groups["floor"]
                e_rate, m_rate, f_rate = (steady_ms_per_s(g, run) for g in (e, m, fl))
                print(f"{n:>3} | {f_rate:>17.1f} {fmt_ratio(f_rate, m_rate):>12} "
                      f"{fmt_ratio(e_rate, f_rate):>13} | {e['anon_kib'] / 1024 / n:>13.2f} "
                      f"{fl['anon_kib'] / 1024 / n:>6.2f}")
        for n, run, groups in rows:
            for name in [g for g in ("edgenvr", "ffmpeg", "floor") if g in groups]:
                for p in groups[name]["bad"]:
                    print(f"  ! N = {n}, {name} pid {p['pid']}: exit {p['exit_code']}, "
                          f"early exit after {p['exited_early_after_s']} s, "
                          f"killed after the close timeout: {p['killed_after_close_timeout']} "
                          f"(log {p['log']})")

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
        measured = loop.get("measure")
        if measured:
            groups = group_totals(measured)
            print("(CPU in this run: " + ", ".join(
                f"{name} {g['cpu_s']:.2f} s, {steady_ms_per_s(g, measured):.1f} ms/s steady"
                for name, g in groups.items()) + ")")
            for name, g in groups.items():
                for p in g["bad"]:
                    print(f"  ! {name} pid {p['pid']}: exit {p['exit_code']}, early exit after "
                          f"{p['exited_early_after_s']} s, killed after the close timeout: "
                          f"{p['killed_after_close_timeout']} (log {p['log']})")
        amp = loop["edgenvr"]["amplification"]
        verdicts.append(("device bytes per video byte at most 1.02 (edgenvr)", f"{amp:.3f}",
                         amp <= WRITE_AMPLIFICATION_TARGET))

    print()
    print("Targets (issue 3)")
    for what, value, ok in verdicts:
        print(f"  {'MET    ' if ok else 'NOT MET'}  {what}: {value}")
    if rows:
        print("Targets (issue 15)")
        for what, value, ok in verdicts15:
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
    m.add_argument("--warmup", type=float, default=5.0)
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
