# Shared by the recording benchmarks (bench-record.sh, bench-instructions.sh): the test clip, the
# RTSP camera serving it, and an `edgenvr run` config of N cameras. Source it; it defines
# functions only. Callers set ROOT (the repository) and PY (Debian's Python, which has `gi`).

BENCH_FPS=25         # the clip's frame rate, a common camera rate
BENCH_CLIP_SECONDS=20 # ten 2 s GOPs: long enough that the loop is not one repeated GOP

# bench_clip DIR BITRATE GOP_FRAMES: prints the path of a 1080p25 H.264 clip of BITRATE (ffmpeg
# syntax, e.g. 4M) with a key frame every GOP_FRAMES frames and no B-frames, encoded once into DIR
# and reused after that.
bench_clip() {
  local dir=$1 bitrate=$2 gop=$3
  local clip=$dir/clip-1080p${BENCH_FPS}-${bitrate}-g${gop}-${BENCH_CLIP_SECONDS}s.h264
  if [ ! -s "$clip" ]; then
    echo "== encoding the test clip $clip" >&2
    # testsrc2 alone compresses to far below 4 Mbit/s; temporal noise makes every frame cost
    # bits, like a camera's sensor noise, so the rate control reaches the target.
    ffmpeg -hide_banner -loglevel error -y \
      -f lavfi -i "testsrc2=size=1920x1080:rate=$BENCH_FPS:duration=$BENCH_CLIP_SECONDS,noise=alls=12:allf=t" \
      -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
      -b:v "$bitrate" -maxrate "$bitrate" -bufsize "$bitrate" \
      -bf 0 -g "$gop" -keyint_min "$gop" -sc_threshold 0 \
      -f h264 "$clip.tmp" >&2
    mv "$clip.tmp" "$clip"
  fi
  echo "$clip"
}

# bench_clip_kbps CLIP: the clip's bitrate in kbit/s.
bench_clip_kbps() { echo $(( $(stat -c %s "$1") * 8 / BENCH_CLIP_SECONDS / 1000 )); }

# bench_server DIR PATH=CLIP...: starts scripts/rtsp-server.py serving each clip in real time on
# its path (one shared pipeline per path), in the background; sets BENCH_SERVER_PID and
# BENCH_PORT. The caller kills BENCH_SERVER_PID when done.
bench_server() {
  local dir=$1 stream args=()
  shift
  for stream in "$@"; do args+=(--stream "$stream"); done
  "$PY" "$ROOT/scripts/rtsp-server.py" "${args[@]}" --fps "$BENCH_FPS" \
    >"$dir/server.out" 2>"$dir/server.err" &
  BENCH_SERVER_PID=$!
  BENCH_PORT=
  for _ in $(seq 100); do
    BENCH_PORT=$(awk '/^port /{print $2; exit}' "$dir/server.out")
    [ -n "$BENCH_PORT" ] && return 0
    kill -0 "$BENCH_SERVER_PID" 2>/dev/null || { echo "rtsp-server.py exited: $(cat "$dir/server.err")" >&2; return 1; }
    sleep 0.1
  done
  echo "rtsp-server.py did not report its port" >&2
  return 1
}

# bench_config STORE SEGMENT_S N URL: prints an `edgenvr run` config recording N cameras, all
# from URL, into STORE (cut every SEGMENT_S seconds, synced every 2 s).
bench_config() {
  local store=$1 segment_s=$2 n=$3 url=$4 i
  printf '[box]\nname = "bench"\n\n[storage]\ndir = "%s"\nsegment = "%ss"\nsync_interval = "2s"\n' \
    "$store" "$segment_s"
  for i in $(seq -w 1 "$n"); do
    printf '\n[[camera]]\nname = "cam%s"\nurl = "%s"\n' "$i" "$url"
  done
}

# bench_video_seconds LS_JSON: seconds of video (frames / BENCH_FPS) summed over every camera
# of an `edgenvr store ls --json` listing.
bench_video_seconds() {
  "$PY" -c '
import json, sys
listing = json.load(open(sys.argv[1]))
cameras = listing["cameras"] if isinstance(listing, dict) else listing
frames = sum(r.get("frames", 0) for c in cameras for r in c.get("ranges", []))
print(f"{frames / float(sys.argv[2]):.2f}")' "$1" "$BENCH_FPS"
}
