#!/usr/bin/python3
"""A test RTSP camera: serves pre-encoded Annex-B clips in a loop, in real time, with gst-rtsp-server.

Run with Debian's /usr/bin/python3 (needs python3-gi, gir1.2-gst-rtsp-server-1.0, python3-gst-1.0).

    rtsp-server.py --stream /h264=clip.h264 --stream /h265=clip.h265 [--fps 25]
                   [--port 0] [--user U --password P [--basic]] [--audio]

Each --stream maps an RTSP path to a raw H.264 (.h264/.264) or H.265 (.h265/.hevc/.265) file
encoded without B-frames. The file carries no timestamps, so each access unit is stamped
(pts = dts = n x frame duration) in a pad probe after the parser; without that the server would
send as fast as it can. One shared pipeline per path serves every client.

Stdout protocol, one line each, flushed (the test harness reads it):
    port N              once, after binding (port 0 picks a free port)
    frames PATH N       the total access units stamped for PATH so far (across pipeline restarts),
                        printed when it changed, every 200 ms
    idle PATH N         PATH's pipeline stopped (its last client left) after N frames in total
With --user/--password, every path requires digest authentication (basic with --basic).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# How often the frame counters are reported; short enough that a test reading the last report
# after stopping a recorder is off by a handful of frames at most.
REPORT_INTERVAL_MS = 200


def codec_of(path):
    lower = path.lower()
    if lower.endswith((".h264", ".264")):
        return "h264"
    if lower.endswith((".h265", ".265", ".hevc")):
        return "h265"
    raise SystemExit(f"rtsp-server: cannot tell the codec of {path} (use .h264 or .h265)")


class LoopFactory(GstRtspServer.RTSPMediaFactory):
    """Serves one Annex-B file in a loop, stamping access units at the configured frame rate."""

    def __init__(self, path, fps, counters, audio):
        super().__init__()
        self.audio = audio
        self.rtsp_path = path
        self.frame_ns = Gst.SECOND // fps
        self.counters = counters
        self.counters[path] = 0
        self.set_shared(True)
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media):
        def idle(_media):
            print(f"frames {self.rtsp_path} {self.counters[self.rtsp_path]}", flush=True)
            print(f"idle {self.rtsp_path} {self.counters[self.rtsp_path]}", flush=True)

        media.connect("unprepared", idle)

    def do_create_element(self, url):
        # A fresh pipeline (a new client after the previous one left) restarts its timestamps.
        codec = codec_of(self.clip)
        desc = (
            f"( multifilesrc location={self.clip} loop=true "
            f"! {codec}parse name=parse config-interval=-1 "
            f"! video/x-{codec},alignment=au,stream-format=byte-stream "
            f"! rtp{codec}pay name=pay0 pt=96 config-interval=-1 "
        )
        if self.audio:
            # A live AAC track (16 kHz mono ticks), as a camera with a microphone sends.
            desc += (
                "audiotestsrc is-live=true wave=ticks "
                "! audioconvert ! audio/x-raw,rate=16000,channels=1 "
                "! voaacenc ! aacparse ! rtpmp4gpay name=pay1 pt=97 "
            )
        desc += ")"
        bin_ = Gst.parse_launch(desc)
        parse = bin_.get_by_name("parse")
        state = {"n": 0}

        def stamp(_pad, info):
            buf = info.get_buffer()
            buf.pts = state["n"] * self.frame_ns
            buf.dts = buf.pts
            buf.duration = self.frame_ns
            state["n"] += 1
            self.counters[self.rtsp_path] += 1
            return Gst.PadProbeReturn.OK

        parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, stamp)
        return bin_


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stream", action="append", required=True, metavar="PATH=FILE")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--port", default="0")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--basic", action="store_true", help="basic instead of digest authentication")
    ap.add_argument("--audio", action="store_true", help="add an AAC audio track to every path")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    counters = {}

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.basic:
            basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password or "")
            auth.add_basic(basic, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)

    for spec in args.stream:
        path, sep, clip = spec.partition("=")
        if not sep or not path.startswith("/"):
            raise SystemExit(f"rtsp-server: --stream wants /PATH=FILE, got {spec!r}")
        factory = LoopFactory(path, args.fps, counters, args.audio)
        factory.clip = clip
        if args.user is not None:
            role = Gst.Structure.from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )[0]
            factory.add_role_from_structure(role)
        mounts.add_factory(path, factory)

    if server.attach(None) == 0:
        raise SystemExit("rtsp-server: could not bind")
    print(f"port {server.get_bound_port()}", flush=True)

    reported = {}

    def report():
        for path, n in counters.items():
            if reported.get(path) != n:
                reported[path] = n
                print(f"frames {path} {n}", flush=True)
        return True

    GLib.timeout_add(REPORT_INTERVAL_MS, report)
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
