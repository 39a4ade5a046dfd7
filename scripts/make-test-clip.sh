#!/usr/bin/env bash
# Regenerates firmware/daemon/assets/sim-clip.h264, the clip `edgenvr sim-camera` serves (it is
# embedded in the binary, so the demo needs no files). Run it only to change the clip; the output
# is committed.
#
# What it is: ffmpeg's lavfi `testsrc2` pattern (which carries its own small clock, top left) with
# a large burned-in media-time clock and a label, 640x360 at 25 fps, 12 s, encoded by libx264
# (Main profile) into a raw Annex-B H.264 elementary stream:
#   - no B-frames (-bf 0): most IP cameras send none, and retina does not reorder them;
#   - a key frame every second exactly (-g 25, no scene-cut key frames), like a camera's 1 s GOP,
#     so a recorder's fragments are one second long;
#   - about 450 kbit/s (capped at 600 kbit/s over a 1 s buffer), which keeps the file near 700 KB:
#     small enough to commit and embed, busy enough to look like a real stream;
#   - one encoder thread, so the same ffmpeg/x264 build and font give the same bytes.
# The clip loops on the server with continuous timestamps; the burned-in clock shows where a
# recording is in the loop.
#
# Usage: scripts/make-test-clip.sh [OUTPUT]   (default: firmware/daemon/assets/sim-clip.h264)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-firmware/daemon/assets/sim-clip.h264}"
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf # Debian's fonts-dejavu-core
[ -r "$font" ] || { echo "make-test-clip: font $font not found (apt install fonts-dejavu-core)" >&2; exit 1; }

seconds=12   # long enough that a loop is not obvious, short enough to stay under 1 MB
fps=25       # a common camera frame rate; 90 kHz / 25 = 3600 ticks per frame, exact

clock="drawtext=fontfile=$font:text='%{pts\\:hms}':x=(w-tw)/2:y=h-th-24:fontsize=40:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8"
label="drawtext=fontfile=$font:text='edgenvr sim-camera':x=(w-tw)/2:y=h-th-84:fontsize=24:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6"

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=$fps:duration=$seconds,$label,$clock" \
  -c:v libx264 -profile:v main -preset medium -threads 1 \
  -b:v 450k -maxrate 600k -bufsize 600k \
  -bf 0 -g "$fps" -keyint_min "$fps" -sc_threshold 0 \
  -pix_fmt yuv420p -f h264 "$out"

ls -l "$out"
