#!/usr/bin/env bash
# The main job, on any laptop, with no camera and no Pi: builds edgenvr, starts a simulated RTSP
# camera and the box (one camera in events mode, a simulated PIR, the state port and the HTTP
# API), fires the PIR now and then, shows `nvrctl watch` live, then pulls a clip of the last event
# with `nvrctl pull` and says where it is and how to play it. Stops everything it started.
#
#   scripts/demo.sh            about a minute
#   scripts/demo.sh --short    the same, faster (CI runs this)
#
# Everything lives in a fresh directory under /tmp (printed at the start), so nothing on the
# machine is touched. Needs what scripts/setup.sh installs (it is run first, and is quiet when
# everything is there).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

short=0
[ "${1:-}" = "--short" ] && short=1
# Short mode fires the PIR twice, far enough apart to make two events; the full run fires it
# every ~10 s.
if ((short)); then pre_roll=2s post_roll=3s watch_s=18 fires=2; else pre_roll=5s post_roll=5s watch_s=30 fires=3; fi

scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building edgenvr and nvrctl"
cargo build --quiet --bins -p edgenvr -p nvrctl
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
edgenvr=$target_dir/debug/edgenvr
nvrctl=$target_dir/debug/nvrctl

work=$(mktemp -d /tmp/edgenvr-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
echo "demo directory: $work"

# Waits until a log file has a `listening WHAT ADDR` line and prints ADDR.
listening() {
  local what=$1 log=$2 pid=$3
  for _ in $(seq 1 300); do
    local addr
    addr=$(sed -n "s/.*listening $what \([^ ]*\).*/\1/p" "$log" | head -n 1)
    if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "demo: process for $what exited; its log:" >&2; cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: no 'listening $what' line in $log" >&2
  return 1
}

say "starting a simulated camera (edgenvr sim-camera)"
"$edgenvr" sim-camera --listen 127.0.0.1:0 --path front 2>"$work/sim-camera.log" &
pids+=($!)
rtsp=$(listening rtsp "$work/sim-camera.log" $!)
echo "camera: rtsp://$rtsp/front"

say "provisioning a 128 MiB store (zero-filled slots)"
"$edgenvr" store init "$work/store" --size 128MiB

cat >"$work/config.toml" <<TOML
[box]
name = "demo"

[storage]
dir = "$work/store"
sync_interval = "2s"
event_share = "25%"

[[camera]]
name = "front"
url = "rtsp://$rtsp/front"
mode = "events"
pre_roll = "$pre_roll"
post_roll = "$post_roll"
triggers = ["pir-door"]

[[sensor]]
name = "pir-door"
kind = "pir"
backend = "sim"
debounce = "50ms"
hold = "1s"

[[output]]
name = "light-porch"
backend = "sim"

[[rule]]
when = "pir-door"
then = "light-porch"
for = "3s"

[state]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"
token = "demo-token-not-secret"

[control]
socket = "$work/control.sock"
TOML
echo "config: $work/config.toml"
"$edgenvr" check-config --config "$work/config.toml"

say "starting the box (edgenvr run)"
"$edgenvr" run --config "$work/config.toml" 2>"$work/edgenvr.log" &
box=$!
pids+=($box)
state=$(listening state "$work/edgenvr.log" $box)
http=$(listening http "$work/edgenvr.log" $box)
listening control "$work/edgenvr.log" $box >/dev/null
echo "state port: $state   HTTP API: $http"

say "the PIR fires now and then; nvrctl watch shows the box's state live ($watch_s s)"
# Someone walks past: the PIR's output goes high for a second, $fires times, ~8-10 s apart (more
# than pre-roll + hold + post-roll, so each is an event of its own).
(
  sleep 3
  for ((n = 1; n <= fires; n++)); do
    "$edgenvr" sim set pir-door high --config "$work/config.toml" >/dev/null
    sleep 1
    "$edgenvr" sim set pir-door low --config "$work/config.toml" >/dev/null
    ((n < fires)) && { if ((short)); then sleep 7; else sleep 9; fi; }
  done
) &
pids+=($!)
timeout "$watch_s" "$nvrctl" watch "$state" || true
# Every event has ended (its post-roll written) before the listing.
for _ in $(seq 1 300); do
  (($(grep -c "event ended" "$work/edgenvr.log") >= fires)) && break
  sleep 0.1
done

say "recordings on the box (nvrctl recordings)"
export EDGENVR_TOKEN=demo-token-not-secret
"$nvrctl" recordings "$http" --camera front
listed=$("$nvrctl" recordings "$http" --camera front --json |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cameras"][0]["events"]))')
if ((listed < fires)); then
  echo "demo: the PIR fired $fires times but only $listed event(s) are listed; the box's log: $work/edgenvr.log" >&2
  exit 1
fi
echo "all $fires events are listed"

say "pulling a clip of the last event (nvrctl pull --event)"
last=$("$nvrctl" recordings "$http" --camera front --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["cameras"][0]["events"][-1]["id"])')
"$nvrctl" pull "$http" --event "$last" -o "$work/last-event.mp4"
frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$work/last-event.mp4")
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/last-event.mp4")
if ! ((frames > 0)); then
  echo "demo: the clip of event $last holds no frames" >&2
  exit 1
fi

say "done"
echo "clip of the last event: $work/last-event.mp4 ($frames frames, ${duration}s)"
echo "play it with:  vlc $work/last-event.mp4   or   ffplay $work/last-event.mp4"
echo "the box's log: $work/edgenvr.log"
